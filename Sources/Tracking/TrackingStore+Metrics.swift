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
      // One row per key: the key's points of this batch, packed. Batches usually repeat a key
      // many times in a row, so the key is looked up only when it changes.
      var groups: [(key: String, metrics: [TrackingV1.Metric])] = []
      var groupOfKey: [String: Int] = [:]
      var current = -1
      for metric in request.metrics {
        if current < 0 || groups[current].key != metric.key {
          if let index = groupOfKey[metric.key] {
            current = index
          } else {
            groups.append((metric.key, []))
            current = groups.count - 1
            groupOfKey[metric.key] = current
          }
        }
        groups[current].metrics.append(metric)
      }
      var latest: [(key: String, metric: TrackingV1.Metric)] = []
      for group in groups {
        try connection.execute(
          "INSERT INTO metric_chunks (run_id, key, points) VALUES ($1, $2, $3)", .text(request.runId),
          .text(group.key), .blob(MetricChunk.encode(group.metrics)))
        // The latest value of the key: highest step, then latest timestamp (MLflow's rule).
        var newest = group.metrics[0]
        for metric in group.metrics.dropFirst() where Self.order(metric) > Self.order(newest) { newest = metric }
        latest.append((group.key, newest))
      }
      // Kept only where it is at least as late as the stored one (sorted keys: the same lock order
      // for every writer).
      for (key, metric) in latest.sorted(by: { $0.key < $1.key }) {
        try connection.execute(
          """
          INSERT INTO latest_metrics (run_id, key, step, timestamp_ms, value, is_nan) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp_ms = excluded.timestamp_ms,
            value = excluded.value, is_nan = excluded.is_nan
          WHERE excluded.step > latest_metrics.step
            OR (excluded.step = latest_metrics.step AND excluded.timestamp_ms >= latest_metrics.timestamp_ms)
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
        // Points of earlier versions (a row each) came before any chunk.
        var series = try connection.query(
          "SELECT key, step, timestamp_ms, value, is_nan FROM metrics WHERE run_id = $1 AND key = $2 ORDER BY id",
          .text(runID), .text(request.key)
        ).map(Self.metric)
        for row in try connection.query(
          "SELECT points FROM metric_chunks WHERE run_id = $1 AND key = $2 ORDER BY id", .text(runID),
          .text(request.key))
        {
          series += try MetricChunk.decode(try row.bytes("points"), key: request.key)
        }
        return series
      }
      // Step order, then timestamp, then the order they were logged in.
      points = points.enumerated().sorted { a, b in
        (a.element.step, a.element.timestampMs, a.offset) < (b.element.step, b.element.timestampMs, b.offset)
      }.map(\.element)
      if !thinning {
        points = Array(points.dropFirst(Int(offset)).prefix(Int(limit)))
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
