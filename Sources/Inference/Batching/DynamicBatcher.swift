import Foundation
public import ShoalModel
import ShoalRPC

/// Runs one loaded model's requests in batches on threads of its own (`instances` of them), so
/// that the model core's work never blocks the server's event loops or Swift's task pool.
///
/// Requests whose inputs match except for dimension 0 are stacked along it, run once, and the
/// outputs split back by rows. A model whose outputs do not keep the batch's rows in dimension 0
/// has each request run alone instead. A request cancelled or past its deadline while it waits
/// leaves the queue without being run.
public final class DynamicBatcher: @unchecked Sendable {
  /// What one execution did, for metrics.
  public struct Execution: Sendable {
    /// Requests in the batch.
    public var requests: Int
    /// Rows in the batch.
    public var rows: Int
    /// How long each request waited in the queue, in seconds.
    public var queueSeconds: [Double]
    /// The model core's time for the batch, in seconds.
    public var computeSeconds: Double
    /// Requests that failed.
    public var failures: Int
    /// Whether it ran on the caller's thread (a lone request to a fast model).
    public var onCallerThread = false
  }

  struct Payload {
    var inputs: [String: Tensor]
    var continuation: CheckedContinuation<[String: Tensor], any Error>
  }

  /// The policy in force.
  public let policy: BatchingPolicy
  private let model: Model
  private let name: String
  private let observe: @Sendable (Execution) -> Void
  private let declaredBatchable: Bool

  // Guarded by `condition`.
  private let condition = NSCondition()
  private var queue: BatchQueue<Payload>
  private var nextID: UInt64 = 0
  private var executing = 0
  private var closed = false
  private var threadsRunning = 0
  private var drainWaiters: [CheckedContinuation<Void, Never>] = []
  /// Set once a batch's outputs did not keep its rows: every request then runs alone.
  private var splitFailed = false
  /// The recent compute time of one execution, in seconds (nil before the first).
  private var recentCompute: Double?

  /// A lone request runs on the caller's thread when the model computes faster than this (1 ms by
  /// default): handing it to an instance thread and back costs two thread wake-ups, tens of µs
  /// each on a VM, which is most of a small model's time. Longer runs go to the instance threads,
  /// off the event loop.
  private let inlineComputeLimit: Double

  /// A batcher for `model` (named `name` in errors) under `policy`; `batchable` is false when
  /// the model's dimension 0 is fixed. `observe` hears of every execution. Its threads start now.
  public init(
    model: Model, name: String, policy: BatchingPolicy, batchable: Bool, inlineComputeLimit: Double = 0.001,
    observe: @escaping @Sendable (Execution) -> Void = { _ in }
  ) {
    self.inlineComputeLimit = inlineComputeLimit
    self.model = model
    self.name = name
    self.policy = policy
    self.observe = observe
    declaredBatchable = batchable
    queue = BatchQueue(policy: policy, batchable: batchable)
    threadsRunning = policy.instances
    for index in 0..<policy.instances {
      let thread = Thread { [self] in self.work() }
      thread.name = "shoal-batcher-\(index)"
      thread.stackSize = 8 << 20
      thread.start()
    }
  }

  /// Whether requests to this model are stacked into batches.
  public var batches: Bool { declaredBatchable && policy.maxBatchSize > 1 }

  /// Requests waiting now.
  public var pending: Int { locked { queue.count + executing } }

  private func locked<T>(_ body: () throws -> T) rethrows -> T {
    condition.lock()
    defer { condition.unlock() }
    return try body()
  }

