import Foundation
import ShoalTestSupport
import Testing

/// The committed generated code is exactly what scripts/gen-protos makes from Protos/ today.
struct GeneratedCodeIsCurrentTests {
  static let generatedDirectories = [
    "Sources/CProtobufDescriptor",
    "Sources/ShoalProtoC",
    "Sources/ShoalProto/Generated",
    "Sources/ShoalServiceStubs/Generated",
  ]

  @Test func regeneratingChangesNothing() async throws {
    let root = TestEnvironment.repositoryRoot
    let output = try TemporaryDirectory()
    let result = try await Subprocess.run(
      "/bin/bash", ["\(root)/scripts/gen-protos", "--out", output.url.path],
      environment: ["SHOAL_PROTOGEN": try TestEnvironment.product("shoal-protogen")]
    )
    #expect(result.status == 0, "gen-protos failed: \(result.stderrText)")
    for directory in Self.generatedDirectories {
      let committed = try Self.files(in: "\(root)/\(directory)")
      let regenerated = try Self.files(in: output.path(directory))
      #expect(Set(committed.keys) == Set(regenerated.keys), "files in \(directory) differ; run scripts/gen-protos")
      for (path, contents) in committed where regenerated[path] != contents {
        Issue.record("\(directory)/\(path) is stale; run scripts/gen-protos and commit the result")
      }
    }
  }

  private static func files(in directory: String) throws -> [String: Data] {
    var result: [String: Data] = [:]
    for path in try FileManager.default.subpathsOfDirectory(atPath: directory) {
      var isDirectory: ObjCBool = false
      let full = "\(directory)/\(path)"
      if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
        result[path] = try Data(contentsOf: URL(fileURLWithPath: full))
      }
    }
    return result
  }
}
