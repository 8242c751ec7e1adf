import ShoalProto
import ShoalRPC
import ShoalStore
import ShoalTestSupport
import Testing

@testable import Tracking

/// Metric points packed a batch and key to a row, and the one-row-per-point table of earlier
/// versions still read beside them.
struct MetricStorageTests {
  /// A migrated store on `backend` with one experiment and one run in it.
  private func withRun(
    _ backend: Backend, _ body: (Database, TrackingStore, TrackingV1.Run) async throws -> Void
  ) async throws {
    try await withExperiment(backend, named: "metrics") { database, store, experimentID in
      var runRequest = TrackingV1.CreateRunRequest()
      runRequest.experimentId = experimentID
      try await body(database, store, try await store.createRun(runRequest))
    }
  }

  @Test func chunksKeepEveryValueBitForBit() throws {
    let values: [Double] = [
      0, -0.0, 1.5, .nan, -.nan, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
    ]
    let metrics = values.enumerated().map { metric("m", $1, step: Int64($0) - 3, at: Int64.max - Int64($0)) }
    let decoded = try MetricChunk.decode(MetricChunk.encode(metrics), key: "m")
    #expect(decoded.map(\.value.bitPattern) == values.map(\.bitPattern))
    #expect(decoded.map(\.step) == metrics.map(\.step))
    #expect(decoded.map(\.timestampMs) == metrics.map(\.timestampMs))
    #expect(decoded.allSatisfy { $0.key == "m" })
    #expect(throws: MetricChunkError.self) { try MetricChunk.decode([1, 2, 3], key: "m") }
  }

  @Test(arguments: Backend.available)
  func historyMergesRowsOfEarlierVersionsWithChunks(_ backend: Backend) async throws {
    try await withRun(backend) { database, store, run in
      // Two points as an earlier version stored them, one row each.
      try await database.transaction { connection in
        for (step, value) in [(Int64(0), 1.0), (Int64(2), 0.5)] {
          try connection.execute(
            "INSERT INTO metrics (run_id, key, step, timestamp_ms, value, is_nan) VALUES ($1, 'loss', $2, 1000, $3, 0)",
            .text(run.runId), .integer(step), .real(value))
        }
      }
      var batch = TrackingV1.LogBatchRequest()
      batch.runId = run.runId
      batch.metrics = [metric("loss", 0.75, step: 1), metric("loss", .nan, step: 3), metric("acc", 0.9, step: 3)]
      _ = try await store.logBatch(batch)
      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [run.runId]
      history.key = "loss"
      let points = try await store.metricHistory(history).series[0].points
      #expect(points.map(\.step) == [0, 1, 2, 3])
      #expect(points[0].value == 1 && points[1].value == 0.75 && points[2].value == 0.5 && points[3].value.isNaN)
      history.pageSize = 3
      let page = try await store.metricHistory(history)
      #expect(page.series[0].points.map(\.step) == [0, 1, 2])
      history.pageToken = page.nextPageToken
      #expect(try await store.metricHistory(history).series[0].points.map(\.step) == [3])
    }
  }

  @Test(arguments: Backend.available)
  func theLatestValueFollowsStepThenTimestampAcrossBatches(_ backend: Backend) async throws {
    try await withRun(backend) { _, store, run in
      // (step, timestamp, value) logged one batch each; the value the run shows after each.
      let steps: [(Int64, Int64, Double, Double)] = [
        (5, 1000, 1, 1), (3, 2000, 2, 1), (5, 1500, 3, 3), (5, 1200, 4, 3), (6, 100, .nan, .nan),
      ]
      for (step, time, value, shown) in steps {
        var batch = TrackingV1.LogBatchRequest()
        batch.runId = run.runId
        batch.metrics = [metric("loss", value, step: step, at: time)]
        _ = try await store.logBatch(batch)
        let latest = try await store.run(run.runId).metrics.first { $0.key == "loss" }
        #expect(latest?.value == shown || (latest?.value.isNaN == true && shown.isNaN), "after step \(step) at \(time)")
      }
    }
  }

