import Foundation
public import ShoalProto
import ShoalRPC
public import ShoalStore

/// The feedback service's tables: prediction sets, their tiles indexed by quadkey number
/// (`QuadkeyRange`), the features on them, what people said of each (tile or feature, class) and
/// the history of every change.
public struct FeedbackStore: Sendable {
  /// The feedback service's migrations.
  public static let migrations = [
    Migration(
      1, "prediction sets, tiles, features, validity and its history",
      """
      CREATE TABLE prediction_sets (
        id {id}, organization TEXT NOT NULL, model TEXT NOT NULL, model_version BIGINT NOT NULL, task BIGINT NOT NULL,
        classes TEXT NOT NULL, imagery TEXT NOT NULL, zoom BIGINT NOT NULL, aoi TEXT NOT NULL, job_id TEXT NOT NULL,
        created_by TEXT NOT NULL, created_at_ms BIGINT NOT NULL, status BIGINT NOT NULL, colors TEXT NOT NULL);
      CREATE INDEX prediction_sets_model ON prediction_sets (organization, model);
      CREATE TABLE tiles (
        id {id}, set_id BIGINT NOT NULL REFERENCES prediction_sets (id), z BIGINT NOT NULL, x BIGINT NOT NULL,
        y BIGINT NOT NULL, qk BIGINT NOT NULL, scores TEXT NOT NULL, UNIQUE (set_id, z, x, y));
      CREATE INDEX tiles_quadkey ON tiles (set_id, z, qk);
      CREATE TABLE features (
        id {id}, tile_id BIGINT NOT NULL REFERENCES tiles (id), class_name TEXT NOT NULL, score {real} NOT NULL,
        geometry TEXT NOT NULL);
      CREATE INDEX features_tile ON features (tile_id);
      CREATE TABLE validity (
        tile_id BIGINT NOT NULL REFERENCES tiles (id), feature_id BIGINT NOT NULL, class_name TEXT NOT NULL,
        state BIGINT NOT NULL, by_principal TEXT NOT NULL, at_ms BIGINT NOT NULL,
        PRIMARY KEY (tile_id, feature_id, class_name));
      CREATE TABLE validity_history (
        id {id}, set_id BIGINT NOT NULL, tile_id BIGINT NOT NULL, feature_id BIGINT NOT NULL, class_name TEXT NOT NULL,
        state BIGINT NOT NULL, previous BIGINT NOT NULL, by_principal TEXT NOT NULL, at_ms BIGINT NOT NULL);
      CREATE INDEX validity_history_set ON validity_history (set_id, tile_id, id);
      CREATE TABLE put_requests (
        set_id BIGINT NOT NULL REFERENCES prediction_sets (id), request_id TEXT NOT NULL,
        PRIMARY KEY (set_id, request_id));
      """),
    Migration(
      2, "review ranks and locks",
      """
      ALTER TABLE tiles ADD COLUMN least_confidence {real} NOT NULL DEFAULT 0;
      ALTER TABLE tiles ADD COLUMN margin {real} NOT NULL DEFAULT 0;
      ALTER TABLE tiles ADD COLUMN entropy {real} NOT NULL DEFAULT 0;
      CREATE INDEX tiles_least_confidence ON tiles (set_id, least_confidence);
      CREATE TABLE review_locks (
        tile_id BIGINT PRIMARY KEY REFERENCES tiles (id), set_id BIGINT NOT NULL, holder TEXT NOT NULL,
        until_ms BIGINT NOT NULL);
      CREATE INDEX review_locks_set ON review_locks (set_id, holder);
      """),
    Migration(
      3, "imagery sources and areas of interest",
      """
      CREATE TABLE imagery_sources (
        organization TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, headers TEXT NOT NULL,
        created_by TEXT NOT NULL, created_at_ms BIGINT NOT NULL, PRIMARY KEY (organization, name));
      CREATE TABLE areas (
        organization TEXT NOT NULL, name TEXT NOT NULL, geojson TEXT NOT NULL, description TEXT NOT NULL,
        created_by TEXT NOT NULL, created_at_ms BIGINT NOT NULL, PRIMARY KEY (organization, name));
      """),
    Migration(
      4, "training sets",
      """
      CREATE TABLE training_sets (
        id {id}, organization TEXT NOT NULL, set_id BIGINT NOT NULL REFERENCES prediction_sets (id),
        name TEXT NOT NULL, digest TEXT NOT NULL, size_bytes BIGINT NOT NULL, tiles BIGINT NOT NULL,
        skipped BIGINT NOT NULL, task BIGINT NOT NULL, classes TEXT NOT NULL, run_id TEXT NOT NULL,
        created_by TEXT NOT NULL, created_at_ms BIGINT NOT NULL);
      CREATE INDEX training_sets_set ON training_sets (organization, set_id);
      """),
    Migration(
      5, "a count of each set's tiles, kept as they are stored (counting a large set on every call was slow)",
      """
      ALTER TABLE prediction_sets ADD COLUMN tile_count BIGINT NOT NULL DEFAULT 0;
      UPDATE prediction_sets SET tile_count = (SELECT COUNT(*) FROM tiles t WHERE t.set_id = prediction_sets.id);
      """),
    Migration(
      6, "sets of items that are not map tiles (audio clips), each kept with its key",
      """
      ALTER TABLE prediction_sets ADD COLUMN items BIGINT NOT NULL DEFAULT 0;
      ALTER TABLE tiles ADD COLUMN item TEXT NOT NULL DEFAULT '';
      """),
  ]

  /// The database.
  public let database: Database

  /// The store over `database` (migrated with `migrations`).
  public init(database: Database) { self.database = database }

