public import ShoalGeo
public import ShoalImage

/// ML Enabler's supertiles: the four children of a tile stitched into one image twice their size,
/// run through the model once, and the results given back to the children.
public struct Supertile: Sendable {
  /// The tile one zoom up whose children are stitched.
  public let parent: Tile
  /// One child's size in pixels.
  public let size: Int

  public init(parent: Tile, size: Int) {
    self.parent = parent
    self.size = size
  }

  /// The four children, in mercantile's order.
  public var children: [Tile] { parent.children }

  /// Where `child`'s image sits in the stitched one, in pixels.
  public func offset(of child: Tile) -> (x: Int, y: Int) {
    ((child.x - 2 * parent.x) * size, (child.y - 2 * parent.y) * size)
  }

  /// The children's images (each `size` × `size`, of one channel count) as one image; a child
  /// without an image (it could not be fetched) is black.
  ///
  /// - Throws: `DetectionOutputError` naming a child whose image is not `size` × `size` or whose
  ///   channels differ.
  public func stitch(_ images: [Tile: Image]) throws(DetectionOutputError) -> Image {
    let channels = images.values.first?.channels ?? 3
    let width = 2 * size
    var pixels = [UInt8](repeating: 0, count: width * width * channels)
    for child in children {
      guard let image = images[child] else { continue }
      guard image.width == size, image.height == size, image.channels == channels else {
        throw DetectionOutputError(
          message: "tile \(child)'s image is \(image.width)×\(image.height)×\(image.channels); "
            + "a supertile takes \(size)×\(size)×\(channels)")
      }
      let (dx, dy) = offset(of: child)
      for row in 0..<size {
        let source = row * size * channels
        let target = ((dy + row) * width + dx) * channels
        pixels.replaceSubrange(
          target..<(target + size * channels), with: image.pixels[source..<(source + size * channels)])
      }
    }
    return Image(width: width, height: width, channels: channels, pixels: pixels)
  }

  /// Detections on the stitched image, given to each child they overlap, clipped to it and in its
  /// own pixels (an object over two children is then put back together by `TileDetections.merged`).
  public func split(_ detections: [Detection]) -> [Tile: [Detection]] {
    var result: [Tile: [Detection]] = [:]
    for child in children {
      let (dx, dy) = offset(of: child)
      let (x0, y0) = (Double(dx), Double(dy))
      let (x1, y1) = (x0 + Double(size), y0 + Double(size))
      result[child] = detections.compactMap { detection in
        let box = detection.box
        let clipped = PixelBox(
          x0: max(box.x0, x0), y0: max(box.y0, y0), x1: min(box.x1, x1), y1: min(box.y1, y1))
        guard box.x0 < x1, box.x1 > x0, box.y0 < y1, box.y1 > y0, clipped.area > 0 else { return nil }
        return Detection(box: clipped.offset(-x0, -y0), classIndex: detection.classIndex, score: detection.score)
      }
    }
    return result
  }

  /// A class map of the stitched image (at any resolution) cut into the children's quarters.
  public func split(_ map: ClassMap) -> [Tile: ClassMap] {
    let (halfWidth, halfHeight) = (map.width / 2, map.height / 2)
    var result: [Tile: ClassMap] = [:]
    for child in children {
      let column = child.x - 2 * parent.x
      let row = child.y - 2 * parent.y
      var labels: [Int] = []
      labels.reserveCapacity(halfWidth * halfHeight)
      for y in 0..<halfHeight {
        let start = (row * halfHeight + y) * map.width + column * halfWidth
        labels += map.labels[start..<(start + halfWidth)]
      }
      result[child] = ClassMap(width: halfWidth, height: halfHeight, labels: labels)
    }
    return result
  }
}
