public import ShoalProto

/// The service directory as a pure value: live instances under leases, a revision that every
/// change increments, and a bounded history of changes for watchers that resume. No clocks, no
/// I/O: callers pass the time in, so every rule is testable without sleeping.
public struct DirectoryState: Sendable {
  /// Directory settings.
  public struct Config: Sendable {
    /// The TTL given to a registration that asks for none.
    public var defaultTTL: Duration
    /// The shortest TTL granted (shorter requests are raised to it).
    public var minimumTTL: Duration
    /// The longest TTL granted.
    public var maximumTTL: Duration
    /// How many past changes are kept for watchers resuming from a revision.
    public var historyLimit: Int

    /// 10 s default TTL (1 s to 5 min), 4,096 changes of history.
    public static var defaults: Config {
      Config(defaultTTL: .seconds(10), minimumTTL: .seconds(1), maximumTTL: .seconds(300), historyLimit: 4096)
    }
  }

  /// What a watcher resuming from a revision gets.
  public enum Replay: Sendable, Equatable {
    /// The changes after the revision, in order (possibly none).
    case changes([RegistryV1.WatchEvent])
    /// The changes are gone (too old, or from before the registry restarted): re-list.
    case reset(reason: String)
  }

  /// What a persisted directory hands back at start-up.
  public struct Saved: Sendable {
    /// The instances whose leases were live when last saved.
    public var instances: [RegistryV1.Instance]
    /// The saved changes, oldest first.
    public var history: [RegistryV1.WatchEvent]
    /// The last saved revision.
    public var revision: Int64
    /// The next lease id the last life would have issued.
    public var nextLeaseID: Int64

    /// A saved directory.
    public init(instances: [RegistryV1.Instance], history: [RegistryV1.WatchEvent], revision: Int64, nextLeaseID: Int64)
    {
      self.instances = instances
      self.history = history
      self.revision = revision
      self.nextLeaseID = nextLeaseID
    }
  }

  /// A change to save, in the order the directory made it.
  public enum Write: Sendable, Equatable {
    /// A change watchers saw.
    case event(RegistryV1.WatchEvent)
    /// A lease (new or replaced).
    case putLease(RegistryV1.Instance)
    /// A lease that ended.
    case deleteLease(Int64)
    /// A lease's new expiry.
    case renewLease(Int64, expiresAtMs: Int64)
    /// The counters to resume from.
    case counters(revision: Int64, nextLeaseID: Int64)
  }

  private struct Lease: Sendable {
    var instance: RegistryV1.Instance
    var ttlMs: Int64
  }

  /// The revision of the last change.
  public private(set) var revision: Int64
  private let config: Config
  private var leases: [Int64: Lease] = [:]
  private var nextLeaseID: Int64
  private var history: [RegistryV1.WatchEvent] = []
  private var historyStart = 0
  /// Every change after this revision is in `history`.
  private var historyFloor: Int64
  /// Revisions after `savedRevision` and below `firstRevision` may have been seen by watchers of
  /// the previous life but were never saved: resuming from one of them means re-listing.
  private var savedRevision: Int64
  private let firstRevision: Int64
  private var writes: [Write] = []

  /// A directory whose new revisions start after `firstRevision` (the registry uses its start time
  /// in microseconds, so revisions keep growing across restarts), restoring `saved` if given.
  /// Restored leases get at least one full TTL from `nowMs` to be kept alive again.
  public init(config: Config = .defaults, firstRevision: Int64, restoring saved: Saved? = nil, nowMs: Int64 = 0) {
    self.config = config
    let saved = saved ?? Saved(instances: [], history: [], revision: firstRevision, nextLeaseID: firstRevision)
    savedRevision = saved.revision
    self.firstRevision = max(firstRevision, saved.revision)
    revision = self.firstRevision
    nextLeaseID = max(firstRevision, saved.nextLeaseID)
    history = Array(saved.history.suffix(config.historyLimit))
    historyFloor = history.first.map { $0.revision - 1 } ?? saved.revision
    for var instance in saved.instances {
      let ttlMs = Int64(instance.ttlMs)
      instance.expiresAtMs = max(instance.expiresAtMs, nowMs + ttlMs)
      leases[instance.leaseId] = Lease(instance: instance, ttlMs: ttlMs)
      writes.append(.renewLease(instance.leaseId, expiresAtMs: instance.expiresAtMs))
    }
    writes.append(.counters(revision: revision, nextLeaseID: nextLeaseID))
  }

  /// The changes made since the last call, to be saved in this order.
  public mutating func takeWrites() -> [Write] {
    defer { writes = [] }
    return writes
  }

  /// The live instances of `service` (all services for ""), ordered by service and address.
  public func instances(of service: String = "") -> [RegistryV1.Instance] {
    leases.values.map(\.instance).filter { service.isEmpty || $0.service == service }.sorted {
      ($0.service, $0.address, $0.leaseId) < ($1.service, $1.address, $1.leaseId)
    }
  }

  /// The instance held by `leaseID`, if that lease is live.
  public func instance(leaseID: Int64) -> RegistryV1.Instance? { leases[leaseID]?.instance }

