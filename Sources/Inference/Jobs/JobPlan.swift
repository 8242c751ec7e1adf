import Foundation
import ShoalGeo
import ShoalImage
import ShoalModel
import ShoalProto
import ShoalRPC

/// One tile's predictions from a job: class scores (classification, or each class's share of
/// the tile's pixels for segmentation), boxes in the tile's pixels (detection) and regions in
/// lon/lat (segmentation), each region with whether it reaches the tile's edge.
struct TilePrediction: Sendable {
  struct Region: Sendable {
    var className: String
    var polygon: Polygon
    var touchesEdge: Bool
  }

  var tile: Tile
  var scores: [String: Double] = [:]
  var detections: [Detection] = []
  var regions: [Region] = []
}

/// How a job feeds a model version and reads its answers, chosen from the version's task and
/// outputs when the job starts: the image input and its format, and the post-processing of its
/// task.
///
/// Output names are the conventional ones unless the version's tags name them:
/// - classification: the only output, or tag `output.scores`;
/// - detection: the TF Object Detection API's `detection_boxes`, `detection_scores`,
///   `detection_classes` and (optional) `num_detections`, or torchvision's `boxes`, `scores` and
///   `labels`; tags `output.boxes`, `output.scores`, `output.classes`, `output.count` rename the
///   TF outputs, and `output.class_offset` (default 1) is the number of the first class;
/// - segmentation: the only output, or tag `output.mask`: [B, C, H, W] class scores (argmax; with
///   C one more than the classes, index 0 is background; else a class named `background` is), or
///   one probability map [B, 1, H, W] thresholded for the first class.
struct JobPlan: Sendable {
  enum Decoder: Sendable {
    case classification(scores: String)
    case tensorflow(boxes: String, scores: String, classes: String, count: String?, classOffset: Int)
    case torchvision(boxes: String, scores: String, labels: String, classOffset: Int)
    case segmentation(output: String)
  }

  let model: String
  let input: String
  let format: ImageTensorFormat
  let classes: [String]
  let decoder: Decoder
  let threshold: Double
  let iou: Double

  /// The plan for `served`, or why a job cannot use it.
  ///
  /// - Throws: FAILED_PRECONDITION naming the input or output that does not fit the task.
  init(served: ServedVersion, threshold: Double, iou: Double) throws(RPCError) {
    let model = served.qualifiedName
    self.model = model
    self.threshold = threshold
    self.iou = iou
    func refuse(_ message: String) -> RPCError { RPCError(.failedPrecondition, "model \(model): \(message)") }
    let images = served.model.inputs.filter { $0.elementType == DataType.float32.onnxCode && $0.dimensions?.count == 4 }
    guard served.model.inputs.count == 1, let input = images.first else {
      throw refuse(
        "an AOI job feeds one FLOAT image input of rank 4; its inputs are "
          + served.model.inputs.map { "\($0.name) \($0.dimensions.map { "\($0)" } ?? "(no shape)")" }
          .joined(separator: ", "))
    }
    self.input = input.name
    let preprocessing = served.version.signature?.preprocessing
    do throws(ImageError) {
      // Free height and width take each image's own size (a tile, or a supertile's stitched image).
      format = try ImageTensorFormat(
        shape: InferenceV1.TensorMetadata.shape(of: input.dimensions ?? []).map { Int($0) }, tileSize: 0,
        channelOrder: preprocessing?.channelOrder ?? "RGB", mean: preprocessing?.mean ?? [],
        std: preprocessing?.std ?? [])
    } catch {
      throw refuse("input '\(input.name)': \(error.message)")
    }
    classes = served.version.signature?.classes.map(\.name) ?? []
    let outputs = served.model.outputs.map(\.name)
    let tags = served.version.tags
    func named(_ role: String, default name: String) throws(RPCError) -> String {
      let chosen = tags["output.\(role)"] ?? name
      guard outputs.contains(chosen) else {
        throw refuse("output '\(chosen)' (\(role)) is not among its outputs: \(outputs.joined(separator: ", "))")
      }
      return chosen
    }
    func only(_ role: String) throws(RPCError) -> String {
      if let chosen = tags["output.\(role)"] { return try named(role, default: chosen) }
      guard outputs.count == 1 else {
        throw refuse(
          "it has outputs \(outputs.joined(separator: ", ")); name the \(role) output with the tag output.\(role)")
      }
      return outputs[0]
    }
    let classOffset = Int(tags["output.class_offset"] ?? "1") ?? 1
    switch served.task {
    case .classification:
      let scores = try only("scores")
      if let rank = served.model.outputs.first(where: { $0.name == scores })?.dimensions?.count, rank != 2 {
        throw refuse("output '\(scores)' has rank \(rank); classification scores are [batch, classes]")
      }
      decoder = .classification(scores: scores)
    case .detection:
      if tags["output.boxes"] != nil || outputs.contains("detection_boxes") {
        decoder = .tensorflow(
          boxes: try named("boxes", default: "detection_boxes"),
          scores: try named("scores", default: "detection_scores"),
          classes: try named("classes", default: "detection_classes"),
          count: outputs.contains(tags["output.count"] ?? "num_detections")
            ? try named("count", default: "num_detections") : nil, classOffset: classOffset)
      } else if ["boxes", "scores", "labels"].allSatisfy(outputs.contains) {
        decoder = .torchvision(boxes: "boxes", scores: "scores", labels: "labels", classOffset: classOffset)
      } else {
        throw refuse(
          "its outputs (\(outputs.joined(separator: ", "))) are neither the TF Object Detection API's "
            + "(detection_boxes, detection_scores, detection_classes) nor torchvision's (boxes, scores, labels); "
            + "name them with the tags output.boxes, output.scores and output.classes")
      }
    case .segmentation:
      let mask = try only("mask")
      if let rank = served.model.outputs.first(where: { $0.name == mask })?.dimensions?.count, rank != 4, rank != 3 {
        throw refuse("output '\(mask)' has rank \(rank); segmentation takes [batch, classes, H, W] or [batch, H, W]")
      }
      decoder = .segmentation(output: mask)
    default:
      throw refuse("its task is \(served.task); AOI jobs take classification, detection and segmentation models")
    }
  }

