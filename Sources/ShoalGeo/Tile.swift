import Foundation

/// A Web-Mercator tile: zoom `z` and column `x`, row `y` counted from the north-west corner, as
/// XYZ tile servers, mercantile and ML Enabler number them.
public struct Tile: Hashable, Sendable, Comparable, CustomStringConvertible {
  public let z: Int
  public let x: Int
  public let y: Int

  /// The deepest zoom Shoal takes: quadkeys of 24 digits, tile numbers below 2²⁴.
  public static let maxZoom = 24
  /// Web Mercator's latitude limit (the square world's edge), as mercantile clamps bounding boxes.
  public static let maxLatitude = 85.051129

  /// A tile.
  ///
  /// - Throws: `GeoError` for a zoom outside 0–24 or a column or row outside 0..<2^z.
  public init(z: Int, x: Int, y: Int) throws(GeoError) {
    guard (0...Self.maxZoom).contains(z) else { throw GeoError("zoom \(z) is outside 0–\(Self.maxZoom)") }
    let size = 1 << z
    guard (0..<size).contains(x), (0..<size).contains(y) else {
      throw GeoError("tile \(z)/\(x)/\(y) does not exist: x and y run from 0 to \(size - 1) at zoom \(z)")
    }
    self.z = z
    self.x = x
    self.y = y
  }

  init(unchecked z: Int, _ x: Int, _ y: Int) {
    self.z = z
    self.x = x
    self.y = y
  }

  /// The tile holding `longitude, latitude` at `zoom`, as `mercantile.tile`: points beyond the
  /// world's edges fall in the edge tiles, and a point within 10⁻¹⁴ of a tile's east or south edge
  /// counts in the next tile (mercantile's rounding of its round trip).
  ///
  /// - Throws: `GeoError` for a zoom outside 0–24 or a latitude at a pole (no Mercator y).
  public init(containing longitude: Double, _ latitude: Double, zoom: Int) throws(GeoError) {
    guard (0...Self.maxZoom).contains(zoom) else { throw GeoError("zoom \(zoom) is outside 0–\(Self.maxZoom)") }
    guard abs(latitude) < 90, longitude.isFinite else {
      throw GeoError("latitude \(latitude) has no Web-Mercator tile (it must be strictly between -90 and 90)")
    }
    let (u, v) = Self.unitMercator(longitude, latitude)
    let size = Double(1 << zoom)
    func index(_ value: Double) -> Int {
      if value <= 0 { return 0 }
      if value >= 1 { return (1 << zoom) - 1 }
      return Int(((value + 1e-14) * size).rounded(.down))
    }
    self.init(unchecked: zoom, index(u), index(v))
  }

  /// The position in the unit square of the Mercator world (0 at the west and north edges), as
  /// mercantile's `_xy`.
  static func unitMercator(_ longitude: Double, _ latitude: Double) -> (Double, Double) {
    let sine = sin(latitude * .pi / 180)
    return (longitude / 360 + 0.5, 0.5 - 0.25 * log((1 + sine) / (1 - sine)) / .pi)
  }

  /// The longitude and latitude of a point in tile units at `zoom` (x and y in 0…2^z).
  public static func lonLat(tileX x: Double, tileY y: Double, zoom: Int) -> (longitude: Double, latitude: Double) {
    let size = Double(1 << zoom)
    let longitude = x / size * 360 - 180
    let latitude = atan(sinh(.pi * (1 - 2 * y / size))) * 180 / .pi
    return (longitude, latitude)
  }

  /// A point's position in tile units at `zoom`, latitude clamped to the Mercator world.
  public static func tileCoordinates(_ longitude: Double, _ latitude: Double, zoom: Int) -> (x: Double, y: Double) {
    let clamped = min(max(latitude, -85.0511287798066), 85.0511287798066)
    let (u, v) = unitMercator(longitude, clamped)
    let size = Double(1 << zoom)
    return (u * size, v * size)
  }

  /// West, south, east and north in degrees, as `mercantile.bounds`.
  public var bounds: BoundingBox {
    let (west, north) = Self.lonLat(tileX: Double(x), tileY: Double(y), zoom: z)
    let (east, south) = Self.lonLat(tileX: Double(x + 1), tileY: Double(y + 1), zoom: z)
    return BoundingBox(west: west, south: south, east: east, north: north)
  }

