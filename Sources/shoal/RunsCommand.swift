import ArgumentParser
import Foundation
import ShoalProto
import ShoalServiceStubs

/// `shoal runs …`.
struct RunsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "runs", abstract: "Create runs, log to them, end them; show, search, compare their metrics.",
    subcommands: [
      Create.self, Log.self, End.self, Show.self, Search.self, History.self, Compare.self, Watch.self, Plot.self,
      Collect.self,
    ])

  struct Plot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Draw a metric's curves of one or more runs, with axes, labels and a legend, as SVG or PNG.")
    @Argument(help: "The run ids.") var runs: [String]
    @Option(help: "The metric.") var metric: String
    @Option(help: "The file to write: .svg, or .png (drawn with cairo).") var out: String
    @Option(help: "Thin each curve to at most this many points.") var maxPoints: Int32 = 2000
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      guard !runs.isEmpty else { throw ValidationError("give at least one run") }
      guard out.hasSuffix(".svg") || out.hasSuffix(".png") else {
        throw ValidationError("--out must name an .svg or .png file")
      }
      let runs = runs
      let (series, names) = try await withTracking(mesh, command: "runs plot") { client in
        var request = TrackingV1.GetMetricHistoryRequest()
        request.runIds = runs
        request.key = metric
        request.maxPoints = maxPoints
        let series = try await client.getMetricHistory(request).series
        var names: [String] = []
        for run in runs {
          var get = TrackingV1.GetRunRequest()
          get.runId = run
          names.append(try await client.getRun(get).name)
        }
        return (series, names)
      }
      let plot = MetricPlot(
        title: "\(metric) by step", metric: metric,
        series: zip(series, names).map { line, name in
          MetricPlot.Series(label: "\(name) (\(line.runId.prefix(8)))", points: line.points.map { ($0.step, $0.value) })
        })
      if out.hasSuffix(".png") {
        try plot.writePNG(to: out)
      } else {
        try Data(plot.svg.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
      }
      emit("wrote \(out): \(metric) of \(runs.count) run(s), \(series.map(\.points.count).reduce(0, +)) point(s)")
    }
  }

  struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "gc",
      abstract: "Remove deleted runs (and emptied deleted experiments) for good, then files no artifact uses.")
    @Option(help: "Only what was deleted at least this many seconds ago.") var olderThan: Double = 0
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = TrackingV1.GarbageCollectRequest()
      request.olderThanMs = Int64(olderThan * 1000)
      let result = try await withTracking(mesh, command: "runs gc") { try await $0.garbageCollect(request) }
      if json { return emitJSON(result) }
      emit(
        "removed \(result.runsRemoved) run(s), \(result.experimentsRemoved) experiment(s), "
          + "\(result.blobsRemoved) file(s) (\(result.bytesFreed) bytes)")
    }
  }

  struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print a run's new metrics and status changes as they happen, until it ends.")
    @Argument(help: "The run id.") var run: String
    @Flag(help: "Print one JSON object per event.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = TrackingV1.WatchRunRequest()
      request.runId = run
      try await withTracking(mesh, command: "runs watch") { client in
        try await client.watchRun(request) { events in
          for try await event in events {
            if json {
              emit(event.jsonString())
              continue
            }
            switch event.change {
            case .run(let run):
              emit(
                "run \(run.runId) '\(run.name)' \(run.status.protoName?.lowercased() ?? "")"
                  + run.metrics.map { " \($0.key)=\($0.value)@\($0.step)" }.joined())
            case .metrics(let batch):
              emit(batch.metrics.map { "\($0.key)=\($0.value)@\($0.step)" }.joined(separator: " "))
            case .status(let status): emit("status \(status.protoName?.lowercased() ?? "")")
            case nil: break
            }
          }
        }
      }
    }
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a run; prints its id.")
    @Option(help: "The experiment's id or name.") var experiment: String
    @Option(help: "The run's name.") var name = ""
    @Option(help: "Who runs it (default: $USER).") var user = ProcessInfo.processInfo.environment["USER"] ?? ""
    @Option(name: .customLong("tag"), help: "A tag key=value (repeatable).") var tags: [String] = []
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let tags = try parsePairs(tags, option: "--tag")
      let run = try await withTracking(mesh, command: "runs create") { client in
        var request = TrackingV1.CreateRunRequest()
        request.experimentId = try await experimentID(experiment, client)
        request.name = name
        request.user = user
        request.tags = tags
        return try await client.createRun(request)
      }
      if json { emitJSON(run) } else { emit(run.runId) }
    }
  }

  struct Log: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Log metrics (key=value or key=value@step), params, tags and datasets to a run in one batch.")
    @Argument(help: "The run id.") var run: String
    @Option(name: .customLong("metric"), help: "key=value[@step] (repeatable).") var metrics: [String] = []
    @Option(name: .customLong("param"), help: "key=value, write-once (repeatable).") var params: [String] = []
    @Option(name: .customLong("tag"), help: "key=value (repeatable).") var tags: [String] = []
    @Option(name: .customLong("dataset"), help: "name:context[:digest[:source]] (repeatable).") var datasets: [String] =
      []
    @Option(name: .customLong("delete-tag"), help: "A tag key to remove, after the batch (repeatable).")
    var deleteTags: [String] = []
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var batch = TrackingV1.LogBatchRequest()
      batch.runId = run
      // A retried call is stored once.
      batch.requestId = UUID().uuidString
      let now = Int64(Date().timeIntervalSince1970 * 1000)
      for (key, text) in try parsePairs(metrics, option: "--metric").sorted(by: { $0.key < $1.key }) {
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        guard let value = Double(parts[0]), parts.count == 1 || Int64(parts[1]) != nil else {
          throw ValidationError("--metric \(key)=\(text): expected a number, optionally @step")
        }
        var metric = TrackingV1.Metric()
        metric.key = key
        metric.value = value
        metric.step = parts.count == 2 ? Int64(parts[1])! : 0
        metric.timestampMs = now
        batch.metrics.append(metric)
      }
      batch.params = try parsePairs(params, option: "--param").sorted { $0.key < $1.key }.map {
        var param = TrackingV1.Param()
        param.key = $0.key
        param.value = $0.value
        return param
      }
      batch.tags = try parsePairs(tags, option: "--tag").sorted { $0.key < $1.key }.map {
        var tag = TrackingV1.Tag()
        tag.key = $0.key
        tag.value = $0.value
        return tag
      }
      var inputs = TrackingV1.LogInputsRequest()
      inputs.runId = run
      inputs.datasets = try datasets.map { text in
        let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty else {
          throw ValidationError("--dataset \(text): expected name:context[:digest[:source]]")
        }
        var input = TrackingV1.DatasetInput()
        input.name = parts[0]
        input.context = parts[1]
        input.digest = parts.count > 2 ? parts[2] : ""
        input.source = parts.count > 3 ? parts[3] : ""
        return input
      }
      let inputsRequest = inputs
      let batchRequest = batch
      var removal = TrackingV1.UpdateRunRequest()
      removal.runId = run
      removal.deleteTags = deleteTags
      let removalRequest = removal
      try await withTracking(mesh, command: "runs log") { client in
        _ = try await client.logBatch(batchRequest)
        if !inputsRequest.datasets.isEmpty { _ = try await client.logInputs(inputsRequest) }
        if !removalRequest.deleteTags.isEmpty { _ = try await client.updateRun(removalRequest) }
      }
      emit(
        "logged \(batch.metrics.count) metric(s), \(batch.params.count) param(s), \(batch.tags.count) tag(s), "
          + "\(inputs.datasets.count) dataset(s) to \(run)"
          + (deleteTags.isEmpty ? "" : "; removed \(deleteTags.count) tag(s)"))
    }
  }

  struct End: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End a run.")
    @Argument(help: "The run id.") var run: String
    @Option(help: "finished, failed or killed.") var status = "finished"
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      guard let value = TrackingV1.RunStatus.knownValues.first(where: { $0.protoName == status.uppercased() }),
        [.finished, .failed, .killed].contains(value)
      else { throw ValidationError("--status must be finished, failed or killed") }
      var request = TrackingV1.UpdateRunRequest()
      request.runId = run
      request.status = value
      let ended = try await withTracking(mesh, command: "runs end") { try await $0.updateRun(request) }
      emit("\(ended.runId) \(ended.status.protoName?.lowercased() ?? "") at \(formatTime(ended.endTimeMs))")
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a run: params, tags, latest metrics, datasets.")
    @Argument(help: "The run id.") var run: String
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = TrackingV1.GetRunRequest()
      request.runId = run
      let found = try await withTracking(mesh, command: "runs show") { try await $0.getRun(request) }
      if json { return emitJSON(found) }
      emit("run          \(found.runId) '\(found.name)' in experiment \(found.experimentId)")
      emit(
        "status       \(found.status.protoName?.lowercased() ?? "-")\(found.lifecycle == .deleted ? " (deleted)" : "")")
      emit("user         \(found.user.isEmpty ? "-" : found.user)")
      emit("started      \(formatTime(found.startTimeMs)), ended \(formatTime(found.endTimeMs))")
      emit(
        "params       \(found.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
      )
      emit(
        "tags         \(found.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
      emit("metrics      \(found.metrics.map { "\($0.key)=\($0.value)@\($0.step)" }.joined(separator: " "))")
      emit("datasets     \(found.inputs.map { "\($0.name) (\($0.context))" }.joined(separator: ", "))")
    }
  }

  struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Search runs: --filter \"metrics.acc > 0.9 AND (params.model = 'resnet' OR tags.stage ILIKE 'prod%')\"")
    @Option(name: .customLong("experiment"), help: "An experiment's id or name (repeatable; default: all).")
    var experiments: [String] = []
    @Option(help: "The filter.") var filter = ""
    @Option(name: .customLong("order-by"), help: "metrics.acc DESC, attributes.start_time, … (repeatable).")
    var orderBy: [String] = []
    @Flag(help: "Deleted runs too.") var all = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let runs = try await withTracking(mesh, command: "runs search") { client in
        var request = TrackingV1.SearchRunsRequest()
        for experiment in experiments { request.experimentIds.append(try await experimentID(experiment, client)) }
        request.filter = filter
        request.orderBy = orderBy
        request.view = all ? .all : .activeOnly
        let first = request
        return try await allPages { token in
          var request = first
          request.pageToken = token
          let page = try await client.searchRuns(request)
          return (page.runs, page.nextPageToken)
        }
      }
      if json {
        var response = TrackingV1.SearchRunsResponse()
        response.runs = runs
        return emitJSON(response)
      }
      var table = TextTable("RUN", "NAME", "EXPERIMENT", "STATUS", "STARTED", "METRICS")
      for run in runs {
        table.add(
          run.runId, run.name, run.experimentId, run.status.protoName?.lowercased() ?? "-", formatTime(run.startTimeMs),
          run.metrics.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
      }
      emit(table.rendered)
    }
  }

  struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A metric's values over the steps of one run.")
    @Argument(help: "The run id.") var run: String
    @Option(help: "The metric.") var metric: String
    @Option(help: "Thin the series to at most this many points.") var maxPoints: Int32 = 0
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let series = try await RunsCommand.series([run], metric: metric, maxPoints: maxPoints, mesh: mesh)
      if json {
        var response = TrackingV1.GetMetricHistoryResponse()
        response.series = series
        return emitJSON(response)
      }
      var table = TextTable("STEP", metric.uppercased(), "TIME")
      for point in series.first?.points ?? [] {
        table.add("\(point.step)", "\(point.value)", formatTime(point.timestampMs))
      }
      emit(table.rendered)
    }
  }

  struct Compare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One metric of several runs, step by step.")
    @Argument(help: "The run ids.") var runs: [String]
    @Option(help: "The metric.") var metric: String
    @Option(help: "Thin each series to at most this many points.") var maxPoints: Int32 = 0
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      guard runs.count >= 2 else { throw ValidationError("give two runs or more") }
      let series = try await RunsCommand.series(runs, metric: metric, maxPoints: maxPoints, mesh: mesh)
      if json {
        var response = TrackingV1.GetMetricHistoryResponse()
        response.series = series
        return emitJSON(response)
      }
      let steps = Set(series.flatMap { $0.points.map(\.step) }).sorted()
      let byRun = series.map { Dictionary($0.points.map { ($0.step, $0.value) }, uniquingKeysWith: { $1 }) }
      var table = TextTable(header: ["STEP"] + series.map { String($0.runId.prefix(8)) })
      for step in steps { table.rows.append(["\(step)"] + byRun.map { $0[step].map { "\($0)" } ?? "-" }) }
      emit(table.rendered)
    }
  }

  /// The series of `metric` for `runs`.
  static func series(
    _ runs: [String], metric: String, maxPoints: Int32, mesh: MeshOptions
  ) async throws -> [TrackingV1.MetricSeries] {
    try await withTracking(mesh, command: "runs") { client in
      var request = TrackingV1.GetMetricHistoryRequest()
      request.runIds = runs
      request.key = metric
      request.maxPoints = maxPoints
      if runs.count > 1 || maxPoints > 0 { return try await client.getMetricHistory(request).series }
      let first = request
      var series = TrackingV1.MetricSeries()
      series.runId = runs[0]
      series.points = try await allPages { token in
        var request = first
        request.pageToken = token
        let page = try await client.getMetricHistory(request)
        return (page.series.first?.points ?? [], page.nextPageToken)
      }
      return [series]
    }
  }
}
