import ShoalStore
import ShoalTestSupport
import Testing

struct MigrationTests {
  private static let migrations = [
    Migration(1, "items", "CREATE TABLE items (id {id}, name TEXT NOT NULL)"),
    Migration(2, "item sizes", "ALTER TABLE items ADD COLUMN size BIGINT; CREATE INDEX items_name ON items (name)"),
  ]

  @Test(arguments: Backend.available)
  func migrationsRunOnceAndInOrder(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      let value1 = try await database.migrate(Self.migrations)
      #expect(value1 == [1, 2])
      let value2 = try await database.migrate(Self.migrations)
      #expect(value2 == [])
      let third = Migration(3, "blobs", "CREATE TABLE blobs (digest TEXT PRIMARY KEY, data {blob})")
      let value3 = try await database.migrate(Self.migrations + [third])
      #expect(value3 == [3])
      try await database.read { connection in
        try connection.execute("INSERT INTO items (name, size) VALUES ($1, $2)", "a", 3)
        try connection.execute("INSERT INTO blobs (digest, data) VALUES ($1, $2)", "d", .blob([1]))
      }
      let recorded = try await database.read {
        try $0.query("SELECT version, name FROM shoal_migrations ORDER BY version").map { try $0.string("name") }
      }
      #expect(recorded == ["items", "item sizes", "blobs"])

      // The database is now newer than a build that knows two migrations.
      let error = await #expect(throws: StoreError.self) { try await database.migrate(Self.migrations) }
      #expect(error?.code == .invalid)
      #expect(error?.message.contains("newer shoal") == true)
    }
  }

  @Test(arguments: Backend.available)
  func aFailingMigrationLeavesNoTrace(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      let broken = [
        Self.migrations[0],
        Migration(2, "broken", "CREATE TABLE half (n BIGINT); INSERT INTO missing VALUES (1)"),
      ]
      await #expect(throws: StoreError.self) { try await database.migrate(broken) }
      // Version 1 stays; version 2's table does not exist, so the fixed migration runs cleanly.
      let value4 = try await database.migrate(Self.migrations)
      #expect(value4 == [2])
    }
  }

  @Test func gapsAreRefused() async throws {
    try await Backend.sqlite.withDatabase { database, _ in
      let error = await #expect(throws: StoreError.self) {
        try await database.migrate([Migration(1, "a", "SELECT 1"), Migration(3, "c", "SELECT 1")])
      }
      #expect(error?.code == .invalid)
    }
  }
}

struct PostgresAvailabilityTests {
  @Test func postgresIsConfiguredWhenRequired() { Backend.expectPostgresWhenRequired() }
}
