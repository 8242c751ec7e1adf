import ArgumentParser
import CCairo
import Foundation
import ShoalGeo
import ShoalImage
import ShoalProto

extension JobsCommand {
  /// `shoal jobs preview SET --out map.png`: the set's imagery stitched, its predictions drawn over
  /// it, a scale bar and a legend; or the same as GeoJSON with simplestyle colours.
  struct Preview: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Draw a prediction set over its imagery (PNG), or write it as styled GeoJSON.",
      discussion: """
        Classification tiles are squares in their best class's colour; detections and segments are \
        their polygons. With --validity the colours are the set's validity colours (unvalidated, \
        valid, invalid) instead. An --out ending in .geojson writes a FeatureCollection whose \
        features carry simplestyle `fill` and `stroke` properties, for geojson.io or QGIS.
        """)
    @Argument(help: "The prediction set's id.") var set: String
    @Option(help: "The file to write: .png, or .geojson.") var out: String
    @Flag(help: "Colour by what reviewers said, not by class.") var validity = false
    @Option(help: "The PNG's largest side in pixels.") var size = 2048
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      guard (64...16384).contains(size) else { throw ValidationError("--size: give 64–16384 pixels") }
      let id = set
      let byValidity = validity
      let geojson = out.lowercased().hasSuffix(".geojson") || out.lowercased().hasSuffix(".json")
      let (set, tiles, images, attribution) = try await withFeedback(mesh, command: "jobs preview") { client in
        var get = FeedbackV1.GetSetRequest()
        get.setId = id
        let set = try await client.getSet(get)
        var tiles: [FeedbackV1.TileRecord] = []
        var query = FeedbackV1.QueryTilesRequest()
        query.setId = id
        query.pageSize = 10_000
        repeat {
          let page = try await client.queryTiles(query)
          tiles += page.tiles
          query.pageToken = page.nextPageToken
        } while !query.pageToken.isEmpty
        guard !geojson, !tiles.isEmpty else { return (set, tiles, [String: Image](), "") }
        var source = FeedbackV1.GetImageryRequest()
        source.name = set.imagery
        source.organization = set.organization
        let attribution = (try? await client.getImagery(source))?.attribution ?? ""
        var fetch = FeedbackV1.FetchTilesRequest()
        fetch.imagery = set.imagery
        fetch.organization = set.organization
        fetch.tiles = tiles.map(\.tileId)
        fetch.withData = true
        let images = try await client.fetchTiles(fetch) { answers -> [String: Image] in
          var images: [String: Image] = [:]
          let bar = ProgressLine(label: "imagery", total: tiles.count, unit: "tiles")
          for try await fetched in answers {
            bar.update(Int(fetched.done))
            if fetched.failure == nil, let image = try? Image(decoding: fetched.data) { images[fetched.tileId] = image }
          }
          bar.finish()
          return images
        }
        return (set, tiles, images, attribution)
      }
      guard !tiles.isEmpty else { throw ValidationError("set \(id) has no tiles yet") }
      let drawing = PreviewDrawing(set: set, tiles: tiles, byValidity: byValidity)
      if geojson {
        try Data(drawing.geojson().utf8).write(to: URL(fileURLWithPath: out))
        emit("wrote \(out): \(tiles.count) tiles of set \(id) as GeoJSON")
      } else {
        try drawing.writePNG(to: out, images: images, largestSide: size, attribution: attribution)
        emit("wrote \(out): \(tiles.count) tiles of set \(id), \(images.count) with imagery")
      }
    }
  }
}

/// A prediction set's tiles and features laid out in world pixels at the set's zoom, with their
/// colours.
struct PreviewDrawing {
  struct Shape {
    var rings: [[Position]]
    var colour: String
    var properties: [String: Any]
  }

  let set: FeedbackV1.PredictionSet
  let tiles: [FeedbackV1.TileRecord]
  let byValidity: Bool
  let classColours: [String: String]
  let shapes: [Shape]