  @Test(arguments: Backend.available)
  func pagesComeInStepOrderWhetherBatchesArriveInOrderOrNot(_ backend: Backend) async throws {
    try await withRun(backend) { _, store, run in
      func log(_ steps: [Int64]) async throws {
        var batch = TrackingV1.LogBatchRequest()
        batch.runId = run.runId
        batch.metrics = steps.map { metric("loss", Double($0), step: $0) }
        _ = try await store.logBatch(batch)
      }
      func pages(size: Int32) async throws -> [Int64] {
        var request = TrackingV1.GetMetricHistoryRequest()
        request.runIds = [run.runId]
        request.key = "loss"
        request.pageSize = size
        var steps: [Int64] = []
        while true {
          let response = try await store.metricHistory(request)
          steps += response.series[0].points.map(\.step)
          if response.nextPageToken.isEmpty { return steps }
          request.pageToken = response.nextPageToken
        }
      }
      // In order, one batch reversed inside: each chunk is stored sorted, pages skip whole chunks.
      for start in stride(from: Int64(0), to: 50, by: 10) { try await log(Array((start..<start + 10).reversed())) }
      #expect(try await pages(size: 7) == Array(0..<50))
      // A batch that goes back in steps: the series is sorted as a whole.
      try await log([25, 3])
      #expect(try await pages(size: 7) == Array(0..<50).flatMap { $0 == 3 || $0 == 25 ? [$0, $0] : [$0] })
      var thinned = TrackingV1.GetMetricHistoryRequest()
      thinned.runIds = [run.runId]
      thinned.key = "loss"
      thinned.maxPoints = 3
      #expect(try await store.metricHistory(thinned).series[0].points.map(\.step) == [0, 25, 49])
    }
  }

  @Test(arguments: Backend.available)
  func thinningReadsChosenPointsAndKeepsThoseOfTheWholeSeries(_ backend: Backend) async throws {
    try await withRun(backend) { _, store, run in
      // 150 batches of 1–3 points in step order: a thinned read picks points from up to 100
      // chunks (more than one query's worth of ids).
      var step: Int64 = 0
      for index in 0..<150 {
        var batch = TrackingV1.LogBatchRequest()
        batch.runId = run.runId
        batch.metrics = (0..<(1 + index % 3)).map { _ in
          defer { step += 1 }
          return metric("loss", Double(step) / 7, step: step)
        }
        _ = try await store.logBatch(batch)
      }
      var request = TrackingV1.GetMetricHistoryRequest()
      request.runIds = [run.runId]
      request.key = "loss"
      request.pageSize = 25_000
      let all = try await store.metricHistory(request).series[0].points
      #expect(all.count == 300)
      request.pageSize = 0
      for maxPoints in [1, 2, 3, 7, 100, 299, 300, 1000] {
        request.maxPoints = Int32(maxPoints)
        let thinned = try await store.metricHistory(request).series[0].points
        // Evenly spaced positions, the first and last kept (the last alone for one point).
        let positions =
          maxPoints >= all.count
          ? Array(0..<all.count)
          : maxPoints == 1
            ? [all.count - 1]
            : (0..<maxPoints).map { Int((Double($0) * Double(all.count - 1) / Double(maxPoints - 1)).rounded()) }
        let expected = positions.map { all[$0] }
        #expect(thinned.map(\.step) == expected.map(\.step), "max_points \(maxPoints)")
        #expect(thinned.map(\.value) == expected.map(\.value), "max_points \(maxPoints)")
      }
      request.maxPoints = 5
      #expect(try await store.metricHistory(request).series[0].points.map(\.step) == [0, 75, 150, 224, 299])
    }
  }

  @Test func pointsAreDecodedByIndexOrRefusedWhenTheChunkIsTooShort() throws {
    let bytes = MetricChunk.encode((0..<5).map { metric("m", Double($0), step: Int64($0)) })
    #expect(try MetricChunk.decode(bytes, key: "m", at: [1, 4]).map(\.step) == [1, 4])
    let error = #expect(throws: MetricChunkError.self) { try MetricChunk.decode(bytes, key: "m", at: [5]) }
    #expect(error?.rpcError.code == .dataLoss)
  }

