import ShoalProto
import Testing

/// Values survive encoding through protobuf-c and decoding back, field kind by field kind.
struct BinaryRoundTripTests {
  private func roundTrip<M: ProtoMessage>(_ message: M) throws -> M {
    try M(serializedBytes: message.serializedBytes())
  }

  @Test func everyScalarKindRoundTrips() throws {
    #expect(try roundTrip(Samples.scalars) == Samples.scalars)
  }

  @Test func everyRepeatedKindRoundTrips() throws {
    #expect(try roundTrip(Samples.repeated) == Samples.repeated)
  }

  @Test func nestedMessagesMapsAndOneofsRoundTrip() throws {
    let decoded = try roundTrip(Samples.full)
    #expect(decoded == Samples.full)
    #expect(decoded.children[0].children[0].source == .inlineData([]))
    #expect(decoded.children[0].children[0].extra == .flagged(false))
  }

  @Test func defaultMessageEncodesToNothing() throws {
    #expect(try TestingV1.Sample().serializedBytes().isEmpty)
    #expect(try TestingV1.Sample(serializedBytes: []) == TestingV1.Sample())
  }

  @Test func messagesWithoutFieldsRoundTrip() throws {
    #expect(try RpcV1.ListServicesRequest().serializedBytes().isEmpty)
    #expect(try RpcV1.ListServicesRequest(serializedBytes: []) == RpcV1.ListServicesRequest())
    #expect(try RpcV1.ListServicesRequest(jsonString: "{}") == RpcV1.ListServicesRequest())
  }

  @Test func oneofMemberAtItsDefaultValueIsStillSet() throws {
    var sample = TestingV1.Sample()
    sample.source = .offset(0)
    let bytes = try sample.serializedBytes()
    #expect(bytes == [15 << 3, 0])
    #expect(try TestingV1.Sample(serializedBytes: bytes).source == .offset(0))
  }

  @Test func unknownEnumValuesRoundTrip() throws {
    var scalars = TestingV1.Scalars()
    scalars.fColour = .unrecognized(99)
    var repeated = TestingV1.Repeated()
    repeated.rColour = [.unrecognized(-5), .red]
    #expect(try roundTrip(scalars).fColour == .unrecognized(99))
    #expect(try roundTrip(repeated).rColour == [.unrecognized(-5), .red])
    #expect(TestingV1.Colour(rawValue: 2) == .green)
    #expect(TestingV1.Colour.unrecognized(2) == .green)
  }

  @Test func wireBytesMatchTheProtobufEncoding() throws {
    var point = TestingV1.Sample.Point()
    point.x = 150
    point.y = -1
    // Field 1 varint 150 = 0x96 0x01; field 2 varint -1 = ten bytes.
    #expect(try point.serializedBytes() == [0x08, 0x96, 0x01, 0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
  }

  @Test func largeBytesFieldsArePackedFromTheirOwnStorage() throws {
    var request = BenchV1.BenchRequest()
    request.payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    let decoded = try roundTrip(request)
    #expect(decoded.payload == request.payload)
    var many = TestingV1.Repeated()
    many.rBytes = (0..<40).map { [UInt8](repeating: UInt8($0), count: 1500) }
    #expect(try roundTrip(many) == many)
  }

  @Test func serializedSizeAndPackIntoACallerBuffer() throws {
    let expected = try Samples.full.serializedBytes()
    let packed = try Samples.full.withSerializedSize { size, pack in
      var buffer = [UInt8](repeating: 0xAA, count: size + 4)
      buffer.withUnsafeMutableBytes { pack(UnsafeMutableRawBufferPointer(rebasing: $0[2..<(2 + size)])) }
      return buffer
    }
    #expect(Array(packed[2..<(packed.count - 2)]) == expected)
    #expect(packed.prefix(2) == [0xAA, 0xAA] && packed.suffix(2) == [0xAA, 0xAA])
  }

  @Test func recursiveMessagesRoundTrip() throws {
    var tensorType = Onnx.TypeProto.Tensor()
    tensorType.elemType = 1
    var inner = Onnx.TypeProto()
    inner.value = .tensorType(tensorType)
    var sequence = Onnx.TypeProto.SequenceMessage()
    sequence.elemType = inner
    var outer = Onnx.TypeProto()
    outer.value = .sequenceType(sequence)
    outer.denotation = "nested"
    #expect(try roundTrip(outer) == outer)
  }
}
