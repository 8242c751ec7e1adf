import Foundation
import ShoalProto
import ShoalRPC
import ShoalStore

/// The training sets built from prediction sets: what each holds and the blob it is in.
extension FeedbackStore {
  /// Records `trainingSet` in `organization`; returns it with its id.
  func addTrainingSet(
    _ trainingSet: FeedbackV1.TrainingSet, organization: String
  ) async throws -> FeedbackV1.TrainingSet {
    let classes = try Self.json(trainingSet.classes)
    let id = try await database.transaction { connection in
      try connection.query(
        """
        INSERT INTO training_sets (organization, set_id, name, digest, size_bytes, tiles, skipped, task, classes,
          run_id, created_by, created_at_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id
        """, .text(organization), .integer(Int64(trainingSet.setId)!), .text(trainingSet.name),
        .text(trainingSet.digest), .integer(trainingSet.sizeBytes), .integer(trainingSet.tiles),
        .integer(trainingSet.skipped), .integer(Int64(trainingSet.task.rawValue)), .text(classes),
        .text(trainingSet.runId), .text(trainingSet.createdBy), .integer(trainingSet.createdAtMs)
      )[0].int("id")
    }
    var stored = trainingSet
    stored.trainingSetId = String(id)
    return stored
  }

  /// The training sets of `setID` (nil: every set) that `organization` (nil: any) sees, newest first.
  func trainingSets(setID: Int64?, visibleTo organization: String?) async throws -> [FeedbackV1.TrainingSet] {
    let rows = try await database.read { connection in
      try connection.query(
        """
        SELECT * FROM training_sets WHERE ($1 = 0 OR set_id = $1) AND ($2 = '' OR organization = $2)
        ORDER BY id DESC
        """, .integer(setID ?? 0), .text(organization ?? ""))
    }
    return try rows.map(Self.trainingSet)
  }

  /// The training set `id`, if `organization` (nil: any) sees it.
  ///
  /// - Throws: NOT_FOUND naming it.
  func trainingSet(_ id: String, visibleTo organization: String?) async throws -> FeedbackV1.TrainingSet {
    let row = try await database.read { connection in
      try connection.queryFirst("SELECT * FROM training_sets WHERE id = $1", .integer(Int64(id) ?? -1))
    }
    let owner = try row.map { try $0.string("organization") }
    guard let row, organization == nil || owner == organization else {
      throw RPCError(.notFound, "training set '\(id)' not found")
    }
    return try Self.trainingSet(row)
  }

  static func trainingSet(_ row: SQLRow) throws -> FeedbackV1.TrainingSet {
    var trainingSet = FeedbackV1.TrainingSet()
    trainingSet.trainingSetId = String(try row.int("id"))
    trainingSet.setId = String(try row.int("set_id"))
    trainingSet.name = try row.string("name")
    trainingSet.digest = try row.string("digest")
    trainingSet.sizeBytes = try row.int("size_bytes")
    trainingSet.tiles = try row.int("tiles")
    trainingSet.skipped = try row.int("skipped")
    trainingSet.task = RegistryV1.ModelTask(rawValue: Int32(try row.int("task")))
    trainingSet.classes =
      try JSONSerialization.jsonObject(with: Data(try row.string("classes").utf8)) as? [String] ?? []
    trainingSet.runId = try row.string("run_id")
    trainingSet.createdBy = try row.string("created_by")
    trainingSet.createdAtMs = try row.int("created_at_ms")
    return trainingSet
  }
}
