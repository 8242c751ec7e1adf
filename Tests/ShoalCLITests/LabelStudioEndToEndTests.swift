import Foundation
import ShoalImage
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// The gateway as Label Studio's ML backend, with the real Label Studio 1.23 (from PyPI, run
/// offline) driven through its own REST API: projects whose images are uploaded to Label Studio
/// (so that the backend fetches them with the token Label Studio gives in /setup), predictions in
/// each project's labelling config, annotations that Label Studio's webhook carries into
/// feedback, and training that starts the model's pipeline.
@Suite(.serialized)
struct LabelStudioEndToEndTests {
  private static let mesh = """
    { "services": [
      { "name": "registry" }, { "name": "tracking" }, { "name": "inference" }, { "name": "feedback" },
      { "name": "audio-classifier" }, { "name": "pipeline" }, { "name": "gateway", "http": "127.0.0.1:0" } ] }
    """

  /// A pipeline for the detector, so that training from Label Studio has one to start. (Pipelines
  /// train audio classifiers; this one stops at `load`, which finds no such dataset.)
  private static let pipeline = """
    { "model": "bright-boxes", "source": { "audio_dataset": "boxes" }, "test": { "audio_dataset": "boxes-test" },
      "steps": [ { "step": "load" }, { "step": "train", "epochs": 1 }, { "step": "evaluate" } ] }
    """

  /// The squares drawn on the bright images, in pixels of 256 × 256.
  private static let squares: [(x0: Int, y0: Int, x1: Int, y1: Int)] = [(40, 40, 100, 100), (128, 64, 200, 96)]

  private static func image(square: (x0: Int, y0: Int, x1: Int, y1: Int)?, ground: UInt8) throws -> Data {
    var pixels = [UInt8](repeating: 0, count: 256 * 256 * 3)
    for y in 0..<256 {
      for x in 0..<256 {
        let inside = square.map { x >= $0.x0 && x < $0.x1 && y >= $0.y0 && y < $0.y1 } ?? false
        let at = (y * 256 + x) * 3
        (pixels[at], pixels[at + 1], pixels[at + 2]) = inside ? (255, 255, 255) : (ground, ground &+ 10, ground / 2)
      }
    }
    return Data(try Image(width: 256, height: 256, channels: 3, pixels: pixels).pngBytes())
  }

