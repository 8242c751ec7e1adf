import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalStore

extension FeedbackStore {
  /// One tile as stored.
  struct StoredTile {
    var id: Int64
    var tile: Tile
    var scores: [String: Double]
    /// An item's key, in a set of items.
    var item = ""
    /// Whether anyone marked the tile or its features, and whether it has features (true when the
    /// query did not say): tiles without are left out of the lookups of marks and features.
    var marked = true
    var featured = true
  }

  /// One batch of PutPredictions: a set's tiles under a request id.
  struct PutBatch: Sendable {
    var setID: Int64
    var requestID: String
    /// Each tile with its item's key ("" for a map tile), scores and features.
    var tiles: [(Tile, String, [String: Double], [FeedbackV1.Feature])]
  }

  /// Stores `batches` in one transaction: each batch unless its request id was stored before, a
  /// tile already in the set keeping what it had (a resumed job writes it again). Returns each
  /// batch's tiles stored, or nil for a repeated one. One commit for many batches writes each index
  /// page that they touch once, not once per batch.
  func putBatches(_ batches: [PutBatch]) async throws -> [Int?] {
    let encoded = batches.map { batch in
      (
        batch.setID, batch.requestID,
        batch.tiles.map { tile, item, scores, features in
          (tile, item, ScoresJSON.encode(scores), features, Uncertainty(scores.values.map { $0 }))
        }
      )
    }
    return try await database.transaction { connection -> [Int?] in
      try encoded.map { setID, requestID, rows in
        try Self.put(setID: setID, requestID: requestID, rows: rows, on: connection)
      }
    }
  }

  private static func put(
    setID: Int64, requestID: String, rows: [(Tile, String, String, [FeedbackV1.Feature], Uncertainty)],
    on connection: any SQLConnection
  ) throws -> Int? {
    if !requestID.isEmpty {
      let inserted = try connection.execute(
        "INSERT INTO put_requests (set_id, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", .integer(setID),
        .text(requestID))
      if inserted == 0 { return nil }
    }
    var stored = 0
    let insert = """
      INSERT INTO tiles (set_id, z, x, y, qk, scores, least_confidence, margin, entropy, item)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
      ON CONFLICT (set_id, z, x, y) DO NOTHING
      """
    for (tile, item, scores, features, uncertainty) in rows {
      let values: [SQLValue] = [
        .integer(setID), .integer(Int64(tile.z)), .integer(Int64(tile.x)), .integer(Int64(tile.y)),
        .integer(QuadkeyRange.number(of: tile)), .text(scores), .real(uncertainty.leastConfidence),
        .real(uncertainty.margin), .real(uncertainty.entropy), .text(item),
      ]
      // Only a tile with features needs its id back.
      guard !features.isEmpty else {
        let inserted = try connection.execute(insert, values)
        if inserted == 0, !item.isEmpty {
          try Self.checkPlace(of: item, tile, setID: setID, on: connection)
        }
        stored += inserted
        continue
      }
      guard let id = try connection.query(insert + " RETURNING id", values).first.map({ try $0.int("id") }) else {
        continue
      }
      stored += 1
      try connection.executeBatch(
        "INSERT INTO features (tile_id, class_name, score, geometry) VALUES ($1, $2, $3, $4)",
        features.map { [.integer(id), .text($0.className), .real($0.score), .text($0.geometry)] })
    }
    _ = try connection.execute(
      "UPDATE prediction_sets SET tile_count = tile_count + $1 WHERE id = $2", .integer(Int64(stored)),
      .integer(setID))
    return stored
  }

  /// Refuses an item whose place another item of the set holds (a new item put again is fine).
  private static func checkPlace(of item: String, _ tile: Tile, setID: Int64, on connection: any SQLConnection) throws {
    let row = try connection.queryFirst(
      "SELECT item FROM tiles WHERE set_id = $1 AND z = $2 AND x = $3 AND y = $4", .integer(setID),
      .integer(Int64(tile.z)), .integer(Int64(tile.x)), .integer(Int64(tile.y)))
    if let other = try row?.string("item"), other != item {
      throw RPCError(.alreadyExists, "items '\(item)' and '\(other)' share a place in set \(setID); rename one")
    }
  }

  /// Whether a tile `t` has marks and features, as columns.
  static let flags = """
    CASE WHEN EXISTS (SELECT 1 FROM validity v WHERE v.tile_id = t.id AND v.state != 0) THEN 1 ELSE 0 END AS marked,
    CASE WHEN EXISTS (SELECT 1 FROM features f WHERE f.tile_id = t.id) THEN 1 ELSE 0 END AS featured
    """

