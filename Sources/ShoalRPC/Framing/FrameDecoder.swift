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

/// Cuts a byte stream into frames. Pure: feed it bytes as they arrive, take frames out.
///
/// The size limit is checked from the header, before any payload is buffered, so a peer that
/// declares a huge frame is refused after ten bytes.
public struct FrameDecoder: Sendable {
  /// The largest payload accepted, in bytes.
  public var maxFrameSize: Int

  /// A decoder that accepts payloads up to `maxFrameSize` bytes.
  public init(maxFrameSize: Int) {
    self.maxFrameSize = maxFrameSize
  }

  /// The next complete frame in `buffer`, consuming its bytes; nil if more bytes are needed.
  public func next(from buffer: inout ByteBuffer) throws(FrameError) -> Frame? {
    guard buffer.readableBytes >= Frame.headerSize,
      let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
      let typeByte = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self),
      let flagsByte = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self),
      let stream = buffer.getInteger(at: buffer.readerIndex + 6, as: UInt32.self)
    else { return nil }

    guard let type = FrameType(rawValue: typeByte) else {
      throw FrameError(.unknownType, "unknown frame type \(typeByte) on stream \(stream)")
    }
    guard Int(length) <= maxFrameSize else {
      throw FrameError(
        .frameTooLarge, "\(type) frame of \(length) bytes on stream \(stream) exceeds the maximum of \(maxFrameSize)")
    }
    try Self.validate(type: type, stream: stream, length: Int(length))
    guard buffer.readableBytes >= Frame.headerSize + Int(length) else { return nil }

    buffer.moveReaderIndex(forwardBy: Frame.headerSize)
    let payload = buffer.readSlice(length: Int(length))!
    return Frame(type: type, flags: FrameFlags(rawValue: flagsByte), stream: stream, payload: payload)
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