  /// A TCP port that was free a moment ago, for Label Studio (which takes no port 0).
  private static func freePort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
        bind(socket, generic, length) == 0 && getsockname(socket, generic, &length) == 0
      }
    }
    guard bound else { throw TestEnvironmentError("cannot find a free TCP port") }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  /// Stops Label Studio: SIGTERM, and SIGKILL if it is still busy 10 s later (under the full
  /// suite's load it was once left running).
  private static func stop(_ studio: ServerProcess) async {
    if (try? await studio.stop(signal: SIGTERM, seconds: 10)) == nil {
      _ = try? await studio.stop(signal: SIGKILL, seconds: 10)
    }
  }

  @Test func labelStudioPredictsAnnotatesAndTrainsThroughTheBackend() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let labelStudio = try TestEnvironment.labelStudio()
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    try FileManager.default.createDirectory(atPath: data.path("pipelines"), withIntermediateDirectories: true)
    try Data(Self.pipeline.utf8).write(to: URL(fileURLWithPath: data.path("pipelines/boxes.json")))

    // Label Studio starts first: it takes half a minute to migrate its database.
    let port = try Self.freePort()
    let token = "shoal0test0token0for0label0studio"
    let studio = try ServerProcess(
      labelStudio,
      [
        "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", "\(port)", "--data-dir",
        data.path("label-studio"), "--username", "labeller@example.com", "--password", "not-a-secret",
        "--user-token", token, "--enable-legacy-api-token",
      ],
      environment: [
        "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
        "LABEL_STUDIO_BASE_DATA_DIR": data.path("label-studio"),
        // Offline: no version check against PyPI, no analytics.
        "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
      ])

    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    let line = try await up.waitForLines(containing: "gateway http at ", seconds: 60)[0]
    let gateway = String(line[line.range(of: "gateway http at ")!.upperBound...]).trimmingCharacters(in: .whitespaces)
    _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
    func run(_ arguments: [String]) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    do {
      for (name, task, bytes, classes) in [
        ("bright-tiles", "classification", try AOIJobEndToEndTests.classifier(), ["empty", "object:#00ff00"]),
        ("bright-boxes", "detection", try AOIJobEndToEndTests.detector(), ["object:#ff8800"]),
        ("bright-segments", "segmentation", try AOIJobEndToEndTests.segmenter(), ["roof:#ff0000"]),
      ] {
        try Data(bytes).write(to: URL(fileURLWithPath: data.path("\(name).onnx")))
        #expect(try await run(["models", "create", name, "--task", task]).status == 0)
        let push = try await run(
          ["models", "push", name, data.path("\(name).onnx")] + classes.flatMap { ["--class", $0] })
        try #require(push.status == 0, "\(push.stderrText)")
        let load = try await run(["inference", "load", name])
        try #require(load.status == 0, "\(load.stderrText)")
      }
      let images = data.path("images")
      try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
      var expected: [String: [String: Double]] = [:]
      for (index, square) in Self.squares.enumerated() {
        try Self.image(square: square, ground: 30).write(to: URL(fileURLWithPath: "\(images)/bright-\(index).png"))
        expected["bright-\(index).png"] = [
          "x": Double(square.x0) / 2.56, "y": Double(square.y0) / 2.56, "width": Double(square.x1 - square.x0) / 2.56,
          "height": Double(square.y1 - square.y0) / 2.56,
        ]
      }
      for index in 0..<2 {
        try Self.image(square: nil, ground: UInt8(30 + 20 * index)).write(
          to: URL(fileURLWithPath: "\(images)/dark-\(index).png"))
      }
      try JSONSerialization.data(withJSONObject: expected).write(to: URL(fileURLWithPath: "\(images)/expected.json"))

      let studioURL = "http://127.0.0.1:\(port)"
      _ = try await studio.waitForLines(containing: "Starting development server", seconds: 240)
      let python = URL(fileURLWithPath: labelStudio).deletingLastPathComponent().appendingPathComponent("python").path
      let script = "\(TestEnvironment.repositoryRoot)/Tests/ShoalCLITests/Python/label_studio_session.py"
      let session = try await Subprocess.run(
        python, [script, studioURL, token, gateway, images, data.path("report.json")])
      try #require(
        session.status == 0,
        "\(session.stdoutText)\(session.stderrText)\n== shoal up\n\(up.text)\n== label studio\n\(studio.text.suffix(6000))"
      )
      let report =
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: data.path("report.json"))))
        as! [String: [String: Any]]

      // What the annotations said is in feedback: a set of items per project, each task an item.
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:feedback.sock", relativeTo: data.url.path))
      defer { Task { await rpc.close() } }
      let feedback = FeedbackV1.Feedback.Client(rpc)
      let sets = try await feedback.listSets(FeedbackV1.ListSetsRequest()).sets
      func records(_ kind: String) async throws -> (FeedbackV1.PredictionSet, [String: FeedbackV1.TileRecord]) {
        let project = report[kind]!["project"] as! Int
        let set = try #require(sets.first { $0.jobId == "label-studio:project/\(project)" }, "\(sets)")
        var query = FeedbackV1.QueryTilesRequest()
        query.setId = set.setId
        let tiles = try await feedback.queryTiles(query).tiles
        return (set, Dictionary(uniqueKeysWithValues: tiles.map { ($0.item, $0) }))
      }
      func task(_ kind: String, _ image: String) -> String {
        "task/\((report[kind]!["tasks"] as! [String: Int])[image]!)"
      }
      func validity(_ record: FeedbackV1.TileRecord?, _ name: String) -> FeedbackV1.Validity? {
        record?.validity.first { $0.className == name }?.validity
      }

      let (classSet, classified) = try await records("classification")
      #expect(classSet.items && classSet.model == "local/bright-tiles" && classified.count == 4)
      let brightTile = classified[task("classification", "bright-0.png")]
      #expect(brightTile?.scores["object"] == 1 && validity(brightTile, "object") == .valid)
      #expect(validity(brightTile, "empty") == .invalid)
      // The labeller said the dark image holds an object: against the model, and kept.
      let darkTile = classified[task("classification", "dark-0.png")]
      #expect(darkTile?.scores["empty"] == 1 && validity(darkTile, "object") == .valid)
      #expect(validity(classified[task("classification", "dark-1.png")], "object") == nil)

      let (boxSet, boxed) = try await records("detection")
      #expect(boxSet.task == .detection && boxed.count == 4)
      let boxedTile = try #require(boxed[task("detection", "bright-0.png")])
      let feature = try #require(boxedTile.features.first)
      // The box the labeller kept (moved by half a percent) confirms the predicted one.
      #expect(feature.className == "object" && validity(boxedTile, "object") == .valid)
      var history = FeedbackV1.ValidityHistoryRequest()
      history.setId = boxSet.setId
      history.tileId = boxedTile.item
      let entries = try await feedback.validityHistory(history).entries
      #expect(entries.contains { $0.featureId == feature.featureId && $0.validity == .valid }, "\(entries)")
      #expect(boxed[task("detection", "dark-0.png")]?.features.isEmpty == true)
      let (_, outlined) = try await records("segmentation")
      #expect(outlined[task("segmentation", "bright-1.png")]?.features.map(\.className) == ["roof"])

      // Training: Label Studio sent START_TRAINING to the webhook for each; the classifier and the
      // segmenter have no pipeline (404), the detector's pipeline started (201, as each annotation was) and ran,
      // as `shoal pipeline history` shows.
      let (metrics, _) = try await URLSession.shared.data(from: URL(string: "\(gateway)/metrics")!)
      let counts = String(decoding: metrics, as: UTF8.self).split(separator: "\n").filter {
        $0.hasPrefix("shoal_gateway_requests_total") && $0.contains("/label-studio/{model}/webhook")
      }
      #expect(counts.contains { $0.contains(#"status="404""#) && $0.hasSuffix(" 2") }, "\(counts)")
      #expect(counts.contains { $0.contains(#"status="201""#) && $0.hasSuffix(" 4") }, "\(counts)")
      let pipelines = PipelineV1.Pipelines.Client(
        RPCClient(address: try RPCAddress(parsing: "unix:pipeline.sock", relativeTo: data.url.path)))
      var runs = PipelineV1.PipelineHistoryRequest()
      runs.name = "boxes"
      var history2: [PipelineV1.PipelineRun] = []
      for _ in 0..<50 {
        history2 = try await pipelines.pipelineHistory(runs).runs
        if history2.contains(where: { $0.status != "RUNNING" }) { break }
        try await Task.sleep(for: .milliseconds(200))
      }
      #expect(history2.count == 1 && history2.first?.failedStep == "load", "\(history2)")
    } catch {
      _ = try? await up.stop()
      await Self.stop(studio)
      throw error
    }
    await Self.stop(studio)
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }
}