  /// The tiles of set `setID` at `zoom`, at most `limit`: everywhere in id order after tile id
  /// `after` (ranges nil), or within `ranges` of quadkey numbers in quadkey order after the quadkey
  /// number `after` (so that the quadkey index serves both the filter and the order).
  func tiles(setID: Int64, zoom: Int, ranges: [QuadkeyRange]?, after: Int64, limit: Int) async throws -> [StoredTile] {
    var parameters: [SQLValue] = [.integer(setID), .integer(Int64(zoom)), .integer(after), .integer(Int64(limit))]
    let sql: String
    if let ranges {
      // The ranges as rows, joined first (CROSS JOIN fixes SQLite's join order): the quadkey index
      // is searched once per range. SQLite scans the whole set for an OR of BETWEENs on one column,
      // and left to choose, it walks the index in qk order (to spare the sort) probing every range.
      let values = ranges.filter { $0.last > after }.map { range -> String in
        parameters += [.integer(max(range.first, after + 1)), .integer(range.last)]
        return "(CAST($\(parameters.count - 1) AS BIGINT), CAST($\(parameters.count) AS BIGINT))"
      }
      guard !values.isEmpty else { return [] }
      sql = """
        WITH r (lo, hi) AS (VALUES \(values.joined(separator: ", ")))
        SELECT t.id, t.z, t.x, t.y, t.scores, t.item, \(Self.flags) FROM r CROSS JOIN tiles t
        WHERE t.set_id = $1 AND t.z = $2 AND t.qk BETWEEN r.lo AND r.hi AND t.qk > $3 ORDER BY t.qk LIMIT $4
        """
    } else {
      sql = """
        SELECT t.id, t.z, t.x, t.y, t.scores, t.item, \(Self.flags) FROM tiles t
        WHERE t.set_id = $1 AND t.z = $2 AND t.id > $3 ORDER BY t.id LIMIT $4
        """
    }
    let rows = try await database.read { [parameters] connection in try connection.query(sql, parameters) }
    return try rows.map(Self.storedTile)
  }

  /// What was said of each of `tileIDs` (tiles and their features), by tile id.
  func validity(of tileIDs: [Int64]) async throws -> [Int64: [(feature: Int64, record: FeedbackV1.ClassValidity)]] {
    var result: [Int64: [(Int64, FeedbackV1.ClassValidity)]] = [:]
    for row in try await rows(forTiles: tileIDs, { "SELECT * FROM validity WHERE tile_id IN (\($0)) AND state != 0" }) {
      var record = FeedbackV1.ClassValidity()
      record.className = try row.string("class_name")
      record.validity = FeedbackV1.Validity(rawValue: Int32(try row.int("state")))
      record.by = try row.string("by_principal")
      record.atMs = try row.int("at_ms")
      result[try row.int("tile_id"), default: []].append((try row.int("feature_id"), record))
    }
    return result
  }

  /// Calls `body` with every tile of a set in id order, with its marks (of the tile: feature 0,
  /// and of its features) and its features, reading 2,000 tiles at a time.
  func forEachTile(
    setID: Int64, zoom: Int,
    _ body: (StoredTile, [(feature: Int64, record: FeedbackV1.ClassValidity)], [FeedbackV1.Feature]) async throws
      -> Void
  ) async throws {
    var after: Int64 = 0
    while true {
      let batch = try await tiles(setID: setID, zoom: zoom, ranges: nil, after: after, limit: 2000)
      guard let last = batch.last else { return }
      after = last.id
      let validity = try await validity(of: batch.filter(\.marked).map(\.id))
      let features = try await features(of: batch.filter(\.featured).map(\.id))
      for stored in batch { try await body(stored, validity[stored.id] ?? [], features[stored.id] ?? []) }
    }
  }

  /// The features of `tileIDs`, by tile id.
  func features(of tileIDs: [Int64]) async throws -> [Int64: [FeedbackV1.Feature]] {
    var result: [Int64: [FeedbackV1.Feature]] = [:]
    for row in try await rows(forTiles: tileIDs, { "SELECT * FROM features WHERE tile_id IN (\($0)) ORDER BY id" }) {
      var feature = FeedbackV1.Feature()
      feature.featureId = String(try row.int("id"))
      feature.className = try row.string("class_name")
      feature.score = try row.double("score")
      feature.geometry = try row.string("geometry")
      result[try row.int("tile_id"), default: []].append(feature)
    }
    return result
  }

  /// The rows `sql` selects for `tileIDs`, 500 ids to a query: `sql` gets the placeholders to put
  /// in its `IN (…)`.
  private func rows(forTiles tileIDs: [Int64], _ sql: (String) -> String) async throws -> [SQLRow] {
    var rows: [SQLRow] = []
    for start in stride(from: 0, to: tileIDs.count, by: 500) {
      let chunk = Array(tileIDs[start..<min(start + 500, tileIDs.count)])
      let query = sql(chunk.indices.map { "$\($0 + 1)" }.joined(separator: ", "))
      rows += try await database.read { connection in try connection.query(query, chunk.map { .integer($0) }) }
    }
    return rows
  }

