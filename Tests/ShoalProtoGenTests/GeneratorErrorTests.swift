import Foundation
import ShoalProtoGen
import ShoalTestSupport
import Testing

/// A `.proto` the generator cannot map fails with the file, message and field named.
struct GeneratorErrorTests {
  private func generate(
    _ source: String, file: String = "bad/v1/bad.proto"
  ) async throws -> Result<Generator.Output, GenerationError> {
    let directory = try TemporaryDirectory()
    try FileManager.default.createDirectory(atPath: directory.path("bad/v1"), withIntermediateDirectories: true)
    try Data(source.utf8).write(to: URL(fileURLWithPath: directory.path(file)))
    let descriptorSet = directory.path("set.pb")
    let result = try await Subprocess.run(
      try TestEnvironment.tool("protoc"),
      ["-I\(directory.url.path)", "-I/usr/include", "--include_imports", "--descriptor_set_out=\(descriptorSet)", file]
    )
    #expect(result.status == 0, "protoc: \(result.stderrText)")
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: descriptorSet)))
    return Result { () throws(GenerationError) in try Generator.generate(descriptorSet: bytes) }
  }

  private func expectFailure(_ source: String, mentioning fragments: [String]) async throws {
    switch try await generate(source) {
    case .success: Issue.record("generation succeeded; expected an error mentioning \(fragments)")
    case .failure(let error):
      for fragment in fragments {
        #expect(error.description.contains(fragment), "'\(error.description)' should mention '\(fragment)'")
      }
    }
  }

  @Test func proto3OptionalNamesTheField() async throws {
    try await expectFailure(
      "syntax = \"proto3\"; package bad.v1; message Thing { optional int32 size = 1; }",
      mentioning: ["bad/v1/bad.proto", "bad.v1.Thing", "size", "optional"]
    )
  }

  @Test func proto2IsRefused() async throws {
    try await expectFailure(
      "syntax = \"proto2\"; package bad.v1; message Thing { required int32 size = 1; }",
      mentioning: ["bad/v1/bad.proto", "proto2"]
    )
  }

  @Test func wellKnownTypesAreRefused() async throws {
    try await expectFailure(
      """
      syntax = "proto3"; package bad.v1; import "google/protobuf/timestamp.proto";
      message Event { google.protobuf.Timestamp at = 1; }
      """,
      mentioning: ["bad/v1/bad.proto", "google/protobuf/timestamp.proto"]
    )
  }

  @Test func enumValueThatCollidesWithUnrecognizedIsRefused() async throws {
    try await expectFailure(
      "syntax = \"proto3\"; package bad.v1; enum Mode { MODE_UNSPECIFIED = 0; MODE_UNRECOGNIZED = 1; }",
      mentioning: ["bad/v1/bad.proto", "bad.v1.Mode", "MODE_UNRECOGNIZED", "unrecognized"]
    )
  }

  @Test func aValidFileGeneratesTypesAndAService() async throws {
    let output = try await generate(
      """
      syntax = "proto3"; package bad.v1;
      message Ping { bytes data = 1; }
      service Pinger { rpc Send(Ping) returns (stream Ping) { option idempotency_level = IDEMPOTENT; } }
      """
    ).get()
    let swift = try #require(output.swiftFiles.first { $0.path == "bad_v1_bad.pb.swift" }).contents
    #expect(swift.contains("public struct Ping: ProtoMessage"))
    #expect(swift.contains("kind: .serverStreaming, idempotent: true"))
    #expect(output.cHeader.contains("shoal_descriptor_bad__v1__ping(void) { return &bad__v1__ping__descriptor; }"))
  }
}
