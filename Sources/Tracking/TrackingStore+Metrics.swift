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
    let state = try connection.queryFirst("SELECT deleted FROM runs WHERE run_id = $1", .text(request.runId))
    try checkLoggable(request.runId, deleted: try state?.bool("deleted"))
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
    let (chunks, latest) = metricRows(request)
    try connection.executeBatch(insertChunk, chunks)
    // Sorted keys: the same lock order for every writer.
    try connection.executeBatch(upsertLatest, latest.sorted { $0.key < $1.key }.map(\.row))
    return response
  }

  /// Writes a group of batches inside the caller's transaction (`GroupCommit`). Batches of
  /// metrics alone (no params, tags or request id: what a training loop logs) have their runs
  /// checked in one query and their rows written in two batched statements for the whole group,
  /// pipelined on PostgreSQL; a batch whose run is unknown or deleted fails alone and writes
  /// nothing. The other batches are written one at a time, each under a savepoint.
  static func write(
    _ requests: [TrackingV1.LogBatchRequest], on connection: any SQLConnection
  ) throws -> [Result<TrackingV1.LogBatchResponse, any Error>] {
    let plain = requests.indices.filter {
      let request = requests[$0]
      return request.params.isEmpty && request.tags.isEmpty && request.requestId.isEmpty && !request.metrics.isEmpty
    }
    let others = requests.indices.filter { !plain.contains($0) }
    var results = [Result<TrackingV1.LogBatchResponse, any Error>?](repeating: nil, count: requests.count)
    let written = try GroupCommit<TrackingV1.LogBatchRequest, TrackingV1.LogBatchResponse>.eachUnderSavepoint(
      others.map { requests[$0] }, on: connection
    ) { connection, request in try write(request, on: connection) }
    for (index, result) in zip(others, written) { results[index] = result }
    guard !plain.isEmpty else { return results.map { $0! } }
    let deleted = try runsDeleted(Set(plain.map { requests[$0].runId }), connection)
    var chunks: [[SQLValue]] = []
    var latest: [(key: String, row: [SQLValue])] = []
    for index in plain {
      let request = requests[index]
      do {
        try checkLoggable(request.runId, deleted: deleted[request.runId])
      } catch {
        results[index] = .failure(error)
        continue
      }
      let rows = metricRows(request)
      chunks += rows.chunks
      latest += rows.latest.map { ("\(request.runId)\u{0}\($0.key)", $0.row) }
      results[index] = .success(TrackingV1.LogBatchResponse())
    }
    try connection.executeBatch(insertChunk, chunks)
    // Sorted by run and key (the same lock order for every writer); a stable sort keeps the
    // order logged among a key's rows, so that of equal steps and timestamps the last one wins.
    try connection.executeBatch(
      upsertLatest,
      latest.enumerated().sorted { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }.map(\.element.row))
    return results.map { $0! }
  }

  /// Refuses logging to a run that does not exist (`deleted` nil) or is deleted.
  static func checkLoggable(_ runID: String, deleted: Bool?) throws(RPCError) {
    guard let deleted else { throw RPCError(.notFound, "run '\(runID)' not found") }
    guard !deleted else {
      throw RPCError(.failedPrecondition, "run '\(runID)' is deleted; restore it before logging to it")
    }
  }

  /// Whether each of `runIDs` is deleted; runs that do not exist are left out.
  private static func runsDeleted(_ runIDs: Set<String>, _ connection: any SQLConnection) throws -> [String: Bool] {
    let list = InList(runIDs.map { .text($0) }, from: 1)
    var deleted: [String: Bool] = [:]
    for part in list.parts {
      for row in try connection.query("SELECT run_id, deleted FROM runs WHERE run_id IN (\(list.placeholders))", part) {
        deleted[try row.string("run_id")] = try row.bool("deleted")
      }
    }
    return deleted
  }

  /// The values of an IN list, 64 a query (the last part padded with its last value) so that one
  /// prepared statement serves every part, with the placeholders from `$first` on.
  private struct InList {
    static let size = 64
    let placeholders: String
    let parts: [[SQLValue]]

    init(_ values: [SQLValue], from first: Int) {
      placeholders = (first..<first + Self.size).map { "$\($0)" }.joined(separator: ", ")
      parts = stride(from: 0, to: values.count, by: Self.size).map { start in
        let part = values[start..<min(values.count, start + Self.size)]
        return part + Array(repeating: part.last!, count: Self.size - part.count)
      }
    }
  }

  /// A batch's metric rows: one `metric_chunks` row per key (the key's points, packed in step
  /// order, with the first and last point beside them, so that reading a page of history decodes
  /// only the chunks that hold it), and one `latest_metrics` upsert per key.
  private static func metricRows(
    _ request: TrackingV1.LogBatchRequest
  ) -> (chunks: [[SQLValue]], latest: [(key: String, row: [SQLValue])]) {
    // Batches usually repeat a key many times in a row, so the key is looked up only when it
    // changes.
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
    var chunks: [[SQLValue]] = []
    var latest: [(key: String, row: [SQLValue])] = []
    for group in groups {
      let points = MetricChunk.sorted(group.metrics)
      let (first, last) = (points[0], points[points.count - 1])
      chunks.append([
        .text(request.runId), .text(group.key), .integer(Int64(points.count)), .integer(first.step),
        .integer(first.timestampMs), .integer(last.step), .integer(last.timestampMs),
        .blob(MetricChunk.encode(points)),
      ])
      // The latest value of the key: highest step, then latest timestamp (MLflow's rule); of
      // equals, the last logged.
      var newest = group.metrics[0]
      for metric in group.metrics.dropFirst() where Self.order(metric) >= Self.order(newest) { newest = metric }
      latest.append(
        (
          group.key,
          [
            .text(request.runId), .text(group.key), .integer(newest.step), .integer(newest.timestampMs),
            newest.value.isNaN ? .null : .real(newest.value), .bool(newest.value.isNaN),
          ]
        ))
    }
    return (chunks, latest)
  }

  private static let insertChunk = """
    INSERT INTO metric_chunks (run_id, key, count, first_step, first_timestamp_ms, last_step, last_timestamp_ms, points)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    """

  /// Kept only where it is at least as late as the stored one.
  private static let upsertLatest = """
    INSERT INTO latest_metrics (run_id, key, step, timestamp_ms, value, is_nan) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, timestamp_ms = excluded.timestamp_ms,
      value = excluded.value, is_nan = excluded.is_nan
    WHERE excluded.step > latest_metrics.step
      OR (excluded.step = latest_metrics.step AND excluded.timestamp_ms >= latest_metrics.timestamp_ms)
    """

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
      var points = try await database.read { connection in
        thinning
          ? try Self.thinnedSeries(runID, request.key, to: Int(request.maxPoints), connection)
          : try Self.series(runID, request.key, offset: Int(offset), limit: pageSize + 1, connection)
      }
      if !thinning && points.count > pageSize {
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

  /// Where a run's series of `key` is stored: its chunks in id order, and the points of versions
  /// before chunks (a row each), which came before any chunk.
  private struct StoredSeries {
    var chunks: [(id: Int64, count: Int)] = []
    var rows: [TrackingV1.Metric] = []
    /// The chunks follow each other in step order (a run logging steps forward) and there are no
    /// rows, so positions in the series can be found from the chunks' counts alone.
    var inOrder = true

    init(_ runID: String, _ key: String, _ connection: any SQLConnection) throws {
      var last: (Int64, Int64)?
      for chunk in try connection.query(
        """
        SELECT id, count, first_step, first_timestamp_ms, last_step, last_timestamp_ms FROM metric_chunks
        WHERE run_id = $1 AND key = $2 ORDER BY id
        """, .text(runID), .text(key))
      {
        chunks.append((try chunk.int("id"), Int(try chunk.int("count"))))
        let first = (try chunk.int("first_step"), try chunk.int("first_timestamp_ms"))
        if let last, last > first { inOrder = false }
        last = (try chunk.int("last_step"), try chunk.int("last_timestamp_ms"))
      }
      rows = try connection.query(
        "SELECT key, step, timestamp_ms, value, is_nan FROM metrics WHERE run_id = $1 AND key = $2 ORDER BY id",
        .text(runID), .text(key)
      ).map(TrackingStore.metric)
      if !rows.isEmpty { inOrder = false }
    }

    /// Every point, sorted as a whole.
    func all(_ runID: String, _ key: String, _ connection: any SQLConnection) throws -> [TrackingV1.Metric] {
      guard let first = chunks.first?.id, let last = chunks.last?.id else { return MetricChunk.sorted(rows) }
      return MetricChunk.sorted(rows + (try Self.decode(runID, key, first, last, connection)))
    }

    /// The points of the series' chunks with ids first…last, in one query.
    static func decode(
      _ runID: String, _ key: String, _ first: Int64, _ last: Int64, _ connection: any SQLConnection
    ) throws -> [TrackingV1.Metric] {
      try connection.query(
        "SELECT points FROM metric_chunks WHERE run_id = $1 AND key = $2 AND id >= $3 AND id <= $4 ORDER BY id",
        .text(runID), .text(key), .integer(first), .integer(last)
      ).flatMap { try MetricChunk.decode(try $0.bytes("points"), key: key) }
    }
  }

  /// Points `offset ..< offset + limit` of a run's series of `key` in step order (then timestamp,
  /// then the order logged). When the chunks follow each other in that order, only the chunks
  /// holding the page are decoded; otherwise the whole series is.
  static func series(
    _ runID: String, _ key: String, offset: Int, limit: Int, _ connection: any SQLConnection
  ) throws -> [TrackingV1.Metric] {
    let stored = try StoredSeries(runID, key, connection)
    guard stored.inOrder else { return Array(try stored.all(runID, key, connection).dropFirst(offset).prefix(limit)) }
    // Walk the chunks' counts to the ones that hold the page.
    let end = limit > Int.max - offset ? Int.max : offset + limit
    var start = 0
    var wanted: [Int64] = []
    var skipped = 0
    for chunk in stored.chunks {
      defer { start += chunk.count }
      if start + chunk.count <= offset {
        skipped = start + chunk.count
        continue
      }
      if start >= end { break }
      wanted.append(chunk.id)
    }
    guard let first = wanted.first, let last = wanted.last else { return [] }
    return Array(try StoredSeries.decode(runID, key, first, last, connection).dropFirst(offset - skipped).prefix(limit))
  }

  /// A run's series of `key` thinned to at most `count` points as `thinned` does. When the chunks
  /// follow each other in step order, only the chunks holding a chosen point are read, and only
  /// those points decoded: a chart of a long series does not decode all of it.
  static func thinnedSeries(
    _ runID: String, _ key: String, to count: Int, _ connection: any SQLConnection
  ) throws -> [TrackingV1.Metric] {
    let stored = try StoredSeries(runID, key, connection)
    let total = stored.chunks.reduce(0) { $0 + $1.count }
    // Out of order, or every point kept: the whole series, in one range read.
    guard stored.inOrder, total > count else { return thinned(try stored.all(runID, key, connection), to: count) }
    // The chosen positions, as indices within the chunks that hold them.
    var wanted: [Int64: [Int]] = [:]
    var order: [Int64] = []
    var chunk = 0
    var start = 0
    for position in thinnedPositions(of: total, to: count) {
      while position >= start + stored.chunks[chunk].count {
        start += stored.chunks[chunk].count
        chunk += 1
      }
      let id = stored.chunks[chunk].id
      if wanted[id] == nil { order.append(id) }
      wanted[id, default: []].append(position - start)
    }
    let list = InList(order.map { .integer($0) }, from: 3)
    var blobs: [Int64: [UInt8]] = [:]
    for part in list.parts {
      for row in try connection.query(
        "SELECT id, points FROM metric_chunks WHERE run_id = $1 AND key = $2 AND id IN (\(list.placeholders))",
        [.text(runID), .text(key)] + part)
      {
        blobs[try row.int("id")] = try row.bytes("points")
      }
    }
    // A chunk gone since the list was read (its run collected meanwhile) gives no points.
    return try order.flatMap { id in
      try blobs[id].map { try MetricChunk.decode($0, key: key, at: wanted[id]!) } ?? []
    }
  }

  /// At most `count` points, evenly spaced by position, the first and last kept.
  static func thinned(_ points: [TrackingV1.Metric], to count: Int) -> [TrackingV1.Metric] {
    thinnedPositions(of: points.count, to: count).map { points[$0] }
  }

  /// The positions `thinned` keeps of `total` points, in increasing order.
  static func thinnedPositions(of total: Int, to count: Int) -> [Int] {
    guard total > count, count > 0 else { return Array(0..<total) }
    guard count > 1 else { return [total - 1] }
    var indices: [Int] = []
    for position in 0..<count {
      let index = Int((Double(position) * Double(total - 1) / Double(count - 1)).rounded())
      if indices.last != index { indices.append(index) }
    }
    return indices
  }
}