  /// Runs `inputs` (already checked against the model's inputs) in the next batch that fits and
  /// returns this request's rows of every output.
  ///
  /// - Throws: RESOURCE_EXHAUSTED when the queue is full, DEADLINE_EXCEEDED or CANCELLED when the
  ///   call ends while it waits, UNAVAILABLE once the batcher is draining, and the model's error.
  public func submit(
    _ inputs: [String: Tensor], priority: Int = 0, deadline: ContinuousClock.Instant?
  ) async throws -> [String: Tensor] {
    var key = BatchKey(inputs: [])
    var rows = 1
    for (name, tensor) in inputs.sorted(by: { $0.key < $1.key }) {
      key.inputs.append(
        BatchKey.Input(name: name, dataType: tensor.dataType.onnxCode, rowShape: Array(tensor.shape.dropFirst())))
      if declaredBatchable { rows = tensor.shape.first ?? 1 }
    }
    if let outputs = try runInlineIfIdle(inputs, rows: rows) { return outputs }
    let id = locked {
      defer { nextID += 1 }
      return nextID
    }
    return try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[String: Tensor], any Error>) in
        condition.lock()
        let refusal: RPCError?
        if Task.isCancelled {
          refusal = Self.abandoned(deadline)
        } else if closed {
          refusal = RPCError(.unavailable, "model \(name) is being unloaded; call again")
        } else {
          let entry = BatchQueue<Payload>.Entry(
            id: id, rows: rows, key: key, priority: priority, enqueuedAt: .now, deadline: deadline,
            payload: Payload(inputs: inputs, continuation: continuation))
          refusal =
            queue.enqueue(entry)
            ? nil
            : RPCError(
              .resourceExhausted,
              "model \(name) has \(policy.maxQueueSize) requests queued, its max_queue_size; try again later")
          if refusal == nil { condition.signal() }
        }
        condition.unlock()
        if let refusal { continuation.resume(throwing: refusal) }
      }
    } onCancel: {
      let entry = locked { queue.remove(id: id) }
      entry?.payload.continuation.resume(throwing: Self.abandoned(deadline))
      if entry != nil { self.finishedIfDrained() }
    }
  }

  /// Runs `inputs` at once on this thread when nothing is queued or running, the batch delay is 0
  /// (so the request would not wait for others anyway) and the model is fast; nil otherwise.
  private func runInlineIfIdle(_ inputs: [String: Tensor], rows: Int) throws -> [String: Tensor]? {
    let mayRun = locked { () -> Bool in
      guard !closed, executing == 0, queue.count == 0, policy.maxQueueDelayMicroseconds == 0 || !batches,
        let recent = recentCompute, recent < inlineComputeLimit
      else { return false }
      executing += 1
      return true
    }
    guard mayRun else { return nil }
    let started = ContinuousClock.now
    var outputs: [String: Tensor]?
    var failure: (any Error)?
    do {
      outputs = try model.run(inputs)
    } catch {
      failure = error
    }
    let seconds = Self.seconds(.now - started)
    locked {
      executing -= 1
      recentCompute = 0.8 * (recentCompute ?? seconds) + 0.2 * seconds
      // Requests that came meanwhile wait for an instance thread.
      if queue.count > 0 { condition.signal() }
    }
    finishedIfDrained()
    observe(
      Execution(
        requests: 1, rows: rows, queueSeconds: [0], computeSeconds: seconds, failures: failure == nil ? 0 : 1,
        onCallerThread: true))
    if let failure { throw Self.rpcError(failure, model: name) }
    return outputs
  }

  /// Refuses new requests, lets the queued and running ones finish, then stops the threads.
  public func drain() async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
      condition.lock()
      closed = true
      drainWaiters.append(continuation)
      condition.broadcast()
      condition.unlock()
      finishedIfDrained()
    }
  }

  private static func abandoned(_ deadline: ContinuousClock.Instant?) -> RPCError {
    if let deadline, deadline <= .now {
      return RPCError(.deadlineExceeded, "the call's deadline passed while it waited in the queue; it was not run")
    }
    return RPCError(.cancelled, "the call was cancelled while it waited in the queue; it was not run")
  }

  private func finishedIfDrained() {
    condition.lock()
    guard closed, queue.count == 0, executing == 0, threadsRunning == 0 else {
      condition.unlock()
      return
    }
    let waiters = drainWaiters
    drainWaiters = []
    condition.unlock()
    for waiter in waiters { waiter.resume() }
  }

  // MARK: Instance threads

  private func work() {
    condition.lock()
    while true {
      let now = ContinuousClock.now
      let expired = queue.removeExpired(now: now)
      if !expired.isEmpty {
        condition.unlock()
        for entry in expired { entry.payload.continuation.resume(throwing: Self.abandoned(entry.deadline)) }
        condition.lock()
        continue
      }
      // A request run on its caller's thread counts as an execution in flight.
      if executing >= policy.instances {
        condition.wait()
        continue
      }
      switch queue.next(now: closed ? .now + .seconds(86_400) : now) {
      case .run(let batch):
        executing += 1
        let alone = splitFailed
        condition.unlock()
        let answers = execute(batch, alone: alone)
        condition.lock()
        executing -= 1
        if queue.count > 0 { condition.signal() }
        condition.unlock()
        for (continuation, result) in answers { continuation.resume(with: result) }
        condition.lock()
      case .wait(let until):
        // Wake for the batch's delay or the first deadline, whichever comes first.
        let wake = min(until, queue.earliestDeadline ?? until)
        _ = condition.wait(until: Date(timeIntervalSinceNow: Self.seconds(wake - now)))
      case .empty:
        if closed {
          threadsRunning -= 1
          condition.broadcast()
          condition.unlock()
          finishedIfDrained()
          return
        }
        condition.wait()
      }
    }
  }

  /// Runs a batch and returns each request's answer, to be handed over once the execution no
  /// longer counts as in flight.
  private func execute(
    _ batch: [BatchQueue<Payload>.Entry], alone: Bool
  ) -> [(CheckedContinuation<[String: Tensor], any Error>, Result<[String: Tensor], RPCError>)] {
    let started = ContinuousClock.now
    let queueSeconds = batch.map { Self.seconds(started - $0.enqueuedAt) }
    func runEach() -> [Result<[String: Tensor], RPCError>] {
      batch.map { entry in
        do {
          return .success(try model.run(entry.payload.inputs))
        } catch {
          return .failure(Self.rpcError(error, model: name))
        }
      }
    }
    var results: [Result<[String: Tensor], RPCError>]
    if batch.count == 1 || alone {
      results = runEach()
    } else if let outputs = runStacked(batch) {
      var offset = 0
      results = batch.map { entry in
        let range = offset..<(offset + entry.rows)
        offset += entry.rows
        return .success(outputs.mapValues { $0.rows(range) })
      }
    } else {
      // One bad request, or a model whose outputs lose the batch: each request on its own.
      results = runEach()
    }
    let seconds = Self.seconds(.now - started)
    if batch.count == 1 {
      locked { recentCompute = 0.8 * (recentCompute ?? seconds) + 0.2 * seconds }
    }
    observe(
      Execution(
        requests: batch.count, rows: batch.reduce(0) { $0 + $1.rows }, queueSeconds: queueSeconds,
        computeSeconds: seconds,
        failures: results.filter {
          if case .failure = $0 { return true }
          return false
        }.count))
    return zip(batch.map(\.payload.continuation), results).map { ($0, $1) }
  }

  /// The batch's outputs, or nil when it failed or an output does not have the batch's rows.
  private func runStacked(_ batch: [BatchQueue<Payload>.Entry]) -> [String: Tensor]? {
    let rows = batch.reduce(0) { $0 + $1.rows }
    var stacked: [String: Tensor] = [:]
    for name in batch[0].payload.inputs.keys {
      stacked[name] = Tensor.concatenatingRows(batch.map { $0.payload.inputs[name]! })
    }
    guard let outputs = try? model.run(stacked) else { return nil }
    guard outputs.values.allSatisfy({ $0.rank >= 1 && $0.shape[0] == rows }) else {
      condition.lock()
      splitFailed = true
      condition.unlock()
      return nil
    }
    return outputs
  }

  static func rpcError(_ error: any Error, model: String) -> RPCError {
    guard let error = error as? ModelError else { return RPCError(.internal, "model \(model): \(error)") }
    switch error.code {
    case .invalidInput: return RPCError(.invalidArgument, "model \(model): \(error.message)")
    case .unsupported: return RPCError(.failedPrecondition, "model \(model): \(error.message)")
    case .invalidModel, .io: return RPCError(.internal, "model \(model): \(error.message)")
    }
  }

  static func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
  }
}