  /// The quadkey: one digit per zoom level, 2 for the lower half and 1 for the right half.
  public var quadkey: String {
    var digits = ""
    for level in stride(from: z, to: 0, by: -1) {
      let mask = 1 << (level - 1)
      digits.append(Character(String((x & mask != 0 ? 1 : 0) + (y & mask != 0 ? 2 : 0))))
    }
    return digits
  }

  /// The tile a quadkey names.
  ///
  /// - Throws: `GeoError` for a digit other than 0–3 or more than 24 digits.
  public init(quadkey: String) throws(GeoError) {
    guard quadkey.count <= Self.maxZoom else {
      throw GeoError("quadkey '\(quadkey)' has \(quadkey.count) digits; at most \(Self.maxZoom)")
    }
    var x = 0
    var y = 0
    for character in quadkey {
      guard let digit = character.wholeNumberValue, (0...3).contains(digit), character.isASCII else {
        throw GeoError("quadkey '\(quadkey)' has '\(character)'; its digits are 0–3")
      }
      x = x << 1 | (digit & 1)
      y = y << 1 | (digit >> 1)
    }
    self.init(unchecked: quadkey.count, x, y)
  }

  /// The tile one zoom up that holds this one; nil at zoom 0.
  public var parent: Tile? { z == 0 ? nil : Tile(unchecked: z - 1, x >> 1, y >> 1) }

  /// The four tiles one zoom down, north-west, north-east, south-east, south-west (mercantile's order).
  public var children: [Tile] {
    [
      Tile(unchecked: z + 1, 2 * x, 2 * y), Tile(unchecked: z + 1, 2 * x + 1, 2 * y),
      Tile(unchecked: z + 1, 2 * x + 1, 2 * y + 1), Tile(unchecked: z + 1, 2 * x, 2 * y + 1),
    ]
  }

  /// `z/x/y`.
  public var description: String { "\(z)/\(x)/\(y)" }

  /// A tile written `z/x/y`, or a quadkey.
  public init(parsing text: String) throws(GeoError) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    if parts.count == 3 {
      guard let z = Int(parts[0]), let x = Int(parts[1]), let y = Int(parts[2]) else {
        throw GeoError("'\(text)' is not z/x/y")
      }
      try self.init(z: z, x: x, y: y)
    } else {
      try self.init(quadkey: text)
    }
  }

  public static func < (lhs: Tile, rhs: Tile) -> Bool { (lhs.z, lhs.y, lhs.x) < (rhs.z, rhs.y, rhs.x) }
}

/// West, south, east and north in degrees.
public struct BoundingBox: Hashable, Sendable {
  public var west: Double
  public var south: Double
  public var east: Double
  public var north: Double

  public init(west: Double, south: Double, east: Double, north: Double) {
    self.west = west
    self.south = south
    self.east = east
    self.north = north
  }

  /// `W,S,E,N`.
  ///
  /// - Throws: `GeoError` naming what is wrong: not four numbers, a latitude beyond ±90, south
  ///   above north.
  public init(parsing text: String) throws(GeoError) {
    let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
    guard values.count == 4, values.allSatisfy({ $0 != nil && $0!.isFinite }) else {
      throw GeoError("bbox '\(text)' is not four numbers west,south,east,north")
    }
    self.init(west: values[0]!, south: values[1]!, east: values[2]!, north: values[3]!)
    guard (-90...90).contains(south), (-90...90).contains(north) else {
      throw GeoError("bbox '\(text)': latitudes run from -90 to 90")
    }
    guard (-180...180).contains(west), (-180...180).contains(east) else {
      throw GeoError("bbox '\(text)': longitudes run from -180 to 180")
    }
    guard south <= north else { throw GeoError("bbox '\(text)': south \(south) is above north \(north)") }
  }
}

/// Why a tile, a cover or a geometry could not be made, naming what was wrong.
public struct GeoError: Error, Sendable, CustomStringConvertible {
  public var message: String

  public init(_ message: String) { self.message = message }

  public var description: String { message }
}