  static let palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]

  init(set: FeedbackV1.PredictionSet, tiles: [FeedbackV1.TileRecord], byValidity: Bool) {
    self.set = set
    self.tiles = tiles
    self.byValidity = byValidity
    var colours: [String: String] = [:]
    for (index, label) in set.classes.enumerated() {
      colours[label.name] = label.color.isEmpty ? Self.palette[index % Self.palette.count] : label.color
    }
    classColours = colours
    var shapes: [Shape] = []
    for tile in tiles {
      let validityColour = tile.color.isEmpty ? (set.colors?.unvalidated ?? "#ff0000") : tile.color
      if tile.features.isEmpty {
        // A classification tile is its square; a tile of another task is drawn by its features.
        guard let best = tile.scores.max(by: { $0.value < $1.value }), set.task == .classification,
          let square = try? Tile(z: Int(tile.z), x: Int(tile.x), y: Int(tile.y))
        else { continue }
        shapes.append(
          Shape(
            rings: Polygon(square.bounds).rings, colour: byValidity ? validityColour : colours[best.key] ?? "#ff0000",
            properties: ["tile": tile.tileId, "class": best.key, "score": best.value]))
        continue
      }
      for feature in tile.features {
        guard let geometry = try? GeoJSON.features(from: Data(feature.geometry.utf8), validate: false).first?.geometry
        else { continue }
        for polygon in geometry.polygons {
          shapes.append(
            Shape(
              rings: polygon.rings,
              colour: byValidity ? validityColour : colours[feature.className] ?? "#ff0000",
              properties: [
                "tile": tile.tileId, "feature": feature.featureId, "class": feature.className, "score": feature.score,
              ]))
        }
      }
    }
    self.shapes = shapes
  }

  /// The legend's entries: classes, or the three validity colours.
  var legend: [(String, String)] {
    if byValidity {
      let colors = set.colors ?? FeedbackV1.DisplayColors()
      return [
        ("unvalidated", colors.unvalidated.isEmpty ? "#ff0000" : colors.unvalidated),
        ("valid", colors.valid.isEmpty ? "#00ff00" : colors.valid),
        ("invalid", colors.invalid.isEmpty ? "#ffffff" : colors.invalid),
      ]
    }
    return set.classes.map { ($0.name, classColours[$0.name] ?? "#ff0000") }
  }

  func geojson() -> String {
    let features = shapes.map { shape -> GeoJSON.Feature in
      var properties = shape.properties
      properties["fill"] = shape.colour
      properties["stroke"] = shape.colour
      properties["fill-opacity"] = 0.4
      let json = (try? JSONSerialization.data(withJSONObject: properties, options: [.sortedKeys])) ?? Data("{}".utf8)
      return GeoJSON.Feature(
        geometry: .polygon(Polygon(rings: shape.rings)), propertiesJSON: String(decoding: json, as: UTF8.self))
    }
    return GeoJSON.featureCollection(features)
  }

  func writePNG(to path: String, images: [String: Image], largestSide: Int, attribution: String) throws {
    let zoom = Int(set.zoom)
    let xs = tiles.map { Int($0.x) }
    let ys = tiles.map { Int($0.y) }
    let (minX, minY) = (xs.min()!, ys.min()!)
    let (columns, rows) = (xs.max()! - minX + 1, ys.max()! - minY + 1)
    let tileSide = min(256.0, Double(largestSide) / Double(max(columns, rows)))
    let (width, height) = (Int((Double(columns) * tileSide).rounded()), Int((Double(rows) * tileSide).rounded()))
    let margin = 0.0
    func point(_ position: Position) -> (Double, Double) {
      let tile = Tile.tileCoordinates(position.longitude, position.latitude, zoom: zoom)
      return (margin + (tile.x - Double(minX)) * tileSide, margin + (tile.y - Double(minY)) * tileSide)
    }

    let surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(width), Int32(height))
    defer { cairo_surface_destroy(surface) }
    let context = cairo_create(surface)
    defer { cairo_destroy(context) }
    cairo_set_source_rgb(context, 0.2, 0.2, 0.2)
    cairo_paint(context)

    // The imagery, each tile scaled into its square.
    for tile in tiles {
      guard let image = images[tile.tileId] else { continue }
      let rgb = image.rgb()
      let stride = Int(cairo_format_stride_for_width(CAIRO_FORMAT_RGB24, Int32(rgb.width)))
      var pixels = [UInt8](repeating: 0, count: stride * rgb.height)
      for y in 0..<rgb.height {
        for x in 0..<rgb.width {
          let from = (y * rgb.width + x) * 3
          let to = y * stride + x * 4
          // Cairo's RGB24 is a native-endian 32-bit word 0x00RRGGBB: B, G, R, X in memory here.
          (pixels[to], pixels[to + 1], pixels[to + 2]) = (rgb.pixels[from + 2], rgb.pixels[from + 1], rgb.pixels[from])
        }
      }
      pixels.withUnsafeMutableBytes { buffer in
        let tileSurface = cairo_image_surface_create_for_data(
          buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), CAIRO_FORMAT_RGB24, Int32(rgb.width),
          Int32(rgb.height), Int32(stride))
        defer { cairo_surface_destroy(tileSurface) }
        cairo_save(context)
        cairo_translate(context, Double(Int(tile.x) - minX) * tileSide, Double(Int(tile.y) - minY) * tileSide)
        cairo_scale(context, tileSide / Double(rgb.width), tileSide / Double(rgb.height))
        cairo_set_source_surface(context, tileSurface, 0, 0)
        cairo_paint(context)
        cairo_restore(context)
      }
    }

    // The predictions: filled lightly, outlined.
    cairo_set_line_join(context, CAIRO_LINE_JOIN_ROUND)
    for shape in shapes {
      for ring in shape.rings {
        guard let first = ring.first else { continue }
        let start = point(first)
        cairo_move_to(context, start.0, start.1)
        for position in ring.dropFirst() {
          let next = point(position)
          cairo_line_to(context, next.0, next.1)
        }
        cairo_close_path(context)
      }
      cairo_set_fill_rule(context, CAIRO_FILL_RULE_EVEN_ODD)
      let (r, g, b) = Self.rgb(shape.colour)
      cairo_set_source_rgba(context, r, g, b, 0.35)
      cairo_fill_preserve(context)
      cairo_set_source_rgba(context, r, g, b, 0.95)
      cairo_set_line_width(context, max(1, tileSide / 128))
      cairo_stroke(context)
    }

    cairo_select_font_face(context, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
    let fontSize = max(10, min(16, Double(width) / 60))
    cairo_set_font_size(context, fontSize)
    drawScaleBar(context, width: Double(width), height: Double(height), tileSide: tileSide, minY: minY, rows: rows)
    drawLegend(context, width: Double(width), fontSize: fontSize)
    if !attribution.isEmpty {
      var extents = cairo_text_extents_t()
      cairo_text_extents(context, attribution, &extents)
      let x = Double(width) - extents.x_advance - 6
      let y = Double(height) - 6
      cairo_set_source_rgba(context, 1, 1, 1, 0.7)
      cairo_rectangle(context, x - 4, y - fontSize - 2, extents.x_advance + 8, fontSize + 6)
      cairo_fill(context)
      cairo_set_source_rgb(context, 0, 0, 0)
      cairo_move_to(context, x, y)
      cairo_show_text(context, attribution)
    }

    cairo_surface_flush(surface)
    let status = cairo_surface_write_to_png(surface, path)
    guard status == CAIRO_STATUS_SUCCESS else {
      throw ValidationError("cannot write \(path): \(String(cString: cairo_status_to_string(status)))")
    }
  }

  /// A bar of a round length (1, 2 or 5 × 10ⁿ metres) near a quarter of the width, bottom left.
  private func drawScaleBar(
    _ context: OpaquePointer?, width: Double, height: Double, tileSide: Double, minY: Int, rows: Int
  ) {
    let zoom = Int(set.zoom)
    let latitude = Tile.lonLat(tileX: 0, tileY: Double(minY) + Double(rows) / 2, zoom: zoom).latitude
    let metresPerPixel =
      2 * Double.pi * 6_378_137 * cos(latitude * .pi / 180) / (Double(1 << zoom) * tileSide)
    let target = width / 4 * metresPerPixel
    let magnitude = pow(10, (log10(target)).rounded(.down))
    let length = [5.0, 2, 1].map { $0 * magnitude }.first { $0 <= target } ?? magnitude
    let pixels = length / metresPerPixel
    let label = length >= 1000 ? "\(Self.number(length / 1000)) km" : "\(Self.number(length)) m"
    let (x, y) = (12.0, height - 16)
    cairo_set_source_rgba(context, 1, 1, 1, 0.75)
    cairo_rectangle(context, x - 6, y - 24, pixels + 12, 34)
    cairo_fill(context)
    cairo_set_source_rgb(context, 0, 0, 0)
    cairo_set_line_width(context, 3)
    cairo_move_to(context, x, y - 6)
    cairo_line_to(context, x, y)
    cairo_line_to(context, x + pixels, y)
    cairo_line_to(context, x + pixels, y - 6)
    cairo_stroke(context)
    cairo_move_to(context, x, y - 10)
    cairo_show_text(context, label)
  }

  private func drawLegend(_ context: OpaquePointer?, width: Double, fontSize: Double) {
    let entries = legend
    guard !entries.isEmpty else { return }
    var widest = 0.0
    for (name, _) in entries {
      var extents = cairo_text_extents_t()
      cairo_text_extents(context, name, &extents)
      widest = max(widest, extents.x_advance)
    }
    let line = fontSize + 6
    let boxWidth = widest + fontSize + 24
    let x = width - boxWidth - 10
    cairo_set_source_rgba(context, 1, 1, 1, 0.8)
    cairo_rectangle(context, x, 10, boxWidth, line * Double(entries.count) + 10)
    cairo_fill(context)
    for (index, (name, colour)) in entries.enumerated() {
      let y = 15 + line * Double(index)
      let (r, g, b) = Self.rgb(colour)
      cairo_set_source_rgb(context, r, g, b)
      cairo_rectangle(context, x + 6, y, fontSize, fontSize)
      cairo_fill_preserve(context)
      cairo_set_source_rgb(context, 0.2, 0.2, 0.2)
      cairo_set_line_width(context, 1)
      cairo_stroke(context)
      cairo_set_source_rgb(context, 0, 0, 0)
      cairo_move_to(context, x + fontSize + 14, y + fontSize - 1)
      cairo_show_text(context, name)
    }
  }

  private static func number(_ value: Double) -> String {
    value == value.rounded() ? "\(Int(value))" : String(format: "%g", value)
  }

  static func rgb(_ hex: String) -> (Double, Double, Double) {
    let value = UInt32(hex.dropFirst(), radix: 16) ?? 0xFF0000
    return (Double((value >> 16) & 0xFF) / 255, Double((value >> 8) & 0xFF) / 255, Double(value & 0xFF) / 255)
  }
}
