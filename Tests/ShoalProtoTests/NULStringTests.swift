import ShoalProto
import Testing

/// protobuf-c keeps strings NUL-terminated, so a string holding a NUL would be cut short there:
/// encoding refuses it, naming the field, instead of sending less than it was given.
struct NULStringTests {
  @Test func aStringHoldingANULIsRefusedNamingTheField() throws {
    var sample = TestingV1.Sample()
    sample.name = "before\u{0}after"
    let error = #expect(throws: ProtoError.self) { try sample.serializedBytes() }
    #expect(error?.code == .stringWithNUL)
    #expect(
      error?.message.contains("shoal.testing.v1.Sample: string field 'name'") == true, "\(String(describing: error))")

    // In a repeated field, a map key or value, a nested message: the same.
    var repeated = TestingV1.Repeated()
    repeated.rString = ["fine", "not\u{0}fine"]
    #expect(throws: ProtoError.self) { try repeated.serializedBytes() }
    sample = TestingV1.Sample()
    sample.counts = ["key\u{0}": 1]
    #expect(throws: ProtoError.self) { try sample.serializedBytes() }
    sample = TestingV1.Sample()
    sample.flags = [true: "\u{0}"]
    #expect(throws: ProtoError.self) { try sample.serializedBytes() }
    sample = TestingV1.Sample()
    var nested = TestingV1.Repeated()
    nested.rString = ["\u{0}"]
    sample.repeated = nested
    #expect(throws: ProtoError.self) { try sample.serializedBytes() }

    // Without a NUL the same strings encode, and come back whole.
    sample = TestingV1.Sample()
    sample.name = "before after ✓"
    sample.counts = ["key": 1]
    #expect(try TestingV1.Sample(serializedBytes: sample.serializedBytes()) == sample)
  }

  @Test func diagnosticTextCarriesANULAsAReplacementCharacter() throws {
    var sample = TestingV1.Sample()
    sample.name = "a\u{0}b"
    let bytes = try sample.withSerializedSize(replacingNUL: true) { size, pack in
      [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
        pack(UnsafeMutableRawBufferPointer(buffer))
        count = size
      }
    }
    #expect(try TestingV1.Sample(serializedBytes: bytes).name == "a\u{FFFD}b")
  }

  /// Another implementation (Google's protobuf) may send a string holding a NUL: decoding refuses
  /// it, naming the field, rather than keep the part before the NUL.
  @Test func aReceivedStringHoldingANULIsRefusedNamingTheField() throws {
    // Field 1 (name): tag 0x0A, length 3, "a", NUL, "b".
    let error = #expect(throws: ProtoError.self) { try TestingV1.Sample(serializedBytes: [0x0A, 3, 0x61, 0, 0x62]) }
    #expect(error?.code == .stringWithNUL && error?.message.contains("shoal.testing.v1.Sample.name") == true)
    // A NUL first, and a NUL alone: the string reads as empty, and is still refused.
    #expect(throws: ProtoError.self) { try TestingV1.Sample(serializedBytes: [0x0A, 2, 0, 0x62]) }
    #expect(throws: ProtoError.self) { try TestingV1.Sample(serializedBytes: [0x0A, 1, 0]) }
    // In a map entry (field 7, counts: key "k\0", value 1).
    let entry: [UInt8] = [0x0A, 2, 0x6B, 0, 0x10, 1]
    #expect(throws: ProtoError.self) {
      try TestingV1.Sample(serializedBytes: [0x3A, UInt8(entry.count)] + entry)
    }
    // The same strings without the NUL decode.
    #expect(try TestingV1.Sample(serializedBytes: [0x0A, 2, 0x61, 0x62]).name == "ab")
    #expect(try TestingV1.Sample(serializedBytes: [0x0A, 0]).name == "")
    #expect(try TestingV1.Sample(serializedBytes: [0x3A, 5, 0x0A, 1, 0x6B, 0x10, 1]).counts == ["k": 1])
  }
}
