import Foundation
import Inference
import ShoalGeo
import ShoalModel
import ShoalTestSupport
import Testing

/// Detection post-processing: both output layouts, thresholds and per-class NMS, objects cut by
/// tile edges put back together, and boxes as lon/lat polygons.
struct DetectionTests {
  @Test func tensorflowOutputsAreNormalisedYXYXWithClassesFromOne() throws {
    let boxes = Tensor(
      shape: [1, 3, 4],
      elements: [Float](
        [0.1, 0.2, 0.5, 0.6, 0, 0, 1, 1, 0.3, 0.3, 0.4, 0.4]))
    let scores = Tensor(shape: [1, 3], elements: [Float]([0.9, 0.8, 0.1]))
    let classes = Tensor(shape: [1, 3], elements: [Float]([2, 1, 1]))
    let count = Tensor(shape: [1], elements: [Float]([2]))
    let found = try DetectionOutputs.tensorflow(
      boxes: boxes, scores: scores, classes: classes, count: count, width: 256, height: 128)
    #expect(found.count == 1 && found[0].count == 2)
    let first = found[0][0]
    #expect(abs(first.box.x0 - 51.2) < 1e-4 && abs(first.box.y0 - 12.8) < 1e-4)
    #expect(abs(first.box.x1 - 153.6) < 1e-4 && abs(first.box.y1 - 64) < 1e-4)
    #expect(first.classIndex == 1 && abs(first.score - 0.9) < 1e-6)
    #expect(found[0][1].box == PixelBox(x0: 0, y0: 0, x1: 256, y1: 128) && found[0][1].classIndex == 0)
    #expect {
      _ = try DetectionOutputs.tensorflow(
        boxes: boxes, scores: Tensor(shape: [3], elements: [Float](repeating: 0, count: 3)), classes: classes,
        count: nil, width: 1, height: 1)
    } throws: { ($0 as? DetectionOutputError)?.message.contains("detection_scores") == true }
  }

  @Test func torchvisionOutputsArePixelXYXY() throws {
    let found = try DetectionOutputs.torchvision(
      boxes: Tensor(shape: [2, 4], elements: [Float]([10, 20, 30, 40, 5, 5, 6, 6])),
      scores: Tensor(shape: [2], elements: [Float]([0.7, 0.2])),
      labels: Tensor(shape: [2], elements: [Int64]([3, 1])))
    #expect(found.map(\.box) == [PixelBox(x0: 10, y0: 20, x1: 30, y1: 40), PixelBox(x0: 5, y0: 5, x1: 6, y1: 6)])
    #expect(found.map(\.classIndex) == [2, 0])
    #expect {
      _ = try DetectionOutputs.torchvision(
        boxes: Tensor(shape: [2, 3], elements: [Float](repeating: 0, count: 6)),
        scores: Tensor(shape: [2], elements: [Float]([0, 0])), labels: Tensor(shape: [2], elements: [Int64]([1, 1])))
    } throws: { ($0 as? DetectionOutputError)?.message.contains("boxes has shape [2, 3]") == true }
  }

  @Test func suppressionKeepsTheBestOfEachClusterPerClass() {
    let a = Detection(box: PixelBox(x0: 0, y0: 0, x1: 10, y1: 10), classIndex: 0, score: 0.9)
    let b = Detection(box: PixelBox(x0: 1, y0: 1, x1: 11, y1: 11), classIndex: 0, score: 0.8)  // IoU 0.68 with a
    let c = Detection(box: PixelBox(x0: 1, y0: 1, x1: 11, y1: 11), classIndex: 1, score: 0.7)  // another class
    let d = Detection(box: PixelBox(x0: 5, y0: 0, x1: 15, y1: 10), classIndex: 0, score: 0.6)  // IoU 0.33 with a
    let e = Detection(box: PixelBox(x0: 50, y0: 50, x1: 60, y1: 60), classIndex: 0, score: 0.2)  // under threshold
    #expect([e, d, c, b, a].suppressed(threshold: 0.3) == [a, c, d])
    #expect([e, d, c, b, a].suppressed(threshold: 0.3, iou: 0.3) == [a, c])
  }

  /// On random boxes: no two kept boxes of a class overlap past the IoU, and every box dropped
  /// (over the threshold) overlaps a kept one of its class that scored at least as high.
  @Test func suppressionMeetsItsDefinitionOnRandomBoxes() {
    var random = SplitMix64(seed: 22)
    func unit() -> Double { Double(random.next() % 10_000) / 10_000 }
    for _ in 0..<50 {
      let detections = (0..<60).map { _ -> Detection in
        let (x, y) = (unit() * 200, unit() * 200)
        return Detection(
          box: PixelBox(x0: x, y0: y, x1: x + 10 + unit() * 40, y1: y + 10 + unit() * 40),
          classIndex: Int(random.next() % 3), score: unit())
      }
      let kept = detections.suppressed(threshold: 0.25, iou: 0.5)
      for (i, first) in kept.enumerated() {
        for second in kept[(i + 1)...] where second.classIndex == first.classIndex {
          #expect(first.box.iou(second.box) <= 0.5)
        }
      }
      for dropped in detections where dropped.score >= 0.25 && !kept.contains(dropped) {
        #expect(
          kept.contains {
            $0.classIndex == dropped.classIndex && $0.score >= dropped.score && $0.box.iou(dropped.box) > 0.5
          })
      }
    }
  }

  @Test func objectsCutByTileEdgesAreMergedAcrossTiles() throws {
    let origin = try Tile(containing: 13.4, 52.5, zoom: 18)
    var tiles = TileDetections(zoom: 18, tileSize: 256)
    // One building over four tiles (a 2 × 2 block), seen as four pieces, each ending at an edge.
    let right = try Tile(z: 18, x: origin.x + 1, y: origin.y)
    let below = try Tile(z: 18, x: origin.x, y: origin.y + 1)
    let diagonal = try Tile(z: 18, x: origin.x + 1, y: origin.y + 1)
    tiles.add([Detection(box: PixelBox(x0: 200, y0: 220, x1: 256, y1: 256), classIndex: 0, score: 0.7)], on: origin)
    tiles.add([Detection(box: PixelBox(x0: 0, y0: 220, x1: 40, y1: 256), classIndex: 0, score: 0.9)], on: right)
    tiles.add([Detection(box: PixelBox(x0: 200, y0: 0, x1: 255, y1: 30), classIndex: 0, score: 0.6)], on: below)
    tiles.add([Detection(box: PixelBox(x0: 1, y0: 0, x1: 40, y1: 30), classIndex: 0, score: 0.8)], on: diagonal)
    // A car touching the same edge (another class), and a building far along the edge: not merged.
    tiles.add([Detection(box: PixelBox(x0: 0, y0: 230, x1: 20, y1: 250), classIndex: 1, score: 0.5)], on: right)
    tiles.add([Detection(box: PixelBox(x0: 200, y0: 10, x1: 256, y1: 40), classIndex: 0, score: 0.5)], on: origin)
    let merged = tiles.merged()
    #expect(merged.count == 3, "\(merged)")
    let x = Double(origin.x * 256)
    let y = Double(origin.y * 256)
    let building = try #require(merged.first { $0.classIndex == 0 && $0.score == 0.9 })
    #expect(building.box == PixelBox(x0: x + 200, y0: y + 220, x1: x + 256 + 40, y1: y + 256 + 30))
    #expect(merged.contains { $0.classIndex == 1 } && merged.contains { $0.score == 0.5 && $0.classIndex == 0 })
  }

  @Test func boxesBecomeLonLatPolygons() throws {
    let tile = try Tile(containing: 13.4, 52.5, zoom: 17)
    let tiles = TileDetections(zoom: 17, tileSize: 512)
    let whole = PixelBox(
      x0: Double(tile.x * 512), y0: Double(tile.y * 512), x1: Double((tile.x + 1) * 512), y1: Double((tile.y + 1) * 512)
    )
    let polygon = tiles.polygon(whole)
    let bounds = tile.bounds
    #expect(abs(polygon.bounds.west - bounds.west) < 1e-9 && abs(polygon.bounds.north - bounds.north) < 1e-9)
    #expect(abs(polygon.bounds.east - bounds.east) < 1e-9 && abs(polygon.bounds.south - bounds.south) < 1e-9)
    #expect(polygon.rightHanded == polygon)
  }
}

