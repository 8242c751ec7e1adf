import ArgumentParser
import Foundation
import ShoalClient
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// Runs `body` with a client of the feedback service, found through the registry; an RPC failure
/// is printed as `shoal COMMAND: CODE: message` and exits with status 1.
func withFeedback<T>(
  _ mesh: MeshOptions, command: String, _ body: (FeedbackV1.Feedback.Client) async throws -> T
) async throws -> T {
  let shoal = ShoalClient(location: try mesh.location())
  return try await reportingRPCErrors(command: command, closing: { await shoal.close() }) {
    try await body(FeedbackV1.Feedback.Client(shoal.channel(for: "feedback")))
  }
}

/// `--bbox W,S,E,N` as the contract's box.
func boundingBoxOption(_ text: String) throws -> FeedbackV1.BoundingBox {
  do {
    return FeedbackV1.BoundingBox(try BoundingBox(parsing: text))
  } catch {
    throw ValidationError("--bbox: \(error.message)")
  }
}

/// A text file named by an option (a GeoJSON file), whole.
func textFile(_ path: String) throws -> String {
  guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
  return String(decoding: data, as: UTF8.self)
}

/// `shoal feedback …`.
struct FeedbackCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "feedback", abstract: "Prediction sets, their tiles, and what reviewers say of them.",
    subcommands: [
      Create.self, Sets.self, Tiles.self, Tag.self, Review.self, History.self, Stats.self, Export.self,
      TrainingSets.self,
    ])

  struct TrainingSets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "training-sets", abstract: "List the training sets built from prediction sets, newest first.")
    @Argument(help: "Only those of this set.") var set: String?
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.ListTrainingSetsRequest()
      request.setId = set ?? ""
      let response = try await withFeedback(mesh, command: "feedback training-sets") {
        try await $0.listTrainingSets(request)
      }
      if json { return emitJSON(response) }
      var table = TextTable("ID", "SET", "NAME", "TILES", "LEFT OUT", "BYTES", "RUN", "DIGEST", "CREATED")
      for item in response.trainingSets {
        table.add(
          item.trainingSetId, item.setId, item.name, "\(item.tiles)", "\(item.skipped)", "\(item.sizeBytes)",
          item.runId.isEmpty ? "-" : item.runId, String(item.digest.dropFirst("blob:sha256:".count).prefix(12)),
          formatTime(item.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a prediction set (jobs make their own).")
    @Argument(help: "The model reference the predictions are of.") var model: String
    @Option(help: "The tiles' zoom.") var zoom: Int32
    @Option(name: .customLong("class"), help: "A class NAME or NAME:#rrggbb (repeatable).") var classes: [String]
    @Option(help: "The model version that predicted.") var version: Int64 = 0
    @Option(help: "The imagery source's name.") var imagery = ""
    @Option(help: "A GeoJSON file with the area of interest.") var aoi: String?
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.CreateSetRequest()
      request.model = model
      request.modelVersion = version
      request.zoom = zoom
      request.imagery = imagery
      request.classes = classes.map { text in
        var label = RegistryV1.ClassLabel()
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        label.name = parts[0]
        label.color = parts.count > 1 ? parts[1] : ""
        return label
      }
      if let aoi {
        request.aoi = try textFile(aoi)
      }
      let set = try await withFeedback(mesh, command: "feedback create") { try await $0.createSet(request) }
      if json { return emitJSON(set) }
      emit("created prediction set \(set.setId) of \(set.model) at zoom \(set.zoom)")
    }
  }

  struct Sets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List prediction sets, newest first.")
    @Option(help: "Only sets of this model reference.") var model = ""
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.ListSetsRequest()
      request.model = model
      request.pageSize = 1000
      let response = try await withFeedback(mesh, command: "feedback sets") { try await $0.listSets(request) }
      if json { return emitJSON(response) }
      var table = TextTable(
        "SET", "MODEL", "VERSION", "ZOOM", "TILES", "STATUS", "ORGANIZATION", "CREATED BY", "CREATED")
      for set in response.sets {
        table.add(
          set.setId, set.model, "v\(set.modelVersion)", "\(set.zoom)", "\(set.tileCount)", set.status.protoName ?? "",
          set.organization, set.createdBy, formatTime(set.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  struct Tiles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A set's tiles in an area, by status, class and score, with their validity and colour.")
    @Argument(help: "The set.") var set: String
    @Option(help: "west,south,east,north.") var bbox: String?
    @Option(help: "A GeoJSON file whose polygons the tiles must meet.") var geojson: String?
    @Option(help: "any, unvalidated, valid or invalid.") var status = "any"
    @Option(name: .customLong("class"), help: "Only this class.") var className = ""
    @Option(help: "Only tiles scoring at least this.") var minScore: Double = 0
    @Option(help: "At most this many tiles.") var limit = 1000
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.QueryTilesRequest()
      request.setId = set
      request.className = className
      request.minScore = minScore
      request.pageSize = Int32(min(limit, 10_000))
      switch status {
      case "any": request.status = .anyStatus
      case "unvalidated": request.status = .onlyUnvalidated
      case "valid": request.status = .onlyValid
      case "invalid": request.status = .onlyInvalid
      default: throw ValidationError("--status takes any, unvalidated, valid or invalid")
      }
      if let bbox {
        request.area = .bbox(try boundingBoxOption(bbox))
      } else if let geojson {
        request.area = .geojson(try textFile(geojson))
      }
      let response = try await withFeedback(mesh, command: "feedback tiles") { try await $0.queryTiles(request) }
      if json { return emitJSON(response) }
      var table = TextTable("TILE", "QUADKEY", "SCORES", "VALIDITY", "COLOR")
      for tile in response.tiles {
        let scores = tile.scores.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%.3f", $0.value))" }
        let validity = tile.validity.map { "\($0.className)=\($0.validity.protoName?.lowercased() ?? "")" }
        table.add(
          tile.tileId, tile.quadkey, scores.joined(separator: " "),
          validity.isEmpty ? "-" : validity.joined(separator: " "),
          tile.color)
      }
      emit(table.rendered)
    }
  }

  struct Tag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Mark tiles (z/x/y) or features valid or invalid for a class, or clear the mark.")
    @Argument(help: "The set.") var set: String
    @Argument(help: "valid, invalid or clear.") var validity: String
    @Option(name: .customLong("class"), help: "The class.") var className: String
    @Argument(help: "Tiles as z/x/y, or features as f:ID.") var targets: [String]
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      let state: FeedbackV1.Validity
      switch validity {
      case "valid": state = .valid
      case "invalid": state = .invalid
      case "clear": state = .unvalidated
      default: throw ValidationError("the validity is valid, invalid or clear")
      }
      var request = FeedbackV1.SetValidityRequest()
      request.setId = set
      request.changes = targets.map { target in
        var change = FeedbackV1.ValidityChange()
        change.target = target.hasPrefix("f:") ? .featureId(String(target.dropFirst(2))) : .tileId(target)
        change.className = className
        change.validity = state
        return change
      }
      let response = try await withFeedback(mesh, command: "feedback tag") { try await $0.setValidity(request) }
      if json { return emitJSON(response) }
      emit("\(response.applied) marked \(validity) for \(className)")
    }
  }

  struct Review: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Review a set's least certain tiles one at a time in the terminal.",
      discussion: """
        Each tile is locked to you while you look at it (NextForReview), so that two reviewers never get the same one. \
        For each class type v (valid), i (invalid) or s (skip the class); q stops and gives your locks back.
        """)
    @Argument(help: "The set.") var set: String
    @Option(help: "least-confidence, margin or entropy.") var strategy = "least-confidence"
    @Option(name: .customLong("class"), help: "Review only this class.") var className = ""
    @Option(help: "Stop after this many tiles.") var limit = 100
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var next = FeedbackV1.NextForReviewRequest()
      next.setId = set
      next.n = 1
      next.className = className
      switch strategy {
      case "least-confidence": next.strategy = .leastConfidence
      case "margin": next.strategy = .margin
      case "entropy": next.strategy = .entropy
      default: throw ValidationError("--strategy takes least-confidence, margin or entropy")
      }
      let setID = set
      let only = className
      let limit = limit
      try await withFeedback(mesh, command: "feedback review") { client in
        var get = FeedbackV1.GetSetRequest()
        get.setId = setID
        let classes = only.isEmpty ? try await client.getSet(get).classes.map(\.name) : [only]
        var reviewed = 0
        defer { emit("reviewed \(reviewed) tiles") }
        var skipped: [String] = []
        while reviewed < limit {
          guard
            let item = try await client.nextForReview(next).items.first(where: {
              !skipped.contains($0.tile?.tileId ?? "")
            }),
            let tile = item.tile
          else {
            emit("nothing left to review")
            break
          }
          let scores = tile.scores.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value))" }
          emit(
            "\(tile.tileId) (\(tile.quadkey)): \(scores.joined(separator: ", ")), uncertainty \(String(format: "%.3f", item.uncertainty))"
          )
          var changes: [FeedbackV1.ValidityChange] = []
          for name in classes {
            FileHandle.standardOutput.write(Data("  \(name): [v]alid [i]nvalid [s]kip [q]uit? ".utf8))
            guard let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased(), answer != "q" else {
              var release = FeedbackV1.ReleaseLocksRequest()
              release.setId = setID
              _ = try await client.releaseLocks(release)
              return
            }
            guard answer == "v" || answer == "i" else { continue }
            var change = FeedbackV1.ValidityChange()
            change.target = .tileId(tile.tileId)
            change.className = name
            change.validity = answer == "v" ? .valid : .invalid
            changes.append(change)
          }
          if changes.isEmpty {
            skipped.append(tile.tileId)
            next.n = Int32(min(100, skipped.count + 1))
            continue
          }
          var request = FeedbackV1.SetValidityRequest()
          request.setId = setID
          request.changes = changes
          _ = try await client.setValidity(request)
          reviewed += 1
        }
      }
    }
  }

  struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Every validity change of a set or a tile: who, what, when.")
    @Argument(help: "The set.") var set: String
    @Argument(help: "One tile, z/x/y.") var tile = ""
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.ValidityHistoryRequest()
      request.setId = set
      request.tileId = tile
      let response = try await withFeedback(mesh, command: "feedback history") { try await $0.validityHistory(request) }
      if json { return emitJSON(response) }
      var table = TextTable("WHEN", "TILE", "FEATURE", "CLASS", "FROM", "TO", "BY")
      for entry in response.entries {
        table.add(
          formatTime(entry.atMs), entry.tileId, entry.featureId.isEmpty ? "-" : entry.featureId, entry.className,
          entry.previous.protoName?.lowercased() ?? "", entry.validity.protoName?.lowercased() ?? "", entry.by)
      }
      emit(table.rendered)
    }
  }

  struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: """
        Export a set's tiles (validated ones by default) as GeoJSON, GeoJSONSeq, CSV, ML Enabler's npz, COCO \
        (ground truth, or results for loadRes), Label Studio tasks, or a labelled training set.
        """,
      discussion: """
        training-set fetches the tiles' images from the set's imagery source and stores them with their labels \
        (a tar with manifest.jsonl) in the feedback service; --run records it in a tracking run as a training \
        input with its digest, and --out downloads it.
        """)
    @Argument(help: "The set.") var set: String
    @Option(help: "geojson, geojsonseq, csv, npz, coco, coco-results, label-studio or training-set.")
    var format = "geojson"
    @Option(help: "validated, valid, invalid or all.") var filter = "validated"
    @Option(name: .customLong("class"), help: "Only this class (repeatable).") var classes: [String] = []
    @Option(help: "Only tiles scoring at least this for an exported class.") var threshold: Double = 0
    @Option(help: "The file to write (default: standard output; for a training set, none).") var out: String?
    @Option(help: "training-set: the tracking run to record it in.") var run: String?
    @Option(help: "training-set: its name (default feedback-set-SET).") var name: String?
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      if format == "training-set" { return try await buildTrainingSet() }
      guard run == nil, name == nil else { throw ValidationError("--run and --name are for --format training-set") }
      var request = FeedbackV1.ExportRequest()
      request.setId = set
      request.classes = classes
      request.threshold = threshold
      switch format {
      case "geojson": request.format = .geojson
      case "geojsonseq": request.format = .geojsonseq
      case "csv": request.format = .csv
      case "npz": request.format = .npz
      case "coco": request.format = .coco
      case "coco-results": request.format = .cocoResults
      case "label-studio": request.format = .labelStudio
      default:
        throw ValidationError(
          "--format takes geojson, geojsonseq, csv, npz, coco, coco-results, label-studio or training-set")
      }
      request.filter = try Self.filter(filter)
      try await write(command: "feedback export") { client, body in try await client.export(request, body) }
    }

    static func filter(_ text: String) throws -> FeedbackV1.ExportFilter {
      switch text {
      case "validated": .validated
      case "valid": .onlyValidatedValid
      case "invalid": .onlyValidatedInvalid
      case "all": .allTiles
      default: throw ValidationError("--filter takes validated, valid, invalid or all")
      }
    }

    /// Builds a training set with a progress bar, then downloads it to --out if given.
    func buildTrainingSet() async throws {
      var request = FeedbackV1.BuildTrainingSetRequest()
      request.setId = set
      request.filter = try Self.filter(filter)
      request.classes = classes
      request.threshold = threshold
      request.runId = run ?? ""
      request.name = name ?? ""
      let built = try await withFeedback(mesh, command: "feedback export") { client in
        try await client.buildTrainingSet(request) { responses in
          var progress: ProgressLine?
          var result: FeedbackV1.TrainingSet?
          for try await step in responses {
            if let failure = step.failure {
              let status = failure.status == 0 ? "" : "HTTP \(failure.status) "
              logLine("shoal feedback export", "\(step.tileId) left out: \(status)\(failure.url): \(failure.message)")
            }
            if progress == nil {
              progress = ProgressLine(label: "fetching images", total: Int(step.total), unit: "tiles")
            }
            progress?.update(Int(step.done))
            if let set = step.trainingSet { result = set }
          }
          progress?.finish()
          return result
        }
      }
      guard let built else { throw ValidationError("the service sent no training set") }
      emit(
        "training set \(built.trainingSetId) (\(built.name)): \(built.tiles) tiles, \(built.skipped) left out, "
          + "\(built.sizeBytes) bytes, \(built.digest)"
          + (built.runId.isEmpty ? "" : ", recorded in run \(built.runId)"))
      guard out != nil else { return }
      var download = FeedbackV1.DownloadTrainingSetRequest()
      download.trainingSetId = built.trainingSetId
      try await write(command: "feedback export") { client, body in try await client.downloadTrainingSet(download, body)
      }
    }

    /// Writes the chunks `call` streams to --out (through a temporary file beside it, so that a
    /// failure leaves none) or to standard output.
    func write(
      command: String,
      _ call: (FeedbackV1.Feedback.Client, (RPCResponseStream<FeedbackV1.ExportChunk>) async throws -> Int)
        async throws -> Int
    ) async throws {
      let out = out
      let temporary = out.map { "\($0).partial-\(getpid())" }
      let bytes = try await withFeedback(mesh, command: command) { client in
        try await call(client) { chunks in
          var total = 0
          let handle: FileHandle
          if let temporary {
            _ = FileManager.default.createFile(atPath: temporary, contents: nil)
            guard let file = FileHandle(forWritingAtPath: temporary) else {
              throw ValidationError("cannot write \(temporary)")
            }
            handle = file
          } else {
            handle = FileHandle.standardOutput
          }
          do {
            for try await chunk in chunks {
              try handle.write(contentsOf: Data(chunk.data))
              total += chunk.data.count
            }
          } catch {
            if let temporary {
              try? handle.close()
              try? FileManager.default.removeItem(atPath: temporary)
            }
            throw error
          }
          if temporary != nil { try handle.close() }
          return total
        }
      }
      if let out, let temporary {
        _ = try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.moveItem(atPath: temporary, toPath: out)
        logLine("shoal \(command)", "wrote \(bytes) bytes to \(out)")
      }
    }
  }

  struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: """
        Counts by class and status, precision per class on what reviewers validated, the confusion table \
        by model version, and agreement between reviewers.
        """)
    @Argument(help: "The set (or give --model).") var set: String?
    @Option(help: "Every set of this model reference instead of one.") var model: String?
    @Option(help: "A tile predicts a class when its score is at least this.") var threshold: Double = 0.5
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      guard (set == nil) != (model == nil) else { throw ValidationError("give a set or --model, not both") }
      var request = FeedbackV1.StatsRequest()
      request.setId = set ?? ""
      request.model = model ?? ""
      request.threshold = threshold
      let response = try await withFeedback(mesh, command: "feedback stats") { try await $0.stats(request) }
      if json { return emitJSON(response) }
      emit("\(response.sets) sets, \(response.tiles) tiles, \(response.validatedTiles) validated")
      var table = TextTable("CLASS", "PREDICTED", "VALID", "INVALID", "UNVALIDATED", "PRECISION")
      for stats in response.classes {
        table.add(
          stats.className, "\(stats.predicted)", "\(stats.valid)", "\(stats.invalid)", "\(stats.unvalidated)",
          stats.valid + stats.invalid == 0 ? "-" : String(format: "%.3f", stats.precision))
      }
      emit(table.rendered)
      if !response.confusion.isEmpty {
        emit("\nconfusion (predicted → what reviewers said; - is nothing):")
        var confusion = TextTable("VERSION", "PREDICTED", "ACTUAL", "COUNT")
        for cell in response.confusion {
          confusion.add(
            "v\(cell.modelVersion)", cell.predicted.isEmpty ? "-" : cell.predicted,
            cell.actual.isEmpty ? "-" : cell.actual,
            "\(cell.count)")
        }
        emit(confusion.rendered)
      }
      if let agreement = response.agreement, agreement.items > 0 {
        emit(
          "\nagreement: \(agreement.items) items judged by several reviewers, \(agreement.unanimous) unanimous, "
            + String(format: "%.1f%% of pairs agree", agreement.pairwise * 100))
        var pairs = TextTable("REVIEWER", "REVIEWER", "ITEMS", "AGREED", "KAPPA")
        for pair in agreement.pairs {
          pairs.add(pair.first, pair.second, "\(pair.items)", "\(pair.agreed)", String(format: "%.3f", pair.kappa))
        }
        emit(pairs.rendered)
      }
    }
  }
}