  /// Lists an instance under a new lease. An instance already listed for the same service and
  /// address (a restarted server registering again) is replaced: watchers see its DELETE first.
  ///
  /// - Returns: the instance, the granted TTL, and the changes in order.
  public mutating func register(
    _ request: RegistryV1.RegisterRequest, nowMs: Int64
  ) -> (instance: RegistryV1.Instance, ttlMs: Int64, changes: [RegistryV1.WatchEvent]) {
    var changes: [RegistryV1.WatchEvent] = []
    for (id, lease) in leases
    where lease.instance.service == request.service && lease.instance.address == request.address {
      changes += remove(id, reason: "replaced by a new registration of the same address")
    }
    let ttlMs = grantedTTL(request.ttlMs)
    let leaseID = nextLeaseID
    nextLeaseID += 1
    var instance = RegistryV1.Instance()
    instance.service = request.service
    instance.instanceId = "\(request.service)-\(String(leaseID, radix: 36))"
    instance.address = request.address
    instance.version = request.version
    instance.metadata = request.metadata
    instance.leaseId = leaseID
    instance.registeredAtMs = nowMs
    instance.expiresAtMs = nowMs + ttlMs
    instance.ttlMs = UInt32(ttlMs)
    leases[leaseID] = Lease(instance: instance, ttlMs: ttlMs)
    writes.append(.putLease(instance))
    changes.append(record(.put, [instance], reason: ""))
    writes.append(.counters(revision: revision, nextLeaseID: nextLeaseID))
    return (instance, ttlMs, changes)
  }

  /// Extends a live lease by its TTL; nil when the lease is unknown or expired.
  public mutating func keepAlive(leaseID: Int64, nowMs: Int64) -> (ttlMs: Int64, expiresAtMs: Int64)? {
    guard var lease = leases[leaseID] else { return nil }
    lease.instance.expiresAtMs = nowMs + lease.ttlMs
    leases[leaseID] = lease
    writes.append(.renewLease(leaseID, expiresAtMs: lease.instance.expiresAtMs))
    return (lease.ttlMs, lease.instance.expiresAtMs)
  }

  /// Ends a lease; its instance leaves. No change when the lease is already gone.
  public mutating func deregister(leaseID: Int64) -> [RegistryV1.WatchEvent] {
    let changes = remove(leaseID, reason: "deregistered")
    if !changes.isEmpty { writes.append(.counters(revision: revision, nextLeaseID: nextLeaseID)) }
    return changes
  }

  /// Removes every instance whose lease ran out by `nowMs`.
  public mutating func expire(nowMs: Int64) -> [RegistryV1.WatchEvent] {
    let expired = leases.filter { $0.value.instance.expiresAtMs <= nowMs }.keys.sorted()
    let changes = expired.flatMap { remove($0, reason: "lease expired") }
    if !changes.isEmpty { writes.append(.counters(revision: revision, nextLeaseID: nextLeaseID)) }
    return changes
  }

  /// A SNAPSHOT event of the live instances of `service` at the current revision.
  public func snapshot(of service: String) -> RegistryV1.WatchEvent {
    var event = RegistryV1.WatchEvent()
    event.kind = .snapshot
    event.revision = revision
    event.instances = instances(of: service)
    return event
  }

  /// The changes to `service` after `revision`, or a reset when they are no longer kept.
  public func changes(of service: String, after revision: Int64) -> Replay {
    if revision > self.revision {
      return .reset(reason: "revision \(revision) is ahead of the directory (\(self.revision)); the registry restarted")
    }
    if revision > savedRevision, revision < firstRevision {
      return .reset(reason: "revision \(revision) was not saved before the registry restarted")
    }
    if revision < historyFloor {
      return .reset(
        reason: "the changes after revision \(revision) are no longer kept (the oldest kept follows \(historyFloor))")
    }
    let kept = history[historyStart...]
    return .changes(kept.filter { $0.revision > revision && Self.matches($0, service) })
  }

  /// Whether `event` concerns `service` ("" matches all).
  public static func matches(_ event: RegistryV1.WatchEvent, _ service: String) -> Bool {
    service.isEmpty || event.kind == .snapshot || event.kind == .reset
      || event.instances.contains { $0.service == service }
  }

  private func grantedTTL(_ requestedMs: UInt32) -> Int64 {
    func ms(_ duration: Duration) -> Int64 {
      duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
    guard requestedMs > 0 else { return ms(config.defaultTTL) }
    return min(max(Int64(requestedMs), ms(config.minimumTTL)), ms(config.maximumTTL))
  }

  private mutating func remove(_ leaseID: Int64, reason: String) -> [RegistryV1.WatchEvent] {
    guard let lease = leases.removeValue(forKey: leaseID) else { return [] }
    writes.append(.deleteLease(leaseID))
    return [record(.delete, [lease.instance], reason: reason)]
  }

  private mutating func record(
    _ kind: RegistryV1.WatchEvent.Kind, _ instances: [RegistryV1.Instance], reason: String
  ) -> RegistryV1.WatchEvent {
    revision += 1
    var event = RegistryV1.WatchEvent()
    event.kind = kind
    event.revision = revision
    event.instances = instances
    event.reason = reason
    history.append(event)
    writes.append(.event(event))
    if history.count - historyStart > config.historyLimit {
      historyFloor = history[historyStart].revision
      historyStart += 1
    }
    // Compact now and then rather than shifting the array on every change.
    if historyStart > config.historyLimit {
      history.removeFirst(historyStart)
      historyStart = 0
    }
    return event
  }
}
