public import NIOCore

/// Why the bytes from a peer are not valid frames. Each is a connection error: the connection
/// answers with GOAWAY naming it and closes.
public struct FrameError: Error, Hashable, CustomStringConvertible {
  /// What was wrong.
  public enum Code: Hashable, Sendable {
    /// A frame's declared payload is larger than this side accepts.
    case frameTooLarge
    /// The type byte is not one of wire protocol v1's frame types.
    case unknownType
    /// The frame's stream id or payload size does not fit its type.
    case malformed
  }

  /// What was wrong.
  public var code: Code
  /// What was wrong, with the stream and sizes involved.
  public var message: String

  /// An error with a code and a message that names the frame.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}

/// What the decoder found next in the byte stream.
public enum DecodedFrame: Sendable, Hashable {
  /// A complete frame.
  case frame(Frame)
  /// A MESSAGE frame larger than the message limit, whose payload was read and dropped; the
  /// stream (not the connection) fails with RESOURCE_EXHAUSTED.
  case oversizedMessage(stream: UInt32, size: Int)
}

/// Cuts a byte stream into frames. Pure: feed it bytes as they arrive, take frames out.
///
/// Sizes are checked from the header, before any payload is buffered: a MESSAGE over the
/// message limit is skipped as it streams past (its stream fails, the connection lives on);
/// any other frame over the frame limit is a connection error.
public struct FrameDecoder: Sendable {
  /// The largest MESSAGE payload accepted, in bytes.
  public var maxMessageSize: Int
  /// The largest payload of any other frame, in bytes.
  public var maxFrameSize: Int
  private var skipping: (stream: UInt32, size: Int, remaining: Int)?

  /// A decoder with the given limits.
  public init(maxMessageSize: Int, maxFrameSize: Int) {
    self.maxMessageSize = maxMessageSize
    self.maxFrameSize = maxFrameSize
  }

  /// The next complete frame in `buffer`, consuming its bytes; nil if more bytes are needed.
  public mutating func next(from buffer: inout ByteBuffer) throws(FrameError) -> DecodedFrame? {
    if let skip = skipping {
      let dropped = min(skip.remaining, buffer.readableBytes)
      buffer.moveReaderIndex(forwardBy: dropped)
      guard dropped == skip.remaining else {
        skipping = (skip.stream, skip.size, skip.remaining - dropped)
        return nil
      }
      skipping = nil
      return .oversizedMessage(stream: skip.stream, size: skip.size)
    }
    guard buffer.readableBytes >= Frame.headerSize,
      let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
      let typeByte = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self),
      let flagsByte = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self),
      let stream = buffer.getInteger(at: buffer.readerIndex + 6, as: UInt32.self)
    else { return nil }

    guard let type = FrameType(rawValue: typeByte) else {
      throw FrameError(.unknownType, "unknown frame type \(typeByte) on stream \(stream)")
    }
    try Self.validate(type: type, stream: stream, length: Int(length))
    if type == .message && Int(length) > maxMessageSize {
      buffer.moveReaderIndex(forwardBy: Frame.headerSize)
      skipping = (stream, Int(length), Int(length))
      return try next(from: &buffer)
    }
    guard type == .message || Int(length) <= maxFrameSize else {
      throw FrameError(
        .frameTooLarge, "\(type) frame of \(length) bytes on stream \(stream) exceeds the maximum of \(maxFrameSize)")
    }
    guard buffer.readableBytes >= Frame.headerSize + Int(length) else { return nil }

    buffer.moveReaderIndex(forwardBy: Frame.headerSize)
    let payload = buffer.readSlice(length: Int(length))!
    return .frame(Frame(type: type, flags: FrameFlags(rawValue: flagsByte), stream: stream, payload: payload))
  }
  private static func validate(type: FrameType, stream: UInt32, length: Int) throws(FrameError) {
    if type.isConnectionLevel && stream != 0 {
      throw FrameError(.malformed, "\(type) frame on stream \(stream); it belongs on stream 0")
    }
    if !type.isConnectionLevel && stream == 0 {
      throw FrameError(.malformed, "\(type) frame on stream 0; it needs a stream")
    }
    let expectedLength: Int? =
      switch type {
      case .ping, .pong: Frame.pingPayloadSize
      case .window: 4
      case .cancel: 0
      default: nil
      }
    if let expectedLength, length != expectedLength {
      throw FrameError(.malformed, "\(type) frame of \(length) bytes on stream \(stream); it carries \(expectedLength)")
    }
  }
}
