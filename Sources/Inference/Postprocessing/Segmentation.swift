public import ShoalGeo
public import ShoalModel

/// A segmentation model's answer for one image: a class index per pixel, row-major; `nil`
/// classes (background) are kept as -1.
public struct ClassMap: Sendable, Equatable {
  public let width: Int
  public let height: Int
  public let labels: [Int]

  public init(width: Int, height: Int, labels: [Int]) {
    precondition(labels.count == width * height, "\(labels.count) labels do not fill \(width)×\(height)")
    self.width = width
    self.height = height
    self.labels = labels
  }

  /// The class of highest score at each pixel of a [C, H, W] or [1, C, H, W] output; the class
  /// `background` (if any) becomes -1. Ties go to the lower class, as numpy's argmax does.
  public static func argmax(_ scores: Tensor, background: Int? = 0) throws(DetectionOutputError) -> ClassMap {
    let shape = scores.rank == 4 && scores.shape[0] == 1 ? Array(scores.shape.dropFirst()) : scores.shape
    guard shape.count == 3, shape[0] >= 1 else {
      throw DetectionOutputError(
        message: "the class scores have shape \(scores.shape); expected [C, H, W] or [1, C, H, W]")
    }
    let (classes, height, width) = (shape[0], shape[1], shape[2])
    let values = scores.doubles()
    let plane = height * width
    var labels = [Int](repeating: 0, count: plane)
    for pixel in 0..<plane {
      var best = 0
      for index in 1..<max(classes, 1) where values[index * plane + pixel] > values[best * plane + pixel] {
        best = index
      }
      labels[pixel] = best == background ? -1 : best
    }
    return ClassMap(width: width, height: height, labels: labels)
  }

  /// `classIndex` where one probability map ([H, W], [1, H, W] or [1, 1, H, W]) is at least
  /// `threshold`, background elsewhere.
  public static func threshold(
    _ probabilities: Tensor, threshold: Double = 0.5, classIndex: Int = 0
  ) throws(DetectionOutputError) -> ClassMap {
    var shape = probabilities.shape
    while shape.count > 2 && shape[0] == 1 { shape.removeFirst() }
    guard shape.count == 2 else {
      throw DetectionOutputError(
        message: "the probability map has shape \(probabilities.shape); expected [H, W], [1, H, W] or [1, 1, H, W]")
    }
    let labels = probabilities.doubles().map { $0 >= threshold ? classIndex : -1 }
    return ClassMap(width: shape[1], height: shape[0], labels: labels)
  }

  /// Resized with nearest neighbour (the source pixel under each target pixel's centre): class ids
  /// stay class ids, as an interpolating filter would not keep them.
  public func resized(width newWidth: Int, height newHeight: Int) -> ClassMap {
    var labels = [Int](repeating: -1, count: newWidth * newHeight)
    for y in 0..<newHeight {
      let source = min(height - 1, Int((Double(y) + 0.5) * Double(height) / Double(newHeight)))
      for x in 0..<newWidth {
        labels[y * newWidth + x] =
          self.labels[source * width + min(width - 1, Int((Double(x) + 0.5) * Double(width) / Double(newWidth)))]
      }
    }
    return ClassMap(width: newWidth, height: newHeight, labels: labels)
  }

  /// The classes present, in order.
  public var classes: [Int] { Array(Set(labels.filter { $0 >= 0 })).sorted() }

