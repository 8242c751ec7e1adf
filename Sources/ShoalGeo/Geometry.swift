/// A longitude and latitude in degrees (GeoJSON's order).
public struct Position: Hashable, Sendable {
  public var longitude: Double
  public var latitude: Double

  public init(_ longitude: Double, _ latitude: Double) {
    self.longitude = longitude
    self.latitude = latitude
  }
}

/// A polygon: its exterior ring first, then its holes, each closed (first position = last).
public struct Polygon: Hashable, Sendable {
  public var rings: [[Position]]

  public init(rings: [[Position]]) { self.rings = rings }

  /// A box as a polygon, counter-clockwise from the south-west corner.
  public init(_ box: BoundingBox) {
    rings = [
      [
        Position(box.west, box.south), Position(box.east, box.south), Position(box.east, box.north),
        Position(box.west, box.north), Position(box.west, box.south),
      ]
    ]
  }

  /// Twice the signed area of a ring in degrees (positive counter-clockwise).
  static func signedArea(_ ring: [Position]) -> Double {
    var sum = 0.0
    for index in ring.indices.dropLast() {
      sum += ring[index].longitude * ring[index + 1].latitude - ring[index + 1].longitude * ring[index].latitude
    }
    return sum
  }

  /// The polygon with RFC 7946's right-hand winding: the exterior counter-clockwise, holes clockwise.
  public var rightHanded: Polygon {
    Polygon(
      rings: rings.enumerated().map { index, ring in
        let counterClockwise = Self.signedArea(ring) > 0
        return (index == 0) == counterClockwise ? ring : ring.reversed()
      })
  }

  /// West, south, east and north of the exterior ring.
  public var bounds: BoundingBox {
    let exterior = rings.first ?? []
    return BoundingBox(
      west: exterior.map(\.longitude).min() ?? 0, south: exterior.map(\.latitude).min() ?? 0,
      east: exterior.map(\.longitude).max() ?? 0, north: exterior.map(\.latitude).max() ?? 0)
  }
}

/// A GeoJSON geometry (RFC 7946).
public indirect enum Geometry: Hashable, Sendable {
  case point(Position)
  case multiPoint([Position])
  case lineString([Position])
  case multiLineString([[Position]])
  case polygon(Polygon)
  case multiPolygon([Polygon])
  case geometryCollection([Geometry])

  /// The polygons of the geometry (collections included); points and lines have none.
  public var polygons: [Polygon] {
    switch self {
    case .polygon(let polygon): [polygon]
    case .multiPolygon(let polygons): polygons
    case .geometryCollection(let geometries): geometries.flatMap(\.polygons)
    default: []
    }
  }

  /// Every position, for bounds.
  var positions: [Position] {
    switch self {
    case .point(let position): [position]
    case .multiPoint(let positions), .lineString(let positions): positions
    case .multiLineString(let lines): lines.flatMap { $0 }
    case .polygon(let polygon): polygon.rings.flatMap { $0 }
    case .multiPolygon(let polygons): polygons.flatMap { $0.rings.flatMap { $0 } }
    case .geometryCollection(let geometries): geometries.flatMap(\.positions)
    }
  }

  /// West, south, east and north of every position.
  public var bounds: BoundingBox {
    let all = positions
    return BoundingBox(
      west: all.map(\.longitude).min() ?? 0, south: all.map(\.latitude).min() ?? 0,
      east: all.map(\.longitude).max() ?? 0, north: all.map(\.latitude).max() ?? 0)
  }
}
