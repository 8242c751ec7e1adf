public import ShoalImage

extension Spectrum {
  /// Viridis at ten evenly spaced stops (matplotlib's), interpolated linearly between them.
  static let viridis: [(Double, Double, Double)] = [
    (0x44, 0x01, 0x54), (0x48, 0x28, 0x78), (0x3E, 0x49, 0x89), (0x31, 0x68, 0x8E), (0x26, 0x82, 0x8E),
    (0x1F, 0x9E, 0x89), (0x35, 0xB7, 0x79), (0x6E, 0xCE, 0x58), (0xB5, 0xDE, 0x2B), (0xFD, 0xE7, 0x25),
  ]

  /// The matrix as an image for the people who label: time across, low frequencies at the
  /// bottom, each cell `scale` pixels wide and high, in viridis from the lowest value (dark) to
  /// the highest (yellow).
  public func image(scale: Int = 4) -> Image {
    guard rows > 0, columns > 0, scale > 0 else { return Image(width: 1, height: 1, channels: 3, pixels: [0, 0, 0]) }
    let (width, height) = (columns * scale, rows * scale)
    let low = values.min() ?? 0
    let range = max(1e-12, Double((values.max() ?? 0) - low))
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for row in 0..<rows {
      for column in 0..<columns {
        let position = Double(self[row, column] - low) / range * Double(Self.viridis.count - 1)
        let index = min(Self.viridis.count - 2, Int(position))
        let t = position - Double(index)
        let (a, b) = (Self.viridis[index], Self.viridis[index + 1])
        let colour = [a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t].map {
          UInt8(max(0, min(255, $0.rounded())))
        }
        // Row 0 (the lowest frequency) at the bottom.
        let top = (rows - 1 - row) * scale
        for y in top..<(top + scale) {
          for x in (column * scale)..<((column + 1) * scale) {
            let at = (y * width + x) * 3
            (pixels[at], pixels[at + 1], pixels[at + 2]) = (colour[0], colour[1], colour[2])
          }
        }
      }
    }
    return Image(width: width, height: height, channels: 3, pixels: pixels)
  }
}
