import ArgumentParser
import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC

/// `shoal imagery …`: named imagery sources, and fetching their tiles through the feedback service.
struct ImageryCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "imagery", abstract: "Imagery sources: tile URL templates with their keys, and their tiles.",
    subcommands: [Add.self, List.self, Show.self, Remove.self, Fetch.self])

  struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Add a source: a tile URL template with {z}/{x}/{y} ({-y} for TMS), {quadkey} or {s}.",
      discussion: """
        A template is http(s)://…, or file:///a/directory/{z}/{x}/{y}.png for tiles on disk. Headers \
        (keys) are stored with the source and sent with every request; they are never shown again. \
        Prefer --header-env, which reads the value from the environment, to keep keys out of shell history.
        """)
    @Argument(help: "The source's name.") var name: String
    @Argument(help: "The URL template.") var template: String
    @Option(help: "What {s} takes, joined by commas (e.g. a,b,c).") var subdomains: String?
    @Option(help: "Tile width and height in pixels.") var tileSize: Int32 = 256
    @Option(help: "The lowest zoom the source has.") var minZoom: Int32 = 0
    @Option(help: "The highest zoom the source has.") var maxZoom: Int32 = 22
    @Option(help: "png, jpeg, webp or tiff (default: whatever the server sends).") var format = ""
    @Option(help: "The imagery's attribution.") var attribution = ""
    @Option(name: .customLong("header"), help: "A request header 'Name: value' (repeatable).") var headers: [String] =
      []
    @Option(
      name: .customLong("header-env"),
      help: "A request header Name=VARIABLE, its value from the environment (repeatable).")
    var headersFromEnvironment: [String] = []
    @Flag(help: "Replace a source of the same name.") var replace = false
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var source = FeedbackV1.ImagerySource()
      source.name = name
      source.urlTemplate = template
      source.subdomains = subdomains.map { $0.split(separator: ",").map(String.init) } ?? []
      source.tileSize = tileSize
      source.minZoom = minZoom
      source.maxZoom = maxZoom
      source.format = format
      source.attribution = attribution
      var request = FeedbackV1.AddImageryRequest()
      request.source = source
      request.replace = replace
      for text in headers {
        let parts = text.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--header takes 'Name: value'") }
        request.headers[parts[0]] = parts[1]
      }
      for text in headersFromEnvironment {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("--header-env takes Name=VARIABLE") }
        guard let value = ProcessInfo.processInfo.environment[parts[1]] else {
          throw ValidationError("--header-env \(text): the environment has no \(parts[1])")
        }
        request.headers[parts[0]] = value
      }
      let added = try await withFeedback(mesh, command: "imagery add") { try await $0.addImagery(request) }
      if json { return emitJSON(added) }
      emit(
        "added imagery source \(added.name)\(added.headerNames.isEmpty ? "" : " (with \(added.headerNames.joined(separator: ", ")))")"
      )
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the imagery sources.")
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      let response = try await withFeedback(mesh, command: "imagery list") {
        try await $0.listImagery(FeedbackV1.ListImageryRequest())
      }
      if json { return emitJSON(response) }
      var table = TextTable("NAME", "TEMPLATE", "TILE", "ZOOMS", "FORMAT", "HEADERS", "CREATED")
      for source in response.sources {
        table.add(
          source.name, source.urlTemplate, "\(source.tileSize)", "\(source.minZoom)–\(source.maxZoom)",
          source.format.isEmpty ? "-" : source.format,
          source.headerNames.isEmpty ? "-" : source.headerNames.joined(separator: ","), formatTime(source.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a source (its headers by name only).")
    @Argument(help: "The source's name.") var name: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.GetImageryRequest()
      request.name = name
      let source = try await withFeedback(mesh, command: "imagery show") { try await $0.getImagery(request) }
      if json { return emitJSON(source) }
      emit(
        """
        name:        \(source.name)
        template:    \(source.urlTemplate)\(source.subdomains.isEmpty ? "" : " ({s}: \(source.subdomains.joined(separator: ",")))")
        tile size:   \(source.tileSize)
        zooms:       \(source.minZoom)–\(source.maxZoom)
        format:      \(source.format.isEmpty ? "as served" : source.format)
        attribution: \(source.attribution.isEmpty ? "-" : source.attribution)
        headers:     \(source.headerNames.isEmpty ? "-" : source.headerNames.joined(separator: ", ") + " (values hidden)")
        created:     \(formatTime(source.createdAtMs)) by \(source.createdBy)
        """)
    }
  }

  struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a source.")
    @Argument(help: "The source's name.") var name: String
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = FeedbackV1.RemoveImageryRequest()
      request.name = name
      _ = try await withFeedback(mesh, command: "imagery remove") { try await $0.removeImagery(request) }
      emit("removed imagery source \(name)")
    }
  }

  struct Fetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Fetch a source's tiles (listed, or an area's at a zoom) through the service's cache.",
      discussion: """
        Each tile that fails is reported with its HTTP status and URL, and the others go on; the \
        command exits 1 when any failed. With --out, tiles are written as DIR/Z/X/Y.FORMAT.
        """)
    @Argument(help: "The source's name.") var name: String
    @Argument(help: "Tiles as Z/X/Y or quadkeys.") var tiles: [String] = []
    @Option(help: "The zoom of an area's tiles.") var zoom: Int32?
    @Option(help: "An area: west,south,east,north.") var bbox: String?
    @Option(help: "An area: a GeoJSON file of polygons.") var geojson: String?
    @Option(help: "An area: a saved area of interest (shoal aoi add).") var aoi: String?
    @Option(help: "Write the tiles under this directory.") var out: String?
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print one JSON object per tile.") var json = false

    func run() async throws {
      var request = FeedbackV1.FetchTilesRequest()
      request.imagery = name
      request.tiles = tiles
      request.withData = out != nil
      let areas = [bbox != nil, geojson != nil, aoi != nil].filter { $0 }.count
      guard tiles.isEmpty ? areas == 1 : areas == 0 else {
        throw ValidationError("give tiles, or one of --bbox, --geojson and --aoi")
      }
      if tiles.isEmpty {
        guard let zoom else { throw ValidationError("--zoom: give the zoom of the area's tiles") }
        request.zoom = zoom
      }
      if let bbox {
        request.area = .bbox(try boundingBoxOption(bbox))
      }
      if let geojson {
        request.area = .geojson(try textFile(geojson))
      }
      if let aoi { request.area = .areaName(aoi) }
      let out = out
      let json = json
      let summary = try await withFeedback(mesh, command: "imagery fetch") { client in
        try await client.fetchTiles(request) { answers in
          var progress: ProgressLine?
          var fetched = 0
          var cached = 0
          var failed = 0
          for try await answer in answers {
            if progress == nil {
              progress = ProgressLine(label: "fetching \(name)", total: Int(answer.total), unit: "tiles")
            }
            if let failure = answer.failure {
              failed += 1
              if !json {
                let status = failure.status == 0 ? "" : "HTTP \(failure.status) "
                logLine("shoal imagery fetch", "\(answer.tileId): \(status)\(failure.url): \(failure.message)")
              }
            } else {
              fetched += 1
              if answer.fromCache { cached += 1 }
              if let out {
                let path = "\(out)/\(answer.tileId).\(answer.format)"
                try FileManager.default.createDirectory(
                  atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(answer.data).write(to: URL(fileURLWithPath: path), options: .atomic)
              }
            }
            if json {
              var shown = answer
              shown.data = []
              emit(shown.jsonString())
            }
            progress?.update(Int(answer.done))
          }
          progress?.finish()
          return (fetched, cached, failed)
        }
      }
      logLine(
        "shoal imagery fetch",
        "\(summary.0) tiles fetched (\(summary.1) from the cache), \(summary.2) failed"
          + (out.map { ", written under \($0)" } ?? ""))
      if summary.2 > 0 { throw ExitCode(1) }
    }
  }
}

