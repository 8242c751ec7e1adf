import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Testing
import Tracking

/// The tracking service over a real Unix socket, on SQLite and PostgreSQL.
struct TrackingServiceTests {
  private typealias Client = TrackingV1.Tracking.Client

  private func withTracking(_ backend: Backend, _ body: (Client) async throws -> Void) async throws {
    try await backend.withDatabase { database, directory in
      try await database.migrate(TrackingStore.migrations)
      var router = ServiceRouter()
      TrackingService(store: TrackingStore(database: database), blobs: try BlobStore(root: directory.path("blobs")))
        .register(in: &router)
      let server = RPCServer(router: router)
      let address = try await server.bind(to: .unix(path: directory.path("tracking.sock")))
      let rpc = RPCClient(address: address)
      do {
        try await body(Client(rpc))
      } catch {
        await rpc.close()
        await server.shutdown()
        throw error
      }
      await rpc.close()
      await server.shutdown()
    }
  }

  private func experiment(_ client: Client, _ name: String) async throws -> TrackingV1.Experiment {
    var request = TrackingV1.CreateExperimentRequest()
    request.name = name
    return try await client.createExperiment(request)
  }

  private func run(_ client: Client, _ experiment: TrackingV1.Experiment) async throws -> TrackingV1.Run {
    var request = TrackingV1.CreateRunRequest()
    request.experimentId = experiment.experimentId
    request.user = "ana"
    return try await client.createRun(request)
  }

  private func expectCode(
    _ code: RpcV1.StatusCode, _ fragment: String, _ call: () async throws -> Void
  ) async {
    do {
      try await call()
      Issue.record("expected \(code.protoName ?? "") mentioning '\(fragment)'")
    } catch {
      let error = RPCError(from: error)
      #expect(error.code == code && error.message.contains(fragment), "\(error)")
    }
  }

