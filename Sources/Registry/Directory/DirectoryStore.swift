import ShoalProto
public import ShoalStore

/// Saves the directory in the registry's database, so that a restarted registry keeps its
/// instances (their servers' KeepAlives go on working) and watchers can resume from a revision.
/// Instances and events are stored as their protobuf encoding.
public struct DirectoryStore: Sendable {
  /// The directory's tables.
  public static let migrations = [
    Migration(
      1, "service directory",
      """
      CREATE TABLE directory_leases (
        lease_id BIGINT PRIMARY KEY,
        service TEXT NOT NULL,
        address TEXT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        instance {blob} NOT NULL);
      CREATE TABLE directory_events (revision BIGINT PRIMARY KEY, event {blob} NOT NULL);
      CREATE TABLE directory_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
      """)
  ]

  /// The database (already migrated with `migrations`).
  public let database: Database
  /// How many events are kept.
  public let historyLimit: Int

  /// A store over `database`.
  public init(database: Database, historyLimit: Int = DirectoryState.Config.defaults.historyLimit) {
    self.database = database
    self.historyLimit = historyLimit
  }

  /// What was saved, or nil for a new directory.
  public func load() async throws -> DirectoryState.Saved? {
    let limit = historyLimit
    return try await database.read { connection -> DirectoryState.Saved? in
      let counters = try connection.query("SELECT name, value FROM directory_counters")
      var values: [String: Int64] = [:]
      for row in counters { values[try row.string("name")] = try row.int("value") }
      guard let revision = values["revision"], let nextLeaseID = values["next_lease_id"] else { return nil }
      let instances = try connection.query("SELECT instance, expires_at_ms FROM directory_leases ORDER BY lease_id").map
      {
        var instance = try RegistryV1.Instance(serializedBytes: try $0.bytes("instance"))
        instance.expiresAtMs = try $0.int("expires_at_ms")
        return instance
      }
      let events = try connection.query(
        "SELECT event FROM directory_events ORDER BY revision DESC LIMIT $1", .integer(Int64(limit))
      ).map { try RegistryV1.WatchEvent(serializedBytes: try $0.bytes("event")) }
      return DirectoryState.Saved(
        instances: instances, history: events.reversed(), revision: revision, nextLeaseID: nextLeaseID)
    }
  }

  /// Saves `writes` in one transaction.
  public func save(_ writes: [DirectoryState.Write]) async throws {
    guard !writes.isEmpty else { return }
    let limit = Int64(historyLimit)
    try await database.transaction { connection in
      var trim = false
      for write in writes {
        switch write {
        case .event(let event):
          try connection.execute(
            "INSERT INTO directory_events (revision, event) VALUES ($1, $2)", .integer(event.revision),
            .blob(event.serializedBytes()))
          trim = trim || event.revision % 64 == 0
        case .putLease(let instance):
          try connection.execute(
            """
            INSERT INTO directory_leases (lease_id, service, address, expires_at_ms, instance) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (lease_id) DO UPDATE SET expires_at_ms = excluded.expires_at_ms, instance = excluded.instance
            """,
            .integer(instance.leaseId), .text(instance.service), .text(instance.address),
            .integer(instance.expiresAtMs), .blob(instance.serializedBytes()))
        case .deleteLease(let id):
          try connection.execute("DELETE FROM directory_leases WHERE lease_id = $1", .integer(id))
        case .renewLease(let id, let expiresAtMs):
          // The stored instance keeps its first expiry; load() takes the column's.
          try connection.execute(
            "UPDATE directory_leases SET expires_at_ms = $2 WHERE lease_id = $1", .integer(id), .integer(expiresAtMs))
        case .counters(let revision, let nextLeaseID):
          for (name, value) in [("revision", revision), ("next_lease_id", nextLeaseID)] {
            try connection.execute(
              """
              INSERT INTO directory_counters (name, value) VALUES ($1, $2)
              ON CONFLICT (name) DO UPDATE SET value = excluded.value
              """, .text(name), .integer(value))
          }
        }
      }
      if trim {
        try connection.execute(
          """
          DELETE FROM directory_events WHERE revision <= (
            SELECT revision FROM directory_events ORDER BY revision DESC LIMIT 1 OFFSET $1)
          """, .integer(limit))
      }
    }
  }
}