/// `shoal aoi …`: named areas of interest.
struct AreaCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "aoi", abstract: "Areas of interest: named GeoJSON polygons for jobs, queries and fetches.",
    subcommands: [Add.self, List.self, Show.self])

  struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add an area from a GeoJSON file of polygons.")
    @Argument(help: "The area's name.") var name: String
    @Option(help: "The GeoJSON file (a Polygon, MultiPolygon, Feature or FeatureCollection).") var geojson: String
    @Option(help: "What the area is.") var description = ""
    @Flag(help: "Replace an area of the same name.") var replace = false
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.AddAreaRequest()
      request.name = name
      request.geojson = try textFile(geojson)
      request.description = description
      request.replace = replace
      let area = try await withFeedback(mesh, command: "aoi add") { try await $0.addArea(request) }
      if json { return emitJSON(area) }
      emit("added area \(area.name) \(Self.bounds(area))")
    }

    static func bounds(_ area: FeedbackV1.Area) -> String {
      guard let box = area.bbox else { return "" }
      return "(\(box.west),\(box.south),\(box.east),\(box.north))"
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the areas.")
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      let response = try await withFeedback(mesh, command: "aoi list") {
        try await $0.listAreas(FeedbackV1.ListAreasRequest())
      }
      if json { return emitJSON(response) }
      var table = TextTable("NAME", "BBOX", "DESCRIPTION", "CREATED BY", "CREATED")
      for area in response.areas {
        table.add(area.name, Add.bounds(area), area.description, area.createdBy, formatTime(area.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print an area's GeoJSON.")
    @Argument(help: "The area's name.") var name: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print the whole record as JSON.") var json = false

    func run() async throws {
      var request = FeedbackV1.GetAreaRequest()
      request.name = name
      let area = try await withFeedback(mesh, command: "aoi show") { try await $0.getArea(request) }
      if json { return emitJSON(area) }
      emit(area.geojson)
    }
  }
}
