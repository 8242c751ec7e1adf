import Foundation
import ShoalStore
import ShoalTestSupport
import Testing

@testable import ShoalStore

struct DatabaseTests {
  private static let table = "CREATE TABLE items (id {id}, name TEXT NOT NULL UNIQUE, n BIGINT, x {real}, data {blob})"

  @Test(arguments: Backend.available)
  func valuesOfEveryKindRoundTrip(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      let rows = try await database.transaction { connection in
        try connection.executeScript(connection.dialect.ddl(Self.table))
        let blob: [UInt8] = [0, 1, 2, 0xff, 0x5c, 0x78]
        let values: [SQLValue] = [.text("ünïcode 'quoted' $1"), .integer(.min), .real(-1.5e300), .blob(blob)]
        try connection.execute("INSERT INTO items (name, n, x, data) VALUES ($1, $2, $3, $4)", values)
        try connection.execute("INSERT INTO items (name, n, x, data) VALUES ($1, $2, $3, $4)", "empty", nil, nil, nil)
        try connection.execute(
          "INSERT INTO items (name, n, x, data) VALUES ($2, $1, $3, $4)", .integer(.max), "reversed", .real(.infinity),
          .blob([]))
        return try connection.query("SELECT id, name, n, x, data FROM items ORDER BY id")
      }
      #expect(rows.count == 3)
      #expect(try rows[0].string("name") == "ünïcode 'quoted' $1")
      #expect(try rows[0].int("n") == .min)
      #expect(try rows[0].double("x") == -1.5e300)
      #expect(try rows[0].bytes("data") == [0, 1, 2, 0xff, 0x5c, 0x78])
      #expect(rows[1]["n"] == .null && rows[1]["x"] == .null && rows[1]["data"] == .null)
      #expect(try rows[2].int("n") == .max)
      #expect(try rows[2].double("x") == .infinity)
      #expect(try rows[2].bytes("data") == [])
      #expect(try rows.map { try $0.int("id") } == [1, 2, 3])
    }
  }

  @Test(arguments: Backend.available)
  func aThrowingTransactionWritesNothing(_ backend: Backend) async throws {
    struct Stop: Error {}
    try await backend.withDatabase { database, _ in
      try await database.transaction { try $0.executeScript($0.dialect.ddl(Self.table)) }
      await #expect(throws: Stop.self) {
        try await database.transaction { connection in
          try connection.execute("INSERT INTO items (name) VALUES ($1)", "first")
          try connection.execute("INSERT INTO items (name) VALUES ($1)", "second")
          throw Stop()
        }
      }
      // A failing statement half way through rolls back the statements before it too.
      let error = await #expect(throws: StoreError.self) {
        try await database.transaction { connection in
          try connection.execute("INSERT INTO items (name) VALUES ($1)", "third")
          try connection.execute("INSERT INTO items (name) VALUES ($1)", "third")
        }
      }
      #expect(error?.code == .alreadyExists)
      let count = try await database.read { try $0.query("SELECT count(*) AS n FROM items")[0].int("n") }
      #expect(count == 0)
    }
  }

  /// PostgreSQL sends a transaction's BEGIN with its first statement; whatever that statement is,
  /// and whether it fails, the one connection goes on to the next transaction cleanly.
  @Test(arguments: Backend.available)
  func transactionsBeginWithAnyFirstStatementEvenOneThatFails(_ backend: Backend) async throws {
    var config = Database.Config.defaults
    config.connections = 1
    try await backend.withDatabase(config: config) { database, _ in
      try await database.transaction { try $0.executeScript($0.dialect.ddl(Self.table)) }
      try await database.transaction { _ in }
      try await database.transaction { try $0.execute("INSERT INTO items (name) VALUES ($1)", "a") }
      let first = await #expect(throws: StoreError.self) {
        try await database.transaction { try $0.execute("INSERT INTO items (name) VALUES ($1)", "a") }
      }
      #expect(first?.code == .alreadyExists)
      let batch = await #expect(throws: StoreError.self) {
        try await database.transaction {
          try $0.executeBatch("INSERT INTO items (name) VALUES ($1)", [[.text("b")], [.text("a")]])
        }
      }
      #expect(batch?.code == .alreadyExists)
      let count = try await database.transaction { try $0.query("SELECT count(*) AS n FROM items")[0].int("n") }
      #expect(count == 1)
      try await database.transaction { connection in
        try connection.executeBatch("INSERT INTO items (name) VALUES ($1)", [[.text("c")]])
        try connection.execute("INSERT INTO items (name) VALUES ($1)", "d")
      }
      let names = try await database.read {
        try $0.query("SELECT name FROM items ORDER BY name").map { try $0.string("name") }
      }
      #expect(names == ["a", "c", "d"])
    }
  }

  @Test(arguments: Backend.available)
  func constraintViolationsAreClassified(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      try await database.transaction { try $0.executeScript($0.dialect.ddl(Self.table)) }
      let missing = await #expect(throws: StoreError.self) {
        try await database.read { try $0.execute("INSERT INTO items (name) VALUES ($1)", nil) }
      }
      #expect(missing?.code == .constraint)
      let malformed = await #expect(throws: StoreError.self) {
        try await database.read { try $0.execute("INSERT INTO nowhere VALUES (1)") }
      }
      #expect(malformed?.code == .internal)
      #expect(malformed?.description.contains("nowhere") == true)
    }
  }

  @Test(arguments: Backend.available)
  func batchesInsertEveryRowOrNone(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      try await database.transaction { try $0.executeScript($0.dialect.ddl(Self.table)) }
      let rows = (0..<1000).map { [SQLValue.text("item \($0)"), .integer(Int64($0))] }
      try await database.transaction { try $0.executeBatch("INSERT INTO items (name, n) VALUES ($1, $2)", rows) }
      let sum = try await database.read { try $0.query("SELECT count(*) AS c, sum(n) AS s FROM items")[0] }
      #expect(try sum.int("c") == 1000)
      #expect(try sum.int("s") == 499_500)

      // Row 100 repeats a name: the whole batch is refused.
      var clashing = (1000..<1200).map { [SQLValue.text("item \($0)"), .integer(Int64($0))] }
      clashing[100] = [.text("item 5"), .integer(0)]
      let batch = clashing
      let error = await #expect(throws: StoreError.self) {
        try await database.transaction { try $0.executeBatch("INSERT INTO items (name, n) VALUES ($1, $2)", batch) }
      }
      #expect(error?.code == .alreadyExists)
      let count = try await database.read { try $0.query("SELECT count(*) AS c FROM items")[0].int("c") }
      #expect(count == 1000)
    }
  }

  @Test(arguments: Backend.available)
  func concurrentTransactionsDoNotLoseUpdates(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      try await database.transaction { connection in
        try connection.executeScript("CREATE TABLE counter (n BIGINT NOT NULL)")
        try connection.execute("INSERT INTO counter (n) VALUES (0)")
      }
      try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<40 {
          group.addTask {
            try await database.transaction { connection in
              let n = try connection.query("SELECT n FROM counter")[0].int("n")
              try connection.execute("UPDATE counter SET n = $1", .integer(n + 1))
            }
          }
        }
        try await group.waitForAll()
      }
      let n = try await database.read { try $0.query("SELECT n FROM counter")[0].int("n") }
      #expect(n == 40)
    }
  }

  @Test func sqliteReportsALockedDatabaseAsUnavailable() async throws {
    var config = Database.Config.defaults
    config.busyTimeout = .milliseconds(100)
    try await Backend.sqlite.withDatabase(config: config) { first, directory in
      try await first.transaction { try $0.executeScript("CREATE TABLE t (n BIGINT)") }
      let path = first.location.replacing("sqlite:", with: "")
      let second = try await Database.open(
        .sqlite(path), service: "t", dataDirectory: directory.url.path, config: config)
      let holding = Task {
        try await first.transaction { connection in
          try connection.execute("INSERT INTO t (n) VALUES (1)")
          Thread.sleep(forTimeInterval: 1.5)
        }
      }
      try await Task.sleep(for: .milliseconds(300))
      let error = await #expect(throws: StoreError.self) {
        try await second.transaction { try $0.execute("INSERT INTO t (n) VALUES (2)") }
      }
      #expect(error?.code == .unavailable)
      #expect(error?.message.contains("locked") == true)
      try await holding.value
      let count = try await second.read { try $0.query("SELECT count(*) AS c FROM t")[0].int("c") }
      #expect(count == 1)
      await second.close()
    }
  }

  @Test func aFullSQLiteDatabaseIsUnavailableAndWritesNothing() async throws {
    var config = Database.Config.defaults
    config.connections = 1
    try await Backend.sqlite.withDatabase(config: config) { database, _ in
      try await database.transaction { try $0.executeScript("CREATE TABLE t (data BLOB)") }
      // SQLite reports SQLITE_FULL when the file would grow past max_page_count, as on a full disk.
      try await database.read { try $0.executeScript("PRAGMA max_page_count = 8") }
      let error = await #expect(throws: StoreError.self) {
        try await database.transaction { connection in
          try connection.execute("INSERT INTO t (data) VALUES ($1)", .blob([1, 2, 3]))
          try connection.execute("INSERT INTO t (data) VALUES ($1)", .blob(Array(repeating: 7, count: 200_000)))
        }
      }
      #expect(error?.code == .unavailable)
      #expect(error?.message.contains("full") == true, "\(String(describing: error))")
      let count = try await database.read { try $0.query("SELECT count(*) AS c FROM t")[0].int("c") }
      #expect(count == 0)
    }
  }

  @Test func aPostgresConnectionThatDiesIsReplacedAndOnlyACallInFlightFails() async throws {
    guard Backend.available.contains(.postgres) else { return }
    var config = Database.Config.defaults
    config.connections = 1
    try await Backend.postgres.withDatabase(config: config) { database, directory in
      let backend = { try await database.read { try $0.query("SELECT pg_backend_pid() AS pid")[0].int("pid") } }
      let url = try StoreURL(parsing: ProcessInfo.processInfo.environment["SHOAL_TEST_POSTGRES"]!)
      let killer = try await Database.open(url, service: "killer", dataDirectory: directory.url.path)
      func terminate(_ pid: Int64) async throws {
        try await killer.read { try $0.execute("SELECT pg_terminate_backend($1)", .integer(pid)) }
        // Until the backend has gone (and said goodbye on its socket).
        for _ in 0..<200 {
          let left = try await killer.read {
            try $0.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1", .integer(pid))[0].int("n")
          }
          if left == 0 { return }
          try await Task.sleep(for: .milliseconds(10))
        }
      }

      // Killed while idle (as by a restart): the next call gets a new connection and succeeds.
      let first = try await backend()
      try await terminate(first)
      let second = try await backend()
      #expect(second != first)

      // Killed under a statement: that call fails UNAVAILABLE, and the next one succeeds.
      let sleeping = Task { try await database.read { try $0.execute("SELECT pg_sleep(30)") } }
      for _ in 0..<200 {
        let busy = try await killer.read {
          try $0.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%'", .integer(second)
          )[0].int("n")
        }
        if busy > 0 { break }
        try await Task.sleep(for: .milliseconds(10))
      }
      try await terminate(second)
      let error = await #expect(throws: StoreError.self) { _ = try await sleeping.value }
      #expect(error?.code == .unavailable, "\(String(describing: error))")
      let answer = try await database.read { try $0.query("SELECT 41 + 1 AS n")[0].int("n") }
      #expect(answer == 42)
      await killer.close()
    }
  }

  @Test func anUnreachablePostgresIsUnavailableWithItsCause() async throws {
    let directory = try TemporaryDirectory()
    // Port 1 on loopback: nothing listens there.
    let error = await #expect(throws: StoreError.self) {
      _ = try await Database.open(
        try StoreURL(parsing: "postgres://shoal:secret@127.0.0.1:1/none?connect_timeout=2"), service: "registry",
        dataDirectory: directory.url.path)
    }
    #expect(error?.code == .unavailable)
    #expect(error?.description.contains("127.0.0.1") == true)
    #expect(error?.description.contains("secret") == false)
  }

  @Test func aClosedDatabaseRefusesWork() async throws {
    try await Backend.sqlite.withDatabase { database, _ in
      await database.close()
      let error = await #expect(throws: StoreError.self) { try await database.read { _ in } }
      #expect(error?.code == .unavailable)
    }
  }

  @Test func placeholdersBecomeNumberedForSQLite() {
    #expect(SQLiteConnection.numberedPlaceholders("SELECT $1, '$2', \"$3\", $10") == "SELECT ?1, '$2', \"$3\", ?10")
  }

  @Test func storeURLsParseAndHidePasswords() throws {
    #expect(try StoreURL(parsing: "sqlite") == .sqlite(nil))
    #expect(try StoreURL(parsing: "sqlite:/tmp/x.db") == .sqlite("/tmp/x.db"))
    let url = try StoreURL(parsing: "postgres://me:hunter2@db:5432/shoal?password=other&sslmode=disable")
    #expect(url.description == "postgres://me:***@db:5432/shoal?password=***&sslmode=disable")
    #expect(throws: StoreError.self) { try StoreURL(parsing: "mysql://x") }
    #expect(throws: StoreError.self) { try StoreURL(parsing: "sqlite:") }
  }
}
