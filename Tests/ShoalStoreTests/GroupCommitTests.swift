import Foundation
import NIOPosix
import ShoalRPC
import ShoalTestSupport
import Synchronization
import Testing

@testable import ShoalStore

struct GroupCommitTests {
  private struct Refused: Error, Equatable { let name: String }

  /// Rows named by the requests; a request named `bad…` writes its row and then fails; the
  /// first request applied holds its group open until `followers` requests wait behind it.
  private static func makeCommitter(
    _ database: Database, followers: Int, commitsIdleOnCaller: Bool = false,
    onApply: @escaping @Sendable (String) -> Void = { _ in }
  ) -> GroupCommit<String, Int64> {
    let committer = Mutex<GroupCommit<String, Int64>?>(nil)
    let first = Atomic(true)
    let made = GroupCommit<String, Int64>(database: database, commitsIdleOnCaller: commitsIdleOnCaller) {
      connection, name in
      onApply(name)
      if first.exchange(false, ordering: .relaxed) {
        let deadline = Date().addingTimeInterval(30)
        while (committer.withLock { $0?.waiting ?? 0 }) < followers, Date() < deadline { usleep(1000) }
      }
      try connection.execute("INSERT INTO items (name) VALUES ($1)", .text(name))
      if name.hasPrefix("bad") { throw Refused(name: name) }
      return try connection.query("SELECT count(*) AS n FROM items")[0].int("n")
    }
    committer.withLock { $0 = made }
    return made
  }

  /// A database with an empty `items` table and a committer writing to it.
  private static func withItems(
    _ backend: Backend, followers: Int, commitsIdleOnCaller: Bool = false,
    onApply: @escaping @Sendable (String) -> Void = { _ in },
    _ body: (Database, GroupCommit<String, Int64>) async throws -> Void
  ) async throws {
    try await backend.withDatabase { database, _ in
      try await database.transaction {
        try $0.executeScript($0.dialect.ddl("CREATE TABLE items (id {id}, name TEXT NOT NULL UNIQUE)"))
      }
      try await body(
        database,
        makeCommitter(database, followers: followers, commitsIdleOnCaller: commitsIdleOnCaller, onApply: onApply))
    }
  }

  private static func storedNames(_ database: Database) async throws -> [String] {
    try await database.read { connection in
      try connection.query("SELECT name FROM items ORDER BY name").map { try $0.string("name") }
    }
  }

  @Test(arguments: Backend.available)
  func requestsThatArriveTogetherCommitAsOneGroupAndFailAlone(_ backend: Backend) async throws {
    let names = ["a", "b", "bad-1", "c", "leader", "d", "bad-2", "e", "f"]
    try await Self.withItems(backend, followers: names.count) { database, committer async throws in
      let leader = Task { try await committer.submit("leader") }
      // The committer has taken the leader's group once it runs and nobody waits.
      while committer.inProgress == 0 || committer.waiting > 0 { try await Task.sleep(for: .milliseconds(1)) }
      // Behind the leader: five good rows, two requests that fail, and one that breaks the
      // table's UNIQUE constraint (which aborts a PostgreSQL transaction unless rolled back to
      // a savepoint).
      let outcomes = await withTaskGroup(of: (String, Result<Int64, any Error>).self) { group in
        for name in names {
          group.addTask {
            do { return (name, .success(try await committer.submit(name))) } catch { return (name, .failure(error)) }
          }
        }
        return await group.reduce(into: [String: Result<Int64, any Error>]()) { $0[$1.0] = $1.1 }
      }
      #expect(try await leader.value == 1)
      #expect(committer.groups == 2)
      for name in ["a", "b", "c", "d", "e", "f"] {
        let count = try outcomes[name]!.get()
        #expect((2...7).contains(count), "\(name) saw \(count) rows")
      }
      for name in ["bad-1", "bad-2"] {
        #expect(throws: Refused(name: name)) { try outcomes[name]!.get() }
      }
      let duplicate = #expect(throws: StoreError.self) { try outcomes["leader"]!.get() }
      #expect(duplicate?.code == .alreadyExists)
      #expect(try await Self.storedNames(database) == ["a", "b", "c", "d", "e", "f", "leader"])
    }
  }

  @Test(arguments: Backend.available)
  func aRequestAloneThatFailsWritesNothing(_ backend: Backend) async throws {
    try await Self.withItems(backend, followers: 0) { database, committer async throws in
      #expect(try await committer.submit("first") == 1)
      await #expect(throws: Refused(name: "bad")) { try await committer.submit("bad") }
      #expect(try await committer.submit("second") == 2)
      #expect(committer.groups == 3)
      #expect(try await Self.storedNames(database) == ["first", "second"])
    }
  }

  @Test(arguments: Backend.available)
  func manyConcurrentWritersLoseNothing(_ backend: Backend) async throws {
    try await Self.withItems(backend, followers: 0) { database, committer async throws in
      try await withThrowingTaskGroup(of: Void.self) { group in
        for writer in 0..<16 {
          group.addTask { for index in 0..<25 { _ = try await committer.submit("w\(writer)-\(index)") } }
        }
        try await group.waitForAll()
      }
      #expect(try await Self.storedNames(database).count == 400)
    }
  }

  /// With `commitsIdleOnCaller`: a lone request is written on the caller's thread (here an event
  /// loop's), requests started in the same turn of that loop still share one group on a database
  /// thread, and a lone failure still writes nothing.
  @Test(arguments: Backend.available)
  func idleCommitsRunOnTheCallerAndTogetherStillGroup(_ backend: Backend) async throws {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let onLoop = Mutex<[String: Bool]>([:])
    let record: @Sendable (String) -> Void = { name in onLoop.withLock { $0[name] = loop.inEventLoop } }
    try await Self.withItems(backend, followers: 0, commitsIdleOnCaller: true, onApply: record) {
      database, committer async throws in
      try await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) {
        #expect(try await committer.submit("alone") == 1)
        await #expect(throws: Refused(name: "bad")) { try await committer.submit("bad") }
        #expect(committer.groups == 2)
        // Child tasks start on the same loop, one after another: the first takes the committer
        // and yields, the others queue behind it, and all of them go in one group.
        try await withThrowingTaskGroup(of: Void.self) { group in
          for index in 0..<8 { group.addTask { _ = try await committer.submit("together-\(index)") } }
          try await group.waitForAll()
        }
      }
      #expect(committer.groups == 3)
      #expect(committer.inProgress == 0)
      let applied = onLoop.withLock { $0 }
      #expect(applied["alone"] == true && applied["bad"] == true)
      #expect((0..<8).allSatisfy { applied["together-\($0)"] == false })
      #expect(try await Self.storedNames(database).count == 9)
    }
  }

  @Test(arguments: Backend.available)
  func afterTheDatabaseClosesRequestsFailAsUnavailable(_ backend: Backend) async throws {
    try await Self.withItems(backend, followers: 0) { database, committer async throws in
      #expect(try await committer.submit("before") == 1)
      await database.close()
      let error = await #expect(throws: StoreError.self) { try await committer.submit("after") }
      #expect(error?.code == .unavailable)
      #expect(committer.inProgress == 0)
    }
  }
}
