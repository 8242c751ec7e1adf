import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalStore

extension FeedbackStore {
  /// The `n` least certain tiles of a set that nobody has validated (for `className`, or for any
  /// class) and nobody but `holder` holds, locked to `holder` until `lockMs` from now, in one
  /// transaction: two reviewers asking at once never get the same tile. Expired locks are dropped
  /// first. Without a class the strategy's stored rank orders them on the index; with one, each
  /// candidate's score for that class is ranked as p against 1 − p.
  func nextForReview(
    setID: Int64, strategy: FeedbackV1.ReviewStrategy, className: String?, n: Int, holder: String, lockMs: Int64
  ) async throws -> [(tile: StoredTile, uncertainty: Double, until: Int64)] {
    let now = Self.now()
    let until = now + lockMs
    let column =
      switch strategy {
      case .margin: "margin"
      case .entropy: "entropy"
      default: "least_confidence"
      }
    return try await database.transaction { connection in
      _ = try connection.execute(
        "DELETE FROM review_locks WHERE set_id = $1 AND until_ms <= $2", .integer(setID), .integer(now))
      var parameters: [SQLValue] = [.integer(setID), .text(holder)]
      var classCondition = ""
      if let className {
        parameters.append(.text(className))
        classCondition = " AND v.class_name = $3"
      }
      let candidates = """
        FROM tiles t WHERE t.set_id = $1
          AND NOT EXISTS (
            SELECT 1 FROM validity v WHERE v.tile_id = t.id AND v.feature_id = 0 AND v.state != 0\(classCondition))
          AND NOT EXISTS (SELECT 1 FROM review_locks l WHERE l.tile_id = t.id AND l.holder != $2)
        """
      var chosen: [(StoredTile, Double)] = []
      if let className {
        let rows = try connection.query("SELECT t.id, t.z, t.x, t.y, t.scores, t.item \(candidates)", parameters)
        var ranked: [(StoredTile, Double)] = []
        for row in rows {
          let tile = try Self.storedTile(row)
          let measure = Uncertainty([tile.scores[className] ?? 0])
          let value: Double =
            switch strategy {
            case .margin: measure.margin
            case .entropy: measure.entropy
            default: measure.leastConfidence
            }
          ranked.append((tile, value))
        }
        ranked.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0.id < $1.0.id) }
        chosen = Array(ranked.prefix(n))
      } else {
        parameters.append(.integer(Int64(n)))
        let rows = try connection.query(
          "SELECT t.id, t.z, t.x, t.y, t.scores, t.item, t.\(column) AS rank \(candidates) ORDER BY t.\(column) DESC, t.id LIMIT $3",
          parameters)
        chosen = try rows.map { (try Self.storedTile($0), try $0.double("rank")) }
      }
      try connection.executeBatch(
        """
        INSERT INTO review_locks (tile_id, set_id, holder, until_ms) VALUES ($1, $2, $3, $4)
        ON CONFLICT (tile_id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
        """, chosen.map { [.integer($0.0.id), .integer(setID), .text(holder), .integer(until)] })
      return chosen.map { ($0.0, $0.1, until) }
    }
  }

  /// Gives back `holder`'s locks on `tiles` (every lock it holds in the set when empty).
  func releaseLocks(setID: Int64, holder: String, tiles: [Tile]) async throws -> Int {
    try await database.transaction { connection in
      guard !tiles.isEmpty else {
        return try connection.execute(
          "DELETE FROM review_locks WHERE set_id = $1 AND holder = $2", .integer(setID), .text(holder))
      }
      var released = 0
      for tile in tiles {
        released += try connection.execute(
          """
          DELETE FROM review_locks WHERE set_id = $1 AND holder = $2 AND tile_id IN (
            SELECT id FROM tiles WHERE set_id = $1 AND z = $3 AND x = $4 AND y = $5)
          """, .integer(setID), .text(holder), .integer(Int64(tile.z)), .integer(Int64(tile.x)),
          .integer(Int64(tile.y)))
      }
      return released
    }
  }

  static func storedTile(_ row: SQLRow) throws -> StoredTile {
    let scores = ScoresJSON.decode(try row.string("scores"))
    var stored = StoredTile(
      id: try row.int("id"),
      tile: try Tile(z: Int(try row.int("z")), x: Int(try row.int("x")), y: Int(try row.int("y"))),
      scores: scores)
    if row.columns.contains("item") { stored.item = try row.string("item") }
    if row.columns.contains("marked") {
      stored.marked = try row.int("marked") != 0
      stored.featured = try row.int("featured") != 0
    }
    return stored
  }
}
