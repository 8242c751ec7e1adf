import Foundation
import ShoalGeo
import ShoalProto

/// The pieces of the COCO and Label Studio exports. A COCO dataset lists its images before its
/// annotations, so annotations wait in a temporary file until the images are written.
struct CocoWriter {
  let classes: [String]
  let images: ExportImages
  private var spool: FileHandle?
  private var annotationCount = 0
  private var imageCount = 0

  init(classes: [String], images: ExportImages) {
    self.classes = classes
    self.images = images
  }

  /// One object on a tile: its class, pixel rings (exterior first), score.
  struct Shape {
    var category: Int
    var polygons: [[[Double]]]
    var score: Double
  }

  func datasetHead() throws -> [UInt8] {
    let categories = classes.enumerated().map { index, name -> [String: Any] in
      ["id": index + 1, "name": name, "supercategory": ""]
    }
    let info: [String: Any] = [
      "description": "Shoal prediction set export", "version": images.modelVersion,
      "date_created": ISO8601DateFormatter().string(from: Date()),
    ]
    let categoriesJSON = try JSONSerialization.data(withJSONObject: categories, options: [.sortedKeys])
    let infoJSON = try JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])
    return Array(#"{"info":"#.utf8) + Array(infoJSON) + Array(#","categories":"#.utf8) + Array(categoriesJSON)
      + Array(#","images":["#.utf8)
  }

  /// The image entry of a tile (with a leading comma after the first).
  mutating func image(_ stored: FeedbackStore.StoredTile) throws -> [UInt8] {
    var image: [String: Any] = [
      "id": stored.id, "file_name": images.fileName(stored.tile), "width": images.size, "height": images.size,
      "tile": stored.tile.description,
    ]
    if let location = images.location { image["coco_url"] = location(stored.tile) }
    let data = try JSONSerialization.data(withJSONObject: image, options: [.sortedKeys])
    imageCount += 1
    return (imageCount > 1 ? [UInt8(ascii: ",")] : []) + Array(data)
  }

  /// The objects of a tile: each feature's polygons in pixels, or for a tile without features,
  /// the whole image per class.
  func shapes(_ stored: FeedbackStore.StoredTile, features: [FeedbackV1.Feature]) -> [(Shape, FeedbackV1.Feature?)] {
    let size = images.size
    if features.isEmpty {
      let whole = [[[0, 0, Double(size), 0, Double(size), Double(size), 0, Double(size)]]]
      return classes.enumerated().compactMap { index, name in
        guard let score = stored.scores[name] else { return nil }
        return (Shape(category: index + 1, polygons: whole, score: score), nil)
      }
    }
    return features.compactMap { feature in
      guard let index = classes.firstIndex(of: feature.className),
        let geometry = try? GeoJSON.features(from: Data(feature.geometry.utf8), validate: false).first?.geometry
      else { return nil }
      let polygons = geometry.polygons.map { CocoMasks.pixelRings($0, tile: stored.tile, size: size) }
      guard !polygons.isEmpty else { return nil }
      return (Shape(category: index + 1, polygons: polygons, score: feature.score), feature)
    }
  }

  /// A shape's pixel box [x, y, w, h], clipped to the image: features cut by a tile's edge may
  /// reach past it.
  func box(_ shape: Shape) -> [Double] {
    let size = Double(images.size)
    let box = CocoMasks.box(shape.polygons.map { $0[0] })
    let x0 = min(max(box[0], 0), size)
    let y0 = min(max(box[1], 0), size)
    let x1 = min(max(box[0] + box[2], 0), size)
    let y1 = min(max(box[1] + box[3], 0), size)
    return [x0, y0, x1 - x0, y1 - y0]
  }

  /// A shape's COCO fields: segmentation (polygons, or RLE when a polygon has holes), bbox, area.
  func cocoFields(_ shape: Shape) -> [String: Any] {
    let size = images.size
    let exteriors = shape.polygons.map { $0[0] }
    let bbox = box(shape)
    if shape.polygons.contains(where: { $0.count > 1 }) {
      let mask = CocoMasks.mask(shape.polygons.flatMap { $0 }, width: size, height: size)
      return [
        "segmentation": ["counts": CocoMasks.runLengths(mask, width: size, height: size), "size": [size, size]],
        "bbox": bbox, "area": mask.filter { $0 }.count,
      ]
    }
    return ["segmentation": exteriors, "bbox": bbox, "area": exteriors.map(CocoMasks.area).reduce(0, +)]
  }

  /// Spools the tile's ground-truth annotations: the shapes whose validity the filter keeps.
  mutating func annotations(
    _ stored: FeedbackStore.StoredTile, marks: [FeedbackV1.ClassValidity],
    features: [(FeedbackV1.Feature, FeedbackV1.Validity)], filter: FeedbackV1.ExportFilter
  ) throws {
    if spool == nil {
      let path = NSTemporaryDirectory() + "shoal-coco-\(UUID().uuidString).json"
      _ = FileManager.default.createFile(atPath: path, contents: nil)
      spool = FileHandle(forUpdatingAtPath: path)
      // The file is gone from the directory at once; the handle keeps it until it is closed.
      unlink(path)
    }
    let tileMarks = Dictionary(marks.map { ($0.className, $0.validity) }, uniquingKeysWith: { a, _ in a })
    let states = Dictionary(features.map { ($0.0.featureId, $0.1) }, uniquingKeysWith: { a, _ in a })
    for (shape, feature) in shapes(stored, features: features.map(\.0)) {
      let state = feature.flatMap { states[$0.featureId] } ?? tileMarks[classes[shape.category - 1]] ?? .unvalidated
      let kept: Bool =
        switch filter {
        case .validated, .onlyValidatedValid: state == .valid
        case .onlyValidatedInvalid: state == .invalid
        case .allTiles, .unrecognized: feature != nil || shape.score >= 0.5
        }
      guard kept else { continue }
      annotationCount += 1
      var annotation = cocoFields(shape)
      annotation["id"] = annotationCount
      annotation["image_id"] = stored.id
      annotation["category_id"] = shape.category
      annotation["iscrowd"] = 0
      annotation["score"] = shape.score
      annotation["validity"] = state.protoName?.lowercased() ?? ""
      if let feature { annotation["feature"] = feature.featureId }
      let data = try JSONSerialization.data(withJSONObject: annotation, options: [.sortedKeys])
      try spool!.write(contentsOf: (annotationCount > 1 ? [UInt8(ascii: ",")] : []) + Array(data))
    }
  }

  /// Ends the images, then sends the spooled annotations and the end of the dataset.
  mutating func finishDataset(_ send: (FeedbackV1.ExportChunk) async throws -> Void) async throws {
    var chunk = FeedbackV1.ExportChunk()
    chunk.data = Array(#"],"annotations":["#.utf8)
    try await send(chunk)
    if let spool {
      try spool.seek(toOffset: 0)
      while let data = try spool.read(upToCount: 256 << 10), !data.isEmpty {
        chunk.data = Array(data)
        try await send(chunk)
      }
      try spool.close()
      self.spool = nil
    }
    chunk.data = Array("]}\n".utf8)
    try await send(chunk)
  }

  /// COCO results (loadRes) for a tile: every shape with its score.
  func results(_ stored: FeedbackStore.StoredTile, features: [FeedbackV1.Feature]) throws -> [[String: Any]] {
    shapes(stored, features: features).map { shape, _ in
      var result = cocoFields(shape)
      result["image_id"] = stored.id
      result["category_id"] = shape.category
      result["score"] = shape.score
      return result
    }
  }

  /// A Label Studio task with the model's predictions on the tile.
  func labelStudioTask(_ stored: FeedbackStore.StoredTile, features: [FeedbackV1.Feature]) throws -> [String: Any] {
    let size = Double(images.size)
    var data: [String: Any] = ["tile": stored.tile.description, "quadkey": stored.tile.quadkey]
    data["image"] = images.location?(stored.tile) ?? images.fileName(stored.tile)
    var results: [[String: Any]] = []
    let common: [String: Any] = [
      "to_name": "image", "original_width": images.size, "original_height": images.size, "image_rotation": 0,
    ]
    let found = shapes(stored, features: features)
    if features.isEmpty {
      // Classification: the classes scoring 0.5 or more, else the best one.
      var chosen = found.filter { $0.0.score >= 0.5 }.map { classes[$0.0.category - 1] }
      if chosen.isEmpty, let best = found.max(by: { $0.0.score < $1.0.score }) {
        chosen = [classes[best.0.category - 1]]
      }
      var choice = common
      choice["id"] = "\(stored.id)-choices"
      choice["from_name"] = "choice"
      choice["type"] = "choices"
      choice["value"] = ["choices": chosen]
      choice["score"] = found.map(\.0.score).max() ?? 0
      results.append(choice)
    } else {
      for (number, (shape, _)) in found.enumerated() {
        var result = common
        result["id"] = "\(stored.id)-\(number)"
        result["score"] = shape.score
        let label = classes[shape.category - 1]
        if images.task == .segmentation {
          let ring = shape.polygons[0][0]
          let points = stride(from: 0, to: ring.count, by: 2).map {
            [ring[$0] / size * 100, ring[$0 + 1] / size * 100]
          }
          result["from_name"] = "label"
          result["type"] = "polygonlabels"
          result["value"] = ["points": points, "polygonlabels": [label], "closed": true]
        } else {
          let bbox = box(shape)
          result["from_name"] = "label"
          result["type"] = "rectanglelabels"
          result["value"] = [
            "x": bbox[0] / size * 100, "y": bbox[1] / size * 100, "width": bbox[2] / size * 100,
            "height": bbox[3] / size * 100, "rotation": 0, "rectanglelabels": [label],
          ]
        }
        results.append(result)
      }
    }
    let prediction: [String: Any] = [
      "model_version": images.modelVersion, "score": found.map(\.0.score).max() ?? 0, "result": results,
    ]
    return ["data": data, "predictions": [prediction]]
  }
}