/// Classification scores as probabilities, from softmax, sigmoid or logit outputs.
struct ClassScoresTests {
  @Test func outputsBecomeProbabilities() throws {
    let softmax = try ClassScores.probabilities(Tensor(shape: [1, 3], elements: [Float]([0.7, 0.2, 0.1])))
    #expect(softmax.count == 1 && zip(softmax[0], [0.7, 0.2, 0.1]).allSatisfy { abs($0 - $1) < 1e-6 })
    // Sigmoids (multi-label) are kept; they need not sum to 1.
    let sigmoid = try ClassScores.probabilities(Tensor(shape: [2, 2], elements: [Float]([0.9, 0.8, 0.1, 0.3])))
    #expect(abs(sigmoid[0][1] - 0.8) < 1e-6 && abs(sigmoid[1][0] - 0.1) < 1e-6)
    // Logits: a softmax per row (shifted by the row's maximum, so large logits do not overflow).
    let logits = try ClassScores.probabilities(
      Tensor(shape: [1, 2], elements: [Float]([1000, 1000 + Float(log(3.0))])))
    #expect(abs(logits[0][0] - 0.25) < 1e-4 && abs(logits[0][1] - 0.75) < 1e-4)
    // One logit: a sigmoid.
    let single = try ClassScores.probabilities(Tensor(shape: [1, 1], elements: [Float]([2])))
    #expect(abs(single[0][0] - 1 / (1 + exp(-2))) < 1e-6)
    #expect(throws: DetectionOutputError.self) {
      try ClassScores.probabilities(Tensor(shape: [1, 2], elements: [Float]([.nan, 1])))
    }
  }
}
