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
      let table = WeightTable(Self.weights(from: width, to: newWidth, filter: filter))
      var output = [UInt8](repeating: 0, count: newWidth * height * channels)
      let channels = channels
      let width = width
      samples.withUnsafeBufferPointer { source in
        output.withUnsafeMutableBufferPointer { target in
          table.flat.withUnsafeBufferPointer { weights in
            for y in 0..<height {
              let row = source.baseAddress! + y * width * channels
              let out = target.baseAddress! + y * newWidth * channels
              for x in 0..<newWidth {
                let first = row + table.starts[x] * channels
                let coefficients = weights.baseAddress! + x * table.stride
                // Pillow sums in 32 bits: 8-bit samples times non-negative 22-bit weights that
                // add up to one stay below 2^31.
                var sums = (Int32(1 << 21), Int32(1 << 21), Int32(1 << 21))
                if channels == 3 {
                  for offset in 0..<table.counts[x] {
                    let weight = coefficients[offset]
                    let sample = first + offset * 3
                    sums.0 &+= Int32(sample[0]) &* weight
                    sums.1 &+= Int32(sample[1]) &* weight
                    sums.2 &+= Int32(sample[2]) &* weight
                  }
                  out[x * 3] = Self.clip(sums.0)
                  out[x * 3 + 1] = Self.clip(sums.1)
                  out[x * 3 + 2] = Self.clip(sums.2)
                  continue
                }
                for channel in 0..<channels {
                  var sum = Int32(1 << 21)
                  for offset in 0..<table.counts[x] {
                    sum &+= Int32(first[offset * channels + channel]) &* coefficients[offset]
                  }
                  out[x * channels + channel] = Self.clip(sum)
                }
              }
            }
          }
        }
      }
      samples = output
      currentWidth = newWidth
    }
    if newHeight != height {
      let table = WeightTable(Self.weights(from: height, to: newHeight, filter: filter))
      let stride = currentWidth * channels
      var output = [UInt8](repeating: 0, count: newHeight * stride)
      samples.withUnsafeBufferPointer { source in
        output.withUnsafeMutableBufferPointer { target in
          // One output row at a time, summed over its source rows column by column.
          var sums = [Int32](repeating: 0, count: stride)
          sums.withUnsafeMutableBufferPointer { sums in
            for y in 0..<newHeight {
              for column in 0..<stride { sums[column] = 1 << (Self.precisionBits - 1) }
              for offset in 0..<table.counts[y] {
                let line = source.baseAddress! + (table.starts[y] + offset) * stride
                let weight = table.flat[y * table.stride + offset]
                for column in 0..<stride { sums[column] &+= Int32(line[column]) &* weight }
              }
              let out = target.baseAddress! + y * stride
              for column in 0..<stride { out[column] = Self.clip(sums[column]) }
            }
          }
        }
      }
      samples = output
    }
    return Image(width: newWidth, height: newHeight, channels: channels, pixels: samples)
  }

  /// Resampling weights laid out flat: each output position's first source index, and its
  /// coefficients in one array at a fixed stride (the widest window), padded with zeros.
  private struct WeightTable {
    let starts: [Int]
    let counts: [Int]
    let stride: Int
    let flat: [Int32]

    init(_ weights: [(Int, [Int32])]) {
      starts = weights.map(\.0)
      counts = weights.map(\.1.count)
      stride = max(1, counts.max() ?? 1)
      var flat = [Int32](repeating: 0, count: weights.count * stride)
      for (position, (_, coefficients)) in weights.enumerated() {
        for (offset, coefficient) in coefficients.enumerated() { flat[position * stride + offset] = coefficient }
      }
      self.flat = flat
    }
  }

  /// Pillow's precision for 8-bit resampling weights: 32 − 8 − 2 bits.
  static let precisionBits = 22

  static func clip(_ sum: Int32) -> UInt8 {
    UInt8(clamping: sum >> Int32(precisionBits))
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
