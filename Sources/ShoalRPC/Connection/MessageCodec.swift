import NIOCore
import ShoalProto

/// Turns messages into MESSAGE frames and back, with the connection's zstd contexts and the
/// size limits of both sides. Lives on the connection's event loop.
final class MessageCodec {
  private let compression: ConnectionConfig.Compression
  private let maxReceiveSize: Int
  private var compressor: ZstdCompressor?
  private let decompressor = ZstdDecompressor()
  /// The peer's limit, from its HELLO.
  var maxSendSize: Int
  /// Whether the peer accepts zstd, from its HELLO.
  var peerAcceptsZstd = false
  /// Per message type, how many more messages go uncompressed without trying: messages of a
  /// type that did not compress (tensors of floats, files already compressed) are not tried
  /// again for a while, since trying costs as much as sending them raw and more. Types that
  /// do compress are always tried.
  private var skips: [ObjectIdentifier: (remaining: Int, next: Int)] = [:]

  init(config: ConnectionConfig) {
    compression = config.compression
    maxReceiveSize = config.maxMessageSize
    maxSendSize = config.maxMessageSize
  }

  /// Appends the MESSAGE frame holding `message` to `buffer` (and, for an empty message that
  /// ends the stream, the bare half-close after it).
  func writeMessage<M: ProtoMessage>(
    _ message: M, stream: UInt32, endStream: Bool, to buffer: inout ByteBuffer
  ) throws(RPCError) {
    let limit = maxSendSize
    let flags: FrameFlags = endStream ? .endStream : []
    let compress = compression.enabled && peerAcceptsZstd
    let threshold = compression.threshold
    let result: Result<Void, RPCError>
    do {
      result = try message.withSerializedSize { size, pack in
        guard size <= limit else {
          return .failure(
            RPCError(
              .resourceExhausted, "\(M.protoMessageName) of \(size) bytes exceeds the peer's limit of \(limit) bytes"))
        }
        if compress && size >= threshold && shouldTry(M.self) {
          var raw = ByteBuffer()
          raw.writeWithUnsafeMutableBytes(minimumWritableBytes: size) {
            pack(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])); return size
          }
          if compressor == nil { compressor = ZstdCompressor(level: compression.level) }
          let compressed = compressor!.compress(raw)
          remember(M.self, compressed: compressed != nil)
          if var compressed {
            Frame.writeHeader(
              type: .message, flags: flags.union(.compressed), stream: stream, payloadLength: compressed.readableBytes,
              to: &buffer)
            buffer.writeBuffer(&compressed)
          } else {
            Frame.writeHeader(type: .message, flags: flags, stream: stream, payloadLength: size, to: &buffer)
            buffer.writeBuffer(&raw)
          }
          return .success(())
        }
        if size == 0 && endStream {
          // An empty MESSAGE with END_STREAM is a bare half-close, so an empty message goes first on its own.
          Frame.writeHeader(type: .message, flags: [], stream: stream, payloadLength: 0, to: &buffer)
        }
        Frame.writeHeader(
          type: .message, flags: size == 0 && endStream ? .endStream : flags, stream: stream, payloadLength: size,
          to: &buffer)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) {
          pack(UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])); return size
        }
        return .success(())
      }
    } catch {
      // A string with a NUL is the sender's input: refused before anything is sent.
      throw RPCError(.invalidArgument, error.message, cause: error)
    }
    try result.get()
  }

  /// Whether to try compressing a message of type `type` now.
  private func shouldTry<M>(_ type: M.Type) -> Bool {
    guard var skip = skips[ObjectIdentifier(type)], skip.remaining > 0 else { return true }
    skip.remaining -= 1
    skips[ObjectIdentifier(type)] = skip
    return false
  }

  /// After a failed try, the next 8 messages of the type go raw, doubling to 256 while tries keep
  /// failing; a try that pays clears it.
  private func remember<M>(_ type: M.Type, compressed: Bool) {
    let key = ObjectIdentifier(type)
    guard !compressed else {
      skips[key] = nil
      return
    }
    let next = skips[key]?.next ?? 8
    skips[key] = (next, min(next * 2, 256))
  }

  /// The uncompressed payload of a received MESSAGE frame.
  func payload(of frame: Frame) throws(RPCError) -> ByteBuffer {
    guard frame.flags.contains(.compressed) else { return frame.payload }
    guard compression.enabled else {
      throw RPCError(.internal, "received a compressed message but compression is off on this side")
    }
    do {
      return try decompressor.decompress(frame.payload, limit: maxReceiveSize)
    } catch {
      throw RPCError(error.code == .tooLarge ? .resourceExhausted : .internal, error.message)
    }
  }
}

extension ByteBuffer {
  /// Decodes a whole message from the readable bytes.
  func decodeMessage<M: ProtoMessage>(as type: M.Type) throws(RPCError) -> M {
    let result = withUnsafeReadableBytes { bytes in
      Result { () throws(ProtoError) -> M in try M(serializedBytes: bytes) }
    }
    switch result {
    case .success(let message): return message
    case .failure(let error):
      throw RPCError(.internal, "cannot decode \(M.protoMessageName): \(error.message)", cause: error)
    }
  }
}
