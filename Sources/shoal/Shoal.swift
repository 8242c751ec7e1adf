import ArgumentParser

/// The one Shoal binary: every service, the supervisor and the command-line tools.
@main
struct Shoal: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shoal",
    abstract: "Shoal: a self-hosted machine-learning lifecycle mesh.",
    discussion: """
      Registry, tracking, inference, feedback and audio classification as small services in one
      binary, talking a compact binary RPC protocol over Unix and TCP sockets.
      """,
    version: ShoalVersion.current,
    subcommands: [
      UpCommand.self, StatusCommand.self, ServicesCommand.self, ModelsCommand.self, AdminCommand.self,
      ExperimentsCommand.self, RunsCommand.self, ArtifactsCommand.self, InferenceCommand.self, PredictCommand.self,
      FeedbackCommand.self, ImageryCommand.self, AreaCommand.self, JobsCommand.self, AudioCommand.self,
      PipelineCommand.self, RolloutCommand.self, DriftCommand.self,
      ServeCommand.self, CallCommand.self,
      OnnxCommand.self, HealthCommand.self, LoadCommand.self, TrackingLoadCommand.self, InferenceLoadCommand.self,
      LabelsLoadCommand.self,
      MetricsCommand.self, GeoCommand.self, ProtoCommand.self, FeedbackBenchCommand.self, AudioBenchCommand.self,
    ]
  )
}
