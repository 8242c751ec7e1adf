import Foundation
import ShoalImage
import ShoalModel
import ShoalTestSupport
import Testing

/// Decoding and resizing against Pillow on files Pillow makes: every PNG colour type and depth,
/// baseline and progressive JPEG.
@Suite(.serialized)
struct ImageTests {
  /// Writes each test image, and Pillow's RGB decode and resizes of it as .npy (uint8, H×W×3).
  static let makeImages = #"""
    import sys, numpy as np
    from PIL import Image
    out = sys.argv[1]
    rng = np.random.default_rng(5)
    h, w = 29, 41
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 6) % 256, (yy * 8) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    base = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
    rgb = Image.fromarray(base, "RGB")
    files = {
        "rgb.png": (rgb, {}),
        "rgba.png": (Image.fromarray(np.dstack([base, (xx * 5 % 256).astype(np.uint8)]), "RGBA"), {}),
        "gray.png": (rgb.convert("L"), {}),
        "gray-alpha.png": (rgb.convert("LA"), {}),
        "palette.png": (rgb.convert("P", palette=Image.ADAPTIVE, colors=37), {}),
        "bits1.png": (rgb.convert("1"), {}),
        "gray16.png": (Image.fromarray((base[:, :, 0].astype(np.uint16) * 257 + 3).astype(np.uint16)), {}),
        "baseline.jpg": (rgb, {"quality": 90}),
        "progressive.jpg": (rgb, {"quality": 80, "progressive": True}),
        "gray.jpg": (rgb.convert("L"), {"quality": 85}),
        "subsampled.jpg": (rgb, {"quality": 75, "subsampling": 2}),
    }
    for name, (image, options) in files.items():
        image.save(f"{out}/{name}", **options)
        decoded = Image.open(f"{out}/{name}")
        if decoded.mode == "I;16":
            decoded = Image.fromarray((np.asarray(decoded) >> 8).astype(np.uint8), "L")
        decoded = decoded.convert("RGB")
        np.save(f"{out}/{name}.npy", np.asarray(decoded))
    for filter, code in (("bilinear", Image.BILINEAR), ("area", Image.BOX)):
        for size in ((17, 11), (41, 13), (90, 70), (23, 29)):
            np.save(f"{out}/resized-{filter}-{size[0]}x{size[1]}.npy", np.asarray(rgb.resize(size, code)))
    np.save(f"{out}/source.npy", base)
    """#

  static let files = [
    "rgb.png", "rgba.png", "gray.png", "gray-alpha.png", "palette.png", "bits1.png", "gray16.png", "baseline.jpg",
    "progressive.jpg", "gray.jpg", "subsampled.jpg",
  ]

  static func images() async throws -> TemporaryDirectory {
    let directory = try TemporaryDirectory()
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", makeImages, directory.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    return directory
  }

  static func samples(_ path: String) throws -> [UInt8] { try Tensor(npyFile: path).elements(as: UInt8.self) }

  @Test func decodesEveryKindAsPillowDoes() async throws {
    let directory = try await Self.images()
    for name in Self.files {
      let bytes = try [UInt8](Data(contentsOf: directory.url.appendingPathComponent(name)))
      let image = try Image(decoding: bytes).rgb()
      #expect(image.width == 41 && image.height == 29, "\(name)")
      let expected = try Self.samples(directory.path("\(name).npy"))
      let difference = zip(image.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 255
      // PNG is lossless: equal. JPEG decoders agree to one level (libjpeg-turbo versions' rounding).
      #expect(difference <= (name.hasSuffix(".png") ? 0 : 1), "\(name) differs from Pillow by \(difference)")
    }
  }

  @Test(arguments: ResizeFilter.allCases)
  func resizesAsPillowDoes(_ filter: ResizeFilter) async throws {
    let directory = try await Self.images()
    let source = Image(width: 41, height: 29, channels: 3, pixels: try Self.samples(directory.path("source.npy")))
    for (width, height) in [(17, 11), (41, 13), (90, 70), (23, 29)] {
      let resized = source.resized(width: width, height: height, filter: filter)
      let expected = try Self.samples(directory.path("resized-\(filter.rawValue)-\(width)x\(height).npy"))
      #expect(resized.pixels == expected, "\(filter) \(width)×\(height)")
    }
  }

  @Test func corruptAndTruncatedFilesSayWhy() async throws {
    let directory = try await Self.images()
    let png = try [UInt8](Data(contentsOf: directory.url.appendingPathComponent("rgb.png")))
    let jpeg = try [UInt8](Data(contentsOf: directory.url.appendingPathComponent("baseline.jpg")))
    for (bytes, fragment) in [
      (Array("hello".utf8), "not a PNG or JPEG"), (Array(png.prefix(png.count / 2)), "PNG: "),
      (Array(jpeg.prefix(jpeg.count / 2)), "JPEG: "), (Array(png.prefix(30)), "PNG: "),
    ] {
      do {
        _ = try Image(decoding: bytes)
        Issue.record("decoded \(fragment)")
      } catch {
        #expect(error.message.contains(fragment), "\(error.message)")
      }
    }
  }

  /// Found by the fuzz target (Fuzz/crashes/image-slow-unit-…): 177 bytes of JPEG declaring
  /// 29712 × 18798 pixels had 1.7 GB allocated for them. A PNG may declare as much.
  @Test func imagesDeclaringTooManyPixelsAreRefusedBeforeDecoding() throws {
    let fuzzed = try [UInt8](
      Data(
        contentsOf: URL(
          fileURLWithPath:
            "\(TestEnvironment.repositoryRoot)/Fuzz/crashes/image-slow-unit-611874a7e672b21d72773893c8f6637a15a7d8a6")))
    do {
      _ = try Image(decoding: fuzzed)
      Issue.record("decoded a 29712 × 18798 JPEG of 177 bytes")
    } catch {
      #expect(error.message.contains("29712x18798, more pixels than the limit"), "\(error.message)")
    }
    // A PNG whose header (IHDR, its CRC made again) says 10000 × 10000: refused at the header.
    var png = try Image(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 12)).pngBytes()
    png.replaceSubrange(16..<24, with: [0, 0, 0x27, 0x10, 0, 0, 0x27, 0x10])
    let crc = Self.crc32(png[12..<29])
    png.replaceSubrange(
      29..<33, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
    do {
      _ = try Image(decoding: png)
      Issue.record("decoded a 10000 × 10000 PNG")
    } catch {
      #expect(error.message.contains("more pixels than the limit"), "\(error.message)")
    }
  }

  /// PNG's CRC-32 (ISO 3309) of a chunk's type and data.
  static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
    }
    return ~crc
  }

  @Test func tensorsFollowTheLayoutChannelOrderAndNormalisation() throws {
    let image = Image(width: 2, height: 1, channels: 3, pixels: [255, 0, 51, 0, 255, 102])
    let nchw = try ImageTensorFormat(
      shape: [-1, 3, 1, 2], tileSize: 0, channelOrder: "RGB", mean: [0.5, 0, 0], std: [0.5, 1, 1])
    #expect(try nchw.tensor([image]).shape == [1, 3, 1, 2])
    #expect(try nchw.tensor([image]).elements(as: Float.self) == [1, -1, 0, 1, 0.2, 0.4])
    let nhwc = try ImageTensorFormat(shape: [-1, -1, -1, 3], tileSize: 0, channelOrder: "BGR", mean: [], std: [])
    #expect(try nhwc.tensor([image]).shape == [1, 1, 2, 3])
    #expect(try nhwc.tensor([image]).elements(as: Float.self) == [0.2, 0, 1, 0.4, 1, 0])
    let tiled = try ImageTensorFormat(shape: [-1, 1, -1, -1], tileSize: 4, channelOrder: "RGB", mean: [], std: [])
    #expect(try tiled.tensor([image, image]).shape == [2, 1, 4, 4])
    #expect(throws: ImageError.self) {
      try ImageTensorFormat(shape: [-1, 5, 8, 8], tileSize: 0, channelOrder: "RGB", mean: [], std: [])
    }
  }

  @Test func pngRoundTrips() throws {
    let image = Image(width: 3, height: 2, channels: 3, pixels: (0..<18).map { UInt8($0 * 13) })
    #expect(try Image(decoding: try image.pngBytes()) == image)
  }
}
