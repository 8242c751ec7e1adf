import NIOCore
import ShoalProto
import ShoalRPC

/// Frames built by hand, for tests that speak the protocol without the client library.
enum WireFrames {
  static func frame(_ type: FrameType, flags: FrameFlags = [], stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
    var buffer = ByteBuffer()
    Frame(type: type, flags: flags, stream: stream, payload: ByteBuffer(bytes: payload)).write(to: &buffer)
    return Array(buffer.readableBytesView)
  }

  /// A message's bytes; the messages built here hold no string with a NUL, so encoding cannot fail.
  static func bytes(_ message: some ProtoMessage) -> [UInt8] {
    try! message.serializedBytes()
  }

  static func hello(version: UInt32 = 1) -> [UInt8] {
    var hello = RpcV1.Hello()
    hello.protocolVersion = version
    hello.maxFrameSize = 4 << 20
    hello.initialWindow = 1 << 20
    return frame(.hello, stream: 0, bytes(hello))
  }

  static func call(_ stream: UInt32, _ method: String = "/shoal.bench.v1.Bench/Echo") -> [UInt8] {
    var header = RpcV1.CallHeader()
    header.method = method
    return frame(.call, stream: stream, bytes(header))
  }

  static func echoRequest(_ stream: UInt32, _ payload: [UInt8] = [1, 2, 3]) -> [UInt8] {
    var request = BenchV1.BenchRequest()
    request.payload = payload
    return frame(.message, flags: .endStream, stream: stream, bytes(request))
  }

  /// Splits what a server sent into frames (the last one may be cut off).
  static func parse(_ bytes: [UInt8]) -> [Frame] {
    var buffer = ByteBuffer(bytes: bytes)
    var decoder = FrameDecoder(maxMessageSize: 64 << 20, maxFrameSize: 64 << 20)
    var frames: [Frame] = []
    while case .frame(let frame)? = try? decoder.next(from: &buffer) { frames.append(frame) }
    return frames
  }

  static func goAway(in frames: [Frame]) -> RpcV1.GoAway? {
    guard let frame = frames.first(where: { $0.type == .goAway }) else { return nil }
    return try? RpcV1.GoAway(serializedBytes: Array(frame.payload.readableBytesView))
  }

  static func statuses(in frames: [Frame]) -> [UInt32: RpcV1.Status] {
    var result: [UInt32: RpcV1.Status] = [:]
    for frame in frames where frame.type == .status {
      result[frame.stream] = try? RpcV1.Status(serializedBytes: Array(frame.payload.readableBytesView))
    }
    return result
  }
}
