public import NIOCore

/// The kinds of frame in wire protocol v1.
public enum FrameType: UInt8, Sendable, Hashable, CaseIterable {
  /// `shoal.rpc.v1.Hello`, the first frame each way, on stream 0.
  case hello = 0
  /// `shoal.rpc.v1.CallHeader`: opens a stream.
  case call = 1
  /// One protobuf message, zstd-compressed if the COMPRESSED flag is set.
  case message = 2
  /// `shoal.rpc.v1.Status`: closes a stream, server to client.
  case status = 3
  /// Empty: either side abandons a stream.
  case cancel = 4
  /// Eight opaque bytes the peer echoes in a PONG.
  case ping = 5
  /// The echo of a PING's eight bytes.
  case pong = 6
  /// `shoal.rpc.v1.GoAway`: graceful shutdown, on stream 0.
  case goAway = 7
  /// A big-endian u32 of credit in bytes for one stream.
  case window = 8

  /// Whether frames of this type belong to stream 0 (the connection) rather than to a call.
  public var isConnectionLevel: Bool {
    switch self {
    case .hello, .ping, .pong, .goAway: true
    case .call, .message, .status, .cancel, .window: false
    }
  }
}

/// The flags byte of a frame.
public struct FrameFlags: OptionSet, Sendable, Hashable {
  /// The flags byte.
  public var rawValue: UInt8

  /// Flags from the flags byte.
  public init(rawValue: UInt8) { self.rawValue = rawValue }

  /// On MESSAGE: the payload is one zstd frame.
  public static let compressed = FrameFlags(rawValue: 0x01)
  /// On MESSAGE: the sender's half of the stream is closed after this frame.
  public static let endStream = FrameFlags(rawValue: 0x02)
}

/// One frame: `length:u32 type:u8 flags:u8 stream:u32 payload[length]`, integers big-endian.
public struct Frame: Sendable, Hashable {
  /// Bytes before the payload.
  public static let headerSize = 10
  /// The payload size of PING and PONG frames.
  public static let pingPayloadSize = 8

  /// What the frame carries.
  public var type: FrameType
  /// COMPRESSED and END_STREAM (on MESSAGE frames).
  public var flags: FrameFlags
  /// The stream the frame belongs to; 0 for the connection itself.
  public var stream: UInt32
  /// The payload, `length` bytes.
  public var payload: ByteBuffer

  /// A frame; `payload` defaults to empty.
  public init(type: FrameType, flags: FrameFlags = [], stream: UInt32, payload: ByteBuffer = ByteBuffer()) {
    self.type = type
    self.flags = flags
    self.stream = stream
    self.payload = payload
  }

  /// Appends the frame's header and payload to `buffer`.
  public func write(to buffer: inout ByteBuffer) {
    Self.writeHeader(type: type, flags: flags, stream: stream, payloadLength: payload.readableBytes, to: &buffer)
    var payload = payload
    buffer.writeBuffer(&payload)
  }

  /// Appends a frame header for a payload the caller writes next (straight into the buffer,
  /// without an intermediate copy).
  public static func writeHeader(
    type: FrameType, flags: FrameFlags, stream: UInt32, payloadLength: Int, to buffer: inout ByteBuffer
  ) {
    buffer.writeInteger(UInt32(payloadLength))
    buffer.writeInteger(type.rawValue)
    buffer.writeInteger(flags.rawValue)
    buffer.writeInteger(stream)
  }
}
