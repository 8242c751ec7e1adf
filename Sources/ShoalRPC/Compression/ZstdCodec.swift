import CZstd
public import NIOCore

/// Why a compressed message could not be decompressed.
public struct DecompressionError: Error, Hashable, CustomStringConvertible {
  /// What was wrong; maps to RESOURCE_EXHAUSTED and INTERNAL respectively.
  public enum Code: Hashable, Sendable {
    /// The message would decompress to more than the limit.
    case tooLarge
    /// The payload is not exactly one valid zstd frame.
    case corrupt
  }

  /// What was wrong.
  public var code: Code
  /// What was wrong, with the sizes involved.
  public var message: String

  /// An error with a code and a message.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}

/// Compresses outgoing messages with one reused zstd context (one per connection direction;
/// not thread-safe).
public final class ZstdCompressor {
  private let context: OpaquePointer
  /// The zstd compression level (1 is fastest; zstd's default is 3).
  public let level: Int32

  /// A compressor at `level`.
  public init(level: Int32 = 1) {
    context = ZSTD_createCCtx()!
    self.level = level
  }

  deinit { ZSTD_freeCCtx(context) }

  /// The compressed form of `input`, or nil when compressing saves less than an eighth: a small
  /// saving costs the receiver more to decompress than it saves on the wire.
  public func compress(_ input: ByteBuffer) -> ByteBuffer? {
    input.withUnsafeReadableBytes { source -> ByteBuffer? in
      let bound = ZSTD_compressBound(source.count)
      var output = ByteBuffer()
      output.reserveCapacity(bound)
      let written = output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { destination in
        let result = ZSTD_compressCCtx(context, destination.baseAddress, bound, source.baseAddress, source.count, level)
        return ZSTD_isError(result) != 0 ? 0 : result
      }
      return written > 0 && written <= source.count - source.count / 8 ? output : nil
    }
  }
}

/// Decompresses incoming messages with one reused zstd context, never producing more than a
/// limit: a frame that declares a larger size is refused before anything is allocated, and a
/// frame without a declared size is decompressed in pieces and refused as soon as it passes the limit.
public final class ZstdDecompressor {
  private static let contentSizeUnknown = UInt64.max
  private static let contentSizeError = UInt64.max - 1

  private let context: OpaquePointer

  /// A decompressor with its own context.
  public init() {
    context = ZSTD_createDCtx()!
  }

  deinit { ZSTD_freeDCtx(context) }

  /// The decompressed bytes of `input`, which must be exactly one zstd frame.
  public func decompress(_ input: ByteBuffer, limit: Int) throws(DecompressionError) -> ByteBuffer {
    let result = input.withUnsafeReadableBytes { source in
      Result { () throws(DecompressionError) -> ByteBuffer in try decompress(source, limit: limit) }
    }
    return try result.get()
  }

  private func decompress(_ source: UnsafeRawBufferPointer, limit: Int) throws(DecompressionError) -> ByteBuffer {
    guard ZSTD_findFrameCompressedSize(source.baseAddress, source.count) == source.count else {
      throw DecompressionError(.corrupt, "compressed message of \(source.count) bytes is not exactly one zstd frame")
    }
    let declared = ZSTD_getFrameContentSize(source.baseAddress, source.count)
    if declared == Self.contentSizeError {
      throw DecompressionError(.corrupt, "compressed message has an invalid zstd frame header")
    }
    if declared != Self.contentSizeUnknown {
      guard declared <= UInt64(limit) else {
        throw DecompressionError(.tooLarge, "message decompresses to \(declared) bytes, over the limit of \(limit)")
      }
      return try decompressKnownSize(source, size: Int(declared))
    }
    return try decompressStreaming(source, limit: limit)
  }

  private func decompressKnownSize(_ source: UnsafeRawBufferPointer, size: Int) throws(DecompressionError) -> ByteBuffer
  {
    var output = ByteBuffer()
    var failure: String?
    output.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { destination in
      let result = ZSTD_decompressDCtx(context, destination.baseAddress, size, source.baseAddress, source.count)
      if ZSTD_isError(result) != 0 {
        failure = String(cString: ZSTD_getErrorName(result))
        return 0
      }
      if result != size { failure = "frame declared \(size) bytes but held \(result)" }
      return result
    }
    if let failure { throw DecompressionError(.corrupt, "compressed message is corrupt: \(failure)") }
    return output
  }

  private func decompressStreaming(
    _ source: UnsafeRawBufferPointer, limit: Int
  ) throws(DecompressionError) -> ByteBuffer {
    ZSTD_DCtx_reset(context, ZSTD_reset_session_only)
    var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
    var output = ByteBuffer()
    while true {
      // Room for one byte past the limit, so that passing it is seen.
      let room = min(64 * 1024, limit + 1 - output.readableBytes)
      var remaining = 0
      let produced = output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { destination in
        var out = ZSTD_outBuffer(dst: destination.baseAddress, size: room, pos: 0)
        remaining = ZSTD_decompressStream(context, &out, &input)
        return ZSTD_isError(remaining) != 0 ? 0 : out.pos
      }
      if ZSTD_isError(remaining) != 0 {
        throw DecompressionError(
          .corrupt, "compressed message is corrupt: \(String(cString: ZSTD_getErrorName(remaining)))")
      }
      if output.readableBytes > limit {
        throw DecompressionError(.tooLarge, "message decompresses to more than the limit of \(limit) bytes")
      }
      if remaining == 0 { return output }
      if produced == 0 && input.pos == input.size {
        throw DecompressionError(.corrupt, "compressed message is truncated")
      }
    }
  }
}
