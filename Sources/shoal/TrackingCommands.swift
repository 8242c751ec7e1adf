import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// Runs `body` with a client of the tracking service, found through the registry; an RPC failure
/// is printed as `shoal COMMAND: CODE: message` and exits with status 1.
func withTracking<T>(
  _ mesh: MeshOptions, command: String, _ body: (TrackingV1.Tracking.Client) async throws -> T
) async throws -> T {
  let shoal = ShoalClient(location: try mesh.location())
  return try await reportingRPCErrors(command: command, closing: { await shoal.close() }) {
    try await body(TrackingV1.Tracking.Client(shoal.channel(for: "tracking")))
  }
}

/// An experiment given by id (digits) or by name.
func experimentID(_ text: String, _ client: TrackingV1.Tracking.Client) async throws -> String {
  if !text.isEmpty, text.allSatisfy(\.isNumber) { return text }
  var request = TrackingV1.GetExperimentRequest()
  request.name = text
  return try await client.getExperiment(request).experimentId
}

/// `shoal experiments …`.
struct ExperimentsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "experiments", abstract: "Create, list, update, delete and restore experiments.",
    subcommands: [Create.self, List.self, Update.self, Delete.self, Restore.self])

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an experiment.")
    @Argument(help: "Its name.") var name: String
    @Option(name: .customLong("tag"), help: "A tag key=value (repeatable).") var tags: [String] = []
    @Option(
      name: .customLong("org"),
      help: "The organisation that owns it (default: the token's; `local` on the Unix socket).")
    var organization: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = TrackingV1.CreateExperimentRequest()
      request.name = name
      request.tags = try parsePairs(tags, option: "--tag")
      request.organization = organization ?? ""
      let experiment = try await withTracking(mesh, command: "experiments create") {
        try await $0.createExperiment(request)
      }
      if json {
        emitJSON(experiment)
      } else {
        emit(
          "created experiment \(experiment.experimentId) '\(experiment.name)' in organisation \(experiment.organization)"
        )
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List experiments (active ones by default).")
    @Flag(help: "Deleted ones only.") var deleted = false
    @Flag(help: "Active and deleted.") var all = false
    @Option(
      help:
        "A filter: name, creation_time, last_update_time, tags.<key> (\"name LIKE 'road%' AND tags.team = 'maps'\").")
    var filter = ""
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = TrackingV1.ListExperimentsRequest()
      request.view = all ? .all : deleted ? .deletedOnly : .activeOnly
      request.filter = filter
      let first = request
      let experiments = try await withTracking(mesh, command: "experiments list") { client in
        try await allPages { token in
          var request = first
          request.pageToken = token
          let page = try await client.listExperiments(request)
          return (page.experiments, page.nextPageToken)
        }
      }
      if json {
        var response = TrackingV1.ListExperimentsResponse()
        response.experiments = experiments
        return emitJSON(response)
      }
      var table = TextTable("ID", "NAME", "ORGANIZATION", "STATE", "CREATED", "TAGS")
      for experiment in experiments {
        table.add(
          experiment.experimentId, experiment.name, experiment.organization,
          experiment.lifecycle.protoName?.lowercased() ?? "-",
          formatTime(experiment.createdAtMs),
          experiment.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
      }
      emit(table.rendered)
    }
  }

  struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Rename an experiment, set tags on it, or move it to another organisation.",
      discussion: "Moving needs the tracking service's Unix socket (the mesh administrator).")
    @Argument(help: "The experiment's id or name.") var experiment: String
    @Option(help: "Its new name.") var rename: String?
    @Option(name: .customLong("tag"), help: "A tag key=value to set (repeatable); other tags stay.")
    var tags: [String] = []
    @Option(name: .customLong("delete-tag"), help: "A tag key to remove (repeatable).") var deleteTags: [String] = []
    @Option(name: .customLong("org"), help: "The organisation to move it to.") var organization: String?
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      guard rename != nil || !tags.isEmpty || !deleteTags.isEmpty || organization != nil else {
        throw ValidationError("give --rename, --tag, --delete-tag or --org")
      }
      var request = TrackingV1.UpdateExperimentRequest()
      request.newName = rename ?? ""
      request.tags = try parsePairs(tags, option: "--tag")
      request.deleteTags = deleteTags
      request.organization = organization ?? ""
      let result = try await withTracking(mesh, command: "experiments update") { client in
        request.experimentId = try await experimentID(experiment, client)
        return try await client.updateExperiment(request)
      }
      emit("updated experiment \(result.experimentId) '\(result.name)' in organisation \(result.organization)")
    }
  }

  struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete an experiment and its runs (restorable).")
    @Argument(help: "The experiment's id or name.") var experiment: String
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let result = try await withTracking(mesh, command: "experiments delete") { client in
        var request = TrackingV1.ExperimentLifecycleRequest()
        request.experimentId = try await experimentID(experiment, client)
        return try await client.deleteExperiment(request)
      }
      emit("deleted experiment \(result.experimentId) '\(result.name)'")
    }
  }

  struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restore a deleted experiment and its runs.")
    @Argument(help: "The experiment's id or name.") var experiment: String
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let result = try await withTracking(mesh, command: "experiments restore") { client in
        var request = TrackingV1.ExperimentLifecycleRequest()
        request.experimentId = try await experimentID(experiment, client)
        return try await client.restoreExperiment(request)
      }
      emit("restored experiment \(result.experimentId) '\(result.name)'")
    }
  }
}
