public import ShoalGeo
public import ShoalModel

/// A box in pixels: x to the east, y to the south, `x0 < x1`, `y0 < y1`.
public struct PixelBox: Hashable, Sendable {
  public var x0: Double
  public var y0: Double
  public var x1: Double
  public var y1: Double

  public init(x0: Double, y0: Double, x1: Double, y1: Double) {
    (self.x0, self.y0, self.x1, self.y1) = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
  }

  public var area: Double { (x1 - x0) * (y1 - y0) }

  /// Intersection over union; 0 for boxes that do not overlap (or have no area).
  public func iou(_ other: PixelBox) -> Double {
    let width = min(x1, other.x1) - max(x0, other.x0)
    let height = min(y1, other.y1) - max(y0, other.y0)
    guard width > 0, height > 0 else { return 0 }
    let intersection = width * height
    return intersection / (area + other.area - intersection)
  }

  /// The smallest box holding both.
  public func union(_ other: PixelBox) -> PixelBox {
    PixelBox(x0: min(x0, other.x0), y0: min(y0, other.y0), x1: max(x1, other.x1), y1: max(y1, other.y1))
  }

  /// Moved by `dx, dy`.
  public func offset(_ dx: Double, _ dy: Double) -> PixelBox {
    PixelBox(x0: x0 + dx, y0: y0 + dy, x1: x1 + dx, y1: y1 + dy)
  }
}

/// One detected object: a box in the input image's pixels, a class (its index in the model's
/// classes) and a score.
public struct Detection: Hashable, Sendable {
  public var box: PixelBox
  public var classIndex: Int
  public var score: Double

  public init(box: PixelBox, classIndex: Int, score: Double) {
    self.box = box
    self.classIndex = classIndex
    self.score = score
  }
}

/// Why a model's outputs cannot be read as detections.
public struct DetectionOutputError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public var description: String { message }
}

/// Detections from the two output layouts models are exported with.
public enum DetectionOutputs {
  /// The TF Object Detection API's: `detection_boxes` [B, N, 4] as normalised ymin, xmin, ymax,
  /// xmax; `detection_scores` and `detection_classes` [B, N]; `num_detections` [B]. Classes count
  /// from 1 in the API (0 is background); `classOffset` (default 1) is taken off. One list per
  /// image of `width` × `height` pixels.
  public static func tensorflow(
    boxes: Tensor, scores: Tensor, classes: Tensor, count: Tensor?, width: Int, height: Int, classOffset: Int = 1
  ) throws(DetectionOutputError) -> [[Detection]] {
    guard boxes.rank == 3, boxes.shape[2] == 4 else {
      throw DetectionOutputError(message: "detection_boxes has shape \(boxes.shape); expected [batch, N, 4]")
    }
    let (batch, slots) = (boxes.shape[0], boxes.shape[1])
    guard scores.shape == [batch, slots] else {
      throw DetectionOutputError(message: "detection_scores has shape \(scores.shape); expected [\(batch), \(slots)]")
    }
    guard classes.shape == [batch, slots] else {
      throw DetectionOutputError(message: "detection_classes has shape \(classes.shape); expected [\(batch), \(slots)]")
    }
    if let count, count.shape != [batch] {
      throw DetectionOutputError(message: "num_detections has shape \(count.shape); expected [\(batch)]")
    }
    let box = boxes.doubles()
    let score = scores.doubles()
    let label = classes.doubles()
    let counts = count?.doubles()
    return (0..<batch).map { image in
      let valid = min(slots, max(0, Int(counts?[image] ?? Double(slots))))
      return (0..<valid).map { slot in
        let at = image * slots + slot
        return Detection(
          box: PixelBox(
            x0: box[4 * at + 1] * Double(width), y0: box[4 * at] * Double(height),
            x1: box[4 * at + 3] * Double(width), y1: box[4 * at + 2] * Double(height)),
          classIndex: Int(label[at].rounded()) - classOffset, score: score[at])
      }
    }
  }

  /// torchvision's: `boxes` [N, 4] as x0, y0, x1, y1 in pixels, `scores` [N], `labels` [N]
  /// (counting from `classOffset`, default 1: torchvision's 0 is background). One image.
  public static func torchvision(
    boxes: Tensor, scores: Tensor, labels: Tensor, classOffset: Int = 1
  ) throws(DetectionOutputError) -> [Detection] {
    guard boxes.rank == 2, boxes.shape[1] == 4 else {
      throw DetectionOutputError(message: "boxes has shape \(boxes.shape); expected [N, 4]")
    }
    let slots = boxes.shape[0]
    guard scores.shape == [slots] else {
      throw DetectionOutputError(message: "scores has shape \(scores.shape); expected [\(slots)]")
    }
    guard labels.shape == [slots] else {
      throw DetectionOutputError(message: "labels has shape \(labels.shape); expected [\(slots)]")
    }
    let box = boxes.doubles()
    let score = scores.doubles()
    let label = labels.doubles()
    return (0..<slots).map { slot in
      Detection(
        box: PixelBox(x0: box[4 * slot], y0: box[4 * slot + 1], x1: box[4 * slot + 2], y1: box[4 * slot + 3]),
        classIndex: Int(label[slot].rounded()) - classOffset, score: score[slot])
    }
  }
}

