import CZstd
import NIOCore
import ShoalProto
import Testing

@testable import ShoalRPC

/// zstd with a size threshold, "keep only if smaller", and decompression bounded before allocating.
struct ZstdCodecTests {
  @Test func compressibleMessagesShrinkAndRoundTrip() throws {
    let input = ByteBuffer(bytes: (0..<65_536).map { UInt8($0 % 7) })
    let compressed = try #require(ZstdCompressor().compress(input))
    #expect(compressed.readableBytes * 4 < input.readableBytes)
    #expect(try ZstdDecompressor().decompress(compressed, limit: 65_536) == input)
  }

  @Test func incompressibleMessagesAreNotCompressed() {
    var generator = SystemRandomNumberGenerator()
    let input = ByteBuffer(bytes: (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })
    #expect(ZstdCompressor().compress(input) == nil)
  }

  @Test func aBombIsRefusedBeforeAllocating() throws {
    // 64 MiB of zeros compress to a few KiB and declare their size in the frame header.
    let bomb = try #require(ZstdCompressor(level: 3).compress(ByteBuffer(repeating: 0, count: 64 << 20)))
    #expect(bomb.readableBytes < 64 << 10)
    #expect {
      try ZstdDecompressor().decompress(bomb, limit: 4 << 20)
    } throws: { ($0 as? DecompressionError)?.code == .tooLarge }
  }

  @Test func garbageAndTruncatedFramesAreCorrupt() throws {
    let decompressor = ZstdDecompressor()
    #expect {
      try decompressor.decompress(ByteBuffer(bytes: [1, 2, 3, 4, 5, 6, 7, 8]), limit: 1024)
    } throws: { ($0 as? DecompressionError)?.code == .corrupt }
    let valid = try #require(ZstdCompressor().compress(ByteBuffer(repeating: 1, count: 10_000)))
    #expect {
      try decompressor.decompress(
        valid.getSlice(at: valid.readerIndex, length: valid.readableBytes - 3)!, limit: 20_000)
    } throws: { ($0 as? DecompressionError)?.code == .corrupt }
    var twoFrames = valid
    var second = valid
    twoFrames.writeBuffer(&second)
    #expect {
      try decompressor.decompress(twoFrames, limit: 20_000)
    } throws: { ($0 as? DecompressionError)?.code == .corrupt }
    // The context is still usable after errors.
    #expect(try decompressor.decompress(valid, limit: 10_000).readableBytes == 10_000)
  }

  /// A frame that does not declare its size, as a streaming compressor writes it.
  private func frameWithoutDeclaredSize(_ input: [UInt8]) -> ByteBuffer {
    let context = ZSTD_createCCtx()!
    defer { ZSTD_freeCCtx(context) }
    ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0)
    var output = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
    let size = ZSTD_compress2(context, &output, output.count, input, input.count)
    #expect(ZSTD_getFrameContentSize(output, size) == UInt64.max, "the frame should not declare its size")
    return ByteBuffer(bytes: output[0..<size])
  }

  @Test func framesWithoutADeclaredSizeAreBoundedWhileDecompressing() throws {
    let small = frameWithoutDeclaredSize(Array(repeating: 3, count: 100_000))
    #expect(try ZstdDecompressor().decompress(small, limit: 100_000) == ByteBuffer(repeating: 3, count: 100_000))
    let bomb = frameWithoutDeclaredSize(Array(repeating: 0, count: 32 << 20))
    #expect {
      try ZstdDecompressor().decompress(bomb, limit: 1 << 20)
    } throws: { ($0 as? DecompressionError)?.code == .tooLarge }
  }
}

/// What the sender compresses: only savings of an eighth or more, and a message type that did not
/// compress goes raw for a while without being tried.
struct CompressionChoiceTests {
  static func frameIsCompressed(_ buffer: ByteBuffer) -> Bool {
    // length:u32 type:u8 flags:u8 …
    (buffer.getInteger(at: buffer.readerIndex + 5, as: UInt8.self)! & 0x01) != 0
  }

  @Test func aTypeThatDidNotCompressIsNotTriedForAWhile() throws {
    var config = ConnectionConfig.defaults
    config.compression.enabled = true
    let codec = MessageCodec(config: config)
    codec.peerAcceptsZstd = true
    var generator = SystemRandomNumberGenerator()
    var random = BenchV1.BenchRequest()
    random.payload = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
    var compressible = BenchV1.BenchRequest()
    compressible.payload = [UInt8](repeating: 7, count: 4096)
    func send(_ message: BenchV1.BenchRequest) throws -> Bool {
      var buffer = ByteBuffer()
      try codec.writeMessage(message, stream: 1, endStream: false, to: &buffer)
      return Self.frameIsCompressed(buffer)
    }
    #expect(try send(compressible))
    #expect(try !send(random))
    // The next 8 go raw, however well they would compress; then the type is tried again.
    for _ in 0..<8 { #expect(try !send(compressible)) }
    #expect(try send(compressible))
    #expect(try send(compressible))
  }

  @Test func aSmallSavingIsNotWorthIt() {
    var generator = SystemRandomNumberGenerator()
    // Random bytes with every eighth one zero: zstd saves a little, less than an eighth.
    let input = ByteBuffer(bytes: (0..<8192).map { $0 % 16 == 0 ? 0 : UInt8.random(in: 0...255, using: &generator) })
    #expect(ZstdCompressor().compress(input) == nil)
  }
}
