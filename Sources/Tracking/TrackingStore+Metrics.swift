public import ShoalProto
import ShoalRPC
import ShoalStore

extension TrackingStore {
  /// Stores a batch in one transaction: all of it, or (on a refused param) none of it. A batch
  /// whose request id was stored before changes nothing and reports `duplicate`.
  public func logBatch(_ request: TrackingV1.LogBatchRequest) async throws -> TrackingV1.LogBatchResponse {
    return try await database.transaction { connection in
      // Only the run's state is needed here, not the whole run with its params and metrics.
      guard let state = try connection.queryFirst("SELECT deleted FROM runs WHERE run_id = $1", .text(request.runId))
      else { throw RPCError(.notFound, "run '\(request.runId)' not found") }
      guard try !state.bool("deleted") else {
        throw RPCError(.failedPrecondition, "run '\(request.runId)' is deleted; restore it before logging to it")
      }
      var response = TrackingV1.LogBatchResponse()
      if !request.requestId.isEmpty {
        let seen = try connection.queryFirst(
          "SELECT 1 AS one FROM batch_requests WHERE run_id = $1 AND request_id = $2", .text(request.runId),
          .text(request.requestId))
        if seen != nil {
          response.duplicate = true
          return response
        }
        try connection.execute(
          "INSERT INTO batch_requests (run_id, request_id) VALUES ($1, $2)", .text(request.runId),
          .text(request.requestId))
      }
      for param in request.params {
        let existing = try connection.queryFirst(
          "SELECT value FROM params WHERE run_id = $1 AND key = $2", .text(request.runId), .text(param.key))
        if let existing {
          let value = try existing.string("value")
          guard value == param.value else {
            throw RPCError(
              .invalidArgument,
              "param '\(param.key)' was logged as '\(value)'; params are write-once (not '\(param.value)')")
          }
          continue
        }
        try connection.execute(
          "INSERT INTO params (run_id, key, value) VALUES ($1, $2, $3)", .text(request.runId), .text(param.key),
          .text(param.value))
      }
      for tag in request.tags {
        try connection.execute(
          """
          INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3)
          ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value
          """, .text(request.runId), .text(tag.key), .text(tag.value))
      }
      guard !request.metrics.isEmpty else { return response }
      // Many rows per statement: one statement per 100 metrics instead of one per metric.
      var start = 0
      while start < request.metrics.count {
        let rows = request.metrics[start..<min(start + 100, request.metrics.count)]
        var parameters: [SQLValue] = [.text(request.runId)]
        parameters.reserveCapacity(1 + rows.count * 5)
        var tuples: [String] = []
        for metric in rows {
          let base = parameters.count
          tuples.append("($1, $\(base + 1), $\(base + 2), $\(base + 3), $\(base + 4), $\(base + 5))")
          parameters += [
            .text(metric.key), .integer(metric.step), .integer(metric.timestampMs),
            metric.value.isNaN ? .null : .real(metric.value), .bool(metric.value.isNaN),
          ]
        }
        try connection.execute(
          "INSERT INTO metrics (run_id, key, step, timestamp_ms, value, is_nan) VALUES \(tuples.joined(separator: ", "))",
          parameters)
        start += rows.count
      }
      // The latest value per key: highest step, then latest timestamp (MLflow's rule).
      var latest: [String: TrackingV1.Metric] = [:]
      for metric in request.metrics {
        if let current = latest[metric.key], Self.order(current) >= Self.order(metric) { continue }
        latest[metric.key] = metric
      }
      for (key, metric) in latest.sorted(by: { $0.key < $1.key }) {
        if let stored = try connection.queryFirst(
          "SELECT step, timestamp_ms FROM latest_metrics WHERE run_id = $1 AND key = $2", .text(request.runId),
          .text(key))
        {
          guard (try stored.int("step"), try stored.int("timestamp_ms")) <= Self.order(metric) else { continue }
        }
        try connection.execute(
          """
          INSERT INTO latest_metrics (run_id, key, step, timestamp_ms, value, is_nan) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp_ms = excluded.timestamp_ms,
            value = excluded.value, is_nan = excluded.is_nan
          """, .text(request.runId), .text(key), .integer(metric.step), .integer(metric.timestampMs),
          metric.value.isNaN ? .null : .real(metric.value), .bool(metric.value.isNaN))
      }
      return response
    }
  }

  private static func order(_ metric: TrackingV1.Metric) -> (Int64, Int64) { (metric.step, metric.timestampMs) }

  /// The series of `key` for each run, in step order; one page for one run, or evenly thinned to
  /// `maxPoints` per run.
  public func metricHistory(
    _ request: TrackingV1.GetMetricHistoryRequest
  ) async throws -> TrackingV1.GetMetricHistoryResponse {
    guard !request.runIds.isEmpty else { throw RPCError(.invalidArgument, "run_ids: give at least one run") }
    guard !request.key.isEmpty else { throw RPCError(.invalidArgument, "key: name the metric") }
    guard request.pageToken.isEmpty || request.runIds.count == 1 else {
      throw RPCError(.invalidArgument, "page_token works with one run only")
    }
    guard request.maxPoints >= 0 else { throw RPCError(.invalidArgument, "max_points must not be negative") }
    let pageSize = try Self.pageSize(request.pageSize, default: 10_000, limit: 25_000)
    let offset = try Self.pageToken(request.pageToken)
    var response = TrackingV1.GetMetricHistoryResponse()
    for runID in request.runIds {
      _ = try await run(runID)
      let thinning = request.maxPoints > 0
      let limit = thinning ? Int64.max : Int64(pageSize + 1)
      var points = try await database.read { connection in
        try connection.query(
          """
          SELECT key, step, timestamp_ms, value, is_nan FROM metrics WHERE run_id = $1 AND key = $2
          ORDER BY step, timestamp_ms, id LIMIT $3 OFFSET $4
          """, .text(runID), .text(request.key), .integer(limit), .integer(offset)
        ).map(Self.metric)
      }
      if thinning {
        points = Self.thinned(points, to: Int(request.maxPoints))
      } else if points.count > pageSize {
        points.removeLast()
        response.nextPageToken = String(offset + Int64(pageSize))
      }
      var series = TrackingV1.MetricSeries()
      series.runId = runID
      series.points = points
      response.series.append(series)
    }
    return response
  }

  /// At most `count` points, evenly spaced by position, the first and last kept.
  static func thinned(_ points: [TrackingV1.Metric], to count: Int) -> [TrackingV1.Metric] {
    guard points.count > count, count > 0 else { return points }
    guard count > 1 else { return [points[points.count - 1]] }
    var indices: [Int] = []
    for position in 0..<count {
      let index = Int((Double(position) * Double(points.count - 1) / Double(count - 1)).rounded())
      if indices.last != index { indices.append(index) }
    }
    return indices.map { points[$0] }
  }
}
