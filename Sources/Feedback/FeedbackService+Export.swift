import Foundation
import ShoalGeo
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs

extension FeedbackService {
  public func export(
    _ request: FeedbackV1.ExportRequest, responses: RPCResponseWriter<FeedbackV1.ExportChunk>, context: ServerContext
  ) async throws {
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    if set.items {
      throw RPCError(
        .failedPrecondition,
        "set \(set.setId) holds items, not map tiles, so it has no geometry to export; read it with QueryTiles")
    }
    let classes = try Self.exportedClasses(request.classes, of: set)
    var writer = ExportWriter(
      format: request.format, filter: request.filter, classes: classes, images: try await imageContext(of: set),
      responses: responses)
    let exported = try await forEachSelected(
      in: set, filter: request.filter, classes: classes, threshold: request.threshold
    ) { tile in
      try await writer.add(tile.stored, marks: tile.marks, color: tile.color, features: tile.features)
    }
    guard exported > 0 else { throw Self.nothingToExport(set, request.filter) }
    try await writer.finish()
  }

  static func nothingToExport(_ set: FeedbackV1.PredictionSet, _ filter: FeedbackV1.ExportFilter) -> RPCError {
    RPCError(
      .failedPrecondition,
      "nothing to export: no tile of set \(set.setId) passes the filter \(filter.protoName ?? "") "
        + "(validate some tiles first, or export ALL_TILES)")
  }

  /// The classes asked for (every class of the set when none is).
  ///
  /// - Throws: NOT_FOUND naming a class the set does not have.
  static func exportedClasses(_ asked: [String], of set: FeedbackV1.PredictionSet) throws(RPCError) -> [String] {
    let known = set.classes.map(\.name)
    if let unknown = asked.first(where: { !known.contains($0) }) {
      throw RPCError(.notFound, "classes: the set has no class '\(unknown)'")
    }
    return asked.isEmpty ? known : asked
  }

  /// A tile an export takes: its marks for the exported classes (of the tile itself), its display
  /// colour, and its features of those classes with their validity (their own mark, else the
  /// tile's for their class).
  struct SelectedTile {
    var stored: FeedbackStore.StoredTile
    var marks: [FeedbackV1.ClassValidity]
    var color: String
    var features: [(FeedbackV1.Feature, FeedbackV1.Validity)]
  }

  /// Calls `body` with each tile of `set` that `filter` (by what reviewers said of the tile or its
  /// features) and `threshold` (a score of an exported class) keep, in store order; returns how many.
  func forEachSelected(
    in set: FeedbackV1.PredictionSet, filter: FeedbackV1.ExportFilter, classes: [String], threshold: Double,
    _ body: (SelectedTile) async throws -> Void
  ) async throws -> Int {
    let colors = set.colors ?? FeedbackV1.DisplayColors()
    var selected = 0
    try await store.forEachTile(setID: Int64(set.setId)!, zoom: Int(set.zoom)) { stored, all, tileFeatures in
      let marks = all.filter { $0.feature == 0 && classes.contains($0.record.className) }.map(\.record)
      // A feature's own mark for its own class (a reviewer may also have marked it valid for
      // another class, correcting it).
      let featureMarks = Dictionary(
        all.filter { $0.feature != 0 }.map { ("\($0.feature)/\($0.record.className)", $0.record.validity) },
        uniquingKeysWith: { a, _ in a })
      func ownMark(_ feature: FeedbackV1.Feature) -> FeedbackV1.Validity? {
        featureMarks["\(feature.featureId)/\(feature.className)"]
      }
      let tileMarks = Dictionary(marks.map { ($0.className, $0.validity) }, uniquingKeysWith: { a, _ in a })
      let judged = tileFeatures.filter { classes.contains($0.className) }.map { feature in
        (feature, ownMark(feature) ?? tileMarks[feature.className] ?? .unvalidated)
      }
      let states = Set(marks.map(\.validity)).union(judged.compactMap { ownMark($0.0) })
      let wanted: Bool =
        switch filter {
        case .validated: !states.isEmpty
        case .onlyValidatedValid: states.contains(.valid)
        case .onlyValidatedInvalid: states.contains(.invalid)
        case .allTiles, .unrecognized: true
        }
      let scoring =
        classes.contains { (stored.scores[$0] ?? 0) >= threshold } || judged.contains { $0.0.score >= threshold }
      guard wanted, scoring else { return }
      let state = Self.state(marks, "")
      let color = state == .valid ? colors.valid : state == .invalid ? colors.invalid : colors.unvalidated
      try await body(SelectedTile(stored: stored, marks: marks, color: color, features: judged))
      selected += 1
    }
    return selected
  }

  /// What the set's images are: the tile size and URLs of its imagery source when it has one
  /// (256-pixel PNGs named z/x/y otherwise), and the model that predicted.
  func imageContext(of set: FeedbackV1.PredictionSet) async throws -> ExportImages {
    var images = ExportImages(
      size: 256, format: "png", location: nil, task: set.task,
      modelVersion: set.modelVersion > 0 ? "\(set.model) v\(set.modelVersion)" : set.model)
    if !set.imagery.isEmpty,
      let stored = try? await store.imagery(set.imagery, organization: set.organization),
      let source = try? Self.imagerySource(stored.source, headers: [:])
    {
      images.size = source.tileSize
      if !source.format.isEmpty { images.format = source.format == "jpeg" ? "jpg" : source.format }
      if !source.template.isFile { images.location = { source.template.location(of: $0) } }
    }
    return images
  }
}

