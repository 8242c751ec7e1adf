import ShoalProto

/// Label Studio's results (the `result` list of a prediction or an annotation) to and from what
/// inference and feedback hold. Label Studio places regions in percent of the image, x rightwards
/// and y downwards; inference and a feedback set of images hold fractions of it.
enum LabelStudioResults {
  /// A box or polygon in fractions of the image.
  struct Region: Sendable, Equatable {
    var className: String
    var minX: Double
    var minY: Double
    var maxX: Double
    var maxY: Double

    /// Intersection over union of the bounding boxes.
    func iou(_ other: Region) -> Double {
      let width = min(maxX, other.maxX) - max(minX, other.minX)
      let height = min(maxY, other.maxY) - max(minY, other.minY)
      guard width > 0, height > 0 else { return 0 }
      let intersection = width * height
      let union = (maxX - minX) * (maxY - minY) + (other.maxX - other.minX) * (other.maxY - other.minY) - intersection
      return union > 0 ? intersection / union : 0
    }
  }

  /// What a person said of one task: the classes named (choices, or the labels of regions) and
  /// the regions drawn.
  struct Annotation: Sendable, Equatable {
    var classes: Set<String> = []
    var regions: [Region] = []
  }

  /// Inference's answer for one image as one Label Studio prediction for `control`: its results,
  /// score (the best class's, or the mean of the objects') and model version. Classes the
  /// control has no label for are left out.
  static func prediction(
    _ answer: InferenceV1.AnnotateResponse, control: LabelConfig.Control, modelVersion: String
  ) -> JSONValue {
    var results: [JSONValue] = []
    var scores: [Double] = []
    func add(_ type: String, _ value: [(String, JSONValue)], score: Double) {
      results.append(
        .object([
          ("id", .string("shoal-\(results.count)")), ("from_name", .string(control.name)),
          ("to_name", .string(control.toName)), ("type", .string(type)),
          ("original_width", .number(String(answer.width))), ("original_height", .number(String(answer.height))),
          ("image_rotation", .number("0")), ("value", .object(value)), ("score", score._jsonValue()),
        ]))
      scores.append(score)
    }
    let percent = { (value: Double) -> JSONValue in (min(max(value, 0), 1) * 100)._jsonValue() }
    switch control.kind {
    case .choices:
      let best = answer.scores.lazy.compactMap { score in
        LabelConfig.label(for: score.name, in: control).map { (label: $0, score: Double(score.score)) }
      }.first
      if let best { add("choices", [("choices", .array([.string(best.label)]))], score: best.score) }
    case .rectanglelabels, .polygonlabels:
      for object in answer.objects {
        guard let label = LabelConfig.label(for: object.className, in: control) else { continue }
        if control.kind == .polygonlabels {
          // Label Studio's polygons have no holes and close themselves: the outer ring, open, or
          // the box's corners.
          var points = object.rings.first.map { $0.points.map { ($0.x, $0.y) } } ?? []
          if points.count > 3, points.first! == points.last! { points.removeLast() }
          if points.count < 3 { points = object.corners }
          add(
            "polygonlabels",
            [
              ("points", .array(points.map { .array([percent($0.0), percent($0.1)]) })), ("closed", .bool(true)),
              ("polygonlabels", .array([.string(label)])),
            ], score: object.score)
        } else {
          let (left, top, right, bottom) = object.box
          add(
            "rectanglelabels",
            [
              ("x", percent(left)), ("y", percent(top)), ("width", percent(right - left)),
              ("height", percent(bottom - top)), ("rotation", .number("0")),
              ("rectanglelabels", .array([.string(label)])),
            ], score: object.score)
        }
      }
    }
    let score = scores.isEmpty ? 0 : scores.reduce(0, +) / Double(scores.count)
    return .object([
      ("result", .array(results)), ("score", score._jsonValue()), ("model_version", .string(modelVersion)),
    ])
  }

