public import Foundation

/// GeoJSON read and written as RFC 7946 has it: positions in longitude, latitude order, closed
/// linear rings of four positions or more, polygons written with the right-hand rule (exterior
/// counter-clockwise, holes clockwise) and a `bbox`.
public enum GeoJSON {
  /// A feature: a geometry (or none) and its properties as JSON.
  public struct Feature: Sendable {
    public var geometry: Geometry?
    /// The `properties` object, as JSON text (`{}` when there were none).
    public var propertiesJSON: String

    public init(geometry: Geometry?, propertiesJSON: String = "{}") {
      self.geometry = geometry
      self.propertiesJSON = propertiesJSON
    }
  }

  /// The polygons of an area of interest: a Polygon or MultiPolygon, as a geometry, a Feature or
  /// a FeatureCollection's features.
  ///
  /// - Throws: `GeoError` as `features(from:)` does, or when it holds no polygon.
  public static func areaPolygons(_ text: String) throws(GeoError) -> [Polygon] {
    let polygons = try features(from: Data(text.utf8)).flatMap { $0.geometry?.polygons ?? [] }
    guard !polygons.isEmpty else { throw GeoError("it holds no Polygon or MultiPolygon") }
    return polygons
  }

  /// Every geometry of a GeoJSON text: a geometry, a Feature or a FeatureCollection's features.
  ///
  /// - Throws: `GeoError` naming the part that is wrong (`features[2].geometry.coordinates[0]`):
  ///   malformed JSON, an unknown type, a latitude beyond ±90 or a longitude beyond ±180, a ring
  ///   that is not closed or has fewer than four positions, and (with `validate`) a polygon GEOS
  ///   finds invalid, such as a self-intersecting ring.
  public static func features(from data: Data, validate: Bool = true) throws(GeoError) -> [Feature] {
    let root: Any
    do {
      root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    } catch {
      throw GeoError("not JSON: \((error as NSError).localizedDescription)")
    }
    guard let object = root as? [String: Any] else { throw GeoError("GeoJSON is an object with a \"type\"") }
    var features: [Feature] = []
    switch object["type"] as? String {
    case "FeatureCollection":
      guard let list = object["features"] as? [Any] else {
        throw GeoError("features: a FeatureCollection needs a \"features\" array")
      }
      for (index, item) in list.enumerated() {
        guard let feature = item as? [String: Any] else { throw GeoError("features[\(index)]: not an object") }
        features.append(try Self.feature(feature, at: "features[\(index)]"))
      }
    case "Feature":
      features.append(try Self.feature(object, at: "feature"))
    default:
      features.append(Feature(geometry: try geometry(object, at: "geometry")))
    }
    if validate {
      for (index, feature) in features.enumerated() {
        for (number, polygon) in (feature.geometry?.polygons ?? []).enumerated() {
          if let problem = GeometryCheck.problem(in: polygon) {
            let part = features.count > 1 ? "features[\(index)]" : "geometry"
            throw GeoError("\(part): polygon \(number): \(problem)")
          }
        }
      }
    }
    return features
  }

  private static func feature(_ object: [String: Any], at path: String) throws(GeoError) -> Feature {
    guard object["type"] as? String == "Feature" else { throw GeoError("\(path).type: expected \"Feature\"") }
    var geometry: Geometry?
    if let value = object["geometry"], !(value is NSNull) {
      guard let geometryObject = value as? [String: Any] else { throw GeoError("\(path).geometry: not an object") }
      geometry = try Self.geometry(geometryObject, at: "\(path).geometry")
    }
    var properties = "{}"
    if let value = object["properties"], !(value is NSNull) {
      guard JSONSerialization.isValidJSONObject(value),
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
      else { throw GeoError("\(path).properties: not a JSON object") }
      properties = String(decoding: data, as: UTF8.self)
    }
    return Feature(geometry: geometry, propertiesJSON: properties)
  }

  /// A geometry object.
  static func geometry(_ object: [String: Any], at path: String) throws(GeoError) -> Geometry {
    guard let type = object["type"] as? String else { throw GeoError("\(path).type is missing") }
    if type == "GeometryCollection" {
      guard let list = object["geometries"] as? [Any] else { throw GeoError("\(path).geometries is missing") }
      var geometries: [Geometry] = []
      for (index, item) in list.enumerated() {
        guard let child = item as? [String: Any] else { throw GeoError("\(path).geometries[\(index)]: not an object") }
        geometries.append(try geometry(child, at: "\(path).geometries[\(index)]"))
      }
      return .geometryCollection(geometries)
    }
    guard let coordinates = object["coordinates"] else { throw GeoError("\(path).coordinates is missing") }
    let at = "\(path).coordinates"
    switch type {
    case "Point": return .point(try position(coordinates, at: at))
    case "MultiPoint": return .multiPoint(try positions(coordinates, at: at))
    case "LineString": return .lineString(try positions(coordinates, at: at))
    case "MultiLineString":
      return .multiLineString(
        try list(coordinates, at: at).enumerated().map { index, line throws(GeoError) in
          try positions(line, at: "\(at)[\(index)]")
        })
    case "Polygon": return .polygon(try polygon(coordinates, at: at))
    case "MultiPolygon":
      return .multiPolygon(
        try list(coordinates, at: at).enumerated().map { index, value throws(GeoError) in
          try polygon(value, at: "\(at)[\(index)]")
        })
    default:
      throw GeoError("\(path).type: '\(type)' is not a GeoJSON geometry type")
    }
  }

