import Foundation
import ShoalProto
import ShoalRPC
public import ShoalStore

/// The model registry's tables and the queries over them. Visibility is part of every read: a
/// caller sees its own organisation's models and public ones (a superuser sees all), and a model
/// it cannot see is reported exactly like one that does not exist.
public struct RegistryStore: Sendable {
  /// The registry's migrations: the directory's, then the model registry's.
  public static let migrations =
    DirectoryStore.migrations + [
      Migration(
        2, "organisations, principals, tokens, models, versions, aliases",
        """
        CREATE TABLE organizations (
          name TEXT PRIMARY KEY, display_name TEXT NOT NULL, created_at_ms BIGINT NOT NULL);
        CREATE TABLE principals (
          id {id}, organization TEXT NOT NULL REFERENCES organizations (name), name TEXT NOT NULL,
          role BIGINT NOT NULL, created_at_ms BIGINT NOT NULL, UNIQUE (organization, name));
        CREATE TABLE tokens (
          token_id TEXT PRIMARY KEY, principal_id BIGINT NOT NULL REFERENCES principals (id),
          secret_sha256 TEXT NOT NULL, created_at_ms BIGINT NOT NULL);
        CREATE TABLE models (
          id {id}, organization TEXT NOT NULL REFERENCES organizations (name), name TEXT NOT NULL,
          description TEXT NOT NULL, task BIGINT NOT NULL, public BIGINT NOT NULL, created_by TEXT NOT NULL,
          created_at_ms BIGINT NOT NULL, UNIQUE (organization, name));
        CREATE TABLE model_tags (
          model_id BIGINT NOT NULL REFERENCES models (id), key TEXT NOT NULL, value TEXT NOT NULL,
          PRIMARY KEY (model_id, key));
        CREATE TABLE model_versions (
          model_id BIGINT NOT NULL REFERENCES models (id), version BIGINT NOT NULL, body {blob} NOT NULL,
          artifact TEXT NOT NULL, created_at_ms BIGINT NOT NULL, PRIMARY KEY (model_id, version));
        CREATE TABLE model_aliases (
          model_id BIGINT NOT NULL REFERENCES models (id), alias TEXT NOT NULL, version BIGINT NOT NULL,
          PRIMARY KEY (model_id, alias));
        CREATE TABLE alias_moves (
          id {id}, model_id BIGINT NOT NULL REFERENCES models (id), alias TEXT NOT NULL, version BIGINT NOT NULL,
          previous_version BIGINT NOT NULL, moved_by TEXT NOT NULL, moved_at_ms BIGINT NOT NULL);
        CREATE TABLE model_events (
          sequence {id}, model_id BIGINT NOT NULL REFERENCES models (id), event {blob} NOT NULL);
        INSERT INTO organizations (name, display_name, created_at_ms) VALUES ('local', 'This machine', 0);
        """),
      Migration(
        3, "token expiry and revocation",
        """
        ALTER TABLE tokens ADD COLUMN expires_at_ms BIGINT;
        ALTER TABLE tokens ADD COLUMN revoked_at_ms BIGINT;
        """),
    ]

  /// The database.
  public let database: Database

  /// A store over `database` (migrated with `migrations`).
  public init(database: Database) { self.database = database }

  static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

  /// The SQL condition (on `models m`) for models `caller` may see; parameter `$index` is the
  /// caller's organisation.
  static func visible(_ caller: Caller, parameter index: Int) -> String {
    caller.superuser ? "1 = 1" : "(m.organization = $\(index) OR m.public = 1)"
  }
}

/// A model row as the queries need it.
struct ModelRow: Sendable {
  var id: Int64
  var model: RegistryV1.Model
}

extension RPCError {
  /// The error for a model the caller cannot see or that does not exist (the same on purpose).
  static func modelNotFound(_ organization: String, _ name: String) -> RPCError {
    RPCError(.notFound, "model '\(name)' not found in organisation '\(organization)'")
  }
}
