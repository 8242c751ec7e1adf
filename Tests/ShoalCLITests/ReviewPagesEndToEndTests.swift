import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// The review pages in a real browser (Debian's chromium through chromium-driver, driven by
/// selenium) under `shoal up`: a map review of a classification set over a local tile server and
/// of a detection set's shapes, clip labelling on an audio pool predicted for review, and a runs
/// page; then what the services recorded, read back over their own sockets. The screenshots are
/// kept in `.build/review-screenshots`.
@Suite(.serialized)
struct ReviewPagesEndToEndTests {
  private static let mesh = """
    { "services": [
      { "name": "registry" }, { "name": "tracking" }, { "name": "feedback" }, { "name": "audio-classifier" },
      { "name": "gateway", "http": "127.0.0.1:0" } ] }
    """

  /// A class name the pages must show as text.
  static let hostile = "<script>alert('x')</script>"

  /// One HTTP request with JSON: the answer's JSON object.
  private static func post(_ url: String, _ body: [String: Any]) async throws -> [String: Any] {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.httpBody = try JSONSerialization.data(withJSONObject: body)
    let (data, _) = try await URLSession.shared.data(for: request)
    return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
  }

  @Test func aReviewerWorksThroughThePagesInABrowser() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    for directory in ["train/call", "train/noise", "one/call", "pool"] {
      try FileManager.default.createDirectory(atPath: data.path(directory), withIntermediateDirectories: true)
    }
    let made = try await Subprocess.run(
      try TestEnvironment.python(), ["-c", AudioClassifierEndToEndTests.makeTrainingSet, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    let server = try await TestHTTPServer { request in
      let parts = request.path.split(separator: "/").map(String.init)
      guard parts.count == 3, let z = Int(parts[0]), let x = Int(parts[1]),
        let y = Int(parts[2].split(separator: ".")[0]), let tile = try? Tile(z: z, x: x, y: y)
      else { return .init(status: 404) }
      return .init(headers: ["Content-Type": "image/png"], body: AOIJobEndToEndTests.tileImage(tile))
    }
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    let line = try await up.waitForLines(containing: "gateway http at ", seconds: 60)[0]
    let gateway = String(line[line.range(of: "gateway http at ")!.upperBound...]).trimmingCharacters(in: .whitespaces)
    _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    let feedbackRPC = RPCClient(address: try RPCAddress(parsing: "unix:feedback.sock", relativeTo: data.url.path))
    let audioRPC = RPCClient(address: try RPCAddress(parsing: "unix:audio-classifier.sock", relativeTo: data.url.path))
    let feedback = FeedbackV1.Feedback.Client(feedbackRPC)
    let audio = AudioV1.AudioClassifier.Client(audioRPC)
    do {
      let made = try await run("admin", "token", "create", "--org", "local", "--role", "writer", "--json")
      let token = try #require(
        (try JSONSerialization.jsonObject(with: Data(made.stdoutText.utf8)) as? [String: Any])?["token"] as? String,
        "\(made.stdoutText)\(made.stderrText)")
      let added = try await run("imagery", "add", "fast", "\(server.base)/{z}/{x}/{y}.png")
      try #require(added.status == 0, "\(added.stderrText)")

      // A classification set of 3 × 3 tiles, one class with a name that is markup.
      let origin = AOIJobEndToEndTests.origin
      var create = FeedbackV1.CreateSetRequest()
      create.model = "local/roads"
      create.modelVersion = 1
      create.task = .classification
      create.classes = ["road", Self.hostile].map { name in
        var label = RegistryV1.ClassLabel()
        label.name = name
        return label
      }
      create.imagery = "fast"
      create.zoom = Int32(AOIJobEndToEndTests.zoom)
      let classSet = try await feedback.createSet(create)
      var tiles: [FeedbackV1.PredictedTile] = []
      for dy in 0..<3 {
        for dx in 0..<3 {
          var tile = FeedbackV1.PredictedTile()
          (tile.z, tile.x, tile.y) = (Int32(origin.z), Int64(origin.x + dx), Int64(origin.y + dy))
          let p = Double(dx * 3 + dy + 1) / 10
          tile.scores = ["road": p, Self.hostile: 1 - p]
          tiles.append(tile)
        }
      }
      _ = try await feedback.putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = classSet.setId
        request.tiles = tiles
        try await sender.send(request)
      }
      // A detection set: a box on each of two tiles, where the tile images have their squares.
      create.task = .detection
      create.classes = [create.classes[0]]
      create.classes[0].name = "car"
      let boxSet = try await feedback.createSet(create)
      let rings = [AOIJobEndToEndTests.squareRing(AOIJobEndToEndTests.squares[0])]
      var boxed = FeedbackV1.PredictedTile()
      (boxed.z, boxed.x, boxed.y) = (Int32(origin.z), Int64(origin.x), Int64(origin.y))
      var feature = FeedbackV1.Feature()
      feature.className = "car"
      feature.score = 0.9
      feature.geometry = String(
        decoding: try JSONSerialization.data(withJSONObject: ["type": "Polygon", "coordinates": rings]), as: UTF8.self)
      boxed.features = [feature]
      boxed.scores = ["car": 0.9]
      _ = try await feedback.putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = boxSet.setId
        request.tiles = [boxed]
        try await sender.send(request)
      }

      // An audio pool predicted for review by a model trained on a labelled set.
      let calls = try AudioV1.Dataset(
        jsonString: try await run("audio", "import", data.path("train"), "--name", "calls", "--json").stdoutText)
      let trained = try await run(
        "audio", "train", calls.datasetId, "--model", "orca", "--hidden", "32", "--epochs", "30", "--json")
      try #require(trained.status == 0, "\(trained.stderrText)")
      let pool = try AudioV1.Dataset(
        jsonString: try await run("audio", "import", data.path("pool"), "--name", "pool", "--json").stdoutText)
      let predicted = try await run("audio", "predict", "orca", "--dataset", pool.datasetId, "--review")
      try #require(predicted.status == 0, "\(predicted.stderrText)")

