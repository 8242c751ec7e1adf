import ShoalProto
import ShoalTestSupport
import Testing

/// Truncated, garbage and mistyped bytes decode to an error, never a crash or a leak.
/// (`swift test --sanitize=address` runs these under AddressSanitizer.)
struct MalformedBinaryTests {
  @Test func everyTruncationOfAValidMessageIsHandled() throws {
    let bytes = try Samples.full.serializedBytes()
    var failures = 0
    for length in 0..<bytes.count {
      do {
        _ = try TestingV1.Sample(serializedBytes: Array(bytes.prefix(length)))
      } catch {
        #expect(error.code == .malformedBinary || error.code == .invalidUTF8)
        failures += 1
      }
    }
    // Cutting at a field boundary leaves a valid, shorter message; most cuts do not.
    #expect(failures > bytes.count / 2)
  }

  @Test func randomGarbageNeverCrashes() {
    var generator = SplitMix64(seed: 0x5EED)
    var rejected = 0
    for _ in 0..<20_000 {
      let length = Int(generator.next() % 64)
      let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
      if (try? TestingV1.Sample(serializedBytes: bytes)) == nil { rejected += 1 }
    }
    #expect(rejected > 10_000)
  }

  @Test func mutatedValidMessagesNeverCrash() throws {
    let valid = try Samples.full.serializedBytes()
    var generator = SplitMix64(seed: 42)
    for _ in 0..<5_000 {
      var bytes = valid
      for _ in 0..<(1 + generator.next() % 4) {
        bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
      }
      if let decoded = try? TestingV1.Sample(serializedBytes: bytes) {
        // Whatever decodes must encode again.
        _ = try decoded.serializedBytes()
      }
    }
  }

  @Test func invalidUTF8InAStringFieldIsRejected() {
    // Field 1 (name), length 2, bytes 0xC3 0x28: an invalid two-byte sequence.
    #expect {
      try TestingV1.Sample(serializedBytes: [0x0A, 0x02, 0xC3, 0x28])
    } throws: { error in
      (error as? ProtoError)?.code == .invalidUTF8 && (error as? ProtoError)?.message.contains("Sample.name") == true
    }
  }

  @Test func wrongWireTypeIsRejected() {
    // Field 3 (origin, a message) sent as a varint.
    #expect(throws: ProtoError.self) { try TestingV1.Sample(serializedBytes: [0x18, 0x01]) }
  }
}
