import Foundation
public import ShoalProto
import ShoalRPC
import ShoalStore

extension TrackingStore {
  /// Starts a run in an active experiment.
  public func createRun(_ request: TrackingV1.CreateRunRequest) async throws -> TrackingV1.Run {
    let experiment = try await experiment(id: request.experimentId)
    guard experiment.lifecycle == .active else {
      throw RPCError(.failedPrecondition, "experiment '\(experiment.name)' is deleted; restore it first")
    }
    let runID = UUID().uuidString.replacing("-", with: "").lowercased()
    let start = request.startTimeMs == 0 ? Self.now() : request.startTimeMs
    try await database.transaction { connection in
      try connection.execute(
        """
        INSERT INTO runs (run_id, experiment_id, name, user_name, status, start_time_ms, end_time_ms, deleted, deleted_at_ms)
        VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0)
        """, .text(runID), .integer(Int64(request.experimentId)!),
        .text(request.name.isEmpty ? "run-\(runID.prefix(8))" : request.name), .text(request.user),
        .integer(Int64(TrackingV1.RunStatus.running.rawValue)), .integer(start))
      try connection.executeBatch(
        "INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3)",
        request.tags.sorted { $0.key < $1.key }.map { [.text(runID), .text($0.key), .text($0.value)] })
    }
    return try await run(runID)
  }

  /// The run with its params, tags and latest metrics.
  ///
  /// - Throws: NOT_FOUND naming it.
  public func run(_ runID: String) async throws -> TrackingV1.Run {
    let found = try await database.read { connection in
      try connection.queryFirst("SELECT * FROM runs WHERE run_id = $1", .text(runID)).map {
        try Self.run($0, connection)
      }
    }
    guard let found else { throw RPCError(.notFound, "run '\(runID)' not found") }
    return found
  }

  /// Changes a run's status, end time or name.
  public func updateRun(_ request: TrackingV1.UpdateRunRequest) async throws -> TrackingV1.Run {
    var run = try await run(request.runId)
    if request.status != .unspecified { run.status = request.status }
    if !request.name.isEmpty { run.name = request.name }
    let terminal: Set<TrackingV1.RunStatus> = [.finished, .failed, .killed]
    if request.endTimeMs != 0 {
      run.endTimeMs = request.endTimeMs
    } else if terminal.contains(request.status), run.endTimeMs == 0 {
      run.endTimeMs = Self.now()
    }
    let updated = run
    try await database.transaction { connection in
      try connection.execute(
        "UPDATE runs SET status = $2, end_time_ms = $3, name = $4 WHERE run_id = $1", .text(updated.runId),
        .integer(Int64(updated.status.rawValue)), .integer(updated.endTimeMs), .text(updated.name))
      for key in request.deleteTags {
        let removed = try connection.execute(
          "DELETE FROM run_tags WHERE run_id = $1 AND key = $2", .text(updated.runId), .text(key))
        guard removed > 0 else { throw RPCError(.notFound, "run '\(updated.runId)' has no tag '\(key)'") }
      }
    }
    return try await self.run(request.runId)
  }

  /// Records the datasets a run used; one already recorded in the same context is left as it is.
  public func logInputs(_ request: TrackingV1.LogInputsRequest) async throws {
    let run = try await run(request.runId)
    try Self.checkLoggable(request.runId, deleted: run.lifecycle != .active)
    try await database.transaction { connection in
      for input in request.datasets {
        try connection.execute(
          """
          INSERT INTO run_inputs (run_id, name, digest, source, context) VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (run_id, name, digest, context) DO NOTHING
          """, .text(request.runId), .text(input.name), .text(input.digest), .text(input.source), .text(input.context))
      }
    }
  }

  /// Marks a run deleted or active again.
  public func setRun(_ runID: String, deleted: Bool) async throws -> TrackingV1.Run {
    _ = try await run(runID)
    let now = Self.now()
    try await database.transaction { connection in
      try connection.execute(
        "UPDATE runs SET deleted = $2, deleted_at_ms = $3 WHERE run_id = $1", .text(runID), .bool(deleted),
        .integer(deleted ? now : 0))
    }
    return try await run(runID)
  }

  static func run(_ row: SQLRow, _ connection: any SQLConnection) throws -> TrackingV1.Run {
    var run = TrackingV1.Run()
    run.runId = try row.string("run_id")
    run.experimentId = String(try row.int("experiment_id"))
    run.name = try row.string("name")
    run.user = try row.string("user_name")
    run.status = TrackingV1.RunStatus(rawValue: Int32(try row.int("status")))
    run.startTimeMs = try row.int("start_time_ms")
    run.endTimeMs = try row.int("end_time_ms")
    run.lifecycle = try row.bool("deleted") ? .deleted : .active
    for param in try connection.query("SELECT key, value FROM params WHERE run_id = $1", .text(run.runId)) {
      run.params[try param.string("key")] = try param.string("value")
    }
    for tag in try connection.query("SELECT key, value FROM run_tags WHERE run_id = $1", .text(run.runId)) {
      run.tags[try tag.string("key")] = try tag.string("value")
    }
    run.inputs = try connection.query(
      "SELECT name, digest, source, context FROM run_inputs WHERE run_id = $1 ORDER BY name, context",
      .text(run.runId)
    ).map { row in
      var input = TrackingV1.DatasetInput()
      input.name = try row.string("name")
      input.digest = try row.string("digest")
      input.source = try row.string("source")
      input.context = try row.string("context")
      return input
    }
    run.metrics = try connection.query(
      "SELECT key, step, timestamp_ms, value, is_nan FROM latest_metrics WHERE run_id = $1 ORDER BY key",
      .text(run.runId)
    ).map(Self.metric)
    return run
  }

  static func metric(_ row: SQLRow) throws -> TrackingV1.Metric {
    var metric = TrackingV1.Metric()
    metric.key = try row.string("key")
    metric.step = try row.int("step")
    metric.timestampMs = try row.int("timestamp_ms")
    metric.value = try row.bool("is_nan") ? .nan : try row.double("value")
    return metric
  }
}
