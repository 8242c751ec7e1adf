import Foundation
public import ShoalProto
import Synchronization

/// The live service directory: `DirectoryState` behind a lock, a clock, the watchers, the loop
/// that expires leases and, with a store, the writer that saves changes in order. `run()` must be
/// running for leases to expire and for `register` and `deregister` to return (they wait until
/// their change is saved).
public final class Directory: Sendable {
  private struct Watcher {
    let service: String
    let continuation: AsyncStream<RegistryV1.WatchEvent>.Continuation
  }

  private struct Guarded {
    var state: DirectoryState
    var watchers: [UInt64: Watcher] = [:]
    var nextWatcher: UInt64 = 0
    var stopped = false
    /// Changes waiting to be saved, in order, with whoever waits for them.
    var unsaved: [(writes: [DirectoryState.Write], saved: CheckedContinuation<Void, any Error>?)] = []
    var writerStopping = false
  }

  /// How many changes may wait for a slow watcher before it is cut off and told to re-list.
  public static let watcherBacklog = 4096

  private let guarded: Mutex<Guarded>
  private let expiryInterval: Duration
  private let store: DirectoryStore?
  private let wakeWriter: AsyncStream<Void>.Continuation
  private let writerWakeUps: AsyncStream<Void>
  private let log: @Sendable (String) -> Void

  /// A directory in memory only, whose revisions start at the current time in microseconds.
  public convenience init(config: DirectoryState.Config = .defaults, expiryInterval: Duration = .milliseconds(100)) {
    self.init(config: config, expiryInterval: expiryInterval, store: nil, saved: nil, log: { _ in })
  }

  private init(
    config: DirectoryState.Config, expiryInterval: Duration, store: DirectoryStore?, saved: DirectoryState.Saved?,
    log: @escaping @Sendable (String) -> Void
  ) {
    let start = Int64(Date().timeIntervalSince1970 * 1_000_000)
    let state = DirectoryState(config: config, firstRevision: start, restoring: saved, nowMs: Self.nowMs())
    guarded = Mutex(Guarded(state: state))
    self.expiryInterval = expiryInterval
    self.store = store
    self.log = log
    (writerWakeUps, wakeWriter) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    if store != nil { queueWrites(nil) }
  }

  /// A directory saved in `store`: what it saved last is restored, each restored lease with a
  /// full TTL from now to be kept alive again. `log` hears about failed saves.
  public static func open(
    store: DirectoryStore, config: DirectoryState.Config = .defaults, expiryInterval: Duration = .milliseconds(100),
    log: @escaping @Sendable (String) -> Void
  ) async throws -> Directory {
    var config = config
    config.historyLimit = store.historyLimit
    let saved = try await store.load()
    return Directory(config: config, expiryInterval: expiryInterval, store: store, saved: saved, log: log)
  }

  /// Expires leases and saves changes until cancelled; then saves what is left and ends every watch.
  public func run() async {
    // The writer must outlive the cancellation of this task to save the last changes, so it runs
    // in a task of its own, awaited below.
    let writer = Task.detached { await self.saveChanges() }
    while !Task.isCancelled {
      try? await Task.sleep(for: expiryInterval)
      let now = Self.nowMs()
      mutate { $0.expire(nowMs: now) }
    }
    guarded.withLock { $0.writerStopping = true }
    wakeWriter.yield()
    await writer.value
    guarded.withLock { guarded in
      guarded.stopped = true
      for watcher in guarded.watchers.values { watcher.continuation.finish() }
      guarded.watchers = [:]
    }
  }

  /// Whether `run()` has ended (watch streams end for good then).
  public var isStopped: Bool { guarded.withLock { $0.stopped } }

  /// Lists an instance under a new lease; returns once the registration is saved.
  ///
  /// - Throws: `StoreError` when it cannot be saved (the instance is listed anyway until its
  ///   lease runs out; registering the same address again replaces it).
  public func register(_ request: RegistryV1.RegisterRequest) async throws -> RegistryV1.RegisterResponse {
    let now = Self.nowMs()
    var response = RegistryV1.RegisterResponse()
    try await withCheckedThrowingContinuation { (saved: CheckedContinuation<Void, any Error>) in
      mutate(saved: saved) { state in
        let (instance, ttlMs, changes) = state.register(request, nowMs: now)
        response.instance = instance
        response.ttlMs = UInt32(ttlMs)
        response.revision = state.revision
        return changes
      }
    }
    return response
  }

  /// Extends a lease; nil when it is unknown or expired. The new expiry is saved in the background.
  public func keepAlive(leaseID: Int64) -> (ttlMs: Int64, expiresAtMs: Int64)? {
    let now = Self.nowMs()
    var result: (ttlMs: Int64, expiresAtMs: Int64)?
    mutate { state in
      result = state.keepAlive(leaseID: leaseID, nowMs: now)
      return []
    }
    return result
  }

