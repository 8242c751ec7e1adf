import Foundation
import ShoalGeo
import ShoalProto
import Testing

@testable import Inference

/// A job's tiles on their way to the set: a tile with everything inside is ready at once, one
/// with a box or region at its edge waits, and at the end the pieces become one feature on the
/// tile holding most of it.
struct JobResultsTests {
  static let origin = try! Tile(containing: 13.4, 52.5, zoom: 17)
  static func tile(_ dx: Int, _ dy: Int) -> Tile { try! Tile(z: 17, x: origin.x + dx, y: origin.y + dy) }

  /// Class names by index, as a job's plan gives them.
  static func named(_ classes: [String]) -> (Int) -> String? {
    { classes.indices.contains($0) ? classes[$0] : nil }
  }

  @Test func insideIsReadyCutPiecesMergeOntoTheTileHoldingMost() throws {
    var results = JobResults(zoom: 17, tileSize: 256)
    let classes = ["car", "roof"]
    // An inside box on (0, 0); on (1, 0) a box ending at its east edge, continued on (2, 0) by a
    // narrower piece; a box of another class at (2, 0)'s west edge stays apart from it.
    var inside = TilePrediction(tile: Self.tile(0, 0))
    inside.detections = [Detection(box: PixelBox(x0: 40, y0: 40, x1: 90, y1: 80), classIndex: 0, score: 0.9)]
    var west = TilePrediction(tile: Self.tile(1, 0))
    west.detections = [Detection(box: PixelBox(x0: 180, y0: 100, x1: 256, y1: 140), classIndex: 0, score: 0.7)]
    var east = TilePrediction(tile: Self.tile(2, 0))
    east.detections = [
      Detection(box: PixelBox(x0: 0, y0: 100, x1: 20, y1: 140), classIndex: 0, score: 0.8),
      Detection(box: PixelBox(x0: 0, y0: 200, x1: 30, y1: 230), classIndex: 1, score: 0.6),
    ]
    for prediction in [inside, west, east] { results.add(prediction, named: Self.named(classes)) }
    let ready = results.takeReady()
    #expect(ready.map { Int($0.x) } == [Self.origin.x] && ready[0].features.count == 1)
    #expect(results.heldCount == 2)

    let finished = results.finish()
    #expect(finished.map { Int($0.x) } == [Self.origin.x + 1, Self.origin.x + 2])
    // The car over the edge is one feature, on (1, 0), which holds 76 of its 96 pixels; its
    // score is the better piece's. The roof stays on (2, 0).
    #expect(finished[0].features.map(\.className) == ["car"] && finished[0].features[0].score == 0.8)
    #expect(finished[1].features.map(\.className) == ["roof"])
    let car = try #require(GeoJSON.features(from: Data(finished[0].features[0].geometry.utf8)).first?.geometry)
    let bounds = car.bounds
    let expected = TileDetections(zoom: 17, tileSize: 256).polygon(
      PixelBox(
        x0: Double((Self.origin.x + 1) * 256 + 180), y0: Double(Self.origin.y * 256 + 100),
        x1: Double((Self.origin.x + 2) * 256 + 20), y1: Double(Self.origin.y * 256 + 140))
    ).bounds
    #expect(abs(bounds.west - expected.west) < 1e-9 && abs(bounds.east - expected.east) < 1e-9)
    #expect(abs(bounds.south - expected.south) < 1e-9 && abs(bounds.north - expected.north) < 1e-9)
    #expect(results.finish().isEmpty)
  }

  @Test func regionsOverAnEdgeBecomeOnePolygon() throws {
    var results = JobResults(zoom: 17, tileSize: 256)
    // One square traced on two tiles: its halves share the tile edge.
    func half(_ dx: Int) -> TilePrediction {
      var prediction = TilePrediction(tile: Self.tile(dx, 0))
      let tile = Self.tile(dx, 0)
      let (x0, x1) = dx == 0 ? (200.0, 256.0) : (0.0, 40.0)
      let corners = [(x0, 140.0), (x1, 140.0), (x1, 100.0), (x0, 100.0), (x0, 140.0)].map { x, y in
        let point = tile.lonLat(pixelX: x, pixelY: y, size: 256)
        return Position(point.longitude, point.latitude)
      }
      prediction.regions = [.init(className: "roof", polygon: Polygon(rings: [corners]).rightHanded, touchesEdge: true)]
      return prediction
    }
    results.add(half(0), named: Self.named(["roof"]))
    results.add(half(1), named: Self.named(["roof"]))
    let finished = results.finish()
    let features = finished.flatMap(\.features)
    #expect(features.count == 1 && finished[0].features.count == 1, "\(finished)")
    let merged = try #require(GeoJSON.features(from: Data(features[0].geometry.utf8)).first?.geometry?.polygons.first)
    #expect(merged.rings.count == 1)
  }
}
