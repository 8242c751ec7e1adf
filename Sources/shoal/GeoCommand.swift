import ArgumentParser
import Foundation
import ShoalGeo

/// `shoal geo …`: tile math, as mercantile and supermercado compute it, one tile a line.
struct GeoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "geo", abstract: "Web-Mercator tiles, quadkeys and tile covers of areas.",
    subcommands: [TileOf.self, Bounds.self, Cover.self])

  struct TileOf: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "tile", abstract: "The tile holding a point: z/x/y and its quadkey.")
    @Argument(help: "Longitude.") var longitude: Double
    @Argument(help: "Latitude.") var latitude: Double
    @Argument(help: "Zoom (0–24).") var zoom: Int

    func run() throws {
      let tile = try geo { () throws(GeoError) in try Tile(containing: longitude, latitude, zoom: zoom) }
      emit("\(tile) \(tile.quadkey)")
    }
  }

  struct Bounds: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A tile's west, south, east and north in degrees, and its quadkey.")
    @Argument(help: "z/x/y or a quadkey.") var tile: String

    func run() throws {
      let tile = try geo { () throws(GeoError) in try Tile(parsing: self.tile) }
      let box = tile.bounds
      emit("\(box.west) \(box.south) \(box.east) \(box.north) \(tile) \(tile.quadkey)")
    }
  }

  struct Cover: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The tiles of a bounding box (as mercantile.tiles) or of GeoJSON polygons (as supermercado burn).")
    @Option(help: "Zoom (0–24).") var zoom: Int
    @Option(help: "west,south,east,north in degrees (west > east crosses the antimeridian).") var bbox: String?
    @Option(help: "A GeoJSON file: a geometry, a Feature or a FeatureCollection; its polygons are covered.")
    var geojson: String?
    @Flag(help: "Print quadkeys instead of z/x/y.") var quadkey = false
    @Flag(help: "Print the quadkey ranges of the cover (for indexed queries) instead of its tiles.") var ranges = false

    func validate() throws {
      guard (bbox == nil) != (geojson == nil) else { throw ValidationError("give exactly one of --bbox and --geojson") }
    }

    func run() throws {
      let tiles = try geo { () throws(GeoError) -> [Tile] in
        if let bbox { return try TileCover.tiles(in: BoundingBox(parsing: bbox), zoom: zoom) }
        guard let data = FileManager.default.contents(atPath: geojson!) else {
          throw GeoError("cannot read \(geojson!)")
        }
        let polygons = try GeoJSON.features(from: data).flatMap { $0.geometry?.polygons ?? [] }
        guard !polygons.isEmpty else { throw GeoError("\(geojson!) holds no Polygon or MultiPolygon") }
        return try TileCover.tiles(covering: polygons, zoom: zoom)
      }
      if ranges {
        for range in QuadkeyRange.ranges(covering: tiles) { emit("\(range)") }
        return
      }
      for tile in tiles { emit(quadkey ? tile.quadkey : "\(tile)") }
    }
  }
}

/// Runs `body`; a geometry error becomes the command's usage error with its message.
private func geo<T>(_ body: () throws(GeoError) -> T) throws -> T {
  do {
    return try body()
  } catch {
    throw ValidationError(error.message)
  }
}
