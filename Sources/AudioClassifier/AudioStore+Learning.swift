import Foundation
import ShoalProto
import ShoalRPC
import ShoalStore

/// Active learning's state in the store: each dataset's training settings (the last Train
/// request, which the automatic retraining repeats), its labels counted for every k-th to the
/// validation split and for the next retraining, its review set in feedback, and its trainings.
extension AudioStore {
  struct Learning {
    /// The last Train request on the dataset (nil before any).
    var config: AudioV1.TrainRequest?
    /// Labels submitted, and how many there were when the last training began.
    var labels: Int64 = 0
    var trainedLabels: Int64 = 0
    var reviewSet = ""
    var reviewModel = ""
    var reviewVersion: Int64 = 0
    var reviewPositive = ""
    var retraining = false
    var lastError = ""

    var sinceTraining: Int64 { labels - trainedLabels }
    var validationEvery: Int64 { Int64(config.map { $0.validationEvery == 0 ? 5 : $0.validationEvery } ?? 5) }
  }

  /// A label as stored, with what the store decided.
  struct SubmittedLabel {
    var digest: String
    var label: String
    var expertise: AudioV1.Expertise
  }

  private static let ensureRow = """
    INSERT INTO learning (dataset_id, config, labels, trained_labels, review_set, review_model, review_version,
      review_positive, retraining, last_error)
    VALUES ($1, '', 0, 0, '', '', 0, '', 0, '') ON CONFLICT (dataset_id) DO NOTHING
    """

  func learning(of id: Int64) async throws -> Learning {
    try await database.read { connection in try Self.learning(of: id, on: connection) }
  }

  private static func learning(of id: Int64, on connection: any SQLConnection) throws -> Learning {
    guard let row = try connection.queryFirst("SELECT * FROM learning WHERE dataset_id = $1", .integer(id)) else {
      return Learning()
    }
    var learning = Learning()
    let config = try row.string("config")
    if !config.isEmpty, let bytes = Self.bytes(hex: config) {
      learning.config = try AudioV1.TrainRequest(serializedBytes: bytes)
    }
    learning.labels = try row.int("labels")
    learning.trainedLabels = try row.int("trained_labels")
    learning.reviewSet = try row.string("review_set")
    learning.reviewModel = try row.string("review_model")
    learning.reviewVersion = try row.int("review_version")
    learning.reviewPositive = try row.string("review_positive")
    learning.retraining = try row.int("retraining") != 0
    learning.lastError = try row.string("last_error")
    return learning
  }

  /// Labels clips of dataset `id` in one transaction: each label is counted, and every k-th goes
  /// to the validation split (a clip once there stays there). Returns how many went there and
  /// the state after.
  ///
  /// - Throws: NOT_FOUND naming a clip the dataset does not hold (and nothing is labelled).
  func submit(_ labels: [SubmittedLabel], to id: Int64, by principal: String) async throws -> (Int, Learning) {
    let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    return try await database.transaction { connection in
      _ = try connection.execute(Self.ensureRow, .integer(id))
      var learning = try Self.learning(of: id, on: connection)
      var validation = 0
      for (index, label) in labels.enumerated() {
        let number = learning.labels + 1
        let held = number % learning.validationEvery == 0
        let changed = try connection.execute(
          """
          UPDATE dataset_clips SET label = $1, expertise = $2, labelled_by = $3, labelled_at_ms = $4,
            validation = CASE WHEN validation = 1 OR $5 = 1 THEN 1 ELSE 0 END
          WHERE dataset_id = $6 AND digest = $7
          """, .text(label.label), .integer(Int64(label.expertise.rawValue)), .text(principal), .integer(now),
          .integer(held ? 1 : 0), .integer(id), .text(label.digest))
        guard changed == 1 else {
          throw RPCError(.notFound, "labels[\(index)]: the dataset has no clip \(label.digest)")
        }
        learning.labels = number
        if held { validation += 1 }
      }
      _ = try connection.execute(
        "UPDATE learning SET labels = $1 WHERE dataset_id = $2", .integer(learning.labels), .integer(id))
      return (validation, learning)
    }
  }

  /// Marks an automatic retraining as running if the dataset is due one and none runs; true when
  /// this call marked it.
  func claimRetraining(of id: Int64) async throws -> Bool {
    try await database.transaction { connection in
      let learning = try Self.learning(of: id, on: connection)
      guard let config = learning.config, config.retrainAfter > 0, !learning.retraining,
        learning.sinceTraining >= Int64(config.retrainAfter)
      else { return false }
      _ = try connection.execute(
        "UPDATE learning SET retraining = 1, last_error = '' WHERE dataset_id = $1", .integer(id))
      return true
    }
  }

