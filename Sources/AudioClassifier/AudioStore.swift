import Foundation
import ShoalProto
import ShoalRPC
public import ShoalStore

/// The audio classifier's tables: datasets of an organisation, the clips stored by digest (their
/// files in the blob store), and which clips each dataset holds with their labels.
public struct AudioStore: Sendable {
  /// The audio classifier's migrations.
  public static let migrations = [
    Migration(
      1, "datasets and their clips",
      """
      CREATE TABLE datasets (
        id {id}, organization TEXT NOT NULL, name TEXT NOT NULL, created_by TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL, UNIQUE (organization, name));
      CREATE TABLE clips (
        digest TEXT PRIMARY KEY, name TEXT NOT NULL, size BIGINT NOT NULL, duration {real} NOT NULL,
        sample_rate BIGINT NOT NULL, channels BIGINT NOT NULL);
      CREATE TABLE dataset_clips (
        dataset_id BIGINT NOT NULL REFERENCES datasets (id), digest TEXT NOT NULL REFERENCES clips (digest),
        label TEXT NOT NULL, location TEXT NOT NULL, timestamp BIGINT NOT NULL, source TEXT NOT NULL,
        PRIMARY KEY (dataset_id, digest));
      CREATE INDEX dataset_clips_label ON dataset_clips (dataset_id, label, digest);
      """),
    Migration(
      2,
      "active learning: who labelled a clip and how well they know, the validation split, each dataset's state and its trainings",
      """
      ALTER TABLE dataset_clips ADD COLUMN expertise BIGINT NOT NULL DEFAULT 0;
      ALTER TABLE dataset_clips ADD COLUMN validation BIGINT NOT NULL DEFAULT 0;
      ALTER TABLE dataset_clips ADD COLUMN labelled_by TEXT NOT NULL DEFAULT '';
      ALTER TABLE dataset_clips ADD COLUMN labelled_at_ms BIGINT NOT NULL DEFAULT 0;
      CREATE TABLE learning (
        dataset_id BIGINT PRIMARY KEY REFERENCES datasets (id), config TEXT NOT NULL, labels BIGINT NOT NULL,
        trained_labels BIGINT NOT NULL, review_set TEXT NOT NULL, review_model TEXT NOT NULL,
        review_version BIGINT NOT NULL, review_positive TEXT NOT NULL, retraining BIGINT NOT NULL,
        last_error TEXT NOT NULL);
      CREATE TABLE trainings (
        id {id}, dataset_id BIGINT NOT NULL REFERENCES datasets (id), model TEXT NOT NULL, version BIGINT NOT NULL,
        labeled_files BIGINT NOT NULL, validation_files BIGINT NOT NULL, model_acc {real} NOT NULL,
        model_loss {real} NOT NULL, automatic BIGINT NOT NULL, run_id TEXT NOT NULL, cm TEXT NOT NULL,
        classes TEXT NOT NULL, at_ms BIGINT NOT NULL);
      CREATE INDEX trainings_dataset ON trainings (dataset_id, id);
      """),
  ]

  let database: Database

  public init(database: Database) {
    self.database = database
  }

  /// The dataset named `name` of `organization`, made if it does not exist.
  func dataset(named name: String, organization: String, createdBy: String) async throws -> Int64 {
    try await database.transaction { connection in
      if let row = try connection.queryFirst(
        "SELECT id FROM datasets WHERE organization = $1 AND name = $2", .text(organization), .text(name))
      {
        return try row.int("id")
      }
      return try connection.query(
        """
        INSERT INTO datasets (organization, name, created_by, created_at_ms) VALUES ($1, $2, $3, $4) RETURNING id
        """, .text(organization), .text(name), .text(createdBy),
        .integer(Int64((Date().timeIntervalSince1970 * 1000).rounded()))
      ).first!.int("id")
    }
  }

  /// Why a clip was not added: it is in the dataset already with another label.
  struct Conflict: Error {
    var label: String
  }

  /// Adds `clip` to dataset `id` (the clip row made if it is new). A clip already in the dataset
  /// with the same label is left as it is.
  ///
  /// - Throws: `Conflict` when it is there with another label.
  func add(_ clip: AudioV1.Clip, to id: Int64) async throws {
    let existing = try await database.transaction { connection -> String? in
      _ = try connection.execute(
        """
        INSERT INTO clips (digest, name, size, duration, sample_rate, channels) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (digest) DO NOTHING
        """, .text(clip.digest), .text(clip.name), .integer(clip.size), .real(clip.duration),
        .integer(Int64(clip.sampleRate)), .integer(Int64(clip.channels)))
      if let row = try connection.queryFirst(
        "SELECT label FROM dataset_clips WHERE dataset_id = $1 AND digest = $2", .integer(id), .text(clip.digest))
      {
        return try row.string("label")
      }
      _ = try connection.execute(
        """
        INSERT INTO dataset_clips (dataset_id, digest, label, location, timestamp, source)
        VALUES ($1, $2, $3, $4, $5, $6)
        """, .integer(id), .text(clip.digest), .text(clip.label), .text(clip.location), .integer(clip.timestamp),
        .text(clip.source))
      return nil
    }
    if let existing, existing != clip.label { throw Conflict(label: existing) }
  }

  /// A dataset with its counts, by id or by name; nil when there is none (or it is another
  /// organisation's, for a caller of one).
  func dataset(id: Int64?, name: String?, organization: String?) async throws -> AudioV1.Dataset? {
    try await datasets(id: id, name: name, organization: organization).first
  }

