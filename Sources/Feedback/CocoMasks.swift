import ShoalGeo

/// Polygons in a tile's pixels, and the masks COCO keeps for shapes its polygons cannot hold
/// (polygons with holes): the pixels whose centres fall inside (even-odd over every ring), as
/// column-major run lengths starting with a run of zeros, as pycocotools reads them.
enum CocoMasks {
  /// The rings of `polygon` in pixels of `tile` at `size` pixels a side, as flat x, y lists
  /// without the closing point.
  static func pixelRings(_ polygon: Polygon, tile: Tile, size: Int) -> [[Double]] {
    polygon.rings.map { ring in
      ring.dropLast().flatMap { position -> [Double] in
        let point = tile.pixel(position.longitude, position.latitude, size: size)
        return [point.x, point.y]
      }
    }
  }

  /// x, y, width, height of the points of `rings`.
  static func box(_ rings: [[Double]]) -> [Double] {
    let xs = rings.flatMap { ring in stride(from: 0, to: ring.count, by: 2).map { ring[$0] } }
    let ys = rings.flatMap { ring in stride(from: 1, to: ring.count, by: 2).map { ring[$0] } }
    guard let minX = xs.min(), let maxX = xs.max(), let minY = ys.min(), let maxY = ys.max() else {
      return [0, 0, 0, 0]
    }
    return [minX, minY, maxX - minX, maxY - minY]
  }

  /// The area of a ring by the shoelace formula.
  static func area(_ ring: [Double]) -> Double {
    var sum = 0.0
    let count = ring.count / 2
    for index in 0..<count {
      let next = (index + 1) % count
      sum += ring[2 * index] * ring[2 * next + 1] - ring[2 * next] * ring[2 * index + 1]
    }
    return abs(sum) / 2
  }

  /// The mask of `rings` (even-odd) over a `width` × `height` image, row-major.
  static func mask(_ rings: [[Double]], width: Int, height: Int) -> [Bool] {
    var mask = [Bool](repeating: false, count: width * height)
    for row in 0..<height {
      let y = Double(row) + 0.5
      var crossings: [Double] = []
      for ring in rings {
        let count = ring.count / 2
        for index in 0..<count {
          let next = (index + 1) % count
          let (x1, y1, x2, y2) = (ring[2 * index], ring[2 * index + 1], ring[2 * next], ring[2 * next + 1])
          guard (y1 <= y) != (y2 <= y) else { continue }
          crossings.append(x1 + (y - y1) / (y2 - y1) * (x2 - x1))
        }
      }
      crossings.sort()
      for pair in stride(from: 0, to: crossings.count - 1, by: 2) {
        // Pixels whose centre x + 0.5 lies between the two crossings.
        let first = max(0, Int((crossings[pair] - 0.5).rounded(.up)))
        let last = min(width - 1, Int((crossings[pair + 1] - 0.5).rounded(.down)))
        if first <= last { for column in first...last { mask[row * width + column] = true } }
      }
    }
    return mask
  }

  /// Column-major run lengths of `mask` (row-major, `width` × `height`), the first run counting zeros.
  static func runLengths(_ mask: [Bool], width: Int, height: Int) -> [Int] {
    var counts: [Int] = []
    var current = false
    var run = 0
    for column in 0..<width {
      for row in 0..<height {
        let value = mask[row * width + column]
        if value != current {
          counts.append(run)
          run = 0
          current = value
        }
        run += 1
      }
    }
    counts.append(run)
    return counts
  }
}