  /// Ends an automatic retraining, with why it failed.
  func endRetraining(of id: Int64, error: String) async throws {
    _ = try await database.transaction { connection in
      try connection.execute(
        "UPDATE learning SET retraining = 0, last_error = $1 WHERE dataset_id = $2", .text(error), .integer(id))
    }
  }

  /// How many labels the dataset has had, as a training begins.
  func labelsSubmitted(to id: Int64) async throws -> Int64 {
    try await learning(of: id).labels
  }

  /// Records a finished training: its round, and its request as the dataset's settings, with the
  /// labels it began with counted as trained on.
  func recordTraining(
    of id: Int64, config: AudioV1.TrainRequest, labelsAtStart: Int64, round: AudioV1.TrainingRound, cm: [Int64],
    classes: [String]
  ) async throws {
    let configText = Self.hex(try config.serializedBytes())
    _ = try await database.transaction { connection in
      _ = try connection.execute(Self.ensureRow, .integer(id))
      _ = try connection.execute(
        "UPDATE learning SET config = $1, trained_labels = $2 WHERE dataset_id = $3", .text(configText),
        .integer(labelsAtStart), .integer(id))
      return try connection.execute(
        """
        INSERT INTO trainings (dataset_id, model, version, labeled_files, validation_files, model_acc, model_loss,
          automatic, run_id, cm, classes, at_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """, .integer(id), .text(round.model), .integer(round.version), .integer(round.labeledFiles),
        .integer(round.validationFiles), .real(round.modelAcc.isFinite ? round.modelAcc : 0),
        .real(round.modelLoss.isFinite ? round.modelLoss : 0), .integer(round.automatic ? 1 : 0),
        .text(round.runId), .text(cm.map(String.init).joined(separator: ",")),
        .text(classes.joined(separator: ",")), .integer(round.trainedAtMs))
    }
  }

  /// Makes `set` the dataset's review set, predicted by `model` v`version`.
  func setReview(of id: Int64, set: String, model: String, version: Int64, positive: String) async throws {
    _ = try await database.transaction { connection in
      _ = try connection.execute(Self.ensureRow, .integer(id))
      return try connection.execute(
        """
        UPDATE learning SET review_set = $1, review_model = $2, review_version = $3, review_positive = $4
        WHERE dataset_id = $5
        """, .text(set), .text(model), .integer(version), .text(positive), .integer(id))
    }
  }

  /// The dataset's trainings, oldest first, with the latest one's confusion matrix and classes.
  func trainings(of id: Int64) async throws -> (rounds: [AudioV1.TrainingRound], cm: [Int64], classes: [String]) {
    let rows = try await database.read { connection in
      try connection.query("SELECT * FROM trainings WHERE dataset_id = $1 ORDER BY id", .integer(id))
    }
    var rounds: [AudioV1.TrainingRound] = []
    for row in rows {
      var round = AudioV1.TrainingRound()
      round.model = try row.string("model")
      round.version = try row.int("version")
      round.labeledFiles = try row.int("labeled_files")
      round.validationFiles = try row.int("validation_files")
      round.modelAcc = try row.double("model_acc")
      round.modelLoss = try row.double("model_loss")
      round.automatic = try row.int("automatic") != 0
      round.runId = try row.string("run_id")
      round.trainedAtMs = try row.int("at_ms")
      rounds.append(round)
    }
    guard let last = rows.last else { return ([], [], []) }
    let cm = try last.string("cm").split(separator: ",").compactMap { Int64($0) }
    let classes = try last.string("classes").split(separator: ",").map(String.init)
    return (rounds, cm, classes)
  }

  /// Labels people submitted to the dataset (as its clips hold them now), by expertise.
  func submittedLabels(of id: Int64) async throws -> [Int32: Int64] {
    let rows = try await database.read { connection in
      try connection.query(
        """
        SELECT expertise, COUNT(*) AS n FROM dataset_clips WHERE dataset_id = $1 AND labelled_by != ''
        GROUP BY expertise
        """, .integer(id))
    }
    var counts: [Int32: Int64] = [:]
    for row in rows { counts[Int32(try row.int("expertise"))] = try row.int("n") }
    return counts
  }

  static func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
  }

  static func bytes(hex: String) -> [UInt8]? {
    let characters = Array(hex.utf8)
    guard characters.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(characters.count / 2)
    for index in stride(from: 0, to: characters.count, by: 2) {
      guard let byte = UInt8(String(decoding: characters[index..<index + 2], as: UTF8.self), radix: 16) else {
        return nil
      }
      bytes.append(byte)
    }
    return bytes
  }
}