  private static func list(_ value: Any, at path: String) throws(GeoError) -> [Any] {
    guard let list = value as? [Any] else { throw GeoError("\(path): expected an array") }
    return list
  }

  private static func position(_ value: Any, at path: String) throws(GeoError) -> Position {
    // JSON's true and false arrive as Bool, numbers as NSNumber (which `is Bool` would also match).
    guard let numbers = value as? [Any], (2...3).contains(numbers.count),
      type(of: numbers[0]) != Bool.self, type(of: numbers[1]) != Bool.self,
      let longitude = (numbers[0] as? NSNumber)?.doubleValue, let latitude = (numbers[1] as? NSNumber)?.doubleValue
    else { throw GeoError("\(path): a position is [longitude, latitude]") }
    guard (-90...90).contains(latitude) else { throw GeoError("\(path): latitude \(latitude) is beyond ±90") }
    guard (-180...180).contains(longitude) else {
      throw GeoError("\(path): longitude \(longitude) is beyond ±180")
    }
    return Position(longitude, latitude)
  }

  private static func positions(_ value: Any, at path: String) throws(GeoError) -> [Position] {
    try list(value, at: path).enumerated().map { index, item throws(GeoError) in
      try position(item, at: "\(path)[\(index)]")
    }
  }

  private static func polygon(_ value: Any, at path: String) throws(GeoError) -> Polygon {
    let rings = try list(value, at: path).enumerated().map { index, ring throws(GeoError) -> [Position] in
      let positions = try positions(ring, at: "\(path)[\(index)]")
      guard positions.count >= 4 else {
        throw GeoError("\(path)[\(index)]: a linear ring has at least four positions, this one \(positions.count)")
      }
      guard positions.first == positions.last else {
        throw GeoError("\(path)[\(index)]: the ring is not closed (its last position must repeat its first)")
      }
      return positions
    }
    guard !rings.isEmpty else { throw GeoError("\(path): a polygon needs an exterior ring") }
    return Polygon(rings: rings)
  }

  // MARK: Writing

  /// The geometry as a GeoJSON object, polygons right-handed, with its `bbox`.
  public static func object(_ geometry: Geometry, bbox: Bool = true) -> [String: Any] {
    func coordinates(_ position: Position) -> [Double] { [position.longitude, position.latitude] }
    func rings(_ polygon: Polygon) -> [[[Double]]] { polygon.rightHanded.rings.map { $0.map(coordinates) } }
    var object: [String: Any]
    switch geometry {
    case .point(let position): object = ["type": "Point", "coordinates": coordinates(position)]
    case .multiPoint(let positions): object = ["type": "MultiPoint", "coordinates": positions.map(coordinates)]
    case .lineString(let positions): object = ["type": "LineString", "coordinates": positions.map(coordinates)]
    case .multiLineString(let lines):
      object = ["type": "MultiLineString", "coordinates": lines.map { $0.map(coordinates) }]
    case .polygon(let polygon): object = ["type": "Polygon", "coordinates": rings(polygon)]
    case .multiPolygon(let polygons): object = ["type": "MultiPolygon", "coordinates": polygons.map(rings)]
    case .geometryCollection(let geometries):
      object = ["type": "GeometryCollection", "geometries": geometries.map { Self.object($0, bbox: false) }]
    }
    if bbox {
      let box = geometry.bounds
      object["bbox"] = [box.west, box.south, box.east, box.north]
    }
    return object
  }

  /// A FeatureCollection of `features` as JSON text.
  public static func featureCollection(_ features: [Feature]) -> String {
    let objects = features.map { feature -> [String: Any] in
      let properties =
        (try? JSONSerialization.jsonObject(with: Data(feature.propertiesJSON.utf8))) as? [String: Any] ?? [:]
      return [
        "type": "Feature", "geometry": feature.geometry.map { object($0) } ?? NSNull(), "properties": properties,
      ]
    }
    let data = (try? JSONSerialization.data(withJSONObject: ["type": "FeatureCollection", "features": objects]))
    return String(decoding: data ?? Data(), as: UTF8.self)
  }
}
