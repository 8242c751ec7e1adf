import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// The feedback service under `shoal up` and its CLI, as real processes: a set made with the CLI,
/// predictions put through the SDK, then tiles queried, tagged, counted and traced back; over TCP a
/// token of another organisation sees nothing.
struct FeedbackEndToEndTests {
  private static let mesh = """
    { "services": [
      { "name": "registry", "listen": ["unix:registry.sock", "tcp://127.0.0.1:0"] },
      { "name": "feedback", "listen": ["unix:feedback.sock", "tcp://127.0.0.1:0"] } ] }
    """

  /// Reads an export back with shapely and the csv module: every geometry valid and right-handed
  /// (exterior counter-clockwise), validity and colours in the properties.
  static let readExports = #"""
    import csv, json, sys
    import numpy as np
    from shapely.geometry import shape
    collection = json.load(open(sys.argv[1]))
    out = []
    for feature in collection["features"]:
        geometry = shape(feature["geometry"])
        assert geometry.is_valid, feature
        assert geometry.exterior.is_ccw, feature
        assert feature["geometry"]["bbox"], feature
        out.append([feature["properties"]["tile"], feature["properties"]["validity"]["road"], feature["properties"]["color"]])
    rows = list(csv.DictReader(open(sys.argv[2])))
    labels = np.load(sys.argv[3])
    npz = sorted([key] + [str(v) for v in labels[key].tolist()] for key in labels.files)
    print(json.dumps({"geojson": sorted(out), "csv": sorted([r["quadkey"], r["road_validity"], r["road"]] for r in rows),
                      "npz": npz}))
    """#

  @Test func createPutQueryTagAndCount() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "registered feedback", count: 2)
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    do {
      let created = try await run(
        "feedback", "create", "roads@production", "--zoom", "16", "--class", "road:#ff8800", "--class", "building",
        "--json")
      #expect(created.status == 0, "\(created.stderrText)")
      let set = try FeedbackV1.PredictionSet(jsonString: created.stdoutText)
      #expect(set.classes.map(\.name) == ["road", "building"] && set.colors?.unvalidated == "#ff0000")

      // Four tiles of a 2 × 2 block at zoom 16 near Berlin's centre.
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:feedback.sock", relativeTo: data.url.path))
      let client = FeedbackV1.Feedback.Client(rpc)
      let stored = try await client.putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set.setId
        request.requestId = "job-1/0"
        request.tiles = [(35205, 21494, 0.9), (35206, 21494, 0.8), (35205, 21495, 0.3), (35206, 21495, 0.7)].map {
          x, y, score in
          var tile = FeedbackV1.PredictedTile()
          (tile.z, tile.x, tile.y) = (16, Int64(x), Int64(y))
          tile.scores = ["road": score, "building": 1 - score]
          return tile
        }
        try await sender.send(request)
        try await sender.send(request)
      }
      await rpc.close()
      #expect(stored.tilesStored == 4 && stored.batchesRepeated == 1)

      let tiles = try await run("feedback", "tiles", set.setId, "--bbox", "13.39,52.51,13.41,52.53", "--class", "road")
      #expect(
        tiles.status == 0 && tiles.stdoutText.contains("16/35205/21494"), "\(tiles.stdoutText)\(tiles.stderrText)")
      #expect(tiles.stdoutText.split(separator: "\n").count == 5)
      let tagged = try await run(
        "feedback", "tag", set.setId, "valid", "--class", "road", "16/35205/21494", "16/35206/21494")
      #expect(tagged.stdoutText.contains("2 marked valid"), "\(tagged.stderrText)")
      let wrong = try await run("feedback", "tag", set.setId, "invalid", "--class", "road", "16/35206/21495", "16/1/1")
      #expect(wrong.status == 1 && wrong.stderrText.contains("NOT_FOUND") && wrong.stderrText.contains("16/1/1"))
      _ = try await run("feedback", "tag", set.setId, "invalid", "--class", "road", "16/35206/21495")
      let stats = try await run("feedback", "stats", set.setId, "--json")
      let counted = try FeedbackV1.StatsResponse(jsonString: stats.stdoutText)
      let road = try #require(counted.classes.first { $0.className == "road" })
      #expect(road.predicted == 3 && road.valid == 2 && road.invalid == 1 && abs(road.precision - 2.0 / 3) < 1e-9)
      let valid = try await run("feedback", "tiles", set.setId, "--status", "valid", "--json")
      let validTiles = try FeedbackV1.QueryTilesResponse(jsonString: valid.stdoutText).tiles
      #expect(validTiles.count == 2 && validTiles.allSatisfy { $0.color == "#00ff00" })
      let history = try await run("feedback", "history", set.setId, "16/35206/21495")
      #expect(history.stdoutText.contains("unvalidated") && history.stdoutText.contains("local@local"))
      #expect(try await run("feedback", "sets").stdoutText.contains("roads@production"))

      // The terminal review: the one tile nobody validated, both classes answered, then quit.
      let review = try await Subprocess.run(
        shoal, ["feedback", "review", set.setId, "--data", data.url.path], stdin: Array("v\ni\nq\n".utf8))
      #expect(review.status == 0, "\(review.stderrText)")
      #expect(
        review.stdoutText.contains("16/35205/21495") && review.stdoutText.contains("reviewed 1 tiles"),
        "\(review.stdoutText)")
      // Exports of the validated tiles, read back by shapely and csv.
      let geojson = try await run("feedback", "export", set.setId, "--out", data.path("set.geojson"))
      #expect(geojson.status == 0, "\(geojson.stderrText)")
      let csv = try await run("feedback", "export", set.setId, "--format", "csv", "--out", data.path("set.csv"))
      #expect(csv.status == 0, "\(csv.stderrText)")
      let npz = try await run("feedback", "export", set.setId, "--format", "npz", "--out", data.path("labels.npz"))
      #expect(npz.status == 0, "\(npz.stderrText)")
      let read = try await Subprocess.run(
        try TestEnvironment.python(),
        ["-c", Self.readExports, data.path("set.geojson"), data.path("set.csv"), data.path("labels.npz")])
      #expect(read.status == 0, "\(read.stderrText)")
      let exported = try JSONSerialization.jsonObject(with: Data(read.stdoutText.utf8)) as? [String: [[String]]]
      #expect(
        exported?["geojson"] == [
          ["16/35205/21494", "valid", "#00ff00"], ["16/35205/21495", "valid", "#00ff00"],
          ["16/35206/21494", "valid", "#00ff00"], ["16/35206/21495", "invalid", "#ffffff"],
        ], "\(read.stdoutText)")
      #expect(exported?["csv"]?.count == 4)
      // ML Enabler's labels: x-y-z keys, road then building, 1 where marked valid.
      #expect(
        exported?["npz"] == [
          ["35205-21494-16", "1", "0"], ["35205-21495-16", "1", "0"], ["35206-21494-16", "1", "0"],
          ["35206-21495-16", "0", "0"],
        ], "\(read.stdoutText)")
      // Nothing to export says so, and writes no file.
      _ = try await run("feedback", "tag", set.setId, "clear", "--class", "road", "16/35206/21495")
      // (The review above marked one tile's building invalid: the road class alone has none now.)
      let none = try await run(
        "feedback", "export", set.setId, "--filter", "invalid", "--class", "road", "--out", data.path("none.geojson"))
      #expect(none.status == 1 && none.stderrText.contains("nothing to export"), "\(none.stderrText)")
      #expect(!FileManager.default.fileExists(atPath: data.path("none.geojson")))
      let reviewed = try await run("feedback", "history", set.setId, "16/35205/21495")
      #expect(
        reviewed.stdoutText.contains("road") && reviewed.stdoutText.contains("building"), "\(reviewed.stdoutText)")

      // Over TCP, a token of another organisation sees no set.
      let outsider = try await outsiderClient(service: "feedback", shoal: shoal, data: data)
      var get = FeedbackV1.GetSetRequest()
      get.setId = set.setId
      do {
        _ = try await FeedbackV1.Feedback.Client(outsider).getSet(get)
        Issue.record("another organisation's token saw the set")
      } catch {
        #expect(error.code == .notFound, "\(error)")
      }
      #expect(try await FeedbackV1.Feedback.Client(outsider).listSets(FeedbackV1.ListSetsRequest()).sets.isEmpty)
      await outsider.close()
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop() == 0)
  }

  /// Imagery and areas from the CLI against a real HTTP tile server: a source with a key added,
  /// listed and shown without the key, an area saved, and its tiles fetched to a directory with a
  /// failing tile reported (status and URL) while the rest are written.
  @Test func imageryAndAreasFromTheCLI() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let mesh = """
      { "services": [
        { "name": "registry", "listen": ["unix:registry.sock"] }, { "name": "tracking", "listen": ["unix:tracking.sock"] },
        { "name": "feedback", "listen": ["unix:feedback.sock"] } ] }
      """
    try Data(mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let bad = "/17/70410/42988.png"
    let server = try await TestHTTPServer { request in
      request.path.hasPrefix(bad) ? .init(status: 503) : .init(body: pngLike(request.path))
    }
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "registered feedback")
    _ = try await up.waitForLines(containing: "registered tracking")
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(
        shoal, arguments + ["--data", data.url.path], environment: ["TILE_KEY": "Bearer sk-cli-secret"])
    }
    do {
      let refused = try await run("imagery", "add", "broken", "https://tiles.example/{x}/{y}.png")
      #expect(refused.status == 1 && refused.stderrText.contains("INVALID_ARGUMENT"), "\(refused.stderrText)")
      let added = try await run(
        "imagery", "add", "aerial", "\(server.base)/{z}/{x}/{y}.png", "--max-zoom", "19", "--attribution", "© test",
        "--header-env", "Authorization=TILE_KEY")
      #expect(added.status == 0 && added.stdoutText.contains("with Authorization"), "\(added.stderrText)")
      let shown = try await run("imagery", "show", "aerial")
      #expect(shown.stdoutText.contains("Authorization (values hidden)"), "\(shown.stdoutText)")
      let listed = try await run("imagery", "list", "--json")
      #expect(try FeedbackV1.ListImageryResponse(jsonString: listed.stdoutText).sources.map(\.name) == ["aerial"])

      let square = """
        {"type": "Polygon", "coordinates": [[[13.386, 52.512], [13.392, 52.512], [13.392, 52.515], [13.386, 52.515], [13.386, 52.512]]]}
        """
      try Data(square.utf8).write(to: data.url.appendingPathComponent("square.geojson"))
      let area = try await run("aoi", "add", "mitte", "--geojson", data.path("square.geojson"))
      #expect(area.status == 0, "\(area.stderrText)")
      #expect(try await run("aoi", "list").stdoutText.contains("mitte"))

      let cover = try await Subprocess.run(
        shoal, ["geo", "cover", "--zoom", "17", "--geojson", data.path("square.geojson")])
      let expected = Set(cover.stdoutText.split(separator: "\n").map(String.init))
      #expect(expected.contains(String(bad.dropFirst().dropLast(4))), "\(cover.stdoutText)")
      let fetched = try await run(
        "imagery", "fetch", "aerial", "--aoi", "mitte", "--zoom", "17", "--out", data.path("tiles"))
      #expect(fetched.status == 1, "\(fetched.stderrText)")
      #expect(
        fetched.stderrText.contains("17/70410/42988: HTTP 503 \(server.base)\(bad)"), "\(fetched.stderrText)")
      #expect(fetched.stderrText.contains("\(expected.count - 1) tiles fetched (0 from the cache), 1 failed"))
      for tile in expected where "/\(tile).png" != bad {
        #expect(FileManager.default.contents(atPath: data.path("tiles/\(tile).png")) == pngLike("/\(tile).png"))
      }
      #expect(server.requests.allSatisfy { $0.headers["authorization"] == "Bearer sk-cli-secret" })

      // A training set of two validated tiles (one of them the failing one), recorded in a run.
      let created = try await run(
        "feedback", "create", "roads@production", "--zoom", "17", "--class", "road", "--imagery", "aerial", "--json")
      let set = try FeedbackV1.PredictionSet(jsonString: created.stdoutText)
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:feedback.sock", relativeTo: data.url.path))
      _ = try await FeedbackV1.Feedback.Client(rpc).putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set.setId
        request.requestId = "0"
        request.tiles = ["17/70409/42988", "17/70410/42988"].map { id in
          var tile = FeedbackV1.PredictedTile()
          let parts = id.split(separator: "/").map { Int64($0)! }
          (tile.z, tile.x, tile.y) = (Int32(parts[0]), parts[1], parts[2])
          tile.scores = ["road": 0.8]
          return tile
        }
        try await sender.send(request)
      }
      await rpc.close()
      _ = try await run("feedback", "tag", set.setId, "valid", "--class", "road", "17/70409/42988", "17/70410/42988")
      _ = try await run("experiments", "create", "roads")
      let runID = try await run("runs", "create", "--experiment", "roads").stdoutText
        .trimmingCharacters(in: .whitespacesAndNewlines)
      let trained = try await run(
        "feedback", "export", set.setId, "--format", "training-set", "--run", runID, "--out", data.path("set.tar"))
      #expect(trained.status == 0, "\(trained.stderrText)")
      #expect(trained.stdoutText.contains("1 tiles, 1 left out") && trained.stdoutText.contains("recorded in run"))
      #expect(trained.stderrText.contains("17/70410/42988 left out: HTTP 503"), "\(trained.stderrText)")
      let listedSets = try await run("feedback", "training-sets", set.setId, "--json")
      let trainingSet = try #require(
        try FeedbackV1.ListTrainingSetsResponse(jsonString: listedSets.stdoutText).trainingSets.first)
      let tar = try #require(FileManager.default.contents(atPath: data.path("set.tar")))
      #expect(Int64(tar.count) == trainingSet.sizeBytes)
      let shownRun = try await run("runs", "show", runID, "--json")
      let input = try #require(try TrackingV1.Run(jsonString: shownRun.stdoutText).inputs.first)
      #expect("blob:sha256:\(input.digest)" == trainingSet.digest && input.context == "training")

      // The key is in no output of the commands or the services.
      for text in [added.stdoutText, shown.stdoutText, listed.stdoutText, fetched.stderrText, up.text] {
        #expect(!text.contains("sk-cli-secret"))
      }
    } catch {
      _ = try? await up.stop()
      await server.close()
      throw error
    }
    #expect(try await up.stop() == 0)
    await server.close()
  }
}