  func datasets(id: Int64? = nil, name: String? = nil, organization: String?) async throws -> [AudioV1.Dataset] {
    var conditions: [String] = []
    var parameters: [SQLValue] = []
    if let id {
      parameters.append(.integer(id))
      conditions.append("d.id = $\(parameters.count)")
    }
    if let name {
      parameters.append(.text(name))
      conditions.append("d.name = $\(parameters.count)")
    }
    if let organization {
      parameters.append(.text(organization))
      conditions.append("d.organization = $\(parameters.count)")
    }
    let sql = """
      SELECT d.id, d.organization, d.name, d.created_by, d.created_at_ms, dc.label, COUNT(dc.digest) AS clips,
        COALESCE(SUM(c.duration), 0) AS seconds
      FROM datasets d LEFT JOIN dataset_clips dc ON dc.dataset_id = d.id LEFT JOIN clips c ON c.digest = dc.digest
      \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
      GROUP BY d.id, d.organization, d.name, d.created_by, d.created_at_ms, dc.label ORDER BY d.id, dc.label
      """
    let values = parameters
    let rows = try await database.read { connection in try connection.query(sql, values) }
    var byID: [Int64: AudioV1.Dataset] = [:]
    var order: [Int64] = []
    for row in rows {
      let id = try row.int("id")
      if byID[id] == nil {
        var dataset = AudioV1.Dataset()
        dataset.datasetId = "\(id)"
        dataset.organization = try row.string("organization")
        dataset.name = try row.string("name")
        dataset.createdBy = try row.string("created_by")
        dataset.createdAtMs = try row.int("created_at_ms")
        byID[id] = dataset
        order.append(id)
      }
      let count = try row.int("clips")
      guard count > 0 else { continue }
      let label = try row.string("label")
      byID[id]!.clips += count
      byID[id]!.seconds += try row.double("seconds")
      if label.isEmpty {
        byID[id]!.unlabelled += count
      } else {
        byID[id]!.labelCounts[label] = count
      }
    }
    return order.map { byID[$0]! }
  }

  /// The clips of dataset `id` in digest order after `after`, at most `limit`; `label` nil for
  /// every clip, "" for the unlabelled.
  func clips(of id: Int64, label: String?, after: String, limit: Int) async throws -> [AudioV1.Clip] {
    var parameters: [SQLValue] = [.integer(id), .text(after), .integer(Int64(limit))]
    var filter = ""
    if let label {
      parameters.append(.text(label))
      filter = "AND dc.label = $4"
    }
    let sql = """
      SELECT \(Self.clipColumns)
      FROM dataset_clips dc JOIN clips c ON c.digest = dc.digest
      WHERE dc.dataset_id = $1 AND dc.digest > $2 \(filter) ORDER BY dc.digest LIMIT $3
      """
    let values = parameters
    return try await database.read { connection in
      try connection.query(sql, values).map(Self.clip)
    }
  }

  static let clipColumns = """
    c.digest, c.name, c.size, c.duration, c.sample_rate, c.channels, dc.label, dc.location, dc.timestamp, dc.source,
    dc.expertise, dc.validation, dc.labelled_by
    """

  static func clip(_ row: SQLRow) throws -> AudioV1.Clip {
    var clip = AudioV1.Clip()
    clip.digest = try row.string("digest")
    clip.name = try row.string("name")
    clip.size = try row.int("size")
    clip.duration = try row.double("duration")
    clip.sampleRate = Int32(try row.int("sample_rate"))
    clip.channels = Int32(try row.int("channels"))
    clip.label = try row.string("label")
    clip.location = try row.string("location")
    clip.timestamp = try row.int("timestamp")
    clip.source = try row.string("source")
    clip.expertise = AudioV1.Expertise(rawValue: Int32(try row.int("expertise")))
    clip.validation = try row.int("validation") != 0
    clip.labelledBy = try row.string("labelled_by")
    return clip
  }

  /// The clips of dataset `id` among `digests`, by digest.
  func clips(of id: Int64, digests: [String]) async throws -> [String: AudioV1.Clip] {
    guard !digests.isEmpty else { return [:] }
    let placeholders = digests.indices.map { "$\($0 + 2)" }.joined(separator: ", ")
    let sql = """
      SELECT \(Self.clipColumns) FROM dataset_clips dc JOIN clips c ON c.digest = dc.digest
      WHERE dc.dataset_id = $1 AND dc.digest IN (\(placeholders))
      """
    let values: [SQLValue] = [.integer(id)] + digests.map { .text($0) }
    let clips = try await database.read { connection in try connection.query(sql, values).map(Self.clip) }
    return Dictionary(clips.map { ($0.digest, $0) }) { first, _ in first }
  }

  /// Whether any dataset the caller sees holds the clip (a caller of one organisation reads
  /// only its own clips).
  func visible(_ digest: String, organization: String?) async throws -> Bool {
    guard let organization else {
      return try await database.read { connection in
        try connection.queryFirst("SELECT 1 AS found FROM clips WHERE digest = $1", .text(digest)) != nil
      }
    }
    return try await database.read { connection in
      try connection.queryFirst(
        """
        SELECT 1 AS found FROM dataset_clips dc JOIN datasets d ON d.id = dc.dataset_id
        WHERE dc.digest = $1 AND d.organization = $2
        """, .text(digest), .text(organization)) != nil
    }
  }
}
