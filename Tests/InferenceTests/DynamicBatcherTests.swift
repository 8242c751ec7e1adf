import Foundation
import ShoalModel
import ShoalRPC
import ShoalTestSupport
import Synchronization
import Testing

@testable import Inference

struct DynamicBatcherTests {
  static func rows(_ count: Int, seed: UInt64) -> Tensor {
    var random = SplitMix64(seed: seed)
    return Tensor(shape: [count, 4], elements: (0..<(count * 4)).map { _ in Float(random.next() % 1000) / 250 - 2 })
  }

  static func policy(max: Int = 8, delayUs: Int64 = 0, queue: Int = 0, instances: Int = 1) -> BatchingPolicy {
    BatchingPolicy(
      maxBatchSize: max, maxQueueDelayMicroseconds: delayUs, preferredBatchSizes: [], maxQueueSize: queue,
      instances: instances)
  }

  /// Requests that wait for each other (a long delay, a batch of exactly their rows) are run as one
  /// execution, and each gets the same outputs as when it runs alone.
  @Test func batchedOutputsEqualUnbatchedOnes() async throws {
    let model = try Model(onnx: TestOnnx.classifier(features: 4, classes: 3, seed: 7))
    let executions = Mutex<[Int]>([])
    let batcher = DynamicBatcher(
      model: model, name: "test", policy: Self.policy(max: 10, delayUs: 5_000_000), batchable: true
    ) { execution in executions.withLock { $0.append(execution.rows) } }
    let inputs = [1, 2, 3, 4].map { Self.rows($0, seed: UInt64($0)) }
    let batched = try await withThrowingTaskGroup(of: (Int, Tensor).self) { group in
      for (index, input) in inputs.enumerated() {
        group.addTask { (index, try await batcher.submit(["x": input], deadline: nil)["probs"]!) }
      }
      var outputs: [Int: Tensor] = [:]
      for try await (index, output) in group { outputs[index] = output }
      return outputs
    }
    #expect(executions.withLock { $0 } == [10])
    for (index, input) in inputs.enumerated() {
      let alone = try model.run(["x": input])["probs"]!
      #expect(batched[index]!.shape == alone.shape)
      let difference =
        zip(batched[index]!.elements(as: Float.self), alone.elements(as: Float.self))
        .map { abs($0 - $1) }.max() ?? 0
      #expect(difference <= 1e-6, "request \(index) differs by \(difference)")
    }
    await batcher.drain()
  }

  @Test func aFixedBatchDimensionIsNeverStacked() async throws {
    let model = try Model(onnx: TestOnnx.classifier(fixedBatch: 2))
    let executions = Mutex<[Int]>([])
    let batcher = DynamicBatcher(
      model: model, name: "fixed", policy: Self.policy(max: 8, delayUs: 20_000),
      batchable: ServedVersion.batchable(model)
    ) { execution in executions.withLock { $0.append(execution.requests) } }
    #expect(!batcher.batches)
    try await withThrowingTaskGroup(of: Void.self) { group in
      for seed in 0..<3 {
        group.addTask { _ = try await batcher.submit(["x": Self.rows(2, seed: UInt64(seed))], deadline: nil) }
      }
      try await group.waitForAll()
    }
    #expect(executions.withLock { $0 } == [1, 1, 1])
    await batcher.drain()
  }

