import NIOCore
import ShoalProto

/// Writes a connection's frames: everything produced since the last flush goes into one buffer,
/// so that a burst of responses (with their statuses, WINDOWs and PONGs) costs one allocation
/// and one write. Flushes once per read burst, or once per event-loop tick for frames that
/// tasks produce. Lives on the connection's event loop.
final class FrameWriter {
  private let context: ChannelHandlerContext
  /// The pending bytes; append to it directly, then call `scheduleFlush()`.
  var buffer: ByteBuffer
  /// Bytes handed to the channel so far, frame headers included.
  private(set) var bytesWritten = 0
  /// Set once the connection is closing: later frames are dropped.
  var isClosed = false
  private var flushPending = false
  private var inReadBurst = false

  init(context: ChannelHandlerContext) {
    self.context = context
    buffer = context.channel.allocator.buffer(capacity: 1024)
  }

  /// Appends a frame.
  func append(_ frame: Frame) {
    guard !isClosed else { return }
    frame.write(to: &buffer)
    scheduleFlush()
  }

  /// Appends a frame whose payload is a small control message (HELLO, CALL, STATUS, GOAWAY).
  func append<M: ProtoMessage>(_ type: FrameType, stream: UInt32, _ message: M) {
    guard !isClosed else { return }
    do {
      // Control messages carry diagnostic text (a status message, a GOAWAY reason): a NUL in it
      // goes as U+FFFD rather than fail the frame.
      try message.withSerializedSize(replacingNUL: true) { size, pack in
        Frame.writeHeader(type: type, flags: [], stream: stream, payloadLength: size, to: &buffer)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) {
          pack(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size]))
          return size
        }
      }
    } catch {
      assertionFailure("replacingNUL encodes every message: \(error)")
    }
    scheduleFlush()
  }

  /// Appends a frame with an empty payload.
  func appendEmpty(_ type: FrameType, flags: FrameFlags = [], stream: UInt32) {
    guard !isClosed else { return }
    Frame.writeHeader(type: type, flags: flags, stream: stream, payloadLength: 0, to: &buffer)
    scheduleFlush()
  }

  /// Appends a WINDOW frame granting `credit` bytes.
  func appendWindow(stream: UInt32, credit: UInt32) {
    guard !isClosed else { return }
    Frame.writeHeader(type: .window, flags: [], stream: stream, payloadLength: 4, to: &buffer)
    buffer.writeInteger(credit)
    scheduleFlush()
  }

  /// Appends a keepalive PING (its eight bytes are the sender's clock, for the curious).
  func appendPing() {
    guard !isClosed else { return }
    Frame.writeHeader(type: .ping, flags: [], stream: 0, payloadLength: Frame.pingPayloadSize, to: &buffer)
    buffer.writeInteger(NIODeadline.now().uptimeNanoseconds)
    scheduleFlush()
  }

  /// Frames are being produced while reading: flush when the read burst ends.
  func readBurstStarted() {
    inReadBurst = true
  }

  /// The read burst ended: flush what it produced.
  func readBurstEnded() {
    inReadBurst = false
    if flushPending { flush() }
  }

  /// Hands the pending bytes to the channel and flushes now.
  func flush() {
    flushPending = false
    guard buffer.readableBytes > 0 else { return }
    let pending = buffer
    bytesWritten += pending.readableBytes
    buffer = context.channel.allocator.buffer(capacity: max(1024, min(pending.readableBytes, 64 << 10)))
    context.writeAndFlush(NIOAny(pending), promise: nil)
  }

  /// Arranges a flush at the end of the read burst, or on the next event-loop tick.
  func scheduleFlush() {
    guard !flushPending else { return }
    flushPending = true
    guard !inReadBurst else { return }
    let writer = NIOLoopBound(self, eventLoop: context.eventLoop)
    context.eventLoop.execute {
      let writer = writer.value
      if writer.flushPending && !writer.isClosed { writer.flush() }
    }
  }
}
