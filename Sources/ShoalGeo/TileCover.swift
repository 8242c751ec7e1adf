/// The tiles of an area at one zoom.
public enum TileCover {
  /// The tiles a bounding box overlaps, as `mercantile.tiles`: a box with west > east is split at
  /// the antimeridian, latitudes are clamped to ±85.051129°, and a tile that only touches the
  /// box's east or south edge is left out. Rows north to south, columns west to east.
  ///
  /// - Throws: `GeoError` for a zoom outside 0–24.
  public static func tiles(in box: BoundingBox, zoom: Int) throws(GeoError) -> [Tile] {
    guard (0...Tile.maxZoom).contains(zoom) else { throw GeoError("zoom \(zoom) is outside 0–\(Tile.maxZoom)") }
    let boxes =
      box.west > box.east
      ? [
        BoundingBox(west: -180, south: box.south, east: box.east, north: box.north),
        BoundingBox(west: box.west, south: box.south, east: 180, north: box.north),
      ] : [box]
    var tiles: [Tile] = []
    for part in boxes {
      let west = max(-180, part.west)
      let south = max(-Tile.maxLatitude, part.south)
      let east = min(180, part.east)
      let north = min(Tile.maxLatitude, part.north)
      let first = try Tile(containing: west, north, zoom: zoom)
      let last = try Tile(containing: east - 1e-11, south + 1e-11, zoom: zoom)
      guard first.x <= last.x, first.y <= last.y else { continue }
      for x in first.x...last.x {
        for y in first.y...last.y { tiles.append(Tile(unchecked: zoom, x, y)) }
      }
    }
    return tiles
  }

  /// The tiles whose interior a polygon's interior meets, as supermercado's `burn`: a tile that
  /// only touches the polygon (at an edge or a corner) is left out, holes are left out, and edges
  /// are straight in Web-Mercator. Latitudes are clamped to the Mercator world. Sorted by row,
  /// then column.
  ///
  /// - Throws: `GeoError` for a zoom outside 0–24.
  public static func tiles(covering polygons: [Polygon], zoom: Int) throws(GeoError) -> [Tile] {
    guard (0...Tile.maxZoom).contains(zoom) else { throw GeoError("zoom \(zoom) is outside 0–\(Tile.maxZoom)") }
    var covered = Set<Tile>()
    for polygon in polygons { cover(polygon, zoom: zoom, into: &covered) }
    return covered.sorted()
  }

  /// One polygon, row by row: a tile is covered when an edge passes through its open square, or
  /// when its centre lies inside (even-odd over every ring). An open square no edge enters is
  /// wholly inside or wholly outside, so its centre decides.
  private static func cover(_ polygon: Polygon, zoom: Int, into covered: inout Set<Tile>) {
    let size = 1 << zoom
    var edges: [(x0: Double, y0: Double, x1: Double, y1: Double)] = []
    var top = Double.infinity
    var bottom = -Double.infinity
    for ring in polygon.rings {
      let points = ring.map { Tile.tileCoordinates($0.longitude, $0.latitude, zoom: zoom) }
      for index in points.indices.dropLast() {
        let (a, b) = (points[index], points[index + 1])
        edges.append((a.x, a.y, b.x, b.y))
        top = min(top, a.y, b.y)
        bottom = max(bottom, a.y, b.y)
      }
    }
    guard top < bottom else { return }
    let firstRow = max(0, Int(top.rounded(.down)))
    let lastRow = min(size - 1, Int(bottom.rounded(.up)) - 1)
    guard firstRow <= lastRow else { return }
    func mark(_ row: Int, _ from: Int, _ to: Int) {
      let first = max(0, from)
      let last = min(size - 1, to)
      guard first <= last else { return }
      for column in first...last { covered.insert(Tile(unchecked: zoom, column, row)) }
    }
    for row in firstRow...lastRow {
      let low = Double(row)
      let high = low + 1
      // Edges through the open band low < y < high mark the columns their open pieces cross.
      for edge in edges {
        if edge.y0 == edge.y1 {
          guard edge.y0 > low, edge.y0 < high else { continue }
          let (a, b) = (min(edge.x0, edge.x1), max(edge.x0, edge.x1))
          mark(row, Int(a.rounded(.down)), Int(b.rounded(.up)) - 1)
          continue
        }
        let ya = max(low, min(edge.y0, edge.y1))
        let yb = min(high, max(edge.y0, edge.y1))
        guard ya < yb else { continue }
        let slope = (edge.x1 - edge.x0) / (edge.y1 - edge.y0)
        let xa = edge.x0 + (ya - edge.y0) * slope
        let xb = edge.x0 + (yb - edge.y0) * slope
        let (a, b) = (min(xa, xb), max(xa, xb))
        if a < b {
          mark(row, Int(a.rounded(.down)), Int(b.rounded(.up)) - 1)
        } else if a != a.rounded(.down) {
          mark(row, Int(a.rounded(.down)), Int(a.rounded(.down)))
        }
      }
      // Centres inside: crossings of the band's middle line, paired.
      let middle = low + 0.5
      var crossings: [Double] = []
      for edge in edges where (edge.y0 <= middle) != (edge.y1 <= middle) {
        crossings.append(edge.x0 + (middle - edge.y0) * (edge.x1 - edge.x0) / (edge.y1 - edge.y0))
      }
      crossings.sort()
      var index = 0
      while index + 1 < crossings.count {
        // Columns c with c + 0.5 strictly between the two crossings.
        let first = Int((crossings[index] - 0.5).rounded(.down)) + 1
        let last = Int((crossings[index + 1] - 0.5).rounded(.up)) - 1
        mark(row, first, last)
        index += 2
      }
    }
  }
}