  static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

  // MARK: Sets

  /// Creates a set in `organization`, made by `principal`.
  public func createSet(
    _ request: FeedbackV1.CreateSetRequest, organization: String, principal: String
  ) async throws -> FeedbackV1.PredictionSet {
    var colors = request.colors ?? FeedbackV1.DisplayColors()
    if colors.unvalidated.isEmpty { colors.unvalidated = "#ff0000" }
    if colors.valid.isEmpty { colors.valid = "#00ff00" }
    if colors.invalid.isEmpty { colors.invalid = "#ffffff" }
    let classes = try Self.json(request.classes.map { ["name": $0.name, "color": $0.color] })
    let colorsText = try Self.json([
      "unvalidated": colors.unvalidated, "valid": colors.valid, "invalid": colors.invalid,
    ])
    let now = Self.now()
    let id = try await database.transaction { connection in
      try connection.query(
        """
        INSERT INTO prediction_sets (organization, model, model_version, task, classes, imagery, zoom, aoi, job_id,
          created_by, created_at_ms, status, colors, items)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id
        """, .text(organization), .text(request.model), .integer(request.modelVersion),
        .integer(Int64(request.task.rawValue)), .text(classes), .text(request.imagery), .integer(Int64(request.zoom)),
        .text(request.aoi), .text(request.jobId), .text(principal), .integer(now),
        .integer(Int64(FeedbackV1.SetStatus.open.rawValue)), .text(colorsText), .integer(request.items ? 1 : 0)
      )[0].int("id")
    }
    return try await set(String(id), visibleTo: nil)
  }

  /// The set `id`, if `organization` (nil: any) may see it.
  ///
  /// - Throws: NOT_FOUND naming the set when there is none or the caller may not see it.
  public func set(_ id: String, visibleTo organization: String?) async throws -> FeedbackV1.PredictionSet {
    guard let number = Int64(id) else { throw RPCError(.notFound, "prediction set '\(id)' not found") }
    let row = try await database.read { connection in
      try connection.queryFirst(
        """
        SELECT s.* FROM prediction_sets s WHERE s.id = $1
        """, .integer(number))
    }
    guard let row else { throw RPCError(.notFound, "prediction set '\(id)' not found") }
    let owner = try row.string("organization")
    guard organization == nil || owner == organization else {
      throw RPCError(.notFound, "prediction set '\(id)' not found")
    }
    return try Self.set(row)
  }

  /// One page of the sets `organization` (nil: any) sees, newest first.
  public func sets(
    _ request: FeedbackV1.ListSetsRequest, visibleTo organization: String?
  ) async throws -> FeedbackV1.ListSetsResponse {
    let size = Int64(request.pageSize <= 0 ? 100 : min(request.pageSize, 1000))
    let before = request.pageToken.isEmpty ? Int64.max : (Int64(request.pageToken) ?? Int64.max)
    let rows = try await database.read { connection in
      try connection.query(
        """
        SELECT s.* FROM prediction_sets s
        WHERE s.id < $1 AND ($2 = '' OR s.model = $2) AND ($3 = '' OR s.organization = $3)
        ORDER BY s.id DESC LIMIT $4
        """, [.integer(before), .text(request.model), .text(organization ?? ""), .integer(size + 1)])
    }
    var response = FeedbackV1.ListSetsResponse()
    response.sets = try rows.prefix(Int(size)).map(Self.set)
    if rows.count > Int(size), let last = response.sets.last { response.nextPageToken = last.setId }
    return response
  }

  /// Sets a set's status.
  public func updateStatus(
    _ id: String, _ status: FeedbackV1.SetStatus, visibleTo organization: String?
  ) async throws
    -> FeedbackV1.PredictionSet
  {
    _ = try await set(id, visibleTo: organization)
    _ = try await database.transaction { connection in
      try connection.execute(
        "UPDATE prediction_sets SET status = $1 WHERE id = $2", .integer(Int64(status.rawValue)), .integer(Int64(id)!))
    }
    return try await set(id, visibleTo: organization)
  }

  static func set(_ row: SQLRow) throws -> FeedbackV1.PredictionSet {
    var set = FeedbackV1.PredictionSet()
    set.setId = String(try row.int("id"))
    set.organization = try row.string("organization")
    set.model = try row.string("model")
    set.modelVersion = try row.int("model_version")
    set.task = RegistryV1.ModelTask(rawValue: Int32(try row.int("task")))
    let classes =
      try JSONSerialization.jsonObject(with: Data(try row.string("classes").utf8)) as? [[String: String]] ?? []
    set.classes = classes.map { entry in
      var label = RegistryV1.ClassLabel()
      label.name = entry["name"] ?? ""
      label.color = entry["color"] ?? ""
      return label
    }
    set.imagery = try row.string("imagery")
    set.zoom = Int32(try row.int("zoom"))
    set.aoi = try row.string("aoi")
    set.jobId = try row.string("job_id")
    set.createdBy = try row.string("created_by")
    set.createdAtMs = try row.int("created_at_ms")
    set.status = FeedbackV1.SetStatus(rawValue: Int32(try row.int("status")))
    let colors = try JSONSerialization.jsonObject(with: Data(try row.string("colors").utf8)) as? [String: String] ?? [:]
    var display = FeedbackV1.DisplayColors()
    display.unvalidated = colors["unvalidated"] ?? ""
    display.valid = colors["valid"] ?? ""
    display.invalid = colors["invalid"] ?? ""
    set.colors = display
    set.tileCount = try row.int("tile_count")
    set.items = try row.int("items") != 0
    return set
  }

  static func json(_ value: Any) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self)
  }
}