  /// The regions of `classIndex` as polygons in pixel coordinates (x east, y south, along pixel
  /// edges): each 4-connected region is an exterior ring with its holes. Exteriors run clockwise
  /// on the image, so counter-clockwise once y points north. Exact: a polygon's area is its pixel
  /// count.
  public func polygons(of classIndex: Int) -> [Polygon] {
    // Boundary edges between the class's pixels and the rest, with the class on their right.
    struct Edge {
      var x: Int
      var y: Int
      var dx: Int
      var dy: Int
    }
    var edges: [Edge] = []
    func inside(_ x: Int, _ y: Int) -> Bool {
      x >= 0 && y >= 0 && x < width && y < height && labels[y * width + x] == classIndex
    }
    for y in 0..<height {
      for x in 0..<width where inside(x, y) {
        if !inside(x, y - 1) { edges.append(Edge(x: x, y: y, dx: 1, dy: 0)) }
        if !inside(x + 1, y) { edges.append(Edge(x: x + 1, y: y, dx: 0, dy: 1)) }
        if !inside(x, y + 1) { edges.append(Edge(x: x + 1, y: y + 1, dx: -1, dy: 0)) }
        if !inside(x - 1, y) { edges.append(Edge(x: x, y: y + 1, dx: 0, dy: -1)) }
      }
    }
    let stride = width + 1
    var outgoing: [Int: [Int]] = [:]
    for (index, edge) in edges.enumerated() { outgoing[edge.y * stride + edge.x, default: []].append(index) }
    var used = [Bool](repeating: false, count: edges.count)
    var rings: [[(Int, Int)]] = []
    for start in edges.indices where !used[start] {
      var ring: [(Int, Int)] = []
      var current = start
      while !used[current] {
        used[current] = true
        let edge = edges[current]
        ring.append((edge.x, edge.y))
        let end = (edge.x + edge.dx) * 1 + (edge.y + edge.dy) * stride
        let choices = (outgoing[end] ?? []).filter { !used[$0] }
        guard !choices.isEmpty else { break }
        // At a corner where two regions touch diagonally, turn right (towards this region), so
        // that regions meeting only at a corner stay apart.
        func turn(_ next: Edge) -> Int {
          let cross = edge.dx * next.dy - edge.dy * next.dx
          return cross > 0 ? 0 : (cross == 0 ? 1 : 2)
        }
        current = choices.min { turn(edges[$0]) < turn(edges[$1]) }!
      }
      // Only the corners, not every pixel step along a straight side.
      var corners: [(Int, Int)] = []
      for (index, point) in ring.enumerated() {
        let previous = ring[(index + ring.count - 1) % ring.count]
        let next = ring[(index + 1) % ring.count]
        if (point.0 - previous.0) * (next.1 - point.1) != (point.1 - previous.1) * (next.0 - point.0) {
          corners.append(point)
        }
      }
      rings.append(corners)
    }
    func signedArea(_ ring: [(Int, Int)]) -> Int {
      var sum = 0
      for index in ring.indices {
        let (a, b) = (ring[index], ring[(index + 1) % ring.count])
        sum += a.0 * b.1 - b.0 * a.1
      }
      return sum
    }
    // Clockwise on the image (positive here, y pointing south) are exteriors; the rest are holes.
    let exteriors = rings.filter { signedArea($0) > 0 }.sorted { signedArea($0) < signedArea($1) }
    var holes: [[[(Int, Int)]]] = Array(repeating: [], count: exteriors.count)
    for hole in rings where signedArea(hole) < 0 {
      // A pixel of the region beside the hole's first edge: inside the smallest exterior around it.
      let (a, b) = (hole[0], hole[1])
      let length = max(abs(b.0 - a.0), abs(b.1 - a.1))
      let (dx, dy) = ((b.0 - a.0) / length, (b.1 - a.1) / length)
      let point = (Double(a.0) + Double(dx) * 0.5 - Double(dy) * 0.5, Double(a.1) + Double(dy) * 0.5 + Double(dx) * 0.5)
      if let owner = exteriors.firstIndex(where: { Self.contains($0, point) }) { holes[owner].append(hole) }
    }
    return exteriors.indices.map { index in
      Polygon(
        rings: ([exteriors[index]] + holes[index]).map { ring in
          (ring + [ring[0]]).map { Position(Double($0.0), Double($0.1)) }
        })
    }
  }

  private static func contains(_ ring: [(Int, Int)], _ point: (Double, Double)) -> Bool {
    var inside = false
    for index in ring.indices {
      let (a, b) = (ring[index], ring[(index + 1) % ring.count])
      let (ax, ay, bx, by) = (Double(a.0), Double(a.1), Double(b.0), Double(b.1))
      if (ay > point.1) != (by > point.1), point.0 < ax + (point.1 - ay) / (by - ay) * (bx - ax) { inside.toggle() }
    }
    return inside
  }

  /// `polygon` (in this map's pixels) on `tile`: simplified within `tolerance` pixels (topology
  /// kept; nil if nothing is left), then mapped to lon/lat, right-handed.
  public func geographic(_ polygon: Polygon, on tile: Tile, tolerance: Double = 1) -> Polygon? {
    let simple = tolerance > 0 ? GeometryCheck.simplified(polygon, tolerance: tolerance) : polygon
    guard let simple else { return nil }
    let scaleX = 1 / Double(width)
    let scaleY = 1 / Double(height)
    let rings = simple.rings.map { ring in
      ring.map { position -> Position in
        let point = tile.lonLat(pixelX: position.longitude * scaleX, pixelY: position.latitude * scaleY, size: 1)
        return Position(point.longitude, point.latitude)
      }
    }
    return Polygon(rings: rings).rightHanded
  }
}
