import CZstd
import NIOCore
import ShoalRPC
import Testing

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
