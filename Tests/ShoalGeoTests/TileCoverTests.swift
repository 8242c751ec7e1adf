import Foundation
import ShoalGeo
import ShoalTestSupport
import Testing

/// Tile math and covers against mercantile and supermercado (PyPI, the tests' Python) on seeded
/// random cases, with the antimeridian and the poles' clamp among them.
@Suite(.serialized)
struct TileCoverTests {
  static let makeCases = #"""
    import json, math, random, sys
    import mercantile
    from supermercado import burntiles
    rng = random.Random(20261206)
    points = []
    for _ in range(300):
        lon, lat, z = rng.uniform(-180, 180), rng.uniform(-89, 89), rng.randint(0, 24)
        if rng.random() < 0.1: lon = rng.choice([-180.0, 180.0, -179.9999999, 179.9999999])
        t = mercantile.tile(lon, lat, z)
        points.append({"lon": lon, "lat": lat, "z": z, "tile": [t.x, t.y, t.z], "quadkey": mercantile.quadkey(t),
                       "bounds": list(mercantile.bounds(t))})
    boxes = []
    for _ in range(150):
        z = rng.randint(0, 13)
        w = rng.uniform(-180, 180); s = rng.uniform(-89, 89)
        e = w + rng.uniform(0, 360 / 2 ** z * 30); n = s + rng.uniform(0, 170 / 2 ** z * 30)
        if rng.random() < 0.25:   # crosses the antimeridian
            w, e = rng.uniform(170, 180), rng.uniform(-180, -170)
        e, n = min(e, 180), min(n, 89.5)
        if rng.random() < 0.1:    # a tile's own bounds: exactly one tile
            t = mercantile.tile(rng.uniform(-180, 180), rng.uniform(-80, 80), z)
            w, s, e, n = mercantile.bounds(t)
        tiles = [[t.x, t.y, t.z] for t in mercantile.tiles(w, s, e, n, z)]
        boxes.append({"bbox": [w, s, e, n], "z": z, "tiles": tiles})
    polygons = []
    for case in range(120):
        z = rng.randint(8, 17)
        cx, cy = rng.uniform(-150, 150), rng.uniform(-60, 60)
        tile_deg = 360 / 2 ** z
        radius = tile_deg * rng.uniform(0.3, 12) * max(0.2, math.cos(math.radians(cy)))
        def star(r, count, reverse=False):
            angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(count))
            ring = [[cx + r * rng.uniform(0.5, 1) * math.cos(a), cy + r * rng.uniform(0.5, 1) * math.sin(a)] for a in angles]
            ring = ring[::-1] if reverse else ring
            return ring + [ring[0]]
        rings = [star(radius, rng.randint(3, 12))]
        if rng.random() < 0.4:
            rings.append(star(radius * 0.25, rng.randint(3, 6), reverse=True))
        if rng.random() < 0.15:  # tile-aligned box: its touching neighbours stay out
            t = mercantile.tile(cx, cy, z)
            w, s, e, n = mercantile.bounds(t.x, t.y, t.z)
            e2, s2 = mercantile.bounds(t.x + 2, t.y + 1, t.z)[2], mercantile.bounds(t.x + 2, t.y + 1, t.z)[1]
            rings = [[[w, s2], [e2, s2], [e2, n], [w, n], [w, s2]]]
        geometry = {"type": "Polygon", "coordinates": rings}
        burned = burntiles.burn([{"type": "Feature", "geometry": geometry, "properties": {}}], z)
        polygons.append({"geometry": geometry, "z": z, "tiles": sorted([int(x), int(y), int(zz)] for x, y, zz in burned)})
    json.dump({"points": points, "boxes": boxes, "polygons": polygons}, open(sys.argv[1], "w"))
    """#

  struct Cases {
    let points: [[String: Any]]
    let boxes: [[String: Any]]
    let polygons: [[String: Any]]
  }

  static func cases() async throws -> Cases {
    let directory = try TemporaryDirectory()
    let file = directory.path("cases.json")
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", makeCases, file])
    try #require(made.status == 0, "\(made.stderrText)")
    let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
    return Cases(
      points: object["points"] as! [[String: Any]], boxes: object["boxes"] as! [[String: Any]],
      polygons: object["polygons"] as! [[String: Any]])
  }

  static func tiles(_ value: Any?) -> [Tile] {
    (value as! [[Int]]).map { try! Tile(z: $0[2], x: $0[0], y: $0[1]) }
  }

  @Test func pointsQuadkeysAndBoundsAsMercantile() async throws {
    let cases = try await Self.cases()
    for case let point in cases.points {
      let (lon, lat, z) = (point["lon"] as! Double, point["lat"] as! Double, point["z"] as! Int)
      let tile = try Tile(containing: lon, lat, zoom: z)
      let expected = Self.tiles([point["tile"]!])[0]
      #expect(tile == expected, "\(lon), \(lat) at \(z)")
      #expect(tile.quadkey == point["quadkey"] as! String)
      #expect(try Tile(quadkey: tile.quadkey) == tile)
      let bounds = point["bounds"] as! [Double]
      let box = tile.bounds
      #expect(
        zip([box.west, box.south, box.east, box.north], bounds).allSatisfy { abs($0 - $1) <= 1e-9 }, "\(tile)")
      if let parent = tile.parent { #expect(parent.children.contains(tile)) }
    }
  }

  @Test func boxesAsMercantileTiles() async throws {
    let cases = try await Self.cases()
    for case let box in cases.boxes {
      let values = box["bbox"] as! [Double]
      let bbox = BoundingBox(west: values[0], south: values[1], east: values[2], north: values[3])
      let got = try TileCover.tiles(in: bbox, zoom: box["z"] as! Int)
      #expect(Set(got) == Set(Self.tiles(box["tiles"])), "\(values) at \(box["z"]!)")
    }
  }

  @Test func polygonsAsSupermercadoBurn() async throws {
    let cases = try await Self.cases()
    var mismatches: [String] = []
    for case let polygon in cases.polygons {
      let geometry = polygon["geometry"] as! [String: Any]
      let data = try JSONSerialization.data(withJSONObject: geometry)
      let polygons = try GeoJSON.features(from: data, validate: false).flatMap { $0.geometry?.polygons ?? [] }
      let zoom = polygon["z"] as! Int
      let got = Set(try TileCover.tiles(covering: polygons, zoom: zoom))
      let expected = Set(Self.tiles(polygon["tiles"]))
      if got != expected {
        mismatches.append(
          "zoom \(zoom): only Shoal \(got.subtracting(expected).sorted()), only supermercado \(expected.subtracting(got).sorted())"
        )
      }
    }
    #expect(
      mismatches.isEmpty, "\(mismatches.count) of \(cases.polygons.count):\n\(mismatches.joined(separator: "\n"))")
  }

  @Test func quadkeyRangesHoldExactlyTheCover() throws {
    let polygon = Polygon(BoundingBox(west: -0.2, south: 51.4, east: 0.1, north: 51.6))
    let tiles = try TileCover.tiles(covering: [polygon], zoom: 14)
    let ranges = QuadkeyRange.ranges(covering: tiles)
    #expect(ranges.reduce(0) { $0 + $1.count } == Int64(tiles.count))
    #expect(ranges.count < tiles.count / 4)
    let box = try TileCover.tiles(in: BoundingBox(west: -0.3, south: 51.3, east: 0.2, north: 51.7), zoom: 14)
    for tile in box {
      #expect(ranges.contains { $0.contains(tile) } == tiles.contains(tile), "\(tile)")
    }
    // Four siblings are one range, their parent's prefix.
    let parent = try Tile(z: 9, x: 100, y: 200)
    #expect(QuadkeyRange.ranges(covering: parent.children).count == 1)
  }

  @Test func pixelsRoundTrip() throws {
    let tile = try Tile(containing: 13.4, 52.5, zoom: 15)
    let (x, y) = tile.pixel(13.4, 52.5, size: 512)
    #expect((0..<512).contains(x) && (0..<512).contains(y))
    let back = tile.lonLat(pixelX: x, pixelY: y, size: 512)
    #expect(abs(back.longitude - 13.4) < 1e-9 && abs(back.latitude - 52.5) < 1e-9)
    let corner = tile.lonLat(pixelX: 0, pixelY: 0, size: 256)
    #expect(abs(corner.longitude - tile.bounds.west) < 1e-12 && abs(corner.latitude - tile.bounds.north) < 1e-12)
  }

  @Test func badInputNamesThePart() throws {
    func problem(_ json: String) -> String? {
      do {
        _ = try GeoJSON.features(from: Data(json.utf8))
        return nil
      } catch {
        return error.message
      }
    }
    #expect(
      problem(#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#)?.contains(
        "geometry.coordinates[0]: the ring is not closed") == true)
    #expect(problem(#"{"type":"Point","coordinates":[10,95]}"#)?.contains("latitude 95.0 is beyond ±90") == true)
    let bowtie = #"{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"#
    #expect(problem(bowtie)?.contains("Self-intersection") == true, "\(problem(bowtie) ?? "valid")")
    let collection =
      #"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Blob","coordinates":[]}}]}"#
    #expect(problem(collection)?.contains("features[0].geometry.type: 'Blob' is not a GeoJSON geometry type") == true)
    #expect(throws: GeoError.self) { try Tile(z: 25, x: 0, y: 0) }
    #expect(throws: GeoError.self) {
      try TileCover.tiles(in: BoundingBox(west: 0, south: 0, east: 1, north: 1), zoom: -1)
    }
    #expect(throws: GeoError.self) { try Tile(quadkey: "0124") }
  }

  @Test func writingIsRightHandedWithABbox() throws {
    // Clockwise exterior, counter-clockwise hole: written the other way round.
    let polygon = Polygon(rings: [
      [Position(0, 0), Position(0, 2), Position(2, 2), Position(2, 0), Position(0, 0)],
      [Position(0.5, 0.5), Position(1.5, 0.5), Position(1.5, 1.5), Position(0.5, 1.5), Position(0.5, 0.5)],
    ])
    let object = GeoJSON.object(.polygon(polygon))
    #expect(object["bbox"] as? [Double] == [0, 0, 2, 2])
    let rings = (object["coordinates"] as! [[[Double]]]).map { $0.map { Position($0[0], $0[1]) } }
    #expect(rings[0][1] == Position(2, 0) && rings[1][1] == Position(0.5, 1.5))
    let simplified = try #require(GeometryCheck.simplified(polygon, tolerance: 0.1))
    #expect(simplified.rings.count == 2)
  }
}
