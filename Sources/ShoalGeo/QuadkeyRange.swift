/// A run of quadkeys at one zoom, as integers: the quadkey's digits read in base 4, so that a
/// prefix's tiles are one interval and a tile cover becomes a few `BETWEEN` conditions on an index.
public struct QuadkeyRange: Hashable, Sendable, CustomStringConvertible {
  /// The zoom of the quadkeys.
  public let zoom: Int
  /// The first and last quadkey number in the range, inclusive.
  public let first: Int64
  public let last: Int64

  /// The quadkey number of a tile (its quadkey's digits in base 4).
  public static func number(of tile: Tile) -> Int64 {
    var value: Int64 = 0
    for level in stride(from: tile.z, to: 0, by: -1) {
      let mask = 1 << (level - 1)
      value = value << 2 | Int64((tile.x & mask != 0 ? 1 : 0) | (tile.y & mask != 0 ? 2 : 0))
    }
    return value
  }

  /// The fewest ranges holding exactly `tiles` (all of one zoom): sibling quartets merge into
  /// their parent's prefix, and prefixes that follow each other merge into one range.
  ///
  /// - Precondition: every tile has the same zoom.
  public static func ranges(covering tiles: [Tile]) -> [QuadkeyRange] {
    guard let zoom = tiles.first?.z else { return [] }
    precondition(tiles.allSatisfy { $0.z == zoom }, "quadkey ranges take tiles of one zoom")
    let numbers = Set(tiles.map(number(of:))).sorted()
    var ranges: [QuadkeyRange] = []
    for value in numbers {
      if let last = ranges.last, last.last + 1 == value {
        ranges[ranges.count - 1] = QuadkeyRange(zoom: zoom, first: last.first, last: value)
      } else {
        ranges.append(QuadkeyRange(zoom: zoom, first: value, last: value))
      }
    }
    return ranges
  }

  /// The quadkey numbers `first` through `last` at `zoom`.
  public init(zoom: Int, first: Int64, last: Int64) {
    self.zoom = zoom
    self.first = first
    self.last = last
  }

  /// Whether the range holds `tile`'s quadkey (the tile must be of the range's zoom).
  public func contains(_ tile: Tile) -> Bool {
    guard tile.z == zoom else { return false }
    let value = Self.number(of: tile)
    return first <= value && value <= last
  }

  /// The number of tiles in the range.
  public var count: Int64 { last - first + 1 }

  /// `first–last` as quadkeys.
  public var description: String {
    func quadkey(_ value: Int64) -> String {
      String((0..<zoom).reversed().map { Character(String(value >> (2 * Int64($0)) & 3)) })
    }
    return first == last ? quadkey(first) : "\(quadkey(first))–\(quadkey(last))"
  }
}