  /// Ends a lease; returns the revision after it, once saved.
  public func deregister(leaseID: Int64) async throws -> Int64 {
    var revision: Int64 = 0
    try await withCheckedThrowingContinuation { (saved: CheckedContinuation<Void, any Error>) in
      mutate(saved: saved) { state in
        defer { revision = state.revision }
        return state.deregister(leaseID: leaseID)
      }
    }
    return revision
  }

  /// The live instances of `service` ("" for all) and the revision they were taken at.
  public func resolve(_ service: String) -> (instances: [RegistryV1.Instance], revision: Int64) {
    guarded.withLock { ($0.state.instances(of: service), $0.state.revision) }
  }

  /// Starts a watch of `service`: the events to send first (a snapshot, or the changes after
  /// `afterRevision`, or a reset and a snapshot), then a stream of later changes. The stream ends
  /// early if the watcher falls more than `watcherBacklog` changes behind; the caller then tells
  /// its client to re-list. Call `endWatch(id)` when done.
  public func watch(
    _ service: String, afterRevision: Int64
  ) -> (id: UInt64, initial: [RegistryV1.WatchEvent], changes: AsyncStream<RegistryV1.WatchEvent>) {
    let (stream, continuation) = AsyncStream.makeStream(
      of: RegistryV1.WatchEvent.self, bufferingPolicy: .bufferingOldest(Self.watcherBacklog))
    return guarded.withLock { guarded in
      var initial: [RegistryV1.WatchEvent] = []
      if afterRevision <= 0 {
        initial = [guarded.state.snapshot(of: service)]
      } else {
        switch guarded.state.changes(of: service, after: afterRevision) {
        case .changes(let changes): initial = changes
        case .reset(let reason):
          initial = [Self.reset(reason, revision: guarded.state.revision), guarded.state.snapshot(of: service)]
        }
      }
      let id = guarded.nextWatcher
      guarded.nextWatcher += 1
      if guarded.stopped {
        continuation.finish()
      } else {
        guarded.watchers[id] = Watcher(service: service, continuation: continuation)
      }
      return (id, initial, stream)
    }
  }

  /// Ends a watch started with `watch`.
  public func endWatch(_ id: UInt64) {
    let watcher = guarded.withLock { $0.watchers.removeValue(forKey: id) }
    watcher?.continuation.finish()
  }

  /// A RESET event.
  public static func reset(_ reason: String, revision: Int64) -> RegistryV1.WatchEvent {
    var event = RegistryV1.WatchEvent()
    event.kind = .reset
    event.revision = revision
    event.reason = reason
    return event
  }

  /// Applies a change, queues its writes, and hands its events to the watchers, all under the
  /// lock, so every watcher sees (and the store saves) changes in revision order. `saved` resumes
  /// when the writes are saved (at once without a store).
  private func mutate(
    saved: CheckedContinuation<Void, any Error>? = nil, _ change: (inout DirectoryState) -> [RegistryV1.WatchEvent]
  ) {
    let queued = guarded.withLock { guarded -> Bool in
      let events = change(&guarded.state)
      let writes = guarded.state.takeWrites()
      let queued = store != nil && (!writes.isEmpty || saved != nil)
      if queued { guarded.unsaved.append((writes, saved)) }
      defer { if queued { wakeWriter.yield() } }
      guard !events.isEmpty else { return queued }
      var overflowed: [UInt64] = []
      for (id, watcher) in guarded.watchers {
        for event in events where DirectoryState.matches(event, watcher.service) {
          if case .dropped = watcher.continuation.yield(event) {
            overflowed.append(id)
            break
          }
        }
      }
      for id in overflowed { guarded.watchers.removeValue(forKey: id)?.continuation.finish() }
      return queued
    }
    if !queued { saved?.resume() }
  }

  /// Queues the writes the state made outside `mutate` (the restore).
  private func queueWrites(_ saved: CheckedContinuation<Void, any Error>?) {
    mutate(saved: saved) { _ in [] }
  }

  /// Saves queued writes in order, several batches per transaction, until `run()` ends.
  private func saveChanges() async {
    guard let store else { return }
    var wakeUps = writerWakeUps.makeAsyncIterator()
    while true {
      let (batches, stopping) = guarded.withLock { guarded in
        defer { guarded.unsaved = [] }
        return (guarded.unsaved, guarded.writerStopping)
      }
      if batches.isEmpty {
        if stopping { return }
        _ = await wakeUps.next()
        continue
      }
      do {
        try await store.save(batches.flatMap(\.writes))
        for batch in batches { batch.saved?.resume() }
      } catch {
        log("cannot save the service directory: \(error)")
        for batch in batches { batch.saved?.resume(throwing: error) }
      }
    }
  }

  static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
