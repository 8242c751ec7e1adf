import Registry
import ShoalProto
import Testing

struct DirectoryStateTests {
  private func request(_ service: String, _ address: String, ttlMs: UInt32 = 2000) -> RegistryV1.RegisterRequest {
    var request = RegistryV1.RegisterRequest()
    request.service = service
    request.address = address
    request.ttlMs = ttlMs
    return request
  }

  @Test func registrationsAreListedUntilTheirLeaseRunsOut() {
    var state = DirectoryState(firstRevision: 100)
    let (a, ttl, changes) = state.register(request("bench", "unix:///a"), nowMs: 1000)
    #expect(ttl == 2000)
    #expect(changes.map(\.kind) == [.put] && changes[0].revision == 101)
    #expect(a.expiresAtMs == 3000)
    _ = state.register(request("tracking", "unix:///t", ttlMs: 5000), nowMs: 1000)
    #expect(state.instances(of: "bench").map(\.address) == ["unix:///a"])
    #expect(state.instances().count == 2)

    #expect(state.keepAlive(leaseID: a.leaseId, nowMs: 2500)?.expiresAtMs == 4500)
    #expect(state.expire(nowMs: 4499).isEmpty)
    let expired = state.expire(nowMs: 4500)
    #expect(expired.map(\.kind) == [.delete] && expired[0].reason == "lease expired")
    #expect(state.instances(of: "bench").isEmpty)
    #expect(state.keepAlive(leaseID: a.leaseId, nowMs: 4600) == nil)
  }

  @Test func ttlsAreClampedAndDefaulted() {
    var state = DirectoryState(firstRevision: 0)
    #expect(state.register(request("a", "unix:///1", ttlMs: 0), nowMs: 0).ttlMs == 10_000)
    #expect(state.register(request("a", "unix:///2", ttlMs: 10), nowMs: 0).ttlMs == 1000)
    #expect(state.register(request("a", "unix:///3", ttlMs: 4_000_000), nowMs: 0).ttlMs == 300_000)
  }

  @Test func registeringTheSameAddressAgainReplacesTheOldInstance() {
    var state = DirectoryState(firstRevision: 0)
    let first = state.register(request("bench", "unix:///b"), nowMs: 0).instance
    let (second, _, changes) = state.register(request("bench", "unix:///b"), nowMs: 10)
    #expect(changes.map(\.kind) == [.delete, .put])
    #expect(changes[0].instances[0].leaseId == first.leaseId)
    #expect(state.instances(of: "bench").map(\.leaseId) == [second.leaseId])
  }

  @Test func resumingReplaysTheChangesAfterARevisionForOneService() {
    var state = DirectoryState(firstRevision: 0)
    let a = state.register(request("a", "unix:///a"), nowMs: 0).instance
    let mark = state.revision
    _ = state.register(request("b", "unix:///b"), nowMs: 0)
    _ = state.deregister(leaseID: a.leaseId)
    _ = state.register(request("a", "unix:///a2"), nowMs: 0)
    guard case .changes(let changes) = state.changes(of: "a", after: mark) else {
      Issue.record("expected changes")
      return
    }
    #expect(changes.map(\.kind) == [.delete, .put])
    #expect(changes.map(\.revision) == [mark + 2, mark + 3])
    #expect(state.changes(of: "", after: state.revision) == .changes([]))
  }

  @Test func aWatcherTooFarBehindOrFromAnotherLifeIsToldToReList() {
    var config = DirectoryState.Config.defaults
    config.historyLimit = 3
    var state = DirectoryState(config: config, firstRevision: 1000)
    for index in 0..<10 { _ = state.register(request("s", "unix:///\(index)"), nowMs: 0) }
    guard case .reset(let reason) = state.changes(of: "s", after: 1002) else {
      Issue.record("expected a reset")
      return
    }
    #expect(reason.contains("no longer kept"))
    #expect(state.changes(of: "s", after: 1007) != .changes([]))
    guard case .changes(let recent) = state.changes(of: "s", after: 1007) else { return }
    #expect(recent.map(\.revision) == [1008, 1009, 1010])
    // A revision from before a restart is smaller than anything this directory has issued.
    guard case .reset = DirectoryState(firstRevision: 5000).changes(of: "s", after: 1010) else {
      Issue.record("expected a reset for a revision from an earlier life")
      return
    }
    guard case .reset = state.changes(of: "s", after: 99_999) else {
      Issue.record("expected a reset for a revision from the future")
      return
    }
  }

  @Test func snapshotsHoldTheLiveSetAtTheCurrentRevision() {
    var state = DirectoryState(firstRevision: 0)
    _ = state.register(request("a", "unix:///a"), nowMs: 0)
    _ = state.register(request("b", "unix:///b"), nowMs: 0)
    let snapshot = state.snapshot(of: "b")
    #expect(snapshot.kind == .snapshot && snapshot.revision == state.revision)
    #expect(snapshot.instances.map(\.service) == ["b"])
  }
}

struct DirectoryRestoreTests {
  private func register(_ state: inout DirectoryState, _ address: String, nowMs: Int64) -> RegistryV1.Instance {
    var request = RegistryV1.RegisterRequest()
    request.service = "bench"
    request.address = address
    request.ttlMs = 2000
    return state.register(request, nowMs: nowMs).instance
  }

  @Test func aRestoredDirectoryKeepsLeasesAndResumesWatchers() {
    var first = DirectoryState(firstRevision: 1000)
    let kept = register(&first, "unix:///a", nowMs: 0)
    let savedRevision = first.revision
    let saved = DirectoryState.Saved(
      instances: first.instances(), history: [first.snapshot(of: "")].filter { _ in false }, revision: savedRevision,
      nextLeaseID: kept.leaseId + 1)
    // Restarted 10 s later: the lease had run out on the clock, but gets a full TTL to be renewed.
    var second = DirectoryState(firstRevision: 5000, restoring: saved, nowMs: 10_000)
    #expect(second.instances().map(\.leaseId) == [kept.leaseId])
    #expect(second.expire(nowMs: 11_999).isEmpty)
    #expect(second.keepAlive(leaseID: kept.leaseId, nowMs: 11_000) != nil)
    // A watcher that saw the saved revision gets the changes after it, none lost.
    let added = register(&second, "unix:///b", nowMs: 11_000)
    #expect(added.leaseId > kept.leaseId)
    guard case .changes(let changes) = second.changes(of: "bench", after: savedRevision) else {
      Issue.record("expected changes")
      return
    }
    #expect(changes.map(\.kind) == [.put] && changes[0].revision == 5001)
    // A revision of the previous life that was never saved: re-list.
    guard case .reset(let reason) = second.changes(of: "bench", after: savedRevision + 1) else {
      Issue.record("expected a reset")
      return
    }
    #expect(reason.contains("not saved"))
  }

  @Test func writesDescribeEveryChangeInOrder() {
    var state = DirectoryState(firstRevision: 0)
    _ = state.takeWrites()
    let instance = register(&state, "unix:///a", nowMs: 0)
    _ = state.keepAlive(leaseID: instance.leaseId, nowMs: 500)
    _ = state.deregister(leaseID: instance.leaseId)
    let writes = state.takeWrites()
    #expect(writes.count == 7)
    #expect(writes[0] == .putLease(instance))
    #expect(writes[3] == .renewLease(instance.leaseId, expiresAtMs: 2500))
    #expect(writes[4] == .deleteLease(instance.leaseId))
    #expect(state.takeWrites().isEmpty)
  }
}
