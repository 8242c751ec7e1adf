import Foundation
public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs
import Synchronization

/// `shoal.pipeline.v1.Pipelines`: the pipelines of a directory (read again on every call, so an
/// edited file counts at once), run when asked, after N new labels or on a schedule, one run of a
/// pipeline at a time; their history from tracking.
public final class PipelineService: PipelineV1.Pipelines.ServiceProtocol, Sendable {
  public static let requirements: [String: RegistryV1.Role] = [
    "ListPipelines": .reader, "CheckPipeline": .reader, "RunPipeline": .writer, "PipelineHistory": .reader,
  ]

  let directory: String
  let runner: PipelineRunner
  private let running = Mutex<Set<String>>([])
  private let log: @Sendable (String) -> Void

  public init(directory: String, runner: PipelineRunner, log: @escaping @Sendable (String) -> Void = { _ in }) {
    self.directory = directory
    self.runner = runner
    self.log = log
  }

  /// The directory's `*.json` pipelines, and the files refused with their reasons.
  func load() -> (pipelines: [PipelineFile], refused: [String]) {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    var pipelines: [PipelineFile] = []
    var refused: [String] = []
    for name in names.sorted() where name.hasSuffix(".json") {
      let path = "\(directory)/\(name)"
      do {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let pipeline = try PipelineFile(json: data, file: path)
        if pipelines.contains(where: { $0.name == pipeline.name }) {
          refused.append("pipeline file \(path): key 'name' '\(pipeline.name)' is another file's name too")
        } else {
          pipelines.append(pipeline)
        }
      } catch {
        refused.append("\(error)")
      }
    }
    return (pipelines, refused)
  }

  private func visible(_ pipeline: PipelineFile) -> Bool {
    CallerOrganization.current.map { $0 == pipeline.organization } ?? true
  }

  private func pipeline(named name: String) throws(RPCError) -> PipelineFile {
    guard !name.isEmpty else { throw RPCError(.invalidArgument, "name: give the pipeline's name") }
    let (pipelines, refused) = load()
    guard let pipeline = pipelines.first(where: { $0.name == name && visible($0) }) else {
      let broken = refused.first { $0.contains("/\(name).json") }
      throw RPCError(
        .notFound, broken.map { "pipeline '\(name)' is refused: \($0)" } ?? "no pipeline '\(name)' in \(directory)")
    }
    return pipeline
  }

  static func message(_ pipeline: PipelineFile) -> PipelineV1.Pipeline {
    var message = PipelineV1.Pipeline()
    message.name = pipeline.name
    message.file = pipeline.file
    message.model = "\(pipeline.organization)/\(pipeline.model)"
    message.steps = pipeline.steps.map(\.kind)
    message.triggerLabels = pipeline.triggerLabels
    message.triggerEverySeconds = pipeline.triggerEverySeconds
    message.definition = pipeline.definition
    return message
  }

  public func listPipelines(
    _ request: PipelineV1.ListPipelinesRequest, context: ServerContext
  ) async throws -> PipelineV1.ListPipelinesResponse {
    let (pipelines, refused) = load()
    var response = PipelineV1.ListPipelinesResponse()
    response.pipelines = pipelines.filter(visible).map(Self.message)
    if CallerOrganization.current == nil { response.refused = refused }
    return response
  }

  public func checkPipeline(
    _ request: PipelineV1.CheckPipelineRequest, context: ServerContext
  ) async throws -> PipelineV1.CheckPipelineResponse {
    do {
      var response = PipelineV1.CheckPipelineResponse()
      response.pipeline = Self.message(
        try PipelineFile(json: Data(request.definition.utf8), file: request.file.isEmpty ? "(given)" : request.file))
      return response
    } catch {
      throw RPCError(.invalidArgument, "\(error)")
    }
  }

