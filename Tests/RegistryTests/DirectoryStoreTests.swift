import Registry
import ShoalProto
import ShoalStore
import ShoalTestSupport
import Testing

/// The directory saved in a real database and restored from it, on SQLite and PostgreSQL.
struct DirectoryStoreTests {
  private func request(_ address: String) -> RegistryV1.RegisterRequest {
    var request = RegistryV1.RegisterRequest()
    request.service = "bench"
    request.address = address
    request.ttlMs = 60_000
    return request
  }

  @Test(arguments: Backend.available)
  func aReopenedDirectoryHasTheSameInstancesAndHistory(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      try await database.migrate(DirectoryStore.migrations)
      let store = DirectoryStore(database: database, historyLimit: 100)
      let first = try await Directory.open(store: store) { Issue.record("save failed: \($0)") }
      let running = Task { await first.run() }
      let firstRevision = first.resolve("").revision
      let a = try await first.register(request("unix:///a")).instance!
      let b = try await first.register(request("unix:///b")).instance!
      _ = try await first.deregister(leaseID: a.leaseId)
      let (instances, revision) = first.resolve("bench")
      running.cancel()
      await running.value

      let second = try await Directory.open(store: store) { Issue.record("save failed: \($0)") }
      let restored = second.resolve("bench")
      #expect(restored.instances.map(\.leaseId) == instances.map(\.leaseId))
      #expect(restored.instances.map(\.leaseId) == [b.leaseId])
      #expect(restored.revision > revision)
      #expect(second.keepAlive(leaseID: b.leaseId) != nil)
      #expect(second.keepAlive(leaseID: a.leaseId) == nil)
      // The whole history replays from before the first registration.
      let (id, initial, _) = second.watch("bench", afterRevision: firstRevision)
      second.endWatch(id)
      #expect(initial.map(\.kind) == [.put, .put, .delete], "\(initial.map(\.reason)) after \(firstRevision)")
      let secondRunning = Task { await second.run() }
      let c = try await second.register(request("unix:///c")).instance!
      #expect(c.leaseId > b.leaseId)
      secondRunning.cancel()
      await secondRunning.value
    }
  }
}
