import Foundation
import Hummingbird
import NIOCore
import ShoalProto
import ShoalRPC

/// Proxied artifacts: uploads and downloads stream through to tracking (or from the registry),
/// never held whole in memory.
extension MLflowAPI {
  static let artifactsPrefix = "/api/2.0/mlflow-artifacts/artifacts"

  func registerArtifacts(in router: Router<GatewayContext>) {
    let api = self
    router.put("api/2.0/mlflow-artifacts/artifacts/**") { request, context in
      let caller = try api.gateway.caller(request, context)
      let location = try Self.location(request)
      guard case .run(_, let run, let path) = location, !path.isEmpty else {
        throw GatewayError.invalid("artifacts are uploaded to a run's path: EXPERIMENT/RUN/artifacts/PATH")
      }
      try await api.upload(request.body, run: run, path: path, caller)
      return Response.json(.object([]))
    }
    router.get("api/2.0/mlflow-artifacts/artifacts/**") { request, context in
      let caller = try api.gateway.caller(request, context)
      return try await api.download(try Self.location(request), caller)
    }
    router.get("api/2.0/mlflow-artifacts/artifacts") { request, context in
      let caller = try api.gateway.caller(request, context)
      let fields = RequestFields(query: Gateway.query(request))
      let path = try fields.string("path")
      return Response.json(
        .object([("files", .array(try await api.list(try ArtifactPath(endpointPath: path), caller)))]))
    }
    // The client lists a folder's logged models too; Shoal keeps none of MLflow 3's logged models.
    router.post("api/2.0/mlflow/logged-models/search") { request, context in
      _ = try api.gateway.caller(request, context)
      return Response.json(.object([("models", .array([]))]))
    }
  }

  /// The artifact an endpoint's path names, percent-decoded.
  static func location(_ request: Request) throws(GatewayError) -> ArtifactPath {
    let raw = request.uri.path
    guard raw.hasPrefix(artifactsPrefix + "/") else { throw .invalid("path: '\(raw)' is not under \(artifactsPrefix)") }
    let tail = String(raw.dropFirst(artifactsPrefix.count + 1))
    guard let decoded = tail.removingPercentEncoding else {
      throw .invalid("path: '\(tail)' is not percent-encoded UTF-8")
    }
    return try ArtifactPath(endpointPath: decoded)
  }

  /// Streams `body` into tracking as the artifact `path` of `run`, in pieces of at most 1 MiB. A
  /// body past the limit, or one cut off, fails the upload, and tracking keeps nothing of it.
  func upload(_ body: RequestBody, run: String, path: String, _ caller: GatewayCaller) async throws {
    let limit = gateway.config.maxArtifactBytes
    _ = try await tracking.uploadArtifact(options: caller.options(timeout: .seconds(3600))) { sender in
      var header = TrackingV1.ArtifactUploadHeader()
      header.runId = run
      header.path = path
      var first = TrackingV1.UploadArtifactRequest()
      first.part = .header(header)
      try await sender.send(first)
      var total: Int64 = 0
      for try await var buffer in body {
        total += Int64(buffer.readableBytes)
        guard total <= limit else {
          throw GatewayError(
            .contentTooLarge, "RESOURCE_EXHAUSTED", "the artifact is larger than the limit of \(limit) bytes")
        }
        while let bytes = buffer.readBytes(length: min(buffer.readableBytes, 1 << 20)), !bytes.isEmpty {
          var chunk = TrackingV1.UploadArtifactRequest()
          chunk.part = .chunk(bytes)
          try await sender.send(chunk)
        }
      }
    }
  }