  public func runPipeline(
    _ request: PipelineV1.RunPipelineRequest, responses: RPCResponseWriter<PipelineV1.PipelineProgress>,
    context: ServerContext
  ) async throws {
    let pipeline = try pipeline(named: request.name)
    guard claim(pipeline.name) else {
      throw RPCError(.aborted, "pipeline \(pipeline.name) is running already; watch its history")
    }
    defer { release(pipeline.name) }
    // The run goes on if the caller leaves (a task of its own, which the call's cancellation does
    // not reach): what it reports after that is dropped.
    let gone = Mutex(false)
    let runner = runner
    let run = Task {
      await runner.run(pipeline, trigger: "manual") { progress in
        guard !gone.withLock({ $0 }) else { return }
        do {
          try await responses.send(progress)
        } catch {
          gone.withLock { $0 = true }
        }
      }
    }
    _ = await run.value
  }

  public func pipelineHistory(
    _ request: PipelineV1.PipelineHistoryRequest, context: ServerContext
  ) async throws -> PipelineV1.PipelineHistoryResponse {
    let pipeline = try pipeline(named: request.name)
    let limit = request.limit == 0 ? 20 : Int(request.limit)
    guard (1...1000).contains(limit) else { throw RPCError(.invalidArgument, "limit: give 1–1000") }
    var response = PipelineV1.PipelineHistoryResponse()
    response.runs = try await runner.history(pipeline, limit: limit)
    return response
  }

  private func claim(_ name: String) -> Bool { running.withLock { $0.insert(name).inserted } }
  private func release(_ name: String) { _ = running.withLock { $0.remove(name) } }

  // MARK: Triggers

  /// Marks runs a restart interrupted as FAILED, so that none is left half done, then checks the
  /// triggers every `interval` until cancelled.
  public func run(interval: Duration = .seconds(2)) async {
    for pipeline in load().pipelines {
      guard let runs = try? await runner.history(pipeline, limit: 20) else { continue }
      for run in runs where run.status == "RUNNING" {
        try? await runner.finish(run.runId, .failed)
        log("pipeline \(pipeline.name): run \(run.runId) was interrupted by a restart; marked FAILED")
      }
    }
    while !Task.isCancelled {
      for pipeline in load().pipelines where pipeline.triggerLabels > 0 || pipeline.triggerEverySeconds > 0 {
        guard let trigger = await due(pipeline), claim(pipeline.name) else { continue }
        log("pipeline \(pipeline.name): started by \(trigger)")
        let run = await runner.run(pipeline, trigger: trigger) { _ in }
        release(pipeline.name)
        log(
          "pipeline \(pipeline.name): \(run.status.lowercased())"
            + (run.decision.isEmpty ? "" : ", \(run.decision)") + (run.error.isEmpty ? "" : ": \(run.error)"))
      }
      try? await Task.sleep(for: interval)
    }
  }

  /// Why `pipeline` should run now, if it should.
  private func due(_ pipeline: PipelineFile) async -> String? {
    guard let last = try? await runner.history(pipeline, limit: 1).first else {
      // Never run: the schedule starts now, and labels count from none.
      if pipeline.triggerLabels > 0, let labels = await labels(pipeline), labels >= pipeline.triggerLabels {
        return "labels"
      }
      return pipeline.triggerEverySeconds > 0 ? "schedule" : nil
    }
    if pipeline.triggerLabels > 0, let labels = await labels(pipeline),
      labels - (Int64(last.labelsAtRun) ?? 0) >= pipeline.triggerLabels
    {
      return "labels"
    }
    if pipeline.triggerEverySeconds > 0, PipelineRunner.now() - last.startedAtMs >= pipeline.triggerEverySeconds * 1000
    {
      return "schedule"
    }
    return nil
  }

  private func labels(_ pipeline: PipelineFile) async -> Int64? {
    if pipeline.isTiles { return try? await runner.validatedTiles(pipeline.sourceDataset) }
    var get = AudioV1.GetDatasetRequest()
    get.name = pipeline.sourceDataset
    get.organization = pipeline.organization
    guard let dataset = try? await runner.audio.getDataset(get, options: PipelineRunner.call) else { return nil }
    var stats = AudioV1.StatsRequest()
    stats.datasetId = dataset.datasetId
    return try? await runner.audio.stats(stats, options: PipelineRunner.call).labels
  }
}
