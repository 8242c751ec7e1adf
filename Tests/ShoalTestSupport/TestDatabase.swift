import Foundation
public import ShoalStore
public import Testing

/// The back ends the store suite runs on: SQLite always, PostgreSQL when `SHOAL_TEST_POSTGRES`
/// names a server (scripts/test starts a throwaway one).
public enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
  case sqlite
  case postgres

  /// SQLite, and PostgreSQL when a server is configured.
  public static var available: [Backend] {
    ProcessInfo.processInfo.environment["SHOAL_TEST_POSTGRES"] == nil ? [.sqlite] : [.sqlite, .postgres]
  }

  public var testDescription: String { rawValue }

  /// A fresh, empty database on this back end: a new SQLite file, or a new PostgreSQL schema.
  public func withDatabase(
    config: Database.Config = .defaults, _ body: (Database, TemporaryDirectory) async throws -> Void
  ) async throws {
    let directory = try TemporaryDirectory()
    let service = "t_\(UInt32.random(in: 0...UInt32.max))_\(UInt32.random(in: 0...UInt32.max))"
    let url: StoreURL
    switch self {
    case .sqlite: url = .sqlite(nil)
    case .postgres: url = try StoreURL(parsing: ProcessInfo.processInfo.environment["SHOAL_TEST_POSTGRES"]!)
    }
    let database = try await Database.open(url, service: service, dataDirectory: directory.url.path, config: config)
    do {
      try await body(database, directory)
    } catch {
      await database.close()
      throw error
    }
    await database.close()
  }

  /// Records an issue when scripts/test asked for PostgreSQL (SHOAL_REQUIRE_POSTGRES=1) and no
  /// server is configured, so the PostgreSQL half is never skipped silently.
  public static func expectPostgresWhenRequired() {
    let environment = ProcessInfo.processInfo.environment
    if environment["SHOAL_REQUIRE_POSTGRES"] == "1" {
      #expect(environment["SHOAL_TEST_POSTGRES"] != nil, "SHOAL_TEST_POSTGRES is not set")
    }
  }
}
