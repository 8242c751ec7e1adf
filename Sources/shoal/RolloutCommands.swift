import ArgumentParser
import Foundation
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal rollout …`: canary and shadow rollouts of a candidate on an alias, in inference.
struct RolloutCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rollout", abstract: "Canary and shadow rollouts on an alias, with automatic rollback.",
    subcommands: [Start.self, Status.self, Promote.self, Rollback.self])

  static func show(_ rollout: InferenceV1.Rollout) -> String {
    var lines = [
      "\(rollout.model): \(rollout.state.protoName ?? "") \(rollout.mode.protoName?.lowercased() ?? "") of "
        + "\(rollout.candidate)"
        + (rollout.mode == .canary ? String(format: " (%.2f%% of requests)", rollout.canaryPercent) : "")
    ]
    for (name, arm) in [("production", rollout.productionArm), ("candidate", rollout.candidateArm)] {
      guard let arm else { continue }
      lines.append(
        String(
          format: "  %@ v%lld: %lld requests in %d s (%lld in all), error rate %.3f, p99 %.1f ms", name, arm.version,
          arm.requests, rollout.windowSeconds, arm.totalRequests, arm.errorRate, arm.p99Ms))
    }
    if rollout.mode == .shadow {
      lines.append(String(format: "  agreement %.3f over %lld requests", rollout.agreement, rollout.compared))
    }
    lines += rollout.events.map { "  \(formatTime($0.atMs))  \($0.what)" }
    return lines.joined(separator: "\n")
  }

  struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Start a rollout of a candidate on an alias that inference serves.",
      discussion: """
        REF is the alias (name@production); --candidate the version (name/7 or name@staging), loaded \
        if it is not. --canary P sends P% of requests to it, the same request id always to the same \
        side; --shadow lets production answer and runs the candidate on a copy. The split returns to \
        production by itself when, over --window seconds with at least --min-requests candidate \
        requests, its error rate passes --max-error-rate, its p99 passes --max-p99-ms, or its \
        agreement falls below --min-agreement. --promote-after S promotes it after S seconds without that.
        """)
    @Argument(help: "The alias reference.") var model: String
    @Option(help: "The candidate version's reference.") var candidate: String
    @Option(help: "The share of requests to the candidate, in percent.") var canary: Double?
    @Flag(help: "Shadow instead of canary.") var shadow = false
    @Option(help: "Roll back above this error rate.") var maxErrorRate = 0.05
    @Option(help: "Roll back above this p99 latency (0: off).") var maxP99Ms = 0.0
    @Option(help: "Roll back below this agreement with production (shadow; 0: off).") var minAgreement = 0.0
    @Option(help: "Seconds the thresholds are judged over.") var window: Int32 = 60
    @Option(help: "Candidate requests needed before judging.") var minRequests: Int32 = 20
    @Option(help: "Promote after this many seconds without a rollback (0: only when asked).") var promoteAfter: Int32 =
      0
    @Option(help: "A webhook told of promotion and rollback.") var webhook: String?
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = InferenceV1.StartRolloutRequest()
      request.model = model
      request.candidate = candidate
      request.mode = shadow ? .shadow : .canary
      request.canaryPercent = canary ?? 10
      request.maxErrorRate = maxErrorRate
      request.maxP99Ms = maxP99Ms
      request.minAgreement = minAgreement
      request.windowSeconds = window
      request.minRequests = minRequests
      request.promoteAfterSeconds = promoteAfter
      request.webhook = webhook ?? ""
      let rollout = try await withInference(mesh, command: "rollout start") { try await $0.startRollout(request) }
      if json { return emitJSON(rollout) }
      emit(RolloutCommand.show(rollout))
    }
  }

  /// One call on a rollout by its alias, its answer shown.
  static func call(
    _ model: String, _ mesh: MeshOptions, json: Bool, command: String,
    _ body: @escaping (InferenceV1.Inference.Client, InferenceV1.RolloutRequest) async throws -> InferenceV1.Rollout
  ) async throws {
    var request = InferenceV1.RolloutRequest()
    request.model = model
    let rollout = try await withInference(mesh, command: command) { try await body($0, request) }
    if json { return emitJSON(rollout) }
    emit(show(rollout))
  }

  struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A rollout's split, each side's figures and its events.")
    @Argument(help: "The alias reference.") var model: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      try await call(model, mesh, json: json, command: "rollout status") { try await $0.rolloutStatus($1) }
    }
  }

  struct Promote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Move the alias to the candidate and end the rollout.")
    @Argument(help: "The alias reference.") var model: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      try await call(model, mesh, json: json, command: "rollout promote") { try await $0.promoteRollout($1) }
    }
  }

  struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send every request back to production.")
    @Argument(help: "The alias reference.") var model: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      try await call(model, mesh, json: json, command: "rollout rollback") { try await $0.rollbackRollout($1) }
    }
  }
}

/// `shoal drift REF`: what the serving version is asked against what it saw in training.
struct DriftCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "drift", abstract: "Drift of a served model: PSI per input channel and of its outputs.",
    discussion: """
      The version's reference comes from `shoal models push --drift-reference SAMPLE.npy`. A PSI \
      below 0.1 is stable and above 0.25 a shift; an alert is raised past the service's \
      --drift-threshold (0.2) once 100 rows are seen.
      """)
  @Argument(help: "The reference (name@production).") var model: String
  @OptionGroup var mesh: MeshOptions
  @Flag(help: "Print JSON.") var json = false

  func run() async throws {
    var request = InferenceV1.DriftRequest()
    request.model = model
    let report = try await withInference(mesh, command: "drift") { try await $0.driftStatus(request) }
    if json { return emitJSON(report) }
    guard report.hasReference else {
      return emit("\(report.model) v\(report.version) has no drift reference (push it with --drift-reference)")
    }
    var table = TextTable("FEATURE", "PSI", "OBSERVED", "MEAN", "TRAINED MEAN", "ALERT")
    for feature in report.features {
      table.add(
        feature.name, String(format: "%.4f", feature.psi), "\(feature.observed)",
        String(format: "%.4g", feature.observedMean), String(format: "%.4g", feature.expectedMean),
        feature.alert ? "ALERT" : "-")
    }
    emit(
      "\(report.model) v\(report.version): \(report.rows) rows (judged from \(report.minimumRows)), threshold "
        + String(format: "%.2f", report.threshold) + "\n" + table.rendered)
  }
}