  @Test(arguments: Backend.available)
  func aGroupWritesPlainBatchesTogetherAndRefusesBadOnesAlone(_ backend: Backend) async throws {
    try await withExperiment(backend, named: "group") { database, store, experimentID in
      var runIDs: [String] = []
      for _ in 0..<3 {
        var request = TrackingV1.CreateRunRequest()
        request.experimentId = experimentID
        runIDs.append(try await store.createRun(request).runId)
      }
      let (a, b, deleted) = (runIDs[0], runIDs[1], runIDs[2])
      _ = try await store.setRun(deleted, deleted: true)
      func batch(
        _ run: String, _ metrics: [TrackingV1.Metric], params: [TrackingV1.Param] = []
      ) -> TrackingV1.LogBatchRequest {
        var request = TrackingV1.LogBatchRequest()
        request.runId = run
        request.metrics = metrics
        request.params = params
        return request
      }
      // Plain batches (written together) around an unknown and a deleted run, and batches with
      // params (each under a savepoint), one of them refused: it re-logs lr with another value.
      let requests = [
        batch(a, [metric("loss", 1, step: 0), metric("loss", 2, step: 1)]),
        batch("no-such-run", [metric("loss", 9, step: 0)]),
        batch(b, [metric("loss", 5, step: 0)]),
        batch(a, [metric("acc", 0.5, step: 0)], params: [param("lr", "0.1")]),
        batch(deleted, [metric("loss", 9, step: 0)]),
        batch(a, [metric("loss", 3, step: 1)]),
        batch(a, [metric("refused", 9, step: 0)], params: [param("lr", "0.2")]),
      ]
      let results = try await database.transaction { connection in
        try TrackingStore.write(requests, on: connection).map { result -> RpcV1.StatusCode in
          switch result {
          case .success: .ok
          case .failure(let error): RPCError(from: error).code
          }
        }
      }
      #expect(results == [.ok, .notFound, .ok, .ok, .failedPrecondition, .ok, .invalidArgument])
      func steps(_ run: String, _ key: String) async throws -> [Int64] {
        var request = TrackingV1.GetMetricHistoryRequest()
        request.runIds = [run]
        request.key = key
        return try await store.metricHistory(request).series[0].points.map(\.step)
      }
      #expect(try await steps(a, "loss") == [0, 1, 1])
      #expect(try await steps(a, "acc") == [0])
      #expect(try await steps(a, "refused") == [])
      #expect(try await steps(b, "loss") == [0])
      let run = try await store.run(a)
      // Of two points at step 1 with the same timestamp, the one logged last is the latest.
      #expect(run.metrics.first { $0.key == "loss" }?.value == 3)
      #expect(run.params.map(\.value) == ["0.1"])
      #expect(try await store.run(deleted).metrics.isEmpty)
    }
  }

  @Test(arguments: Backend.available)
  func concurrentBatchesAreEachStoredOnceOrRefusedAlone(_ backend: Backend) async throws {
    try await withRun(backend) { _, store, run in
      var first = TrackingV1.LogBatchRequest()
      first.runId = run.runId
      first.params = [param("lr", "0.1")]
      _ = try await store.logBatch(first)
      // 48 batches at once, committed in groups: every request id sent twice (a retry racing
      // its original), and every eighth batch re-logging the param with another value.
      let outcomes = try await withThrowingTaskGroup(of: (Int, Bool?).self) { group in
        for index in 0..<48 {
          for _ in 0..<2 {
            group.addTask {
              var batch = TrackingV1.LogBatchRequest()
              batch.runId = run.runId
              batch.requestId = "request-\(index)"
              batch.metrics = [metric("loss", Double(index), step: Int64(index))]
              if index % 8 == 0 { batch.params = [param("lr", "0.2")] }
              do {
                return (index, try await store.logBatch(batch).duplicate)
              } catch let error as RPCError where error.code == .invalidArgument {
                return (index, nil)
              }
            }
          }
        }
        return try await group.reduce(into: [Int: [Bool?]]()) { $0[$1.0, default: []].append($1.1) }
      }
      for index in 0..<48 {
        if index % 8 == 0 {
          #expect(outcomes[index] == [nil, nil], "batch \(index)")
        } else {
          #expect(outcomes[index]?.sorted { $1 == true } == [false, true], "batch \(index)")
        }
      }
      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [run.runId]
      history.key = "loss"
      let steps = try await store.metricHistory(history).series[0].points.map(\.step)
      #expect(steps == (0..<48).filter { $0 % 8 != 0 }.map(Int64.init))
    }
  }
}
