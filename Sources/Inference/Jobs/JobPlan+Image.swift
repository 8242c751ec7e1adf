import ShoalGeo
import ShoalModel
import ShoalProto

extension JobPlan {
  /// One image's outputs in the image's own unit square: class scores (classification), boxes
  /// (detection, thresholded and suppressed per class) or traced regions (segmentation), for an
  /// image of `width` × `height` pixels.
  func annotation(
    _ outputs: [String: Tensor], width: Int, height: Int
  ) throws(DetectionOutputError) -> (scores: [InferenceV1.ClassScore], objects: [InferenceV1.ImageObject]) {
    func output(_ name: String) throws(DetectionOutputError) -> Tensor {
      guard let tensor = outputs[name] else {
        throw DetectionOutputError(message: "the model gave no output '\(name)'")
      }
      return tensor
    }
    let (fullWidth, fullHeight) = (Double(width), Double(height))
    func object(_ detection: Detection) -> InferenceV1.ImageObject? {
      guard let name = className(detection.classIndex) else { return nil }
      var object = InferenceV1.ImageObject()
      object.className = name
      object.classIndex = Int32(detection.classIndex)
      object.score = detection.score
      object.topLeft = .at(detection.box.x0 / fullWidth, detection.box.y0 / fullHeight)
      object.bottomRight = .at(detection.box.x1 / fullWidth, detection.box.y1 / fullHeight)
      return object
    }
    switch decoder {
    case .classification(let name):
      let row = try ClassScores.probabilities(try output(name)).first ?? []
      let scores = row.enumerated().compactMap { index, score -> InferenceV1.ClassScore? in
        guard let name = className(index) else { return nil }
        var entry = InferenceV1.ClassScore()
        (entry.index, entry.name, entry.score) = (Int32(index), name, Float(score))
        return entry
      }
      return (scores.sorted { $0.score > $1.score }, [])

    case .tensorflow, .torchvision:
      return ([], try detections(outputs, width: width, height: height).compactMap(object))

    case .segmentation(let name):
      // The map's own pixels are a fraction of the image's whatever its size, so it is not resized.
      let map = try classMap(try output(name))
      let (mapWidth, mapHeight) = (Double(map.width), Double(map.height))
      var counts: [Int: Int] = [:]
      for label in map.labels where label >= 0 { counts[label, default: 0] += 1 }
      var objects: [InferenceV1.ImageObject] = []
      for (label, count) in counts.sorted(by: { $0.key < $1.key }) {
        guard let name = className(label) else { continue }
        for polygon in map.polygons(of: label) {
          guard let simple = GeometryCheck.simplified(polygon, tolerance: 1) else { continue }
          let bounds = simple.bounds
          var object = InferenceV1.ImageObject()
          object.className = name
          object.classIndex = Int32(label)
          object.score = Double(count) / Double(map.labels.count)
          object.topLeft = .at(bounds.west / mapWidth, bounds.south / mapHeight)
          object.bottomRight = .at(bounds.east / mapWidth, bounds.north / mapHeight)
          object.rings = simple.rings.map { ring in
            var imageRing = InferenceV1.ImageRing()
            imageRing.points = ring.map { .at($0.longitude / mapWidth, $0.latitude / mapHeight) }
            return imageRing
          }
          objects.append(object)
        }
      }
      return ([], objects)
    }
  }
}

extension InferenceV1.ImagePoint {
  static func at(_ x: Double, _ y: Double) -> Self {
    var point = Self()
    (point.x, point.y) = (x, y)
    return point
  }
}