      // An experiment with two runs and their loss curves, through the MLflow API.
      let mlflow = "\(gateway)/api/2.0/mlflow"
      let experiment =
        try await Self.post("\(mlflow)/experiments/create", ["name": "roads"])["experiment_id"] as! String
      for (name, rate) in [("fast", 0.3), ("slow", 0.1)] {
        let created = try await Self.post(
          "\(mlflow)/runs/create", ["experiment_id": experiment, "run_name": name, "start_time": 1])
        let runID = ((created["run"] as! [String: Any])["info"] as! [String: Any])["run_id"] as! String
        let metrics = (0..<20).map { step in
          ["key": "loss", "value": exp(-rate * Double(step)), "timestamp": 1000 + step, "step": step] as [String: Any]
        }
        _ = try await Self.post("\(mlflow)/runs/log-batch", ["run_id": runID, "metrics": metrics])
      }

      let first = "\(origin.z)/\(origin.x)/\(origin.y)"
      let second = "\(origin.z)/\(origin.x + 1)/\(origin.y)"
      let session: [String: Any] = [
        "token": token, "class_set": classSet.setId, "box_set": boxSet.setId, "dataset": pool.datasetId,
        "experiment": experiment, "first_tile": first, "second_tile": second,
      ]
      try JSONSerialization.data(withJSONObject: session).write(to: URL(fileURLWithPath: data.path("session.json")))
      let shots = "\(TestEnvironment.repositoryRoot)/.build/review-screenshots"
      try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
      let script = "\(TestEnvironment.repositoryRoot)/Tests/ShoalCLITests/Python/review_pages_session.py"
      let browsed = try await Subprocess.run(
        try TestEnvironment.peersPython(), [script, gateway, data.path("session.json"), shots])
      try #require(browsed.status == 0, "\(browsed.stdoutText)\(browsed.stderrText)\n== shoal up\n\(up.text)")
      let report = try #require(
        try JSONSerialization.jsonObject(with: Data(browsed.stdoutText.utf8)) as? [String: Any], "\(browsed.stdoutText)"
      )

      // Signed in with the token, kept out of cookies; the markup class name shown as text.
      #expect((report["cookies"] as? [Any])?.isEmpty == true)
      #expect((report["who"] as? String)?.contains("signed in") == true)
      #expect((report["set_links"] as? [String]).map(Set.init) == [classSet.setId, boxSet.setId])
      #expect((report["class_options"] as? [String])?.contains(Self.hostile) == true, "\(report)")
      #expect(report["script_elements"] as? Int == 2)
      #expect(report["tiles_drawn"] as? Int == 9 && report["imagery_drawn"] as? Int == 9, "\(report)")
      #expect(report["unvalidated_fill"] as? String == "#ff0000" && report["valid_fill"] as? String == "#00ff00")
      #expect(
        report["validated"] as? String == "2 of 9 tiles validated"
          && report["after_queue"] as? String == "3 of 9 tiles validated")

      // What the clicks and keys recorded, with the token's principal.
      var history = FeedbackV1.ValidityHistoryRequest()
      history.setId = classSet.setId
      let entries = try await feedback.validityHistory(history).entries
      #expect(entries.count == 3, "\(entries)")
      // "any class" marks a tile's best class: the first tile's (p 0.1) is the markup class.
      #expect(entries.contains { $0.tileId == first && $0.className == Self.hostile && $0.validity == .valid })
      #expect(entries.contains { $0.tileId == second && $0.validity == .invalid })
      #expect(entries.allSatisfy { $0.by != "" && $0.by != "mesh" }, "\(entries)")
      history.setId = boxSet.setId
      let shapes = try await feedback.validityHistory(history).entries
      #expect(report["shapes_drawn"] as? Int == 1 && report["shape_class_text"] as? String == "car")
      #expect(
        shapes.map(\.featureId) == [report["marked_feature"] as? String ?? ""] && shapes.first?.validity == .invalid)

      // The clip: its spectrogram and its audio loaded (as long as the clip is); its label recorded.
      let seconds = report["audio_seconds"] as? Double ?? 0
      #expect(seconds > 0.5 && (report["clip_title"] as? String)?.contains(String(format: "(%.1f s)", seconds)) == true)
      #expect((report["confidence"] as? String)?.hasPrefix("The model says") == true, "\(report)")
      #expect((report["spectrogram_width"] as? Int ?? 0) > 0)
      #expect((report["label_buttons"] as? [String]) == ["call", "noise"], "\(report)")
      var clips = AudioV1.ListClipsRequest()
      clips.datasetId = pool.datasetId
      let labelled = try await audio.listClips(clips).clips.first { $0.digest == report["labelled_digest"] as? String }
      #expect(labelled?.label == "call", "\(String(describing: labelled))")

      #expect(report["runs_rows"] as? Int == 2 && (report["painted"] as? Int ?? 0) > 1000, "\(report)")
      #expect((report["legend"] as? String)?.contains("20 points") == true)
      #expect(report["session_token_after"] is NSNull)
      for name in ["index", "map-review", "map-queue", "map-shapes", "clip-labelling", "runs"] {
        #expect(FileManager.default.fileExists(atPath: "\(shots)/\(name).png"), "\(name)")
      }
    } catch {
      _ = try? await up.stop()
      await server.close()
      throw error
    }
    await feedbackRPC.close()
    await audioRPC.close()
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
    await server.close()
  }
}
