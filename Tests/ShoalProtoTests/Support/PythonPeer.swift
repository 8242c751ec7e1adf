import Foundation
import ShoalTestSupport

/// Google's protobuf (and onnx) in Python, driven through `Python/proto_peer.py`.
struct PythonPeer {
  let python: String
  let script: String
  /// A descriptor set of every file in Protos/, made with protoc for this peer.
  let descriptorSet: String
  private let directory: TemporaryDirectory

  /// Runs protoc for the descriptor set; the calls below wait for their processes without
  /// holding a thread of the cooperative pool (which every other test needs too).
  init() async throws {
    python = try TestEnvironment.python()
    script = "\(TestEnvironment.repositoryRoot)/Tests/ShoalProtoTests/Python/proto_peer.py"
    directory = try TemporaryDirectory()
    descriptorSet = directory.path("protos.pb")
    let protos = try FileManager.default.subpathsOfDirectory(atPath: "\(TestEnvironment.repositoryRoot)/Protos")
      .filter { $0.hasSuffix(".proto") }
    let result = try await Subprocess.run(
      try TestEnvironment.tool("protoc"),
      ["-I\(TestEnvironment.repositoryRoot)/Protos", "--include_imports", "--descriptor_set_out=\(descriptorSet)"]
        + protos
    )
    guard result.status == 0 else { throw TestEnvironmentError("protoc failed: \(result.stderrText)") }
  }

  private func call(_ arguments: [String], stdin: [UInt8] = []) async throws -> SubprocessResult {
    let result = try await Subprocess.run(python, [script] + arguments, stdin: stdin)
    guard result.status == 0 else {
      throw TestEnvironmentError("proto_peer.py \(arguments.first ?? "") failed: \(result.stderrText)")
    }
    return result
  }

  /// The reference implementation's binary encoding of a message given as JSON.
  func encode(_ type: String, json: String) async throws -> [UInt8] {
    try await call(["encode", descriptorSet, type], stdin: Array(json.utf8)).stdout
  }

  /// The reference implementation's JSON for a message given in the binary format.
  func decode(_ type: String, bytes: [UInt8]) async throws -> String {
    try await call(["decode", descriptorSet, type], stdin: bytes).stdoutText
  }

  /// The onnx package's backend test data directory.
  func onnxDataDirectory() async throws -> String {
    try await call(["onnx-data"]).stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The reference reading of each model file: a summary per file, by path.
  func onnxSummaries(_ paths: [String]) async throws -> [String: String] {
    var summaries: [String: String] = [:]
    for line in try await call(["onnx-summary"] + paths).stdoutText.split(separator: "\n") {
      let parts = line.split(separator: "\t", maxSplits: 1)
      summaries[String(parts[0])] = String(parts[1])
    }
    return summaries
  }
}