/// The images of an export's tiles.
struct ExportImages {
  var size: Int
  /// The file extension.
  var format: String
  /// A tile's URL at its imagery source, if it has one over HTTP.
  var location: (@Sendable (Tile) -> String)?
  var task: RegistryV1.ModelTask
  var modelVersion: String

  func fileName(_ tile: Tile) -> String { "\(tile.z)/\(tile.x)/\(tile.y).\(format)" }
}

/// Writes tiles in an export format, sending pieces of about 256 KiB as they fill. Nothing is
/// sent before the first tile, so an empty export can still be refused.
private struct ExportWriter {
  let format: FeedbackV1.ExportFormat
  let filter: FeedbackV1.ExportFilter
  let classes: [String]
  let images: ExportImages
  let responses: RPCResponseWriter<FeedbackV1.ExportChunk>
  private var buffer: [UInt8] = []
  private var started = false
  private var npz = NpzWriter()
  private var coco: CocoWriter

  init(
    format: FeedbackV1.ExportFormat, filter: FeedbackV1.ExportFilter, classes: [String], images: ExportImages,
    responses: RPCResponseWriter<FeedbackV1.ExportChunk>
  ) {
    self.format = format
    self.filter = filter
    self.classes = classes
    self.images = images
    self.responses = responses
    coco = CocoWriter(classes: classes, images: images)
  }

  mutating func add(
    _ stored: FeedbackStore.StoredTile, marks: [FeedbackV1.ClassValidity], color: String,
    features: [(FeedbackV1.Feature, FeedbackV1.Validity)]
  ) async throws {
    if !started {
      started = true
      switch format {
      case .csv:
        let columns = ["quadkey", "z", "x", "y", "lon", "lat"] + classes + classes.map { "\($0)_validity" }
        buffer += Array((columns.map(Self.csvField).joined(separator: ",") + "\n").utf8)
      case .geojson: buffer += Array(#"{"type":"FeatureCollection","features":["#.utf8)
      case .coco: buffer += try coco.datasetHead()
      case .cocoResults, .labelStudio: buffer += Array("[".utf8)
      default: break
      }
    }
    let validity = Dictionary(
      uniqueKeysWithValues: marks.map { ($0.className, $0.validity.protoName?.lowercased() ?? "") })
    switch format {
    case .coco:
      buffer += try coco.image(stored)
      try coco.annotations(stored, marks: marks, features: features, filter: filter)
    case .cocoResults:
      for result in try coco.results(stored, features: features.map(\.0)) { try append(result) }
    case .labelStudio:
      try append(try coco.labelStudioTask(stored, features: features.map(\.0)))
    case .npz:
      npz.add(
        "\(stored.tile.x)-\(stored.tile.y)-\(stored.tile.z)", classes.map { validity[$0] == "valid" ? 1 : 0 })
      buffer += npz.take()
    case .csv:
      let center = stored.tile.lonLat(pixelX: 0.5, pixelY: 0.5, size: 1)
      var fields = [
        stored.tile.quadkey, "\(stored.tile.z)", "\(stored.tile.x)", "\(stored.tile.y)", "\(center.longitude)",
        "\(center.latitude)",
      ]
      fields += classes.map { stored.scores[$0].map { "\($0)" } ?? "" }
      fields += classes.map { validity[$0] ?? "unvalidated" }
      buffer += Array((fields.map(Self.csvField).joined(separator: ",") + "\n").utf8)
    case .geojson, .geojsonseq, .unrecognized:
      var properties: [String: Any] = [
        "tile": "\(stored.tile)", "quadkey": stored.tile.quadkey, "color": color,
        "scores": stored.scores.filter { classes.contains($0.key) },
        "validity": Dictionary(uniqueKeysWithValues: classes.map { ($0, validity[$0] ?? "unvalidated") }),
      ]
      var objects: [[String: Any]] = [
        [
          "type": "Feature", "geometry": GeoJSON.object(.polygon(Polygon(stored.tile.bounds))),
          "properties": properties,
        ]
      ]
      for (feature, _) in features {
        guard let geometry = try? GeoJSON.features(from: Data(feature.geometry.utf8), validate: false).first?.geometry
        else { continue }
        properties["feature"] = feature.featureId
        properties["class"] = feature.className
        properties["score"] = feature.score
        objects.append(["type": "Feature", "geometry": GeoJSON.object(geometry), "properties": properties])
      }
      for object in objects {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        if format == .geojsonseq {
          buffer += Array(data) + [0x0A]
        } else {
          if buffer.last != UInt8(ascii: "[") { buffer.append(UInt8(ascii: ",")) }
          buffer += Array(data)
        }
      }
    }
    if buffer.count >= 256 << 10 { try await flush() }
  }

  /// Appends one element of a JSON array.
  private mutating func append(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    if buffer.last != UInt8(ascii: "[") { buffer.append(UInt8(ascii: ",")) }
    buffer += Array(data)
  }

  mutating func finish() async throws {
    if format == .geojson { buffer += Array("]}\n".utf8) }
    if format == .cocoResults || format == .labelStudio { buffer += Array("]\n".utf8) }
    if format == .coco {
      try await flush()
      try await coco.finishDataset { try await responses.send($0) }
    }
    if format == .npz { buffer += npz.finish() }
    try await flush()
  }

  private mutating func flush() async throws {
    guard !buffer.isEmpty else { return }
    var chunk = FeedbackV1.ExportChunk()
    chunk.data = buffer
    buffer = []
    try await responses.send(chunk)
  }

  static func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }
}
