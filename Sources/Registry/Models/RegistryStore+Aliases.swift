import ShoalProto
import ShoalRPC
import ShoalStore

extension RegistryStore {
  /// Points `alias` at `version` (recording the move), or with version 0 deletes it. Setting an
  /// alias to where it already points changes nothing and records nothing.
  ///
  /// - Throws: NOT_FOUND for a version the model does not have, or an alias it does not have
  ///   (when deleting).
  func moveAlias(
    _ alias: String, to version: Int64, of row: ModelRow, by caller: Caller
  ) async throws -> (move: RegistryV1.AliasMove, event: RegistryV1.ModelEvent?) {
    let now = Self.now()
    let name = row.model.name
    return try await database.transaction { connection in
      let previous = try connection.queryFirst(
        "SELECT version FROM model_aliases WHERE model_id = $1 AND alias = $2", .integer(row.id), .text(alias)
      )?.int("version")
      var move = RegistryV1.AliasMove()
      move.alias = alias
      move.version = version
      move.previousVersion = previous ?? 0
      move.movedBy = caller.qualifiedName
      move.movedAtMs = now
      if version == 0 {
        guard previous != nil else { throw RPCError(.notFound, "model '\(name)' has no alias '\(alias)'") }
        try connection.execute(
          "DELETE FROM model_aliases WHERE model_id = $1 AND alias = $2", .integer(row.id), .text(alias))
      } else {
        guard
          try connection.queryFirst(
            "SELECT 1 AS one FROM model_versions WHERE model_id = $1 AND version = $2", .integer(row.id),
            .integer(version)) != nil
        else { throw RPCError(.notFound, "model '\(name)' has no version \(version)") }
        if previous == version { return (move, nil) }
        try connection.execute(
          """
          INSERT INTO model_aliases (model_id, alias, version) VALUES ($1, $2, $3)
          ON CONFLICT (model_id, alias) DO UPDATE SET version = excluded.version
          """, .integer(row.id), .text(alias), .integer(version))
      }
      try connection.execute(
        """
        INSERT INTO alias_moves (model_id, alias, version, previous_version, moved_by, moved_at_ms)
        VALUES ($1, $2, $3, $4, $5, $6)
        """, .integer(row.id), .text(alias), .integer(version), .integer(move.previousVersion), .text(move.movedBy),
        .integer(now))
      var event = RegistryV1.ModelEvent()
      event.change = .aliasMoved(move)
      return (move, try Self.appendEvent(event, model: row.id, connection))
    }
  }

  /// Every move of `alias` (or of every alias), oldest first.
  func aliasHistory(of row: ModelRow, alias: String) async throws -> [RegistryV1.AliasMove] {
    try await database.read { connection in
      try connection.query(
        """
        SELECT alias, version, previous_version, moved_by, moved_at_ms FROM alias_moves
        WHERE model_id = $1 AND ($2 = '' OR alias = $2) ORDER BY id
        """, .integer(row.id), .text(alias)
      ).map { record in
        var move = RegistryV1.AliasMove()
        move.alias = try record.string("alias")
        move.version = try record.int("version")
        move.previousVersion = try record.int("previous_version")
        move.movedBy = try record.string("moved_by")
        move.movedAtMs = try record.int("moved_at_ms")
        return move
      }
    }
  }
}
