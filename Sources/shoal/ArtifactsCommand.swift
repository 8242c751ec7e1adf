import ArgumentParser
import Foundation
import ShoalProto
import ShoalServiceStubs
import ShoalStore

/// `shoal artifacts …`: files of runs, in the tracking service's blob store.
struct ArtifactsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "artifacts", abstract: "Upload, download and list the files of runs.",
    subcommands: [Upload.self, Download.self, List.self])

  struct Upload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Upload a file as an artifact of a run.")
    @Argument(help: "The run id.") var run: String
    @Argument(help: "The file.") var file: String
    @Option(help: "Its path among the run's artifacts (default: the file's name).") var path: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let bytes: [UInt8]
      do {
        bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
      } catch {
        throw ValidationError("cannot read \(file): \(error.localizedDescription)")
      }
      let target = path ?? URL(fileURLWithPath: file).lastPathComponent
      let artifact = try await withTracking(mesh, command: "artifacts upload") { client in
        try await ArtifactsCommand.upload(client, run: run, path: target, bytes: bytes)
      }
      if json { return emitJSON(artifact) }
      emit("uploaded \(artifact.path) to run \(artifact.runId) (\(artifact.size) bytes, \(artifact.digest))")
    }
  }

  struct Download: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a run's artifact (verified).")
    @Argument(help: "The run id.") var run: String
    @Argument(help: "The artifact's path.") var path: String
    @Option(help: "Where to write it.") var out: String
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let (artifact, bytes) = try await withTracking(mesh, command: "artifacts download") { client in
        try await ArtifactsCommand.download(client, run: run, path: path)
      }
      try Data(bytes).write(to: URL(fileURLWithPath: out), options: .atomic)
      emit("downloaded \(artifact.path) of run \(artifact.runId) → \(out) (\(artifact.size) bytes, verified)")
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a run's artifacts.")
    @Argument(help: "The run id.") var run: String
    @Option(help: "Only under this directory.") var prefix = ""
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = TrackingV1.ListArtifactsRequest()
      request.runId = run
      request.prefix = prefix
      let response = try await withTracking(mesh, command: "artifacts list") { try await $0.listArtifacts(request) }
      if json { return emitJSON(response) }
      var table = TextTable("PATH", "SIZE", "DIGEST", "CREATED")
      for artifact in response.artifacts {
        table.add(artifact.path, "\(artifact.size)", artifact.digest, formatTime(artifact.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  /// Uploads `bytes` with their digest, in 1 MiB chunks, with a progress bar on a terminal.
  static func upload(
    _ client: TrackingV1.Tracking.Client, run: String, path: String, bytes: [UInt8]
  ) async throws -> TrackingV1.Artifact {
    let progress = ProgressLine(label: "uploading \(path)", total: bytes.count)
    let artifact = try await client.uploadArtifact { sender in
      var header = TrackingV1.ArtifactUploadHeader()
      header.runId = run
      header.path = path
      header.sha256 = BlobDigest.of(bytes).hex
      var first = TrackingV1.UploadArtifactRequest()
      first.part = .header(header)
      try await sender.send(first)
      try await progress.sendChunks(of: bytes) { piece in
        var message = TrackingV1.UploadArtifactRequest()
        message.part = .chunk(piece)
        try await sender.send(message)
      }
    }
    return artifact
  }

  /// Downloads an artifact and checks its digest.
  static func download(
    _ client: TrackingV1.Tracking.Client, run: String, path: String
  ) async throws -> (TrackingV1.Artifact, [UInt8]) {
    var request = TrackingV1.DownloadArtifactRequest()
    request.runId = run
    request.path = path
    let (artifact, bytes) = try await client.downloadArtifact(request) { responses in
      var artifact: TrackingV1.Artifact?
      var bytes: [UInt8] = []
      for try await response in responses {
        switch response.part {
        case .artifact(let header): artifact = header
        case .chunk(let chunk): bytes += chunk
        case nil: break
        }
      }
      return (artifact, bytes)
    }
    guard let artifact, BlobDigest.of(bytes).reference == artifact.digest else {
      logLine("shoal artifacts", "DATA_LOSS: the received bytes do not match the artifact's digest")
      throw ExitCode(1)
    }
    return (artifact, bytes)
  }
}