  /// Applies every change or none: a tile (z/x/y), feature or class the set does not have is
  /// NOT_FOUND naming it. Each change is kept in the history with who made it and when.
  func setValidity(
    setID: Int64, classes: Set<String>, changes: [FeedbackV1.ValidityChange], by principal: String
  ) async throws -> Int {
    let now = Self.now()
    return try await database.transaction { connection -> Int in
      var applied = 0
      for (index, change) in changes.enumerated() {
        guard classes.contains(change.className) else {
          throw RPCError(
            .notFound,
            "changes[\(index)]: the set has no class '\(change.className)' (its classes: "
              + "\(classes.sorted().joined(separator: ", ")))")
        }
        let tileID: Int64
        var featureID: Int64 = 0
        switch change.target {
        case .tileId(let text)?:
          let tile: Tile
          do throws(GeoError) {
            tile = try Tile(parsing: text)
          } catch {
            throw RPCError(.notFound, "changes[\(index)]: tile '\(text)' is not in the set (\(error.message))")
          }
          guard
            let row = try connection.queryFirst(
              "SELECT id FROM tiles WHERE set_id = $1 AND z = $2 AND x = $3 AND y = $4", .integer(setID),
              .integer(Int64(tile.z)), .integer(Int64(tile.x)), .integer(Int64(tile.y)))
          else { throw RPCError(.notFound, "changes[\(index)]: tile \(text) is not in the set") }
          tileID = try row.int("id")
        case .featureId(let text)?:
          guard let number = Int64(text),
            let row = try connection.queryFirst(
              "SELECT f.tile_id FROM features f JOIN tiles t ON t.id = f.tile_id WHERE f.id = $1 AND t.set_id = $2",
              .integer(number), .integer(setID))
          else { throw RPCError(.notFound, "changes[\(index)]: feature '\(text)' is not in the set") }
          tileID = try row.int("tile_id")
          featureID = number
        case nil:
          throw RPCError(.invalidArgument, "changes[\(index)]: give tile_id or feature_id")
        }
        let previous =
          try connection.queryFirst(
            "SELECT state FROM validity WHERE tile_id = $1 AND feature_id = $2 AND class_name = $3", .integer(tileID),
            .integer(featureID), .text(change.className)
          ).map { try $0.int("state") } ?? 0
        let state = Int64(change.validity.rawValue)
        _ = try connection.execute(
          """
          INSERT INTO validity (tile_id, feature_id, class_name, state, by_principal, at_ms) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (tile_id, feature_id, class_name) DO UPDATE SET state = excluded.state,
            by_principal = excluded.by_principal, at_ms = excluded.at_ms
          """, .integer(tileID), .integer(featureID), .text(change.className), .integer(state), .text(principal),
          .integer(now))
        _ = try connection.execute(
          """
          INSERT INTO validity_history (set_id, tile_id, feature_id, class_name, state, previous, by_principal, at_ms)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
          """, .integer(setID), .integer(tileID), .integer(featureID), .text(change.className), .integer(state),
          .integer(previous), .text(principal), .integer(now))
        applied += 1
      }
      return applied
    }
  }

  /// Every change of the set's validity (of one tile when `tile` is given), oldest first.
  func history(setID: Int64, tile: Tile?) async throws -> [FeedbackV1.ValidityHistoryEntry] {
    let rows = try await database.read { connection in
      try connection.query(
        """
        SELECT h.*, t.z, t.x, t.y, t.item FROM validity_history h JOIN tiles t ON t.id = h.tile_id
        WHERE h.set_id = $1 AND ($2 < 0 OR (t.z = $2 AND t.x = $3 AND t.y = $4)) ORDER BY h.id
        """,
        [
          .integer(setID), .integer(Int64(tile?.z ?? -1)), .integer(Int64(tile?.x ?? 0)),
          .integer(Int64(tile?.y ?? 0)),
        ])
    }
    return try rows.map { row in
      var entry = FeedbackV1.ValidityHistoryEntry()
      let item = try row.string("item")
      entry.tileId = item.isEmpty ? "\(try row.int("z"))/\(try row.int("x"))/\(try row.int("y"))" : item
      let feature = try row.int("feature_id")
      entry.featureId = feature == 0 ? "" : String(feature)
      entry.className = try row.string("class_name")
      entry.validity = FeedbackV1.Validity(rawValue: Int32(try row.int("state")))
      entry.previous = FeedbackV1.Validity(rawValue: Int32(try row.int("previous")))
      entry.by = try row.string("by_principal")
      entry.atMs = try row.int("at_ms")
      return entry
    }
  }
}

extension FeedbackStore {
  /// Each reviewer's latest verdict (valid or invalid) on each item of a set, by item
  /// ("tile/feature/class"), from the history; a cleared mark is no verdict.
  func verdicts(setID: Int64) async throws -> [String: [String: FeedbackV1.Validity]] {
    let rows = try await database.read { connection in
      try connection.query(
        """
        SELECT tile_id, feature_id, class_name, state, by_principal FROM validity_history WHERE set_id = $1
        ORDER BY id
        """, .integer(setID))
    }
    var verdicts: [String: [String: FeedbackV1.Validity]] = [:]
    for row in rows {
      let item = "\(try row.int("tile_id"))/\(try row.int("feature_id"))/\(try row.string("class_name"))"
      let state = FeedbackV1.Validity(rawValue: Int32(try row.int("state")))
      verdicts[item, default: [:]][try row.string("by_principal")] = state == .unvalidated ? nil : state
    }
    return verdicts
  }
}