  /// What an annotation's `result` list says, with labels mapped to `classes` (a label that is
  /// no class, in any case, is refused: it cannot become feedback).
  static func annotation(_ results: [RequestFields], classes: [String]) throws(GatewayError) -> Annotation {
    var annotation = Annotation()
    func className(_ label: String, at place: String) throws(GatewayError) -> String {
      if let exact = classes.first(where: { $0 == label }) { return exact }
      if let other = classes.first(where: { $0.lowercased() == label.lowercased() }) { return other }
      throw GatewayError.invalid(
        "\(place): '\(label)' is not a class of the model (\(classes.joined(separator: ", ")))")
    }
    for (index, result) in results.enumerated() {
      let place = "annotation.result[\(index)]"
      let type = try result.optionalString("type") ?? ""
      guard let value = try result.object("value") else { continue }
      switch type {
      case "choices":
        for label in try value.strings("choices") { annotation.classes.insert(try className(label, at: place)) }
      case "rectanglelabels":
        let x = try value.double("x") / 100
        let y = try value.double("y") / 100
        let width = try value.double("width") / 100
        let height = try value.double("height") / 100
        for label in try value.strings("rectanglelabels") {
          let name = try className(label, at: place)
          annotation.classes.insert(name)
          annotation.regions.append(Region(className: name, minX: x, minY: y, maxX: x + width, maxY: y + height))
        }
      case "polygonlabels":
        var xs: [Double] = []
        var ys: [Double] = []
        for (number, point) in try value.array("points").enumerated() {
          guard case .array(let pair) = point, pair.count == 2 else {
            throw GatewayError.invalid("\(place).value.points[\(number)]: expected [x, y]")
          }
          xs.append(try RequestFields.double(pair[0], "\(place).value.points[\(number)][0]") / 100)
          ys.append(try RequestFields.double(pair[1], "\(place).value.points[\(number)][1]") / 100)
        }
        guard xs.count >= 3 else { throw GatewayError.invalid("\(place).value.points: a polygon needs 3 points") }
        for label in try value.strings("polygonlabels") {
          let name = try className(label, at: place)
          annotation.classes.insert(name)
          annotation.regions.append(
            Region(className: name, minX: xs.min()!, minY: ys.min()!, maxX: xs.max()!, maxY: ys.max()!))
        }
      default:
        // Text areas, ratings and other controls say nothing Shoal keeps.
        continue
      }
    }
    return annotation
  }

  /// The bounding box of a feature's geometry (a GeoJSON Polygon whose coordinates are fractions
  /// of the image), nil when it is not one.
  static func region(ofGeometry text: String, className: String) -> Region? {
    guard let value = try? JSONValue(parsing: text), case .object(let members) = value,
      let coordinates = members.first(where: { $0.0 == "coordinates" })?.1,
      case .array(let rings) = coordinates, case .array(let outer)? = rings.first
    else { return nil }
    var xs: [Double] = []
    var ys: [Double] = []
    for point in outer {
      guard case .array(let pair) = point, pair.count >= 2, case .number(let x) = pair[0],
        case .number(let y) = pair[1],
        let px = Double(x), let py = Double(y)
      else { return nil }
      xs.append(px)
      ys.append(py)
    }
    guard let minX = xs.min(), let maxX = xs.max(), let minY = ys.min(), let maxY = ys.max() else { return nil }
    return Region(className: className, minX: minX, minY: minY, maxX: maxX, maxY: maxY)
  }

  /// An object of inference's answer as a feedback feature: its outline (or box) as a GeoJSON
  /// Polygon in fractions of the image.
  static func feature(_ object: InferenceV1.ImageObject) -> FeedbackV1.Feature {
    func ring(_ points: [(Double, Double)]) -> JSONValue {
      var closed = points
      if let first = points.first, points.last! != first { closed.append(first) }
      return .array(closed.map { .array([$0.0._jsonValue(), $0.1._jsonValue()]) })
    }
    let rings: [JSONValue] =
      object.rings.isEmpty ? [ring(object.corners)] : object.rings.map { ring($0.points.map { ($0.x, $0.y) }) }
    var feature = FeedbackV1.Feature()
    feature.geometry = JSONValue.object([("type", .string("Polygon")), ("coordinates", .array(rings))]).serialized()
    feature.className = object.className
    feature.score = object.score
    return feature
  }
}

extension InferenceV1.ImageObject {
  /// Left, top, right and bottom of the bounding box, in fractions of the image.
  var box: (Double, Double, Double, Double) {
    (topLeft?.x ?? 0, topLeft?.y ?? 0, bottomRight?.x ?? 0, bottomRight?.y ?? 0)
  }

  /// The bounding box's corners, clockwise from the top left (x rightwards, y downwards).
  var corners: [(Double, Double)] {
    let (left, top, right, bottom) = box
    return [(left, top), (right, top), (right, bottom), (left, bottom)]
  }
}
