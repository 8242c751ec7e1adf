/// One numbered step of a service's schema. Migrations run in order, each in its own
/// transaction, and each exactly once per database; the SQL is written once for both dialects
/// (see `SQLDialect.ddl(_:)`).
public struct Migration: Sendable {
  /// Position in the sequence, from 1, without gaps.
  public var version: Int
  /// A short description, recorded with the version.
  public var name: String
  /// Statements separated by semicolons, with `{id}`, `{blob}` and `{real}` type tokens.
  public var sql: String

  /// A migration.
  public init(_ version: Int, _ name: String, _ sql: String) {
    self.version = version
    self.name = name
    self.sql = sql
  }
}

extension Database {
  /// Applies the migrations this database has not seen yet and returns their versions.
  ///
  /// - Throws: `StoreError.invalid` when the list has gaps or when the database already holds a
  ///   version this build does not know (it was migrated by a newer Shoal).
  @discardableResult
  public func migrate(_ migrations: [Migration]) async throws -> [Int] {
    let migrations = migrations.sorted { $0.version < $1.version }
    for (index, migration) in migrations.enumerated() where migration.version != index + 1 {
      throw StoreError(.invalid, "migration versions must run 1, 2, 3, … without gaps; found \(migration.version)")
    }
    let dialect = dialect
    let location = location
    try await transaction { connection in
      try connection.executeScript(
        """
        CREATE TABLE IF NOT EXISTS shoal_migrations (
          version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)
        """)
    }
    var applied: [Int] = []
    for migration in migrations {
      let done = try await transaction { connection -> Bool in
        if dialect == .postgres {
          // Two processes migrating one schema at once take turns.
          try connection.execute("SELECT pg_advisory_xact_lock(7460001)")
        }
        let known = try connection.query("SELECT max(version) AS version FROM shoal_migrations")
        let current = try known.first?.optionalInt("version") ?? 0
        if current > migrations.count {
          throw StoreError(
            .invalid,
            "\(location) is at schema version \(current) but this shoal knows only \(migrations.count); use a newer shoal"
          )
        }
        guard current < migration.version else { return false }
        try connection.executeScript(dialect.ddl(migration.sql))
        try connection.execute(
          "INSERT INTO shoal_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
          .integer(Int64(migration.version)), .text(migration.name), .integer(WallClock.unixMilliseconds()))
        return true
      }
      if done { applied.append(migration.version) }
    }
    return applied
  }
}
