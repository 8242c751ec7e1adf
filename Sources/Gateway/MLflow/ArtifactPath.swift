import Foundation

/// Where an MLflow artifact URI or artifact endpoint path points: a run's file or folder, or a
/// registry version's file.
///
/// Runs: `mlflow-artifacts:/EXPERIMENT/RUN/artifacts/PATH` (the client's form), `runs:/RUN/PATH`,
/// and `EXPERIMENT/RUN/artifacts/PATH` after `/api/2.0/mlflow-artifacts/artifacts/`. Registry
/// versions: `_registry/ORGANIZATION/MODEL/VERSION[/model.onnx]`. Paths are '/'-separated, and an
/// empty part, `.`, `..` or a backslash is refused (no path leaves the run).
enum ArtifactPath: Equatable {
  /// A file or folder (`path`, "" for the root) of run `run`.
  case run(experiment: String?, run: String, path: String)
  /// Version `version` of a registry model (`file` empty for the version's folder).
  case registry(organization: String, model: String, version: Int64, file: String)

  static let registryRoot = "_registry"
  /// The name a registry version's file has in listings.
  static let registryFile = "model.onnx"

  var run: String {
    if case .run(_, let run, _) = self { return run }
    return ""
  }

  var path: String {
    if case .run(_, _, let path) = self { return path }
    return ""
  }

  /// A model version's source.
  init(source: String) throws(GatewayError) {
    if source.hasPrefix("runs:/") {
      let parts = try Self.parts(String(source.dropFirst("runs:/".count)), in: source)
      guard let run = parts.first else { throw .invalid("source: '\(source)' names no run") }
      self = .run(experiment: nil, run: run, path: parts.dropFirst().joined(separator: "/"))
      return
    }
    var rest = source
    if let range = rest.range(of: "/mlflow-artifacts/artifacts/") {
      rest = String(rest[range.upperBound...])
    } else if rest.hasPrefix("mlflow-artifacts:") {
      rest = String(rest.dropFirst("mlflow-artifacts:".count))
      // mlflow-artifacts://host:port/… names a server; the path follows it.
      if rest.hasPrefix("//") {
        rest = String(rest.dropFirst(2))
        rest = rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? ""
      }
    } else {
      throw .invalid(
        "source: '\(source)' is not an artifact of a run here (runs:/RUN/PATH or mlflow-artifacts:/EXPERIMENT/RUN/artifacts/PATH); MLflow 3's logged models (models:/m-…) are not kept by Shoal"
      )
    }
    try self.init(endpointPath: rest, in: source)
    if case .registry = self { throw .invalid("source: '\(source)' is already a registry version") }
  }

  /// The part of an artifact endpoint's path after `/api/2.0/mlflow-artifacts/artifacts/`, or a
  /// listing's `path` parameter; percent-encoding already decoded.
  init(endpointPath text: String, in whole: String? = nil) throws(GatewayError) {
    let parts = try Self.parts(text, in: whole ?? text)
    if parts.first == Self.registryRoot {
      guard parts.count == 4 || parts.count == 5, let version = Int64(parts[3]), version > 0 else {
        throw .invalid("path: '\(whole ?? text)' is not _registry/ORGANIZATION/MODEL/VERSION[/\(Self.registryFile)]")
      }
      if parts.count == 5, parts[4] != Self.registryFile {
        throw .notFound("a registry version holds only \(Self.registryFile), not '\(parts[4])'")
      }
      self = .registry(
        organization: parts[1], model: parts[2], version: version, file: parts.count == 5 ? parts[4] : "")
      return
    }
    guard parts.count >= 3, parts[2] == "artifacts" else {
      throw .invalid("path: '\(whole ?? text)' is not EXPERIMENT/RUN/artifacts[/PATH]")
    }
    self = .run(experiment: parts[0], run: parts[1], path: parts.dropFirst(3).joined(separator: "/"))
  }

  private static func parts(_ text: String, in whole: String) throws(GatewayError) -> [String] {
    let trimmed = text.hasPrefix("/") ? String(text.drop { $0 == "/" }) : text
    let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    let withoutTrailing = parts.last == "" ? Array(parts.dropLast()) : parts
    for part in withoutTrailing where part.isEmpty || part == "." || part == ".." || part.contains("\\") {
      throw .invalid(
        "path: '\(whole)' has an empty, '.' or '..' part or a backslash; artifact paths stay inside their run")
    }
    return withoutTrailing
  }
}
