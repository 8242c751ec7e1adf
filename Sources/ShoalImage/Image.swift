import CImageCodecs

/// A decoded image: 8-bit samples, interleaved, gray (1 channel) or RGB (3).
///
/// PNG (gray, RGB, RGBA, palette; 1–16 bits) and JPEG (baseline and progressive) decode as
/// Pillow's `Image.open(…).convert("RGB")` or `"L"` would: alpha is dropped, 16-bit samples keep
/// their high byte, JPEG uses libjpeg's integer IDCT with fancy upsampling.
public struct Image: Sendable, Equatable {
  public let width: Int
  public let height: Int
  /// 1 (gray) or 3 (RGB).
  public let channels: Int
  /// `height` rows of `width × channels` samples.
  public let pixels: [UInt8]

  /// An image of the given samples.
  ///
  /// - Precondition: `pixels.count == width × height × channels`, channels 1 or 3.
  public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
    precondition(channels == 1 || channels == 3, "an image has 1 or 3 channels")
    precondition(pixels.count == width * height * channels, "\(pixels.count) samples do not fill \(width)×\(height)")
    self.width = width
    self.height = height
    self.channels = channels
    self.pixels = pixels
  }

  /// Decodes a PNG or JPEG file, told apart by its first bytes.
  ///
  /// - Throws: `ImageError` with the decoder's reason: not an image, truncated, corrupt.
  public init(decoding bytes: [UInt8]) throws(ImageError) {
    let isPNG = bytes.starts(with: [0x89, 0x50, 0x4E, 0x47])
    let isJPEG = bytes.starts(with: [0xFF, 0xD8])
    guard isPNG || isJPEG else {
      throw ImageError("not a PNG or JPEG file (the first bytes are neither signature)")
    }
    var decoded = shoal_decoded_image()
    var message = [CChar](repeating: 0, count: 512)
    let status = bytes.withUnsafeBufferPointer { buffer in
      message.withUnsafeMutableBufferPointer { error in
        isPNG
          ? shoal_png_decode(buffer.baseAddress, buffer.count, &decoded, error.baseAddress, error.count)
          : shoal_jpeg_decode(buffer.baseAddress, buffer.count, &decoded, error.baseAddress, error.count)
      }
    }
    guard status == 0, let samples = decoded.pixels else {
      let reason = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
      throw ImageError("\(isPNG ? "PNG" : "JPEG"): \(reason)")
    }
    defer { shoal_image_free(samples) }
    let count = Int(decoded.width) * Int(decoded.height) * Int(decoded.channels)
    self.init(
      width: Int(decoded.width), height: Int(decoded.height), channels: Int(decoded.channels),
      pixels: Array(UnsafeBufferPointer(start: samples, count: count)))
  }

  /// The image with 3 channels: gray samples repeated, as Pillow's `convert("RGB")`.
  public func rgb() -> Image {
    guard channels == 1 else { return self }
    var samples = [UInt8](repeating: 0, count: pixels.count * 3)
    for (index, value) in pixels.enumerated() {
      samples[index * 3] = value
      samples[index * 3 + 1] = value
      samples[index * 3 + 2] = value
    }
    return Image(width: width, height: height, channels: 3, pixels: samples)
  }

  /// The image with 1 channel: ITU-R 601-2 luma, as Pillow's `convert("L")`.
  public func gray() -> Image {
    guard channels == 3 else { return self }
    var samples = [UInt8](repeating: 0, count: width * height)
    for index in samples.indices {
      let r = UInt32(pixels[index * 3])
      let g = UInt32(pixels[index * 3 + 1])
      let b = UInt32(pixels[index * 3 + 2])
      samples[index] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
    }
    return Image(width: width, height: height, channels: 1, pixels: samples)
  }

  /// The image as a PNG file.
  public func pngBytes() throws(ImageError) -> [UInt8] {
    var output: UnsafeMutablePointer<UInt8>?
    var size = 0
    var message = [CChar](repeating: 0, count: 512)
    let status = pixels.withUnsafeBufferPointer { buffer in
      message.withUnsafeMutableBufferPointer { error in
        shoal_png_encode(
          buffer.baseAddress, Int32(width), Int32(height), Int32(channels), &output, &size, error.baseAddress,
          error.count)
      }
    }
    guard status == 0, let output else {
      throw ImageError("PNG: \(message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
    }
    defer { shoal_image_free(output) }
    return Array(UnsafeBufferPointer(start: output, count: size))
  }
}

/// Why an image could not be decoded or encoded.
public struct ImageError: Error, Sendable, CustomStringConvertible {
  /// The decoder's reason.
  public var message: String

  public init(_ message: String) { self.message = message }

  public var description: String { message }
}
