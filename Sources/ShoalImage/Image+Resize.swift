/// How `Image.resized` samples.
public enum ResizeFilter: String, Sendable, CaseIterable {
  /// A triangle filter widened by the scale when shrinking (Pillow's BILINEAR).
  case bilinear
  /// The mean of the source pixels each output pixel covers (Pillow's BOX, OpenCV's INTER_AREA).
  case area

  var support: Double {
    switch self {
    case .bilinear: 1
    case .area: 0.5
    }
  }

  func weight(_ x: Double) -> Double {
    switch self {
    case .bilinear: return abs(x) < 1 ? 1 - abs(x) : 0
    case .area: return x > -0.5 && x <= 0.5 ? 1 : 0
    }
  }
}

extension Image {
  /// The image resampled to `width × height` with Pillow's algorithm: separable passes,
  /// horizontal first, each rounding to 8 bits, with weights in Pillow's 22-bit fixed point. The
  /// result equals Pillow's `Image.resize((width, height), filter)` sample for sample.
  public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .bilinear) -> Image {
    precondition(newWidth > 0 && newHeight > 0, "a resized image has at least one pixel")
    if newWidth == width && newHeight == height { return self }
    var samples = pixels
    var currentWidth = width
    if newWidth != width {
      let weights = Self.weights(from: width, to: newWidth, filter: filter)
      var output = [UInt8](repeating: 0, count: newWidth * height * channels)
      for y in 0..<height {
        let row = y * width * channels
        for x in 0..<newWidth {
          let (start, coefficients) = weights[x]
          for channel in 0..<channels {
            var sum: Int64 = 1 << (Self.precisionBits - 1)
            for (offset, coefficient) in coefficients.enumerated() {
              sum += Int64(samples[row + (start + offset) * channels + channel]) * Int64(coefficient)
            }
            output[(y * newWidth + x) * channels + channel] = Self.clip(sum)
          }
        }
      }
      samples = output
      currentWidth = newWidth
    }
    if newHeight != height {
      let weights = Self.weights(from: height, to: newHeight, filter: filter)
      let stride = currentWidth * channels
      var output = [UInt8](repeating: 0, count: newHeight * stride)
      for y in 0..<newHeight {
        let (start, coefficients) = weights[y]
        for column in 0..<stride {
          var sum: Int64 = 1 << (Self.precisionBits - 1)
          for (offset, coefficient) in coefficients.enumerated() {
            sum += Int64(samples[(start + offset) * stride + column]) * Int64(coefficient)
          }
          output[y * stride + column] = Self.clip(sum)
        }
      }
      samples = output
    }
    return Image(width: newWidth, height: newHeight, channels: channels, pixels: samples)
  }

  /// Pillow's precision for 8-bit resampling weights: 32 − 8 − 2 bits.
  static let precisionBits = 22

  static func clip(_ sum: Int64) -> UInt8 {
    let value = sum >> Int64(precisionBits)
    return UInt8(clamping: value)
  }

  /// For each output position, the first source index and the fixed-point weights from there
  /// (Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc`).
  static func weights(from inSize: Int, to outSize: Int, filter: ResizeFilter) -> [(Int, [Int32])] {
    let scale = Double(inSize) / Double(outSize)
    let filterScale = max(scale, 1)
    let support = filter.support * filterScale
    return (0..<outSize).map { position in
      let center = (Double(position) + 0.5) * scale
      let first = max(Int(center - support + 0.5), 0)
      let last = min(Int(center + support + 0.5), inSize)
      var weights = (first..<last).map { index in filter.weight((Double(index) - center + 0.5) / filterScale) }
      let total = weights.reduce(0, +)
      if total != 0 { weights = weights.map { $0 / total } }
      let fixed = weights.map { weight -> Int32 in
        let scaled = weight * Double(1 << precisionBits)
        return Int32(scaled < 0 ? scaled - 0.5 : scaled + 0.5)
      }
      return (first, fixed)
    }
  }
}
