import Foundation
import ShoalGeo
import ShoalProto

/// A job's tiles on their way to the prediction set. A tile whose features all lie inside it is
/// ready at once; a tile with a box or region reaching its edge is held, and at the end the
/// pieces of each object cut by tile edges become one feature (boxes by `TileDetections.merged`,
/// regions by a union), given to the held tile it overlaps most.
struct JobResults {
  let zoom: Int
  let tileSize: Int
  /// How near an edge (in pixels) a box ends to count as cut by it.
  let tolerance = 2.0

  private(set) var ready: [FeedbackV1.PredictedTile] = []
  private var held: [Tile: FeedbackV1.PredictedTile] = [:]
  private var edgeBoxes: TileDetections
  private var edgeBoxClasses: [Int: String] = [:]
  private var edgeRegions: [String: [Polygon]] = [:]

  init(zoom: Int, tileSize: Int) {
    self.zoom = zoom
    self.tileSize = tileSize
    edgeBoxes = TileDetections(zoom: zoom, tileSize: tileSize)
  }

  /// Tiles held until the end.
  var heldCount: Int { held.count }

  /// Adds a tile's predictions; `named` gives a class index's name (nil: not a class of the model).
  mutating func add(_ prediction: TilePrediction, named: (Int) -> String?) {
    let tile = prediction.tile
    var record = FeedbackV1.PredictedTile()
    (record.z, record.x, record.y) = (Int32(tile.z), Int64(tile.x), Int64(tile.y))
    record.scores = prediction.scores
    var cut = false
    let size = Double(tileSize)
    var inside = TileDetections(zoom: zoom, tileSize: tileSize)
    var insideNames: [String] = []
    var edge: [Detection] = []
    for detection in prediction.detections {
      guard let name = named(detection.classIndex) else { continue }
      let box = detection.box
      if box.x0 <= tolerance || box.y0 <= tolerance || box.x1 >= size - tolerance || box.y1 >= size - tolerance {
        edge.append(detection)
        edgeBoxClasses[detection.classIndex] = name
      } else {
        inside.add([detection], on: tile)
        insideNames.append(name)
      }
    }
    for (detection, name) in zip(inside.detections, insideNames) {
      record.features.append(Self.feature(inside.polygon(detection.box), className: name, score: detection.score))
    }
    if !edge.isEmpty {
      edgeBoxes.add(edge, on: tile)
      cut = true
    }
    for region in prediction.regions {
      if region.touchesEdge {
        edgeRegions[region.className, default: []].append(region.polygon)
        cut = true
      } else {
        record.features.append(Self.feature(region.polygon, className: region.className, score: 1))
      }
    }
    if cut {
      held[tile] = record
    } else {
      ready.append(record)
    }
  }

  /// Takes the ready tiles.
  mutating func takeReady() -> [FeedbackV1.PredictedTile] {
    defer { ready = [] }
    return ready
  }

  /// The held tiles with the merged features, in tile order; nothing is held after.
  mutating func finish() -> [FeedbackV1.PredictedTile] {
    guard !held.isEmpty else { return [] }
    let size = Double(tileSize)
    for detection in edgeBoxes.merged(tolerance: tolerance) {
      let box = detection.box
      let owner = bestHeld(
        columns: Self.span(box.x0 / size, box.x1 / size), rows: Self.span(box.y0 / size, box.y1 / size)
      ) { tile in
        let x = min(box.x1, Double(tile.x + 1) * size) - max(box.x0, Double(tile.x) * size)
        let y = min(box.y1, Double(tile.y + 1) * size) - max(box.y0, Double(tile.y) * size)
        return max(0, x) * max(0, y)
      }
      guard let owner, let name = edgeBoxClasses[detection.classIndex] else { continue }
      held[owner]!.features.append(
        Self.feature(edgeBoxes.polygon(box), className: name, score: detection.score))
    }
    for (name, pieces) in edgeRegions.sorted(by: { $0.key < $1.key }) {
      for polygon in GeometryCheck.union(pieces) {
        let bounds = polygon.bounds
        let northWest = Tile.tileCoordinates(bounds.west, bounds.north, zoom: zoom)
        let southEast = Tile.tileCoordinates(bounds.east, bounds.south, zoom: zoom)
        let owner = bestHeld(
          columns: Self.span(northWest.x, southEast.x), rows: Self.span(northWest.y, southEast.y)
        ) { tile in
          let area = tile.bounds
          let x = min(bounds.east, area.east) - max(bounds.west, area.west)
          let y = min(bounds.north, area.north) - max(bounds.south, area.south)
          return max(0, x) * max(0, y)
        }
        guard let owner else { continue }
        held[owner]!.features.append(Self.feature(polygon, className: name, score: 1))
      }
    }
    let tiles = held.sorted { $0.key < $1.key }.map(\.value)
    held = [:]
    edgeBoxes = TileDetections(zoom: zoom, tileSize: tileSize)
    edgeRegions = [:]
    return tiles
  }

  /// The tile numbers from `low` to `high` (in tiles; an end exactly on a tile line does not take
  /// the tile after it).
  private static func span(_ low: Double, _ high: Double) -> ClosedRange<Int> {
    let first = Int(low.rounded(.down))
    return first...max(first, Int((high - 1e-9).rounded(.down)))
  }

  /// The held tile among `columns` × `rows` with the largest `overlap`.
  private func bestHeld(columns: ClosedRange<Int>, rows: ClosedRange<Int>, overlap: (Tile) -> Double) -> Tile? {
    var best: (tile: Tile, overlap: Double)?
    for y in rows {
      for x in columns {
        guard let tile = try? Tile(z: zoom, x: x, y: y), held[tile] != nil else { continue }
        let shared = overlap(tile)
        if best == nil || shared > best!.overlap { best = (tile, shared) }
      }
    }
    return best?.tile
  }

  static func feature(_ polygon: Polygon, className: String, score: Double) -> FeedbackV1.Feature {
    var feature = FeedbackV1.Feature()
    let object = GeoJSON.object(.polygon(polygon), bbox: false)
    feature.geometry = String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
    feature.className = className
    feature.score = score
    return feature
  }
}
