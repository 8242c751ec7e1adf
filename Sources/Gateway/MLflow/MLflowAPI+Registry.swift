import Foundation
import Hummingbird
import ShoalProto
import ShoalRPC

/// Registered models, versions and aliases, over Shoal's registry.
///
/// A version is an ONNX file in Shoal's registry. `model-versions/create` takes the `.onnx` file at
/// the source (a run's artifact, or the one `.onnx` file in a run's artifact folder, such as the
/// folder `mlflow.register_model("runs:/RUN/model", …)` names) and uploads it as the new version;
/// its download URI is the run's folder again, so the client gets back what it logged.
extension MLflowAPI {
  func registerRegistry(in router: Router<GatewayContext>) {
    let models = self.models
    let api = self

    endpoint(router, "registered-models/create", [.post]) { fields, caller in
      var request = RegistryV1.CreateModelRequest()
      request.name = try fields.string("name")
      request.description = try fields.optionalString("description") ?? ""
      request.tags = try Self.tags(fields)
      let model = try await models.createModel(request, options: caller.options())
      return .object([("registered_model", MLflowJSON.registeredModel(model))])
    }
    endpoint(router, "registered-models/get", [.get]) { fields, caller in
      let model = try await api.model(try fields.string("name"), caller)
      return .object([("registered_model", try await api.registeredModel(model, caller))])
    }
    endpoint(router, "registered-models/search", [.get, .post]) { fields, caller in
      var request = RegistryV1.SearchModelsRequest()
      request.query = try Self.nameFilter(try fields.optionalString("filter"))
      request.pageSize = try Self.pageSize(fields, default: 100, limit: 500)
      request.pageToken = try fields.optionalString("page_token") ?? ""
      let response = try await models.searchModels(request, options: caller.options())
      var found: [JSONValue] = []
      for model in response.models { found.append(try await api.registeredModel(model, caller)) }
      var members: [(String, JSONValue)] = [("registered_models", .array(found))]
      if !response.nextPageToken.isEmpty { members.append(("next_page_token", .string(response.nextPageToken))) }
      return .object(members)
    }
    endpoint(router, "registered-models/get-latest-versions", [.get, .post]) { fields, caller in
      let model = try await api.model(try fields.string("name"), caller)
      guard model.latestVersion > 0 else { return .object([("model_versions", .array([]))]) }
      let version = try await api.version(model.name, number: model.latestVersion, caller)
      return .object([("model_versions", .array([try await api.modelVersion(version, caller)]))])
    }
    endpoint(router, "registered-models/alias", [.post]) { fields, caller in
      var request = RegistryV1.SetAliasRequest()
      request.model = try fields.string("name")
      request.alias = try fields.string("alias")
      request.version = try Self.versionNumber(fields)
      _ = try await models.setAlias(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "registered-models/alias", [.delete]) { fields, caller in
      var request = RegistryV1.DeleteAliasRequest()
      request.model = try fields.string("name")
      request.alias = try fields.string("alias")
      _ = try await models.deleteAlias(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "registered-models/alias", [.get]) { fields, caller in
      var request = RegistryV1.GetVersionRequest()
      request.model = try fields.string("name")
      request.alias = try fields.string("alias")
      // MLflow answers an unknown alias with 400, and its client expects that.
      let version = try await answer(mapping: { $0.code == .notFound ? GatewayError.invalid($0.message) : nil }) {
        try await models.getVersion(request, options: caller.options())
      }
      return .object([("model_version", try await api.modelVersion(version, caller))])
    }

    endpoint(router, "model-versions/create", [.post]) { fields, caller in
      let name = try fields.string("name")
      let source = try fields.string("source")
      let version = try await api.createVersion(
        name, source: source, runID: try fields.optionalString("run_id"), tags: try Self.tags(fields),
        description: try fields.optionalString("description"), caller)
      return .object([("model_version", try await api.modelVersion(version, caller))])
    }
    endpoint(router, "model-versions/get", [.get]) { fields, caller in
      let version = try await api.version(try fields.string("name"), number: try Self.versionNumber(fields), caller)
      return .object([("model_version", try await api.modelVersion(version, caller))])
    }
    endpoint(router, "model-versions/get-download-uri", [.get]) { fields, caller in
      let version = try await api.version(try fields.string("name"), number: try Self.versionNumber(fields), caller)
      return .object([("artifact_uri", .string(try await api.downloadURI(version, caller)))])
    }
    endpoint(router, "model-versions/search", [.get, .post]) { fields, caller in
      guard let name = try Self.nameFilter(try fields.optionalString("filter")).nonEmpty else {
        throw GatewayError.invalid("filter: Shoal searches the versions of one model: name='MODEL'")
      }
      var request = RegistryV1.ListVersionsRequest()
      request.model = name
      request.pageSize = try Self.pageSize(fields, default: 200, limit: 500)
      request.pageToken = try fields.optionalString("page_token") ?? ""
      let response = try await models.listVersions(request, options: caller.options())
      var found: [JSONValue] = []
      for version in response.versions { found.append(try await api.modelVersion(version, caller)) }
      var members: [(String, JSONValue)] = [("model_versions", .array(found))]
      if !response.nextPageToken.isEmpty { members.append(("next_page_token", .string(response.nextPageToken))) }
      return .object(members)
    }
  }

  func model(_ name: String, _ caller: GatewayCaller) async throws -> RegistryV1.Model {
    var request = RegistryV1.GetModelRequest()
    request.name = name
    return try await models.getModel(request, options: caller.options())
  }

  func version(_ name: String, number: Int64, _ caller: GatewayCaller) async throws -> RegistryV1.ModelVersion {
    var request = RegistryV1.GetVersionRequest()
    request.model = name
    request.version = number
    return try await models.getVersion(request, options: caller.options())
  }

  /// A registered model with its latest version, as MLflow's client shows it.
  func registeredModel(_ model: RegistryV1.Model, _ caller: GatewayCaller) async throws -> JSONValue {
    guard model.latestVersion > 0 else { return MLflowJSON.registeredModel(model) }
    let latest = try await version(model.name, number: model.latestVersion, caller)
    return MLflowJSON.registeredModel(model, latest: try await modelVersion(latest, caller))
  }

  func modelVersion(_ version: RegistryV1.ModelVersion, _ caller: GatewayCaller) async throws -> JSONValue {
    MLflowJSON.modelVersion(version, source: try await downloadURI(version, caller))
  }

  /// Where the client downloads a version: the run's artifacts it was registered from, else the
  /// registry's own file, which the artifact endpoints serve under `_registry/`.
  func downloadURI(_ version: RegistryV1.ModelVersion, _ caller: GatewayCaller) async throws -> String {
    if !version.sourceRun.isEmpty {
      var request = TrackingV1.GetRunRequest()
      request.runId = version.sourceRun
      if let run = try? await tracking.getRun(request, options: caller.options()) {
        let root = MLflowJSON.artifactURI(experiment: run.experimentId, run: run.runId)
        return version.sourcePath.isEmpty ? root : "\(root)/\(version.sourcePath)"
      }
    }
    return "mlflow-artifacts:/\(ArtifactPath.registryRoot)/\(version.organization)/\(version.model)/\(version.version)"
  }

  /// Uploads the `.onnx` file at `source` as a new version of `name`.
  func createVersion(
    _ name: String, source: String, runID: String?, tags: [String: String], description: String?,
    _ caller: GatewayCaller
  ) async throws -> RegistryV1.ModelVersion {
    let location = try ArtifactPath(source: source)
    if let runID, !runID.isEmpty, runID != location.run {
      throw GatewayError.invalid("source: '\(source)' is an artifact of run \(location.run), not of run_id \(runID)")
    }
    let file: TrackingV1.Artifact
    if !location.path.isEmpty, let exact = try await self.file(run: location.run, path: location.path, caller) {
      file = exact
    } else {
      let artifacts = try await artifacts(run: location.run, under: location.path, caller)
      let onnx = artifacts.filter { $0.path.hasSuffix(".onnx") }
      guard onnx.count == 1 else {
        throw GatewayError.invalid(
          onnx.isEmpty
            ? "source: '\(source)' holds no .onnx file; Shoal's registry keeps ONNX models"
            : "source: '\(source)' holds \(onnx.count) .onnx files (\(onnx.map(\.path).joined(separator: ", "))); name one"
        )
      }
      file = onnx[0]
    }
    var header = RegistryV1.UploadHeader()
    header.model = name
    header.sourceRun = location.run
    header.sourcePath = location.path
    header.tags = tags
    if let description, !description.isEmpty { header.tags["mlflow.description"] = description }
    header.sha256 = String(file.digest.dropFirst("blob:sha256:".count))
    var download = TrackingV1.DownloadArtifactRequest()
    download.runId = file.runId
    download.path = file.path
    let tracking = self.tracking
    return try await models.uploadVersion(options: caller.options(timeout: .seconds(600))) { sender in
      var first = RegistryV1.UploadVersionRequest()
      first.part = .header(header)
      try await sender.send(first)
      try await tracking.downloadArtifact(download, options: caller.options(timeout: .seconds(600))) { parts in
        for try await part in parts {
          guard case .chunk(let bytes) = part.part else { continue }
          var chunk = RegistryV1.UploadVersionRequest()
          chunk.part = .chunk(bytes)
          try await sender.send(chunk)
        }
      }
    }
  }

  static func versionNumber(_ fields: RequestFields) throws(GatewayError) -> Int64 {
    guard let version = try fields.optionalInt64("version"), version > 0 else {
      throw GatewayError.invalid("version: a version number (1, 2, …) is required")
    }
    return version
  }

  /// The model name in MLflow's registry filters (`name = 'x'`, `name LIKE '%x%'`), as Shoal's
  /// search text; empty for no filter.
  static func nameFilter(_ filter: String?) throws(GatewayError) -> String {
    guard let filter = filter?.trimmingCharacters(in: .whitespaces), !filter.isEmpty else { return "" }
    let quoted = filter.split(separator: "'", omittingEmptySubsequences: false)
    guard quoted.count == 3, filter.lowercased().hasPrefix("name") else {
      throw GatewayError.invalid("filter: '\(filter)' is not name = '…' or name LIKE '…'")
    }
    return quoted[1].replacingOccurrences(of: "%", with: "")
  }
}

extension String {
  var nonEmpty: String? { isEmpty ? nil : self }
}
