import Feedback
import Foundation
import ShoalGeo
import ShoalImagery
import ShoalProto
import ShoalRPC
import ShoalStore
import ShoalTestSupport
import Testing

/// Imagery sources and areas of interest through the feedback service, with tiles fetched from a
/// real HTTP server, on SQLite and PostgreSQL.
struct ImageryServiceTests {
  static let secret = "Bearer sk-imagery-secret"

  static func addRequest(_ template: String, name: String = "aerial") -> FeedbackV1.AddImageryRequest {
    var source = FeedbackV1.ImagerySource()
    source.name = name
    source.urlTemplate = template
    source.attribution = "© test"
    source.maxZoom = 19
    var request = FeedbackV1.AddImageryRequest()
    request.source = source
    request.headers = ["Authorization": secret]
    return request
  }

  static let square = """
    {"type": "Polygon", "coordinates": [[[13.40, 52.50], [13.41, 52.50], [13.41, 52.505], [13.40, 52.505], [13.40, 52.50]]]}
    """

  @Test(arguments: Backend.available)
  func sourcesAreCheckedStoredAndNeverShowTheirKeys(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, _ in
      await expectCode(.invalidArgument, "names no tile") {
        _ = try await client.addImagery(Self.addRequest("https://tiles.example/{x}/{y}.png"))
      }
      await expectCode(.invalidArgument, "unknown placeholder {zoom}") {
        _ = try await client.addImagery(Self.addRequest("https://tiles.example/{zoom}/{x}/{y}.png"))
      }
      await expectCode(.invalidArgument, "give the subdomains") {
        _ = try await client.addImagery(Self.addRequest("https://{s}.tiles.example/{z}/{x}/{y}.png"))
      }
      var spread = Self.addRequest("https://{s}.tiles.example/{z}/{x}/{y}.png")
      spread.source!.subdomains = ["a", "b"]
      let added = try await client.addImagery(spread)
      #expect(added.headerNames == ["Authorization"])
      #expect(added.tileSize == 256 && added.maxZoom == 19 && added.organization == "local")
      await expectCode(.alreadyExists, "imagery source 'aerial' already exists") {
        _ = try await client.addImagery(spread)
      }
      var replacing = Self.addRequest("https://tiles.example/{quadkey}.jpeg")
      replacing.replace = true
      _ = try await client.addImagery(replacing)

      var get = FeedbackV1.GetImageryRequest()
      get.name = "aerial"
      let got = try await client.getImagery(get)
      #expect(got.urlTemplate == "https://tiles.example/{quadkey}.jpeg")
      let listed = try await client.listImagery(FeedbackV1.ListImageryRequest())
      #expect(listed.sources.map(\.name) == ["aerial"])
      // The key is in no answer, in any form.
      for bytes in [try got.serializedBytes(), try listed.serializedBytes()] {
        #expect(!String(decoding: bytes, as: UTF8.self).contains("sk-imagery-secret"))
      }
      #expect(!got.jsonString().contains("sk-imagery-secret"))

      var remove = FeedbackV1.RemoveImageryRequest()
      remove.name = "aerial"
      _ = try await client.removeImagery(remove)
      await expectCode(.notFound, "imagery source 'aerial' not found") { _ = try await client.getImagery(get) }
    }
  }

  @Test(arguments: Backend.available)
  func areasAreCheckedAndStored(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, _ in
      var area = FeedbackV1.AddAreaRequest()
      area.name = "kreuzberg"
      area.description = "a test area"
      for (geojson, fragment) in [
        (#"{"type": "Polygon", "coordinates": [[[13.4, 52.5], [13.41, 52.5], [13.41, 52.51]]]}"#, "ring"),
        (#"{"type": "Polygon", "coordinates": [[[13.4, 95], [13.41, 52.5], [13.41, 52.51], [13.4, 95]]]}"#, "latitude"),
        (
          #"{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}"#,
          "Self-intersection"
        ),
        (#"{"type": "Point", "coordinates": [13.4, 52.5]}"#, "no Polygon"),
        ("{", "geojson"),
      ] {
        area.geojson = geojson
        await expectCode(.invalidArgument, fragment) { _ = try await client.addArea(area) }
      }
      area.geojson = Self.square
      let added = try await client.addArea(area)
      #expect(added.bbox?.west == 13.40 && added.bbox?.north == 52.505)
      await expectCode(.alreadyExists, "area 'kreuzberg' already exists") { _ = try await client.addArea(area) }
      let listed = try await client.listAreas(FeedbackV1.ListAreasRequest())
      #expect(listed.areas.map(\.name) == ["kreuzberg"])
      #expect(listed.areas.first?.description == "a test area")
    }
  }

  static func fetch(
    _ client: FeedbackClient, _ request: FeedbackV1.FetchTilesRequest
  ) async throws
    -> [FeedbackV1.FetchedTile]
  {
    try await client.fetchTiles(request) { responses in
      var answers: [FeedbackV1.FetchedTile] = []
      for try await answer in responses { answers.append(answer) }
      return answers
    }
  }

  @Test(arguments: Backend.available)
  func fetchTilesReportsEachTileAndUsesTheCache(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    let bad = try Tile(containing: 13.405, 52.502, zoom: 16)
    let server = try await TestHTTPServer { request in
      // One tile always fails; the others are images.
      request.path == "/\(bad).png"
        ? .init(status: 502) : .init(body: pngLike(request.path))
    }
    defer { Task { await server.close() } }
    let directory = try TemporaryDirectory()
    var policy = FetchPolicy()
    policy.backoff = .milliseconds(10)
    let fetcher = TileFetcher(policy: policy, cache: try TileCache(root: directory.path("cache"), limit: 1 << 20))
    try await withFeedback(backend, fetcher: fetcher) { client, _ in
      _ = try await client.addImagery(Self.addRequest("\(server.base)/{z}/{x}/{y}.png"))
      var area = FeedbackV1.AddAreaRequest()
      area.name = "square"
      area.geojson = Self.square
      _ = try await client.addArea(area)

      var request = FeedbackV1.FetchTilesRequest()
      request.imagery = "aerial"
      request.zoom = 16
      request.area = .areaName("square")
      request.withData = true
      let answers = try await Self.fetch(client, request)
      let total = Int(answers.first?.total ?? 0)
      #expect(total > 2 && answers.count == total)
      #expect(answers.map(\.done).sorted() == (1...Int64(total)).map { $0 })
      let failed = answers.filter { $0.failure != nil }
      #expect(failed.map(\.tileId) == [bad.description])
      #expect(failed.first?.failure?.status == 502)
      #expect(failed.first?.failure?.url == "\(server.base)/\(bad).png")
      #expect(failed.first?.attempts == 4)
      for answer in answers where answer.failure == nil {
        #expect(Data(answer.data) == pngLike("/\(answer.tileId).png") && answer.format == "png")
      }
      #expect(server.requests.allSatisfy { $0.headers["authorization"] == Self.secret })

      // Again, without the images: the good tiles come from the cache; the bad one is asked again.
      let before = server.requests.count
      request.withData = false
      let again = try await Self.fetch(client, request)
      #expect(again.filter(\.fromCache).count == total - 1)
      #expect(again.allSatisfy { $0.data.isEmpty })
      #expect(server.requests.count == before + 4)

      request.zoom = 25
      await expectCode(.invalidArgument, "zoom 25 is outside 0–24") {
        _ = try await Self.fetch(client, request)
      }
      request.zoom = 16
      request.area = .areaName("nowhere")
      await expectCode(.notFound, "area 'nowhere' not found") { _ = try await Self.fetch(client, request) }
      request.area = nil
      request.tiles = ["20/1/1"]
      await expectCode(.invalidArgument, "'aerial' has zooms 0–19") {
        _ = try await Self.fetch(client, request)
      }
    }
  }

  /// The mesh's services on this host get a source's headers (to fetch for jobs); over TCP nobody
  /// does, whatever their token.
  @Test func onlyTheUnixSocketSeesTheHeaders() async throws {
    try await Backend.sqlite.withDatabase { database, directory in
      try await database.migrate(FeedbackStore.migrations)
      var router = ServiceRouter()
      FeedbackService(store: FeedbackStore(database: database)).register(in: &router)
      let server = RPCServer(router: router)
      let unix = RPCClient(address: try await server.bind(to: .unix(path: directory.path("feedback.sock"))))
      let tcp = RPCClient(address: try await server.bind(to: .tcp(host: "127.0.0.1", port: 0)))
      defer {
        Task {
          await unix.close()
          await tcp.close()
          await server.shutdown()
        }
      }
      _ = try await FeedbackClient(unix).addImagery(Self.addRequest("https://tiles.example/{z}/{x}/{y}.png"))
      var request = FeedbackV1.GetImageryRequest()
      request.name = "aerial"
      let revealed = try await FeedbackClient(unix).revealImagery(request)
      #expect(revealed.headers == ["Authorization": Self.secret] && revealed.source?.name == "aerial")
      await expectCode(.permissionDenied, "not over TCP") { _ = try await FeedbackClient(tcp).revealImagery(request) }
    }
  }
}