  /// A file's bytes, streamed as tracking (or the registry) sends them.
  func download(_ location: ArtifactPath, _ caller: GatewayCaller) async throws -> Response {
    switch location {
    case .run(_, let run, let path):
      guard let file = try await file(run: run, path: path, caller) else {
        throw GatewayError.notFound("run \(run) has no artifact '\(path)'")
      }
      var request = TrackingV1.DownloadArtifactRequest()
      request.runId = run
      request.path = path
      let tracking = self.tracking
      let download = request
      return Self.file(size: file.size) { out in
        try await tracking.downloadArtifact(download, options: caller.options(timeout: .seconds(3600))) { parts in
          for try await part in parts {
            if case .chunk(let bytes) = part.part { try await out.write(bytes) }
          }
        }
      }
    case .registry(let organization, let model, let version, let file):
      guard !file.isEmpty else {
        throw GatewayError.invalid("a registry version is a folder; download its \(ArtifactPath.registryFile)")
      }
      var request = RegistryV1.GetVersionRequest()
      request.organization = organization
      request.model = model
      request.version = version
      let stored = try await models.getVersion(request, options: caller.options())
      let models = self.models
      let download = request
      return Self.file(size: stored.size) { out in
        try await models.downloadVersion(download, options: caller.options(timeout: .seconds(3600))) { parts in
          for try await part in parts {
            if case .chunk(let bytes) = part.part { try await out.write(bytes) }
          }
        }
      }
    }
  }

  /// A file of `size` bytes, streamed as `send` writes it (backpressure through the writer).
  static func file(size: Int64, _ send: @escaping @Sendable (BodyWriter) async throws -> Void) -> Response {
    Response(
      status: .ok, headers: [.contentType: "application/octet-stream"],
      body: ResponseBody(contentLength: Int(size)) { writer in
        let out = BodyWriter(writer)
        try await send(out)
        try await out.finish()
      })
  }

  /// The entries directly inside a folder (or the file itself), named by their last part, as
  /// MLflow's server lists them.
  func list(_ location: ArtifactPath, _ caller: GatewayCaller) async throws -> [JSONValue] {
    switch location {
    case .registry(let organization, let model, let version, _):
      var request = RegistryV1.GetVersionRequest()
      request.organization = organization
      request.model = model
      request.version = version
      let stored = try await models.getVersion(request, options: caller.options())
      return [Self.entry(ArtifactPath.registryFile, size: stored.size)]
    case .run(_, let run, let path):
      let artifacts = try await artifacts(run: run, under: path, caller)
      if artifacts.isEmpty, !path.isEmpty, let file = try await file(run: run, path: path, caller) {
        return [Self.entry(String(path.split(separator: "/").last ?? ""), size: file.size)]
      }
      let folder = path.isEmpty ? "" : path + "/"
      var files: [(String, Int64)] = []
      var folders = Set<String>()
      for artifact in artifacts where artifact.path.hasPrefix(folder) {
        let rest = artifact.path.dropFirst(folder.count)
        if let slash = rest.firstIndex(of: "/") {
          folders.insert(String(rest[..<slash]))
        } else {
          files.append((String(rest), artifact.size))
        }
      }
      return folders.sorted().map { .object([("path", .string($0)), ("is_dir", .bool(true))]) }
        + files.sorted { $0.0 < $1.0 }.map { Self.entry($0.0, size: $0.1) }
    }
  }

  /// The files of `run` under the folder `path` ("" for all).
  func artifacts(run: String, under path: String, _ caller: GatewayCaller) async throws -> [TrackingV1.Artifact] {
    var listing = TrackingV1.ListArtifactsRequest()
    listing.runId = run
    listing.prefix = path
    return try await tracking.listArtifacts(listing, options: caller.options()).artifacts
  }

  /// The file `path` of `run`, nil if it has none there.
  func file(run: String, path: String, _ caller: GatewayCaller) async throws -> TrackingV1.Artifact? {
    let parent = path.split(separator: "/").dropLast().joined(separator: "/")
    return try await artifacts(run: run, under: parent, caller).first { $0.path == path }
  }

  static func entry(_ name: String, size: Int64) -> JSONValue {
    .object([("path", .string(name)), ("is_dir", .bool(false)), ("file_size", .string(String(size)))])
  }
}

/// A response body's writer, held where the download stream's closure can use it.
final class BodyWriter {
  private var writer: any ResponseBodyWriter

  init(_ writer: any ResponseBodyWriter) { self.writer = writer }

  func write(_ bytes: [UInt8]) async throws {
    try await writer.write(ByteBuffer(bytes: bytes))
  }

  func finish() async throws {
    let last = writer
    try await last.finish(nil)
  }
}
