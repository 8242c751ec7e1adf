import Inference
import ShoalGeo
import ShoalModel
import Testing

/// Segmentation post-processing: class maps from model outputs, nearest-neighbour resizing, and
/// regions traced into polygons with holes, exact in pixels and valid for GEOS.
struct SegmentationTests {
  /// A 40 × 30 map: a 20 × 20 square of class 1 with a 6 × 6 hole, a 5 × 5 square of class 1 in
  /// the hole (an island), two class-2 pixels touching only at a corner, and class 1 along the
  /// right edge.
  static func map() -> ClassMap {
    var labels = [Int](repeating: -1, count: 40 * 30)
    func fill(_ x0: Int, _ y0: Int, _ w: Int, _ h: Int, _ value: Int) {
      for y in y0..<(y0 + h) { for x in x0..<(x0 + w) { labels[y * 40 + x] = value } }
    }
    fill(2, 2, 20, 20, 1)
    fill(8, 8, 8, 8, -1)
    fill(10, 10, 4, 4, 1)
    fill(30, 5, 1, 1, 2)
    fill(31, 6, 1, 1, 2)
    fill(36, 0, 4, 30, 1)
    return ClassMap(width: 40, height: 30, labels: labels)
  }

  static func area(_ ring: [Position]) -> Double {
    var sum = 0.0
    for index in 0..<(ring.count - 1) {
      sum += ring[index].longitude * ring[index + 1].latitude - ring[index + 1].longitude * ring[index].latitude
    }
    return sum / 2
  }

  @Test func regionsBecomeExactPolygonsWithHoles() {
    let map = Self.map()
    let roofs = map.polygons(of: 1)
    // The square (with its hole), the island in the hole, and the strip on the edge.
    #expect(roofs.count == 3)
    let pixelCounts = roofs.map { polygon in
      Self.area(polygon.rings[0]) + polygon.rings.dropFirst().map(Self.area).reduce(0, +)
    }.sorted()
    #expect(pixelCounts == [16, 120, 20 * 20 - 8 * 8])
    #expect(roofs.map { $0.rings.count }.sorted() == [1, 1, 2])
    // Only corners are kept: the square's exterior and its hole are 4 corners each.
    let square = roofs.first { $0.rings.count == 2 }!
    #expect(square.rings.map(\.count) == [5, 5])
    for polygon in roofs { #expect(GeometryCheck.problem(in: polygon) == nil) }
    // Pixels that touch only at a corner are two regions.
    #expect(map.polygons(of: 2).count == 2)
    #expect(map.polygons(of: 7).isEmpty)
  }

  @Test func polygonsMapToLonLatRightHanded() throws {
    let tile = try Tile(containing: 13.4, 52.5, zoom: 17)
    let map = Self.map()
    let strip = try #require(map.polygons(of: 1).first { $0.bounds.west == 36 })
    let placed = try #require(map.geographic(strip, on: tile, tolerance: 0.5))
    #expect(placed == placed.rightHanded && GeometryCheck.problem(in: placed) == nil)
    // The strip runs down the tile's east edge, from its north to its south edge.
    #expect(abs(placed.bounds.east - tile.bounds.east) < 1e-9)
    #expect(abs(placed.bounds.north - tile.bounds.north) < 1e-9 && abs(placed.bounds.south - tile.bounds.south) < 1e-9)
  }

  @Test func classMapsFromOutputsAndNearestResizing() throws {
    // Two classes over 2 × 3 pixels: background (0) wins the first row, class 1 the second.
    let scores = Tensor(
      shape: [1, 2, 2, 3], elements: [Float]([0.9, 0.8, 0.7, 0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.9, 0.8, 0.7]))
    #expect(try ClassMap.argmax(scores).labels == [-1, -1, -1, 1, 1, 1])
    #expect(try ClassMap.argmax(scores, background: nil).labels == [0, 0, 0, 1, 1, 1])
    let probabilities = Tensor(shape: [1, 1, 2, 2], elements: [Float]([0.2, 0.6, 0.5, 0.49]))
    #expect(try ClassMap.threshold(probabilities, classIndex: 3).labels == [-1, 3, 3, -1])
    #expect(throws: DetectionOutputError.self) {
      try ClassMap.argmax(Tensor(shape: [4], elements: [Float](repeating: 0, count: 4)))
    }
    // Nearest neighbour keeps class ids: a map of classes 0 and 2 gains no class 1.
    let small = ClassMap(width: 2, height: 2, labels: [0, 2, 2, 0])
    let large = small.resized(width: 7, height: 5)
    #expect(large.classes == [0, 2])
    #expect(large.labels[0] == 0 && large.labels[6] == 2 && large.labels[4 * 7] == 2 && large.labels[4 * 7 + 6] == 0)
  }

  /// A roof over two neighbouring tiles, traced on each, is one polygon in the set after a union;
  /// a roof elsewhere stays apart.
  @Test func polygonsOverTileBordersMergeIntoOne() throws {
    let west = try Tile(containing: 13.4, 52.5, zoom: 18)
    let east = try Tile(z: 18, x: west.x + 1, y: west.y)
    func map(_ columns: Range<Int>, _ rows: Range<Int>) -> ClassMap {
      var labels = [Int](repeating: -1, count: 64 * 64)
      for y in rows { for x in columns { labels[y * 64 + x] = 1 } }
      return ClassMap(width: 64, height: 64, labels: labels)
    }
    let westMap = map(50..<64, 10..<30)
    let eastMap = map(0..<12, 10..<30)
    let apart = map(0..<5, 50..<60)
    var pieces: [Polygon] = []
    for polygon in westMap.polygons(of: 1) { pieces += [try #require(westMap.geographic(polygon, on: west))] }
    for polygon in eastMap.polygons(of: 1) { pieces += [try #require(eastMap.geographic(polygon, on: east))] }
    for polygon in apart.polygons(of: 1) { pieces += [try #require(apart.geographic(polygon, on: east))] }
    let merged = GeometryCheck.union(pieces)
    #expect(merged.count == 2)
    let roof = try #require(merged.max { $0.bounds.east - $0.bounds.west < $1.bounds.east - $1.bounds.west })
    let tileWidth = west.bounds.east - west.bounds.west
    #expect(abs(roof.bounds.west - (west.bounds.west + tileWidth * 50 / 64)) < 1e-9)
    #expect(abs(roof.bounds.east - (east.bounds.west + tileWidth * 12 / 64)) < 1e-9)
    #expect(roof.rings.count == 1 && GeometryCheck.problem(in: roof) == nil)
  }
}
