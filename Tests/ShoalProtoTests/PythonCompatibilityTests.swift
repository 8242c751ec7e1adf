import ShoalProto
import Testing

/// Wire and JSON compatibility with an independent implementation: Google's `protobuf` package.
struct PythonCompatibilityTests {
  /// Swift bytes read by Python come back as the same value through Python's JSON; Swift JSON
  /// parsed by Python encodes to bytes Swift decodes to the same value. Without maps the bytes
  /// are identical too (map entries may legally differ: Python writes default keys explicitly).
  private func checkBothWays<M: ProtoMessage>(_ message: M, identicalBytes: Bool = true) async throws {
    let peer = try await PythonPeer()
    let pythonJSON = try await peer.decode(M.protoMessageName, bytes: message.serializedBytes())
    #expect(try M(jsonString: pythonJSON) == message)
    let pythonBytes = try await peer.encode(M.protoMessageName, json: message.jsonString())
    #expect(try M(serializedBytes: pythonBytes) == message)
    if identicalBytes {
      let swiftBytes = try message.serializedBytes()
      let identical = pythonBytes == swiftBytes
      #expect(identical, "Python wrote \(pythonBytes.count) bytes, Swift \(swiftBytes.count)")
    }
  }

  @Test func scalarsMatchTheReference() async throws {
    try await checkBothWays(Samples.scalars)
  }

  @Test func repeatedFieldsMatchTheReference() async throws {
    try await checkBothWays(Samples.repeated)
  }

  @Test func nestedMessagesMapsAndOneofsMatchTheReference() async throws {
    try await checkBothWays(Samples.full, identicalBytes: false)
  }

  @Test func unknownEnumNumbersMatchTheReference() async throws {
    var scalars = TestingV1.Scalars()
    scalars.fColour = .unrecognized(77)
    try await checkBothWays(scalars)
  }

  @Test func wireProtocolMessagesMatchTheReference() async throws {
    var header = RpcV1.CallHeader()
    header.method = "/shoal.bench.v1.Bench/Echo"
    header.timeoutUs = 1_500_000
    var text = RpcV1.MetadataEntry()
    text.key = "authorization"
    text.value = .text("Bearer abc")
    var binary = RpcV1.MetadataEntry()
    binary.key = "trace-bin"
    binary.value = .binary([0, 1, 2])
    header.metadata = [text, binary]
    try await checkBothWays(header)
    var status = RpcV1.Status()
    status.code = .resourceExhausted
    status.message = "message of 5 MiB exceeds the 4 MiB limit"
    try await checkBothWays(status)
  }

  @Test func specialFloatsMatchTheReference() async throws {
    var scalars = TestingV1.Scalars()
    scalars.fDouble = -.infinity
    scalars.fFloat = .nan
    let peer = try await PythonPeer()
    let decoded = try TestingV1.Scalars(
      jsonString: try await peer.decode(TestingV1.Scalars.protoMessageName, bytes: scalars.serializedBytes()))
    #expect(decoded.fDouble == -.infinity)
    #expect(decoded.fFloat.isNaN)
    let bytes = try await peer.encode(TestingV1.Scalars.protoMessageName, json: scalars.jsonString())
    let identical = try bytes == scalars.serializedBytes()
    #expect(identical)
  }
}