  /// UpdateExperiment: MLflow's rename and set_experiment_tag, and a move between organisations.
  @Test(arguments: Backend.available)
  func experimentsAreRenamedTaggedAndMoved(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      let roads = try await experiment(client, "roads")
      _ = try await experiment(client, "rivers")
      #expect(roads.organization == "local")
      var update = TrackingV1.UpdateExperimentRequest()
      update.experimentId = roads.experimentId
      update.newName = "roads-v2"
      update.tags = ["team": "maps", "stage": "dev"]
      _ = try await client.updateExperiment(update)
      update.newName = ""
      update.tags = ["stage": "prod"]
      update.organization = "acme"
      let updated = try await client.updateExperiment(update)
      #expect(updated.name == "roads-v2" && updated.organization == "acme")
      #expect(updated.tags == ["team": "maps", "stage": "prod"])
      #expect(updated.updatedAtMs >= roads.updatedAtMs)
      update.newName = "rivers"
      await expectCode(.alreadyExists, "'rivers' already exists") { _ = try await client.updateExperiment(update) }
      update.newName = ""
      update.organization = "Not An Org"
      await expectCode(.invalidArgument, "organization 'Not An Org'") { _ = try await client.updateExperiment(update) }
      update.experimentId = "999"
      update.organization = ""
      await expectCode(.notFound, "experiment '999'") { _ = try await client.updateExperiment(update) }
      // Nothing of the refused updates stuck.
      var get = TrackingV1.GetExperimentRequest()
      get.experimentId = roads.experimentId
      #expect(try await client.getExperiment(get) == updated)

      // MLflow's delete_experiment_tag: a key it lacks is NOT_FOUND and removes nothing.
      update = TrackingV1.UpdateExperimentRequest()
      update.experimentId = roads.experimentId
      update.deleteTags = ["stage", "nope"]
      await expectCode(.notFound, "has no tag 'nope'") { _ = try await client.updateExperiment(update) }
      #expect(try await client.getExperiment(get).tags == ["team": "maps", "stage": "prod"])
      update.deleteTags = ["stage"]
      #expect(try await client.updateExperiment(update).tags == ["team": "maps"])
    }
  }

  /// MLflow's search_experiments: a filter on name, times and tags, over the page of experiments.
  @Test(arguments: Backend.available)
  func experimentsAreFiltered(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      for (name, team) in [("roads", "maps"), ("roads-v2", "maps"), ("rivers", "water"), ("lakes", "")] {
        var request = TrackingV1.CreateExperimentRequest()
        request.name = name
        if !team.isEmpty { request.tags = ["team": team] }
        _ = try await client.createExperiment(request)
      }
      func names(_ filter: String) async throws -> [String] {
        var request = TrackingV1.ListExperimentsRequest()
        request.filter = filter
        return try await client.listExperiments(request).experiments.map(\.name)
      }
      #expect(try await names("") == ["roads", "roads-v2", "rivers", "lakes"])
      #expect(try await names("name LIKE 'road%'") == ["roads", "roads-v2"])
      #expect(try await names("tags.team = 'maps' AND name != 'roads'") == ["roads-v2"])
      #expect(try await names("tags.team IN ('water') OR attributes.name ILIKE 'LAKE%'") == ["rivers", "lakes"])
      #expect(try await names("creation_time > 0 AND last_update_time > 0").count == 4)
      #expect(try await names("creation_time < 0").isEmpty)
      await expectCode(.invalidArgument, "at position 10") { _ = try await names("name LIKE") }
      await expectCode(.invalidArgument, "'metrics' is not tags or attributes") { _ = try await names("metrics.a > 1") }
    }
  }

  /// MLflow's delete_tag on a run: gone from the run, a key it lacks is NOT_FOUND and removes nothing.
  @Test(arguments: Backend.available)
  func runTagsAreRemoved(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      let running = try await run(client, try await experiment(client, "roads"))
      var batch = TrackingV1.LogBatchRequest()
      batch.runId = running.runId
      batch.tags = ["a", "b", "c"].map {
        var tag = TrackingV1.Tag()
        tag.key = $0
        tag.value = $0.uppercased()
        return tag
      }
      _ = try await client.logBatch(batch)
      var update = TrackingV1.UpdateRunRequest()
      update.runId = running.runId
      update.deleteTags = ["a", "zzz"]
      await expectCode(.notFound, "has no tag 'zzz'") { _ = try await client.updateRun(update) }
      update.deleteTags = ["a", "b"]
      update.name = "renamed"
      let updated = try await client.updateRun(update)
      #expect(updated.tags == ["c": "C"] && updated.name == "renamed")
      update.deleteTags = [String](repeating: "c", count: 101)
      await expectCode(.invalidArgument, "at most 100") { _ = try await client.updateRun(update) }
    }
  }

  @Test(arguments: Backend.available)
  func experimentsHaveALifecycle(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      let first = try await experiment(client, "roads")
      #expect(first.lifecycle == .active)
      await expectCode(.alreadyExists, "experiment 'roads' already exists") {
        _ = try await experiment(client, "roads")
      }
      for index in 0..<4 { _ = try await experiment(client, "e\(index)") }
      var get = TrackingV1.GetExperimentRequest()
      get.name = "roads"
      let result1 = try await client.getExperiment(get).experimentId
      #expect(result1 == first.experimentId)

      let running = try await run(client, first)
      var lifecycle = TrackingV1.ExperimentLifecycleRequest()
      lifecycle.experimentId = first.experimentId
      let result2 = try await client.deleteExperiment(lifecycle).lifecycle
      #expect(result2 == .deleted)
      var getRun = TrackingV1.GetRunRequest()
      getRun.runId = running.runId
      let result3 = try await client.getRun(getRun).lifecycle
      #expect(result3 == .deleted)
      await expectCode(.failedPrecondition, "is deleted") { _ = try await run(client, first) }

      var list = TrackingV1.ListExperimentsRequest()
      list.pageSize = 2
      var names: [String] = []
      repeat {
        let page = try await client.listExperiments(list)
        names += page.experiments.map(\.name)
        list.pageToken = page.nextPageToken
      } while !list.pageToken.isEmpty
      #expect(names == ["e0", "e1", "e2", "e3"])
      list.view = .deletedOnly
      let result4 = try await client.listExperiments(list).experiments.map(\.name)
      #expect(result4 == ["roads"])

      let result5 = try await client.restoreExperiment(lifecycle).lifecycle
      #expect(result5 == .active)
      let result6 = try await client.getRun(getRun).lifecycle
      #expect(result6 == .active)
      get.name = "nope"
      await expectCode(.notFound, "experiment named 'nope'") { _ = try await client.getExperiment(get) }
    }
  }

  @Test(arguments: Backend.available)
  func batchesKeepMLflowsRules(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      let run = try await run(client, try await experiment(client, "roads"))
      #expect(run.status == .running && run.user == "ana" && run.startTimeMs > 0)
      var batch = TrackingV1.LogBatchRequest()
      batch.runId = run.runId
      batch.requestId = "batch-1"
      batch.params = [param("lr", "0.01")]
      var tag = TrackingV1.Tag()
      tag.key = "stage"
      tag.value = "warmup"
      batch.tags = [tag]
      batch.metrics = [
        metric("loss", 2.5, step: 0), metric("loss", .nan, step: 1), metric("loss", 1.5, step: 2, at: 900),
        metric("acc", .infinity, step: 0), metric("acc", -.infinity, step: 1),
      ]
      let result7 = try await client.logBatch(batch).duplicate
      #expect(result7 == false)
      // The same request id again (a client retry) stores nothing more.
      let result8 = try await client.logBatch(batch).duplicate
      #expect(result8 == true)

      var get = TrackingV1.GetRunRequest()
      get.runId = run.runId
      let logged = try await client.getRun(get)
      #expect(logged.params == ["lr": "0.01"] && logged.tags == ["stage": "warmup"])
      let latest = Dictionary(uniqueKeysWithValues: logged.metrics.map { ($0.key, $0) })
      #expect(latest["loss"]?.value == 1.5 && latest["loss"]?.step == 2)
      #expect(latest["acc"]?.value == -.infinity)

      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [run.runId]
      history.key = "loss"
      let points = try await client.getMetricHistory(history).series[0].points
      #expect(points.count == 3)
      #expect(points[0].value == 2.5 && points[1].value.isNaN && points[2].value == 1.5)

      // A param logged again with another value is refused naming the key; nothing of that batch is kept.
      var clash = TrackingV1.LogBatchRequest()
      clash.runId = run.runId
      clash.params = [param("lr", "0.02")]
      clash.metrics = [metric("loss", 0.1, step: 3)]
      await expectCode(.invalidArgument, "param 'lr' was logged as '0.01'") { _ = try await client.logBatch(clash) }
      let result9 = try await client.getMetricHistory(history).series[0].points.count
      #expect(result9 == 3)
      tag.value = "train"
      var retag = TrackingV1.LogBatchRequest()
      retag.runId = run.runId
      retag.tags = [tag]
      retag.params = [param("lr", "0.01")]
      _ = try await client.logBatch(retag)
      let result10 = try await client.getRun(get).tags["stage"]
      #expect(result10 == "train")

      var tooMany = TrackingV1.LogBatchRequest()
      tooMany.runId = run.runId
      tooMany.metrics = (0..<1001).map { metric("m", Double($0), step: Int64($0)) }
      await expectCode(.invalidArgument, "metrics: at most 1000") { _ = try await client.logBatch(tooMany) }
      tooMany.runId = "nope"
      tooMany.metrics = []
      await expectCode(.notFound, "run 'nope' not found") { _ = try await client.logBatch(tooMany) }

      var end = TrackingV1.UpdateRunRequest()
      end.runId = run.runId
      end.status = .finished
      let ended = try await client.updateRun(end)
      #expect(ended.status == .finished && ended.endTimeMs >= ended.startTimeMs)
    }
  }

  @Test(arguments: Backend.available)
  func watchersSeeMetricsAndTheEndLive(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      let run = try await run(client, try await experiment(client, "live"))
      var request = TrackingV1.WatchRunRequest()
      request.runId = run.runId
      let watched = request
      let events = try await withThrowingTaskGroup(of: [TrackingV1.RunEvent].self) { group in
        let (started, signal) = AsyncStream.makeStream(of: Void.self)
        group.addTask {
          // The stream ends by itself once the run ends.
          try await client.watchRun(watched, options: CallOptions(timeout: .seconds(30))) { stream in
            var events: [TrackingV1.RunEvent] = []
            for try await event in stream {
              events.append(event)
              signal.yield()
            }
            return events
          }
        }
        var waiting = started.makeAsyncIterator()
        _ = await waiting.next()
        for step in 0..<2 {
          var batch = TrackingV1.LogBatchRequest()
          batch.runId = run.runId
          batch.metrics = [metric("loss", Double(2 - step), step: Int64(step))]
          _ = try await client.logBatch(batch)
        }
        var end = TrackingV1.UpdateRunRequest()
        end.runId = run.runId
        end.status = .finished
        _ = try await client.updateRun(end)
        return try await group.next()!
      }
      guard events.count == 4, case .run(let first) = events[0].change, case .metrics(let a) = events[1].change,
        case .metrics(let b) = events[2].change, case .status(let status) = events[3].change
      else {
        Issue.record("unexpected events: \(events)")
        return
      }
      #expect(first.runId == run.runId && a.metrics.map(\.step) == [0] && b.metrics.map(\.value) == [1])
      #expect(status == .finished)
    }
  }

  @Test(arguments: Backend.available)
  func metricHistoryPagesComparesAndThins(_ backend: Backend) async throws {
    try await withTracking(backend) { client in
      let experiment = try await experiment(client, "curves")
      let first = try await run(client, experiment)
      let second = try await run(client, experiment)
      for run in [first, second] {
        var batch = TrackingV1.LogBatchRequest()
        batch.runId = run.runId
        batch.metrics = (0..<1000).map { metric("loss", 1 / Double($0 + 1), step: Int64($0)) }
        _ = try await client.logBatch(batch)
      }
      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [first.runId]
      history.key = "loss"
      history.pageSize = 300
      var steps: [Int64] = []
      repeat {
        let page = try await client.getMetricHistory(history)
        steps += page.series[0].points.map(\.step)
        history.pageToken = page.nextPageToken
      } while !history.pageToken.isEmpty
      #expect(steps == Array(0..<1000))

      history.runIds = [first.runId, second.runId]
      history.pageSize = 0
      history.maxPoints = 11
      let thinned = try await client.getMetricHistory(history)
      #expect(thinned.series.map(\.runId) == [first.runId, second.runId])
      #expect(thinned.series[1].points.map(\.step) == [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999])
      history.pageToken = "3"
      await expectCode(.invalidArgument, "one run only") { _ = try await client.getMetricHistory(history) }
    }
  }
}
