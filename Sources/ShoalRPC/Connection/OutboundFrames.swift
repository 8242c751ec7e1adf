import NIOCore
import ShoalProto

/// The frames a connection has produced since its last flush, appended to one buffer so that a
/// burst of responses (and their statuses, WINDOWs and PONGs) costs one allocation and one write.
struct OutboundFrames {
  /// The pending bytes.
  var buffer: ByteBuffer
  /// Bytes handed to the channel so far, frame headers included.
  private(set) var bytesWritten = 0

  init(allocator: ByteBufferAllocator) {
    buffer = allocator.buffer(capacity: 1024)
  }

  /// Appends a frame.
  mutating func append(_ frame: Frame) {
    frame.write(to: &buffer)
  }

  /// Appends a frame whose payload is a small control message (HELLO, CALL, STATUS, GOAWAY).
  mutating func append<M: ProtoMessage>(_ type: FrameType, stream: UInt32, _ message: M) {
    message.withSerializedSize { size, pack in
      Frame.writeHeader(type: type, flags: [], stream: stream, payloadLength: size, to: &buffer)
      buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) {
        pack(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size]))
        return size
      }
    }
  }

  /// Appends a frame with an empty payload.
  mutating func appendEmpty(_ type: FrameType, flags: FrameFlags = [], stream: UInt32) {
    Frame.writeHeader(type: type, flags: flags, stream: stream, payloadLength: 0, to: &buffer)
  }

  /// Appends a WINDOW frame granting `credit` bytes.
  mutating func appendWindow(stream: UInt32, credit: UInt32) {
    Frame.writeHeader(type: .window, flags: [], stream: stream, payloadLength: 4, to: &buffer)
    buffer.writeInteger(credit)
  }

  /// Takes the pending bytes, leaving a fresh buffer; nil if there are none.
  mutating func take(allocator: ByteBufferAllocator) -> ByteBuffer? {
    guard buffer.readableBytes > 0 else { return nil }
    let pending = buffer
    bytesWritten += pending.readableBytes
    buffer = allocator.buffer(capacity: max(1024, min(pending.readableBytes, 64 << 10)))
    return pending
  }
}