extension [Detection] {
  /// Those scoring at least `threshold`, then per class greedy non-maximum suppression: highest
  /// score first, a box dropped when its IoU with a kept box of its class exceeds `iou`. Kept in
  /// order of score (ties by class, then position, so the result does not depend on the input order).
  public func suppressed(threshold: Double, iou: Double = 0.5) -> [Detection] {
    let ranked = filter { $0.score >= threshold && $0.box.area > 0 }.sorted { a, b in
      (a.score, b.classIndex, b.box.x0, b.box.y0) > (b.score, a.classIndex, a.box.x0, a.box.y0)
    }
    var kept: [Detection] = []
    for candidate in ranked
    where !kept.contains(where: { $0.classIndex == candidate.classIndex && $0.box.iou(candidate.box) > iou }) {
      kept.append(candidate)
    }
    return kept
  }
}

/// Detections of many tiles at one zoom, in world pixels (a tile's pixel x + its x × size), so
/// that objects cut by tile edges can be put back together.
public struct TileDetections: Sendable {
  public let zoom: Int
  public let tileSize: Int
  public private(set) var detections: [Detection] = []

  public init(zoom: Int, tileSize: Int) {
    self.zoom = zoom
    self.tileSize = tileSize
  }

  /// Adds `tile`'s detections (in its own pixels).
  public mutating func add(_ found: [Detection], on tile: Tile) {
    let dx = Double(tile.x * tileSize)
    let dy = Double(tile.y * tileSize)
    detections += found.map { Detection(box: $0.box.offset(dx, dy), classIndex: $0.classIndex, score: $0.score) }
  }

  /// Boxes of one class cut by a shared tile edge merged into one: one ends within `tolerance`
  /// pixels of an edge, the other starts within it on the far side, and along the edge they
  /// overlap by at least `overlap` of the shorter. The merged box takes the higher score.
  /// Chains (an object over several tiles) merge whole.
  public func merged(tolerance: Double = 2, overlap: Double = 0.5) -> [Detection] {
    var parent = Array(detections.indices)
    func root(_ index: Int) -> Int {
      var index = index
      while parent[index] != index {
        parent[index] = parent[parent[index]]
        index = parent[index]
      }
      return index
    }
    let size = Double(tileSize)
    /// The tile line (a multiple of the tile size, counted in tiles) within `tolerance` of `value`.
    func nearEdge(_ value: Double) -> Int? {
      let line = (value / size).rounded()
      return abs(value - line * size) <= tolerance ? Int(line) : nil
    }
    func overlapping(_ a0: Double, _ a1: Double, _ b0: Double, _ b1: Double) -> Bool {
      let shared = min(a1, b1) - max(a0, b0)
      return shared > 0 && shared >= overlap * min(a1 - a0, b1 - b0)
    }
    // The boxes that start at each vertical and horizontal tile line, by class: a box ending at a
    // line is compared with those only, not with every box of the job.
    struct Line: Hashable {
      var line: Int
      var classIndex: Int
    }
    var startingAtX: [Line: [Int]] = [:]
    var startingAtY: [Line: [Int]] = [:]
    for (index, detection) in detections.enumerated() {
      if let line = nearEdge(detection.box.x0) {
        startingAtX[Line(line: line, classIndex: detection.classIndex), default: []].append(index)
      }
      if let line = nearEdge(detection.box.y0) {
        startingAtY[Line(line: line, classIndex: detection.classIndex), default: []].append(index)
      }
    }
    for (i, detection) in detections.enumerated() {
      let a = detection.box
      if let line = nearEdge(a.x1) {
        for j in startingAtX[Line(line: line, classIndex: detection.classIndex)] ?? []
        where j != i && overlapping(a.y0, a.y1, detections[j].box.y0, detections[j].box.y1) {
          parent[root(j)] = root(i)
        }
      }
      if let line = nearEdge(a.y1) {
        for j in startingAtY[Line(line: line, classIndex: detection.classIndex)] ?? []
        where j != i && overlapping(a.x0, a.x1, detections[j].box.x0, detections[j].box.x1) {
          parent[root(j)] = root(i)
        }
      }
    }
    var groups: [Int: Detection] = [:]
    var order: [Int] = []
    for index in detections.indices {
      let group = root(index)
      if let existing = groups[group] {
        groups[group] = Detection(
          box: existing.box.union(detections[index].box), classIndex: existing.classIndex,
          score: Swift.max(existing.score, detections[index].score))
      } else {
        groups[group] = detections[index]
        order.append(group)
      }
    }
    return order.map { groups[$0]! }
  }

  /// A box in world pixels as a lon/lat polygon (counter-clockwise).
  public func polygon(_ box: PixelBox) -> Polygon {
    let size = Double(tileSize)
    func position(_ x: Double, _ y: Double) -> Position {
      let point = Tile.lonLat(tileX: x / size, tileY: y / size, zoom: zoom)
      return Position(point.longitude, point.latitude)
    }
    let ring = [
      position(box.x0, box.y1), position(box.x1, box.y1), position(box.x1, box.y0), position(box.x0, box.y0),
      position(box.x0, box.y1),
    ]
    return Polygon(rings: [ring])
  }
}
