public import ShoalProto
import ShoalRPC
import ShoalStore

extension TrackingStore {
  /// Stores a batch: all of it, or (on a refused param) none of it. A batch whose request id was
  /// stored before changes nothing and reports `duplicate`. Batches logged at the same time are
  /// committed together (`GroupCommit`), each still all or nothing.
  public func logBatch(_ request: TrackingV1.LogBatchRequest) async throws -> TrackingV1.LogBatchResponse {
    try await batches.submit(request)
  }

  /// Writes one batch inside the caller's transaction.
  static func write(
    _ request: TrackingV1.LogBatchRequest, on connection: any SQLConnection
  ) throws -> TrackingV1.LogBatchResponse {
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
      // Stored in step order, with the first and last point beside them, so that reading a
      // page of history decodes only the chunks that hold it.
      let points = MetricChunk.sorted(group.metrics)
      let (first, last) = (points[0], points[points.count - 1])
      try connection.execute(
        """
        INSERT INTO metric_chunks (run_id, key, count, first_step, first_timestamp_ms, last_step, last_timestamp_ms, points)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """, .text(request.runId), .text(group.key), .integer(Int64(points.count)), .integer(first.step),
        .integer(first.timestampMs), .integer(last.step), .integer(last.timestampMs),
        .blob(MetricChunk.encode(points)))
      // The latest value of the key: highest step, then latest timestamp (MLflow's rule); of
      // equals, the last logged.
      var newest = group.metrics[0]
      for metric in group.metrics.dropFirst() where Self.order(metric) >= Self.order(newest) { newest = metric }
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
        try Self.series(runID, request.key, offset: thinning ? 0 : Int(offset), limit: Int(clamping: limit), connection)
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

  /// Points `offset ..< offset + limit` of a run's series of `key` in step order (then timestamp,
  /// then the order logged). When the chunks follow each other in that order (a run logging steps
  /// forward), only the chunks holding the page are decoded; otherwise the whole series is.
  static func series(
    _ runID: String, _ key: String, offset: Int, limit: Int, _ connection: any SQLConnection
  ) throws -> [TrackingV1.Metric] {
    let chunks = try connection.query(
      """
      SELECT id, count, first_step, first_timestamp_ms, last_step, last_timestamp_ms FROM metric_chunks
      WHERE run_id = $1 AND key = $2 ORDER BY id
      """, .text(runID), .text(key))
    // Points of versions before chunks (a row each) came before any chunk.
    let rows = try connection.query(
      "SELECT key, step, timestamp_ms, value, is_nan FROM metrics WHERE run_id = $1 AND key = $2 ORDER BY id",
      .text(runID), .text(key)
    ).map(Self.metric)
    var inOrder = rows.isEmpty
    for (previous, next) in zip(chunks, chunks.dropFirst()) where inOrder {
      inOrder =
        (try previous.int("last_step"), try previous.int("last_timestamp_ms"))
        <= (try next.int("first_step"), try next.int("first_timestamp_ms"))
    }
    // The points of the series' chunks with ids first…last, in one query.
    func decode(_ first: Int64, _ last: Int64) throws -> [TrackingV1.Metric] {
      try connection.query(
        "SELECT points FROM metric_chunks WHERE run_id = $1 AND key = $2 AND id >= $3 AND id <= $4 ORDER BY id",
        .text(runID), .text(key), .integer(first), .integer(last)
      ).flatMap { try MetricChunk.decode(try $0.bytes("points"), key: key) }
    }
    guard inOrder else {
      let all = try chunks.isEmpty ? rows : rows + decode(chunks[0].int("id"), chunks[chunks.count - 1].int("id"))
      return Array(MetricChunk.sorted(all).dropFirst(offset).prefix(limit))
    }
    // Walk the chunks' counts to the ones that hold the page.
    let end = limit > Int.max - offset ? Int.max : offset + limit
    var start = 0
    var wanted: [Int64] = []
    var skipped = 0
    for chunk in chunks {
      let count = Int(try chunk.int("count"))
      defer { start += count }
      if start + count <= offset {
        skipped = start + count
        continue
      }
      if start >= end { break }
      wanted.append(try chunk.int("id"))
    }
    guard let first = wanted.first, let last = wanted.last else { return [] }
    return Array(try decode(first, last).dropFirst(offset - skipped).prefix(limit))
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