  /// The name of class `index` (counting from 0), or its number when the version names none.
  func className(_ index: Int) -> String? {
    guard index >= 0 else { return nil }
    if classes.isEmpty { return "\(index)" }
    return index < classes.count ? classes[index] : nil
  }

  /// The model's input for one image.
  func inputs(_ image: Image) throws(ImageError) -> [String: Tensor] {
    [input: try format.tensor([image])]
  }

  /// One image's outputs as the predictions of the tiles it shows: `tile` itself, or the
  /// children of `supertile` (those in `wanted`). `size` is the image's side in pixels and
  /// `tileSize` a tile's.
  func predictions(
    _ outputs: [String: Tensor], size: Int, tileSize: Int, tile: Tile, supertile: Supertile?, wanted: Set<Tile>
  ) throws(DetectionOutputError) -> [TilePrediction] {
    func output(_ name: String) throws(DetectionOutputError) -> Tensor {
      guard let tensor = outputs[name] else {
        throw DetectionOutputError(message: "the model gave no output '\(name)'")
      }
      return tensor
    }
    let tiles = supertile.map { $0.children.filter(wanted.contains) } ?? [tile]
    switch decoder {
    case .classification(let name):
      let row = try ClassScores.probabilities(try output(name)).first ?? []
      var scores: [String: Double] = [:]
      for (index, score) in row.enumerated() {
        if let name = className(index) { scores[name] = score }
      }
      return tiles.map { TilePrediction(tile: $0, scores: scores) }

    case .tensorflow, .torchvision:
      return split(try detections(outputs, width: size, height: size), tiles: tiles, tile: tile, supertile: supertile)

    case .segmentation(let name):
      let map = try classMap(try output(name)).resized(width: size, height: size)
      let maps = supertile.map { $0.split(map) } ?? [tile: map]
      return tiles.map { tile in regions(of: maps[tile]!, on: tile) }
    }
  }

