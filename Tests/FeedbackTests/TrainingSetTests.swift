import Feedback
import Foundation
import ShoalGeo
import ShoalImage
import ShoalImagery
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Testing
import Tracking

/// A labelled training set built from a segmentation set: images fetched from a real HTTP tile
/// server, masks drawn from the valid features, one blob recorded in a real tracking service,
/// and the tar read back by Python's tarfile and Pillow.
struct TrainingSetTests {
  static let readBack = #"""
    import hashlib, io, json, sys, tarfile
    from PIL import Image
    raw = open(sys.argv[1], "rb").read()
    archive = tarfile.open(fileobj=io.BytesIO(raw))
    lines = [json.loads(line) for line in archive.extractfile("manifest.jsonl").read().decode().splitlines()]
    out = {"sha256": hashlib.sha256(raw).hexdigest(), "tiles": [line["tile"] for line in lines],
           "labels": [line["labels"] for line in lines], "names": sorted(archive.getnames())}
    masks = []
    for line in lines:
        image = Image.open(archive.extractfile(line["image"]))
        assert image.size == (256, 256), image.size
        out.setdefault("first_pixel", list(image.convert("RGB").getpixel((0, 0))))
        mask = Image.open(archive.extractfile(line["mask"]))
        assert mask.mode == "L" and mask.size == (256, 256), (mask.mode, mask.size)
        values = list(mask.getdata())
        masks.append({str(v): values.count(v) for v in sorted(set(values))})
    out["masks"] = masks
    print("RESULT " + json.dumps(out))
    """#

  /// A 256 × 256 RGB tile whose colour tells its x.
  static func png(_ x: Int) throws -> Data {
    let pixels = [UInt8]((0..<(256 * 256)).flatMap { _ in [UInt8(x % 256), 100, 200] })
    return Data(try Image(width: 256, height: 256, channels: 3, pixels: pixels).pngBytes())
  }

  @Test(arguments: Backend.available)
  func builtFetchedLabelledStoredAndRecorded(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    let origin = try Tile(containing: 13.4, 52.5, zoom: 17)
    let tiles = try (0..<4).map { try Tile(z: 17, x: origin.x + $0, y: origin.y) }
    let images = try tiles.map { try Self.png($0.x) }
    let server = try await TestHTTPServer { request in
      guard let index = tiles.firstIndex(where: { "/\($0).png" == request.path }), index != 2 else {
        return .init(status: 503)
      }
      return .init(body: images[index])
    }
    defer { Task { await server.close() } }
    var policy = FetchPolicy()
    policy.backoff = .milliseconds(10)
    let directory = try TemporaryDirectory()

    // A real tracking service, with a run to record the set in.
    let trackingDatabase = try await Database.open(.sqlite(nil), service: "tracking", dataDirectory: directory.url.path)
    try await trackingDatabase.migrate(TrackingStore.migrations)
    var router = ServiceRouter()
    TrackingService(store: TrackingStore(database: trackingDatabase), blobs: try BlobStore(root: directory.path("t")))
      .register(in: &router)
    let trackingServer = RPCServer(router: router)
    let trackingRPC = RPCClient(
      address: try await trackingServer.bind(to: .unix(path: directory.path("tracking.sock"))))
    let tracking = TrackingV1.Tracking.Client(trackingRPC)
    var experiment = TrackingV1.CreateExperimentRequest()
    experiment.name = "roofs"
    var createRun = TrackingV1.CreateRunRequest()
    createRun.experimentId = try await tracking.createExperiment(experiment).experimentId
    let run = try await tracking.createRun(createRun)

    try await withFeedback(backend, fetcher: TileFetcher(policy: policy), tracking: tracking) { client, _ in
      _ = try await client.addImagery(ImageryServiceTests.addRequest("\(server.base)/{z}/{x}/{y}.png"))
      var create = FeedbackV1.CreateSetRequest()
      create.model = "roofs@production"
      create.modelVersion = 2
      create.task = .segmentation
      create.zoom = 17
      create.imagery = "aerial"
      create.classes = classLabels("roof", "pool")
      let set = try await client.createSet(create)
      // Tile 0: a 64 × 64 roof; tile 1: a 32 × 32 pool; tile 2's image fails; tile 3 is unreviewed.
      func feature(_ tile: Tile, _ side: Double, _ className: String) -> FeedbackV1.Feature {
        var feature = FeedbackV1.Feature()
        feature.geometry = ExportFormatTests.square(tile, 10, 10, side)
        feature.className = className
        feature.score = 0.9
        return feature
      }
      _ = try await client.putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set.setId
        request.requestId = "0"
        request.tiles = [(0, 64, "roof"), (1, 32, "pool"), (2, 16, "roof"), (3, 16, "roof")].map { index, side, name in
          var predicted = FeedbackV1.PredictedTile()
          (predicted.z, predicted.x, predicted.y) = (17, Int64(tiles[index].x), Int64(tiles[index].y))
          predicted.features = [feature(tiles[index], side, name)]
          return predicted
        }
        try await sender.send(request)
      }
      var tag = FeedbackV1.SetValidityRequest()
      tag.setId = set.setId
      tag.changes = [(0, "roof"), (1, "pool"), (2, "roof")].map { index, name in
        var change = FeedbackV1.ValidityChange()
        change.target = .tileId(tiles[index].description)
        change.className = name
        change.validity = .valid
        return change
      }
      _ = try await client.setValidity(tag)

      var build = FeedbackV1.BuildTrainingSetRequest()
      build.setId = set.setId
      build.runId = "no-such-run"
      await expectCode(.notFound, "no-such-run") { _ = try await Self.build(client, build) }
      build.runId = run.runId
      let progress = try await Self.build(client, build)
      let built = try #require(progress.last?.trainingSet)
      #expect(built.tiles == 2 && built.skipped == 1 && built.classes == ["roof", "pool"])
      let failed = progress.filter { $0.failure != nil }
      #expect(failed.map(\.tileId) == [tiles[2].description])
      #expect(failed.first?.failure?.status == 503 && failed.first?.failure?.url == "\(server.base)/\(tiles[2]).png")
      #expect(progress.dropLast().map(\.done) == [1, 2, 3])

      // Recorded in the run as a training input with the blob's digest.
      var getRun = TrackingV1.GetRunRequest()
      getRun.runId = run.runId
      let input = try #require(try await tracking.getRun(getRun).inputs.first)
      #expect("blob:sha256:\(input.digest)" == built.digest && input.context == "training")
      #expect(input.name == "feedback-set-\(set.setId)")

      var list = FeedbackV1.ListTrainingSetsRequest()
      list.setId = set.setId
      #expect(try await client.listTrainingSets(list).trainingSets.map(\.digest) == [built.digest])

      var download = FeedbackV1.DownloadTrainingSetRequest()
      download.trainingSetId = built.trainingSetId
      let tar = try await client.downloadTrainingSet(download) { chunks in
        var bytes: [UInt8] = []
        for try await chunk in chunks { bytes += chunk.data }
        return bytes
      }
      #expect(Int64(tar.count) == built.sizeBytes)
      try Data(tar).write(to: URL(fileURLWithPath: directory.path("set.tar")))
      let read = try await Subprocess.run(
        try TestEnvironment.python(), ["-c", Self.readBack, directory.path("set.tar")])
      #expect(read.status == 0, "\(read.stderrText)")
      let line = try #require(read.stdoutText.split(separator: "\n").first { $0.hasPrefix("RESULT ") })
      let out = try #require(try JSONSerialization.jsonObject(with: Data(line.dropFirst(7).utf8)) as? [String: Any])
      #expect("blob:sha256:\(out["sha256"] as? String ?? "")" == built.digest)
      #expect(out["tiles"] as? [String] == [tiles[0].description, tiles[1].description])
      #expect(out["labels"] as? [[String: Int]] == [["roof": 1, "pool": 0], ["roof": 0, "pool": 1]])
      #expect(out["first_pixel"] as? [Int] == [tiles[0].x % 256, 100, 200])
      // Masks: class 1 (roof) on 64 × 64 pixels of tile 0, class 2 (pool) on 32 × 32 of tile 1.
      #expect(
        out["masks"] as? [[String: Int]] == [
          ["0": 256 * 256 - 64 * 64, "1": 64 * 64], ["0": 256 * 256 - 32 * 32, "2": 32 * 32],
        ], "\(out)")

      // Without imagery there is nothing to fetch.
      create.imagery = ""
      build.setId = try await client.createSet(create).setId
      build.runId = ""
      await expectCode(.failedPrecondition, "names no imagery source") { _ = try await Self.build(client, build) }
    }
    await trackingRPC.close()
    await trackingServer.shutdown()
  }

  static func build(
    _ client: FeedbackClient, _ request: FeedbackV1.BuildTrainingSetRequest
  ) async throws -> [FeedbackV1.TrainingSetProgress] {
    try await client.buildTrainingSet(request) { responses in
      var all: [FeedbackV1.TrainingSetProgress] = []
      for try await progress in responses { all.append(progress) }
      return all
    }
  }
}