  /// With the one instance held by a long wait for a batch, the queue fills: the next request is
  /// refused with RESOURCE_EXHAUSTED naming the model and the limit; one whose deadline passes
  /// is answered DEADLINE_EXCEEDED and never run; a cancelled one leaves the queue.
  @Test func queueLimitDeadlineAndCancellation() async throws {
    let model = try Model(onnx: TestOnnx.classifier())
    let ran = Mutex(0)
    let batcher = DynamicBatcher(
      model: model, name: "local/tiny v1", policy: Self.policy(max: 64, delayUs: 60_000_000, queue: 2),
      batchable: true
    ) { execution in ran.withLock { $0 += execution.requests } }

    let expiring = Task {
      try await batcher.submit(["x": Self.rows(1, seed: 1)], deadline: .now + .milliseconds(100))
    }
    let cancelled = Task { try await batcher.submit(["x": Self.rows(1, seed: 2)], deadline: nil) }
    while batcher.pending < 2 { try await Task.sleep(for: .milliseconds(5)) }
    do {
      _ = try await batcher.submit(["x": Self.rows(1, seed: 3)], deadline: nil)
      Issue.record("a third request fit a queue of two")
    } catch let error as RPCError {
      #expect(error.code == .resourceExhausted && error.message.contains("local/tiny v1"))
      #expect(error.message.contains("max_queue_size"))
    }
    cancelled.cancel()
    await #expect(throws: RPCError.self) { try await cancelled.value }
    do {
      _ = try await expiring.value
      Issue.record("the expiring request was answered")
    } catch let error as RPCError {
      #expect(error.code == .deadlineExceeded, "\(error)")
    }
    #expect(batcher.pending == 0)
    await batcher.drain()
    #expect(ran.withLock { $0 } == 0)
  }

  /// Draining lets what is queued run, then refuses new requests.
  @Test func drainFinishesQueuedRequests() async throws {
    let model = try Model(onnx: TestOnnx.classifier())
    let batcher = DynamicBatcher(
      model: model, name: "drained", policy: Self.policy(max: 8, delayUs: 60_000_000), batchable: true)
    let queued = Task { try await batcher.submit(["x": Self.rows(1, seed: 4)], deadline: nil) }
    while batcher.pending < 1 { try await Task.sleep(for: .milliseconds(5)) }
    await batcher.drain()
    #expect(try await queued.value["probs"]?.shape == [1, 3])
    do {
      _ = try await batcher.submit(["x": Self.rows(1, seed: 5)], deadline: nil)
      Issue.record("a drained batcher took a request")
    } catch let error as RPCError {
      #expect(error.code == .unavailable)
    }
  }

  /// Once the model is known to be fast, a lone request with no batch delay runs on the caller's
  /// thread; requests that come while one runs wait for the instance thread.
  @Test func loneRequestsToAFastModelRunOnTheCallersThread() async throws {
    let model = try Model(onnx: TestOnnx.classifier())
    let executions = Mutex<[Bool]>([])
    // A limit no run reaches, so that a loaded test machine does not decide the path.
    let batcher = DynamicBatcher(
      model: model, name: "fast", policy: Self.policy(max: 1), batchable: true, inlineComputeLimit: 60
    ) { execution in executions.withLock { $0.append(execution.onCallerThread) } }
    for seed in 0..<5 {
      let input = Self.rows(1, seed: UInt64(seed))
      let output = try await batcher.submit(["x": input], deadline: nil)["probs"]!
      #expect(output.elements(as: Float.self) == (try model.run(["x": input]))["probs"]!.elements(as: Float.self))
    }
    #expect(executions.withLock { $0 } == [false, true, true, true, true])
    try await withThrowingTaskGroup(of: Void.self) { group in
      for seed in 0..<40 {
        group.addTask {
          let input = Self.rows(1, seed: UInt64(seed))
          let output = try await batcher.submit(["x": input], deadline: nil)["probs"]!
          #expect(output.elements(as: Float.self) == (try model.run(["x": input]))["probs"]!.elements(as: Float.self))
        }
      }
      try await group.waitForAll()
    }
    let all = executions.withLock { $0 }
    #expect(all.count == 45 && all.contains(false))
    await batcher.drain()
  }

  @Test func nanInGivesNanOut() async throws {
    let model = try Model(onnx: TestOnnx.classifier())
    let batcher = DynamicBatcher(model: model, name: "nan", policy: Self.policy(), batchable: true)
    let input = Tensor(shape: [1, 4], elements: [Float.nan, 0, 1, 2])
    let output = try await batcher.submit(["x": input], deadline: nil)["probs"]!
    #expect(output.elements(as: Float.self).allSatisfy { $0.isNaN })
    await batcher.drain()
  }
}