  /// One image's boxes in its own pixels (`width` × `height`), thresholded and suppressed per
  /// class: the TF Object Detection API's normalised boxes scaled to the image, torchvision's from
  /// the model input's pixels (the image may have been resized to it). None for other tasks.
  func detections(_ outputs: [String: Tensor], width: Int, height: Int) throws(DetectionOutputError) -> [Detection] {
    func output(_ name: String) throws(DetectionOutputError) -> Tensor {
      guard let tensor = outputs[name] else {
        throw DetectionOutputError(message: "the model gave no output '\(name)'")
      }
      return tensor
    }
    let found: [Detection]
    switch decoder {
    case .tensorflow(let boxes, let scores, let classes, let count, let classOffset):
      found =
        try DetectionOutputs.tensorflow(
          boxes: try output(boxes), scores: try output(scores), classes: try output(classes),
          count: try count.map { name throws(DetectionOutputError) in try output(name) }, width: width, height: height,
          classOffset: classOffset
        ).first ?? []
    case .torchvision(let boxes, let scores, let labels, let classOffset):
      let scaleX = Double(width) / Double(format.width ?? width)
      let scaleY = Double(height) / Double(format.height ?? height)
      found = try DetectionOutputs.torchvision(
        boxes: try output(boxes), scores: try output(scores), labels: try output(labels), classOffset: classOffset
      ).map { detection in
        var detection = detection
        let box = detection.box
        detection.box = PixelBox(x0: box.x0 * scaleX, y0: box.y0 * scaleY, x1: box.x1 * scaleX, y1: box.y1 * scaleY)
        return detection
      }
    case .classification, .segmentation:
      return []
    }
    return found.suppressed(threshold: threshold, iou: iou)
  }

  /// Detections of the whole image given to the tiles it shows.
  private func split(_ detections: [Detection], tiles: [Tile], tile: Tile, supertile: Supertile?) -> [TilePrediction] {
    let named = detections.filter { className($0.classIndex) != nil }
    guard let supertile else { return [TilePrediction(tile: tile, detections: named)] }
    let byChild = supertile.split(named)
    return tiles.map { TilePrediction(tile: $0, detections: byChild[$0] ?? []) }
  }

  /// A class index per pixel from a segmentation output of one image, with class indices that
  /// count the version's classes (background -1).
  func classMap(_ scores: Tensor) throws(DetectionOutputError) -> ClassMap {
    var shape = scores.shape
    if shape.count == 3 { shape.insert(1, at: 1) }
    guard shape.count == 4, shape[0] == 1 else {
      throw DetectionOutputError(message: "the segmentation output has shape \(scores.shape); expected [1, C, H, W]")
    }
    let channels = shape[1]
    if channels == 1 {
      var values = scores.doubles()
      if !values.allSatisfy({ (0...1).contains($0) }) { values = values.map { 1 / (1 + exp(-$0)) } }
      return try ClassMap.threshold(
        Tensor(shape: [shape[2], shape[3]], elements: values.map { Float($0) }), threshold: threshold)
    }
    if channels == classes.count + 1 {
      let map = try ClassMap.argmax(scores, background: 0)
      return ClassMap(width: map.width, height: map.height, labels: map.labels.map { $0 < 0 ? -1 : $0 - 1 })
    }
    let background = classes.firstIndex { $0.lowercased() == "background" }
    return try ClassMap.argmax(scores, background: background)
  }

  /// The regions of each class on `tile`, traced, simplified within a pixel and in lon/lat; the
  /// tile's scores are each class's share of its pixels.
  private func regions(of map: ClassMap, on tile: Tile) -> TilePrediction {
    var prediction = TilePrediction(tile: tile)
    var counts: [Int: Int] = [:]
    for label in map.labels where label >= 0 { counts[label, default: 0] += 1 }
    for (label, count) in counts.sorted(by: { $0.key < $1.key }) {
      guard let name = className(label) else { continue }
      prediction.scores[name] = Double(count) / Double(map.labels.count)
      for polygon in map.polygons(of: label) {
        let bounds = polygon.bounds
        let touches =
          bounds.west <= 0 || bounds.south <= 0 || bounds.east >= Double(map.width)
          || bounds.north >= Double(map.height)
        guard let geographic = map.geographic(polygon, on: tile) else { continue }
        prediction.regions.append(TilePrediction.Region(className: name, polygon: geographic, touchesEdge: touches))
      }
    }
    return prediction
  }
}
