import NIOCore
import ShoalRPC
import Testing

/// Frames are cut from a byte stream exactly, whatever the chunking, and bad headers are refused
/// from the header alone.
struct FrameDecoderTests {
  private let decoder = FrameDecoder(maxMessageSize: 1024, maxFrameSize: 1024)

  private func bytes(_ frames: [Frame]) -> ByteBuffer {
    var buffer = ByteBuffer()
    for frame in frames { frame.write(to: &buffer) }
    return buffer
  }

  @Test func headerIsBigEndianLengthTypeFlagsStream() {
    let frame = Frame(
      type: .message, flags: [.compressed, .endStream], stream: 0x0102_0304, payload: ByteBuffer(bytes: [9, 8, 7]))
    #expect(Array(bytes([frame]).readableBytesView) == [0, 0, 0, 3, 2, 3, 1, 2, 3, 4, 9, 8, 7])
  }

  @Test func framesSurviveAnyChunking() throws {
    let frames = [
      Frame(type: .hello, stream: 0, payload: ByteBuffer(bytes: [1, 2])),
      Frame(type: .call, stream: 1, payload: ByteBuffer(bytes: Array(repeating: 5, count: 300))),
      Frame(type: .message, flags: .endStream, stream: 1),
      Frame(type: .ping, stream: 0, payload: ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8])),
      Frame(type: .window, stream: 3, payload: ByteBuffer(bytes: [0, 1, 0, 0])),
      Frame(type: .cancel, stream: 3),
    ]
    let all = Array(bytes(frames).readableBytesView)
    for chunkSize in [1, 2, 3, 7, 10, 11, 64, all.count] {
      var pending = ByteBuffer()
      var decoded: [Frame] = []
      var offset = 0
      while offset < all.count {
        pending.writeBytes(all[offset..<min(offset + chunkSize, all.count)])
        offset += chunkSize
        var decoder = decoder
        while case .frame(let frame)? = try decoder.next(from: &pending) { decoded.append(frame) }
      }
      #expect(decoded == frames, "chunks of \(chunkSize)")
      #expect(pending.readableBytes == 0)
    }
  }

  @Test func oversizeFrameIsRefusedFromItsHeader() {
    var buffer = ByteBuffer()
    Frame.writeHeader(type: .call, flags: [], stream: 1, payloadLength: 1025, to: &buffer)
    var decoder = decoder
    #expect {
      try decoder.next(from: &buffer)
    } throws: { ($0 as? FrameError)?.code == .frameTooLarge }
  }

  @Test func oversizeMessageIsSkippedAsItArrivesAndTheNextFrameStillDecodes() throws {
    var all = ByteBuffer()
    Frame(type: .message, stream: 3, payload: ByteBuffer(repeating: 1, count: 5000)).write(to: &all)
    Frame(type: .cancel, stream: 5).write(to: &all)
    var decoder = decoder
    var pending = ByteBuffer()
    var results: [DecodedFrame] = []
    while all.readableBytes > 0 {
      var chunk = all.readSlice(length: min(700, all.readableBytes))!
      pending.writeBuffer(&chunk)
      while let result = try decoder.next(from: &pending) { results.append(result) }
      #expect(pending.readableBytes < 1100, "an oversize payload must not be buffered")
    }
    #expect(results == [.oversizedMessage(stream: 3, size: 5000), .frame(Frame(type: .cancel, stream: 5))])
  }

  @Test(arguments: [
    ([0, 0, 0, 0, 42, 0, 0, 0, 0, 1] as [UInt8], FrameError.Code.unknownType),
    ([0, 0, 0, 0, 2, 0, 0, 0, 0, 0], .malformed),  // MESSAGE on stream 0
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 5], .malformed),  // HELLO on stream 5
    ([0, 0, 0, 1, 4, 0, 0, 0, 0, 5, 0], .malformed),  // CANCEL with a payload
    ([0, 0, 0, 2, 5, 0, 0, 0, 0, 0, 1, 2], .malformed),  // PING of 2 bytes
    ([0, 0, 0, 3, 8, 0, 0, 0, 0, 1, 1, 2, 3], .malformed),  // WINDOW of 3 bytes
  ])
  func badHeadersAreNamed(bytes: [UInt8], code: FrameError.Code) {
    var buffer = ByteBuffer(bytes: bytes)
    var decoder = decoder
    #expect {
      try decoder.next(from: &buffer)
    } throws: { ($0 as? FrameError)?.code == code }
  }

  @Test func incompleteFrameWaitsForMoreBytes() throws {
    var buffer = ByteBuffer(bytes: [0, 0, 0, 4, 2, 0, 0, 0, 0, 1, 1, 2])
    var decoder = decoder
    #expect(try decoder.next(from: &buffer) == nil)
    #expect(buffer.readableBytes == 12)
  }
}
