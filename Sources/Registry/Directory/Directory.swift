import Foundation
public import ShoalProto
import Synchronization

/// The live service directory: `DirectoryState` behind a lock, a clock, the watchers, and the
/// loop that expires leases. `run()` must be running for leases to expire.
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
  }

  /// How many changes may wait for a slow watcher before it is cut off and told to re-list.
  public static let watcherBacklog = 4096

  private let guarded: Mutex<Guarded>
  private let expiryInterval: Duration

  /// An empty directory whose revisions start at the current time in microseconds.
  public init(config: DirectoryState.Config = .defaults, expiryInterval: Duration = .milliseconds(100)) {
    let start = Int64(Date().timeIntervalSince1970 * 1_000_000)
    guarded = Mutex(Guarded(state: DirectoryState(config: config, firstRevision: start)))
    self.expiryInterval = expiryInterval
  }

  /// Expires leases until cancelled.
  public func run() async {
    while !Task.isCancelled {
      try? await Task.sleep(for: expiryInterval)
      let now = Self.nowMs()
      mutate { $0.expire(nowMs: now) }
    }
    guarded.withLock { guarded in
      guarded.stopped = true
      for watcher in guarded.watchers.values { watcher.continuation.finish() }
      guarded.watchers = [:]
    }
  }

  /// Whether `run()` has ended (watch streams end for good then).
  public var isStopped: Bool { guarded.withLock { $0.stopped } }

  /// Lists an instance under a new lease.
  public func register(_ request: RegistryV1.RegisterRequest) -> RegistryV1.RegisterResponse {
    let now = Self.nowMs()
    var response = RegistryV1.RegisterResponse()
    mutate { state in
      let (instance, ttlMs, changes) = state.register(request, nowMs: now)
      response.instance = instance
      response.ttlMs = UInt32(ttlMs)
      response.revision = state.revision
      return changes
    }
    return response
  }

  /// Extends a lease; nil when it is unknown or expired.
  public func keepAlive(leaseID: Int64) -> (ttlMs: Int64, expiresAtMs: Int64)? {
    let now = Self.nowMs()
    return guarded.withLock { $0.state.keepAlive(leaseID: leaseID, nowMs: now) }
  }

  /// Ends a lease; returns the revision after it.
  public func deregister(leaseID: Int64) -> Int64 {
    var revision: Int64 = 0
    mutate { state in
      defer { revision = state.revision }
      return state.deregister(leaseID: leaseID)
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

  /// Applies a change and hands its events to the watchers, all under the lock, so every watcher
  /// sees changes in revision order.
  private func mutate(_ change: (inout DirectoryState) -> [RegistryV1.WatchEvent]) {
    guarded.withLock { guarded in
      let events = change(&guarded.state)
      guard !events.isEmpty else { return }
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
    }
  }

  static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
