import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal pipeline …`: the closed loop's pipelines (mesh/pipelines/*.json), their runs and history.
struct PipelineCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pipeline", abstract: "Pipelines: labels → dataset → retrain → evaluate → promote.",
    subcommands: [List.self, Check.self, Run.self, History.self])

  static func withPipelines<T>(
    _ mesh: MeshOptions, command: String, _ body: (PipelineV1.Pipelines.Client) async throws -> T
  ) async throws -> T {
    let shoal = ShoalClient(location: try mesh.location())
    return try await reportingRPCErrors(command: command, closing: { await shoal.close() }) {
      try await body(PipelineV1.Pipelines.Client(shoal.channel(for: "pipeline")))
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The pipelines the service loads, and the files it refuses.")
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      let response = try await withPipelines(mesh, command: "pipeline list") {
        try await $0.listPipelines(PipelineV1.ListPipelinesRequest())
      }
      if json { return emitJSON(response) }
      var table = TextTable("NAME", "MODEL", "STEPS", "TRIGGERS")
      for pipeline in response.pipelines {
        var triggers: [String] = []
        if pipeline.triggerLabels > 0 { triggers.append("\(pipeline.triggerLabels) labels") }
        if pipeline.triggerEverySeconds > 0 { triggers.append("every \(pipeline.triggerEverySeconds) s") }
        table.add(
          pipeline.name, pipeline.model, pipeline.steps.joined(separator: " → "),
          triggers.isEmpty ? "manual" : triggers.joined(separator: ", "))
      }
      emit(([table.rendered] + response.refused.map { "refused: \($0)" }).joined(separator: "\n"))
    }
  }

  struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check a pipeline file as the service would load it (errors name the field).")
    @Argument(help: "The file.") var file: String
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let data: Data
      do {
        data = try Data(contentsOf: URL(fileURLWithPath: file))
      } catch {
        throw ValidationError("\(file) cannot be read: \(error.localizedDescription)")
      }
      var request = PipelineV1.CheckPipelineRequest()
      request.definition = String(decoding: data, as: UTF8.self)
      request.file = file
      let response = try await withPipelines(mesh, command: "pipeline check") { try await $0.checkPipeline(request) }
      let pipeline = response.pipeline ?? PipelineV1.Pipeline()
      emit("\(file): pipeline \(pipeline.name) of \(pipeline.model): \(pipeline.steps.joined(separator: " → "))")
    }
  }

  struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run a pipeline now, showing each step as it goes.",
      discussion: "Exits non-zero when a step failed; a rejected candidate is a finished run.")
    @Argument(help: "The pipeline's name.") var name: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print the run as JSON at the end.") var json = false

    func run() async throws {
      var request = PipelineV1.RunPipelineRequest()
      request.name = name
      let json = json
      let run = try await withPipelines(mesh, command: "pipeline run") { client in
        try await client.runPipeline(request, options: CallOptions(timeout: .seconds(6 * 3600))) {
          responses -> PipelineV1.PipelineRun? in
          for try await progress in responses {
            if let run = progress.run { return run }
            if !json, progress.state != "started" {
              emit("\(progress.step): \(progress.state)\(progress.message.isEmpty ? "" : " — \(progress.message)")")
            } else if !json {
              FileHandle.standardError.write(Data("\(progress.step) …\n".utf8))
            }
          }
          return nil
        }
      }
      guard let run else { throw RPCError(.unavailable, "the pipeline service ended the run without a result") }
      if json {
        emitJSON(run)
      } else {
        emit(History.describe(run))
      }
      if run.status != "FINISHED" { throw ExitCode(1) }
    }
  }

  struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A pipeline's runs, newest first: each decision with its reasons.")
    @Argument(help: "The pipeline's name.") var name: String
    @Option(help: "At most this many runs.") var limit: Int32 = 20
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = PipelineV1.PipelineHistoryRequest()
      request.name = name
      request.limit = limit
      let response = try await withPipelines(mesh, command: "pipeline history") {
        try await $0.pipelineHistory(request)
      }
      if json { return emitJSON(response) }
      emit(
        response.runs.isEmpty ? "no runs of \(name) yet" : response.runs.map(Self.describe).joined(separator: "\n\n"))
    }

    static func describe(_ run: PipelineV1.PipelineRun) -> String {
      var lines = [
        "\(formatTime(run.startedAtMs))  \(run.status.lowercased())  \(run.trigger)  run \(run.runId)"
      ]
      if !run.failedStep.isEmpty { lines.append("  failed at \(run.failedStep): \(run.error)") }
      if !run.decision.isEmpty {
        var versions = "  \(run.decision): candidate v\(run.candidateVersion)"
        if let candidate = run.candidate { versions += String(format: " (accuracy %.3f)", candidate.accuracy) }
        if run.productionVersion != 0 {
          versions += " against production v\(run.productionVersion)"
          if let production = run.production { versions += String(format: " (%.3f)", production.accuracy) }
        }
        lines.append(versions)
        lines += run.reasons.map { "    \($0)" }
      }
      if !run.promotedAlias.isEmpty { lines.append("  \(run.promotedAlias) → v\(run.candidateVersion)") }
      if !run.notified.isEmpty { lines.append("  webhook: \(run.notified)") }
      return lines.joined(separator: "\n")
    }
  }
}
