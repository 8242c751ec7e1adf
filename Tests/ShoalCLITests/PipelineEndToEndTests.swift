import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// The closed loop under `shoal up` with no human step: pipelines from the files next to the mesh
/// file, trained by the audio classifier, judged on a held-out test set, promoted in the
/// registry, recorded in tracking and announced to a webhook (a real HTTP server here).
@Suite(.serialized)
struct PipelineEndToEndTests {
  static let makeClips = #"""
    import os, sys
    import numpy as np, soundfile as sf
    out = sys.argv[1]
    rng = np.random.default_rng(17)
    sr = 16000
    t = np.arange(3 * sr) / sr
    def background():
        return 0.04 * np.sin(2 * np.pi * rng.uniform(50, 150) * t) + rng.uniform(0.02, 0.06) * rng.standard_normal(t.size)
    def whistle():
        f = rng.uniform(1500, 5000)
        return 0.25 * np.sin(2 * np.pi * (f * t + rng.uniform(-200, 200) * t ** 2)) * (np.sin(2 * np.pi * 3 * t) > 0)
    def write(path, signal):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sf.write(path, (rng.uniform(0.5, 1.5) * signal).astype(np.float32), sr, subtype="PCM_16")
    for name, count in [("small", 2), ("calls", 20), ("test", 12)]:
        for i in range(count):
            write(f"{out}/{name}/call/c{i:02d}.wav", whistle() + background())
            write(f"{out}/{name}/noise/n{i:02d}.wav", background())
    # The same kind of clips with their labels swapped: a model trained on them is worse.
    for i in range(20):
        write(f"{out}/flipped/noise/c{i:02d}.wav", whistle() + background())
        write(f"{out}/flipped/call/n{i:02d}.wav", background())
    for i in range(2):
        write(f"{out}/pool/p{i}.wav", whistle() + background())
    """#

  static func pipeline(source: String, epochs: Int, hidden: Int, labels: Int = 0, hook: String) -> String {
    """
    { "model": "orca", "source": { "audio_dataset": "\(source)" }, "test": { "audio_dataset": "test" },
      \(labels > 0 ? #""triggers": { "labels": \#(labels) },"# : "")
      "steps": [ { "step": "load" }, { "step": "validate", "min_per_class": 2 },
        { "step": "tune", "hidden_sizes": [\(hidden)] }, { "step": "train", "epochs": \(epochs) },
        { "step": "evaluate" }, { "step": "decide", "margin": 0.05, "max_class_regression": 0.2 },
        { "step": "promote" }, { "step": "notify", "webhook": "\(hook)", "format": "slack" } ] }
    """
  }

  /// A mesh of registry, tracking, audio-classifier and pipeline with the clips imported as
  /// datasets small, calls, test and flipped; pipelines are written into DATA/pipelines.
  struct Mesh {
    let data: TemporaryDirectory
    let up: ServerProcess
    let shoal: String

    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }

    func write(_ name: String, _ text: String) throws {
      try Data(text.utf8).write(to: URL(fileURLWithPath: data.path("pipelines/\(name).json")))
    }

    func history(_ name: String) async throws -> [PipelineV1.PipelineRun] {
      try PipelineV1.PipelineHistoryResponse(
        jsonString: try await run("pipeline", "history", name, "--json").stdoutText
      ).runs
    }

    func production(model: String = "orca") async throws -> Int64 {
      try RegistryV1.ModelVersion(
        jsonString: try await run("models", "show", "\(model)@production", "--json").stdoutText
      ).version
    }
  }

  func withMesh(_ body: (Mesh) async throws -> Void) async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeClips, data.path("clips")])
    try #require(made.status == 0, "\(made.stderrText)")
    try FileManager.default.createDirectory(atPath: data.path("pipelines"), withIntermediateDirectories: true)
    try Data(
      #"""
      { "services": [ { "name": "registry" }, { "name": "tracking" }, { "name": "audio-classifier" },
        { "name": "pipeline" } ] }
      """#.utf8
    ).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    let mesh = Mesh(data: data, up: up, shoal: shoal)
    do {
      _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
      for name in ["small", "calls", "test", "flipped"] {
        let imported = try await mesh.run("audio", "import", data.path("clips/\(name)"), "--name", name)
        #expect(imported.status == 0, "\(imported.stderrText)")
      }
      try await body(mesh)
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }

  @Test func aBetterModelGoesLiveAndAWorseOneDoesNot() async throws {
    let hook = try await TestHTTPServer { request in .init(status: request.path == "/failing" ? 500 : 200) }
    defer { Task { await hook.close() } }
    try await withMesh { mesh in
      let (data, run, write, history) = (mesh.data, mesh.run, mesh.write, mesh.history)
      let production = { try await mesh.production() }
      // First a weak version: one epoch on four clips.
      try write("loop", Self.pipeline(source: "small", epochs: 1, hidden: 2, hook: "\(hook.base)/hook"))
      try write("flipped", Self.pipeline(source: "flipped", epochs: 60, hidden: 32, hook: "\(hook.base)/failing"))
      try write("broken", Self.pipeline(source: "nothing", epochs: 10, hidden: 8, hook: "\(hook.base)/hook"))
      try write("bad", #"{ "model": "orca", "source": { "audio_dataset": "x" }, "steps": [ { "step": "deploy" } ] }"#)
      let listed = try await run("pipeline", "list")
      #expect(listed.stdoutText.contains("loop") && listed.stdoutText.contains("load → validate → tune → train"))
      #expect(
        listed.stdoutText.contains("bad.json: key 'steps[0].step' 'deploy' is not a step"), "\(listed.stdoutText)")

      // 1. No production yet: the weak version is promoted as the first.
      let first = try PipelineV1.PipelineRun(jsonString: try await run("pipeline", "run", "loop", "--json").stdoutText)
      #expect(first.status == "FINISHED" && first.decision == "promote" && first.candidateVersion == 1, "\(first)")
      #expect(try await production() == 1)

      // 2. Trained on more labels, the next version beats it by the margin and goes live.
      try write("loop", Self.pipeline(source: "calls", epochs: 60, hidden: 32, labels: 2, hook: "\(hook.base)/hook"))
      let second = try PipelineV1.PipelineRun(jsonString: try await run("pipeline", "run", "loop", "--json").stdoutText)
      #expect(second.status == "FINISHED" && second.decision == "promote", "\(second)")
      #expect(second.candidateVersion == 2 && second.productionVersion == 1 && second.promotedAlias == "production")
      let (better, weaker) = (second.candidate?.accuracy ?? 0, second.production?.accuracy ?? 1)
      #expect(better >= weaker + 0.05 && better >= 0.9, "v2 \(better) against v1 \(weaker)")
      #expect(try await production() == 2)
      let previous = try await run("models", "show", "orca@previous-production", "--json")
      #expect(try RegistryV1.ModelVersion(jsonString: previous.stdoutText).version == 1)
      // Predictions by alias come from the new version.
      let test = try #require(
        try AudioV1.ListDatasetsResponse(jsonString: try await run("audio", "datasets", "--json").stdoutText)
          .datasets.first { $0.name == "test" })
      let answered = try AudioV1.PredictResponse(
        jsonString: try await run("audio", "predict", "orca@production", "--dataset", test.datasetId, "--all", "--json")
          .stdoutText)
      #expect(answered.version == 2)

      // 3. Trained on flipped labels, a worse version is rejected and production is untouched.
      let flipped = try await run("pipeline", "run", "flipped", "--json")
      let third = try PipelineV1.PipelineRun(jsonString: flipped.stdoutText)
      #expect(third.status == "FINISHED" && third.decision == "reject" && third.candidateVersion == 3, "\(third)")
      #expect(third.reasons.contains { $0.contains("does not beat it by the margin") })
      // Its webhook fails: told after the run finished, tried again with backoff, and recorded.
      #expect(third.notified == "sending")
      var notified = ""
      for _ in 0..<100 {
        notified = try await history("flipped").first?.notified ?? ""
        if notified != "sending" { break }
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(notified == "failed after 4 attempts: HTTP 500", "\(notified)")
      #expect(hook.requests.filter { $0.path == "/failing" }.count == 4)
      #expect(try await production() == 2)

      // 4. A step that fails stops the run, says why, and leaves production alone.
      let broken = try await run("pipeline", "run", "broken")
      #expect(broken.status != 0 && broken.stdoutText.contains("failed at load"), "\(broken.stdoutText)")
      #expect(broken.stdoutText.contains("no dataset 'nothing'"))
      #expect(try await production() == 2)

      // 5. Two new labels start the loop by themselves.
      let pool = try AudioV1.Dataset(
        jsonString: try await run("audio", "import", data.path("clips/pool"), "--name", "calls", "--json").stdoutText)
      let clips = try AudioV1.ListClipsResponse(
        jsonString: try await run("audio", "clips", pool.datasetId, "--label", "unlabelled", "--json").stdoutText
      ).clips
      #expect(clips.count == 2)
      let labelled = try await run(
        "audio", "label", pool.datasetId, "\(clips[0].digest)=call", "\(clips[1].digest)=call")
      #expect(labelled.status == 0, "\(labelled.stderrText)")
      var runs: [PipelineV1.PipelineRun] = []
      for _ in 0..<240 {
        runs = try await history("loop")
        if runs.first.map({ $0.trigger == "labels" && $0.status != "RUNNING" }) ?? false { break }
        try await Task.sleep(for: .milliseconds(500))
      }
      let triggered = try #require(runs.first)
      #expect(
        triggered.trigger == "labels" && triggered.status == "FINISHED" && triggered.labelsAtRun == "2", "\(runs)")
      #expect(try await production() >= 2)

      for run in try await history("loop").reversed() + (try await history("flipped")) {
        print(
          "audio loop: v\(run.candidateVersion) \(run.decision) accuracy \(run.candidate?.accuracy ?? -1) against "
            + "v\(run.productionVersion) \(run.production?.accuracy ?? -1) (\(run.trigger))")
      }
      // The history tells every decision and its reasons; tracking has the runs.
      let told = try await run("pipeline", "history", "loop")
      #expect(told.stdoutText.contains("promote: candidate v2") && told.stdoutText.contains("against production v1"))
      let parent = try TrackingV1.Run(jsonString: try await run("runs", "show", second.runId, "--json").stdoutText)
      #expect(parent.tags["decision"] == "promote" && parent.tags["candidate_version"] == "2")

      // The webhook heard of each finished run that reached notify, in Slack's shape.
      let posts = hook.requests.filter { $0.method == "POST" && $0.path == "/hook" }
      #expect(posts.count >= 3, "\(posts.count) posts")
      let texts = posts.compactMap { post in
        (try? JSONSerialization.jsonObject(with: post.body) as? [String: String])?["text"]
      }
      #expect(texts.count == posts.count && texts.contains { $0.contains("promote local/orca v2") }, "\(texts)")
    }
  }

  /// `kill -9` of the pipeline service mid-run: the restarted service marks the run FAILED, and
  /// nothing was promoted.
  @Test func aRunKilledMidwayFailsCleanly() async throws {
    try await withMesh { mesh in
      try mesh.write(
        "loop",
        Self.pipeline(source: "calls", epochs: 400, hidden: 512, hook: "http://127.0.0.1:9/hook")
          .replacingOccurrences(of: "[512]", with: "[512, 1024, 2048]"))
      let running = try ServerProcess(mesh.shoal, ["pipeline", "run", "loop", "--data", mesh.data.url.path])
      _ = try await running.waitForLines(containing: "train …", seconds: 60)
      let status = try await mesh.run("status", "--json")
      let object = try JSONSerialization.jsonObject(with: Data(status.stdoutText.utf8)) as? [String: Any]
      let services = (object?["services"] as? [[String: Any]]) ?? []
      let pid = try #require(services.first { $0["name"] as? String == "pipeline" }?["pid"] as? Int)
      kill(Int32(pid), SIGKILL)
      #expect(try await running.stop(seconds: 30) != 0)
      _ = try await mesh.up.waitForLines(containing: "registered pipeline", count: 2, seconds: 60)
      var runs: [PipelineV1.PipelineRun] = []
      for _ in 0..<100 {
        runs = try await mesh.history("loop")
        if runs.first?.status == "FAILED" { break }
        try await Task.sleep(for: .milliseconds(200))
      }
      #expect(runs.count == 1 && runs.first?.status == "FAILED", "\(runs)")
      _ = try await mesh.up.waitForLines(containing: "was interrupted by a restart; marked FAILED", seconds: 10)
      var alias = try await mesh.run("models", "show", "orca@production")
      #expect(alias.status != 0, "nothing was promoted: \(alias.stdoutText)")

      // kill -9 of the audio classifier mid-training: the run stops at train, says why, and
      // promotes nothing.
      let again = try ServerProcess(mesh.shoal, ["pipeline", "run", "loop", "--data", mesh.data.url.path])
      _ = try await again.waitForLines(containing: "train …", seconds: 60)
      let audio = try #require(
        try JSONSerialization.jsonObject(with: Data(try await mesh.run("status", "--json").stdoutText.utf8))
          as? [String: Any])
      let audioPID = try #require(
        ((audio["services"] as? [[String: Any]]) ?? []).first { $0["name"] as? String == "audio-classifier" }?["pid"]
          as? Int)
      kill(Int32(audioPID), SIGKILL)
      for _ in 0..<300 where again.isRunning { try await Task.sleep(for: .milliseconds(200)) }
      #expect(!again.isRunning && again.text.contains("train: failed"), "\(again.text)")
      let failed = try #require(try await mesh.history("loop").first)
      #expect(failed.status == "FAILED" && failed.failedStep == "train" && !failed.error.isEmpty, "\(failed)")
      alias = try await mesh.run("models", "show", "orca@production")
      #expect(alias.status != 0)
    }
  }

  /// Water and land tiles as PNGs, and a frozen backbone (a convolution, pooled) with its
  /// features as an output.
  static let makeTiles = #"""
    import os, sys
    import numpy as np, onnx
    from onnx import helper, TensorProto, numpy_helper
    from PIL import Image
    out = sys.argv[1]
    rng = np.random.default_rng(23)
    for x in range(35200, 35240):
        for y in (21490, 21491):
            water = x % 2 == 0
            base = np.array([40, 90, 200] if water else [90, 160, 60], np.float32)
            pixels = np.clip(base + rng.normal(0, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
            os.makedirs(f"{out}/tiles/16/{x}", exist_ok=True)
            Image.fromarray(pixels).save(f"{out}/tiles/16/{x}/{y}.png")
    init = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "w"),
            numpy_helper.from_array(np.zeros(8, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["features"])]
    graph = helper.make_graph(nodes, "backbone", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 8])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, f"{out}/backbone.onnx")
    """#

  /// Tiles: feedback's validated tiles (marked through SetValidity) train a head on a frozen
  /// backbone into a version that is promoted and served by inference; after reviewers flip the
  /// training tiles' marks, the next version is rejected and production stays.
  @Test func validatedTilesTrainAHeadOnAFrozenBackbone() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeTiles, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    let root = data.path("tiles")
    let server = try await TestHTTPServer { request in
      guard
        let body = FileManager.default.contents(
          atPath: root + request.path.replacingOccurrences(of: "/tiles", with: ""))
      else { return .init(status: 404) }
      return .init(headers: ["Content-Type": "image/png"], body: body)
    }
    defer { Task { await server.close() } }
    try FileManager.default.createDirectory(atPath: data.path("pipelines"), withIntermediateDirectories: true)
    try Data(
      #"""
      { "services": [ { "name": "registry" }, { "name": "tracking" }, { "name": "feedback" }, { "name": "inference" },
        { "name": "audio-classifier" }, { "name": "pipeline" } ] }
      """#.utf8
    ).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    let mesh = Mesh(data: data, up: up, shoal: shoal)
    do {
      _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
      #expect(try await mesh.run("models", "create", "backbone", "--task", "classification").status == 0)
      let pushed = try await mesh.run(
        "models", "push", "backbone", data.path("backbone.onnx"), "--alias", "production", "--tile-size", "64",
        "--mean", "0.45,0.45,0.45", "--std", "0.25,0.25,0.25")
      #expect(pushed.status == 0, "\(pushed.stderrText)")
      #expect(
        try await mesh.run("imagery", "add", "aerial", "\(server.base)/tiles/{z}/{x}/{y}.png", "--tile-size", "64")
          .status == 0)

      // Two sets: x < 35230 to train on, the rest held out; reviewers mark every tile.
      let sdk = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
      defer { Task { await sdk.close() } }
      let feedback = FeedbackV1.Feedback.Client(sdk.channel(for: "feedback"))
      func makeSet(_ xs: Range<Int>) async throws -> String {
        var create = FeedbackV1.CreateSetRequest()
        create.model = "landcover@production"
        create.zoom = 16
        create.imagery = "aerial"
        create.classes = ["water", "land"].map { name in
          var label = RegistryV1.ClassLabel()
          label.name = name
          return label
        }
        let set = try await feedback.createSet(create)
        _ = try await feedback.putPredictions { sender in
          var request = FeedbackV1.PutPredictionsRequest()
          request.setId = set.setId
          request.tiles = xs.flatMap { x in
            [21490, 21491].map { y in
              var tile = FeedbackV1.PredictedTile()
              (tile.z, tile.x, tile.y) = (16, Int64(x), Int64(y))
              tile.scores = ["water": 0.5, "land": 0.5]
              return tile
            }
          }
          try await sender.send(request)
        }
        return set.setId
      }
      func mark(_ set: String, _ xs: Range<Int>, flipped: Bool = false) async throws {
        var request = FeedbackV1.SetValidityRequest()
        request.setId = set
        request.changes = xs.flatMap { x in
          [21490, 21491].flatMap { y in
            ["water", "land"].map { name in
              var change = FeedbackV1.ValidityChange()
              change.target = .tileId("16/\(x)/\(y)")
              change.className = name
              let water = (x % 2 == 0) != flipped
              change.validity = (name == "water") == water ? .valid : .invalid
              return change
            }
          }
        }
        _ = try await feedback.setValidity(request)
      }
      let training = try await makeSet(35200..<35230)
      let test = try await makeSet(35230..<35240)
      try await mark(training, 35200..<35230)
      try await mark(test, 35230..<35240)
      // One tile marked valid for both classes is dropped and reported.
      var both = FeedbackV1.SetValidityRequest()
      both.setId = training
      var change = FeedbackV1.ValidityChange()
      change.target = .tileId("16/35200/21490")
      change.className = "land"
      change.validity = .valid
      both.changes = [change]
      _ = try await feedback.setValidity(both)

      try mesh.write(
        "tiles",
        #"""
        { "model": "landcover",
          "source": { "feedback_set": "\#(training)", "backbone": "backbone@production", "embedding_output": "features" },
          "test": { "feedback_set": "\#(test)" },
          "steps": [ { "step": "load" }, { "step": "validate", "min_per_class": 5 },
            { "step": "tune", "hidden_sizes": [16, 32] }, { "step": "train", "epochs": 200 }, { "step": "evaluate" },
            { "step": "decide", "margin": 0.02, "min_accuracy": 0.9 }, { "step": "promote" } ] }
        """#)
      let ran = try await mesh.run("pipeline", "run", "tiles")
      #expect(
        ran.status == 0 && ran.stdoutText.contains("marked valid for water and land; dropped"), "\(ran.stdoutText)")
      let first = try #require(try await mesh.history("tiles").first)
      #expect(first.decision == "promote" && first.candidateVersion == 1, "\(first)")
      #expect((first.candidate?.accuracy ?? 0) >= 0.9)
      let version = try RegistryV1.ModelVersion(
        jsonString: try await mesh.run("models", "show", "landcover@production", "--json").stdoutText)
      #expect(version.version == 1 && version.signature?.classes.map(\.name) == ["water", "land"])
      #expect(version.signature?.preprocessing?.tileSize == 64)
      // Its training images' distributions are its drift reference.
      #expect(version.tags["shoal.drift"]?.contains("\"inputs\"") == true)

      // Inference serves it: a water tile is water.
      #expect(try await mesh.run("inference", "load", "landcover@production").status == 0)
      let predicted = try await mesh.run(
        "predict", "landcover@production", "--image", data.path("tiles/16/35232/21490.png"), "--top", "1", "--json")
      #expect(predicted.status == 0, "\(predicted.stderrText)")
      let answer = try InferenceV1.PredictResponse(jsonString: predicted.stdoutText)
      #expect(answer.modelVersion == "1" && answer.topClasses.first?.classes.first?.name == "water", "\(answer)")
      let drift = try InferenceV1.DriftReport(
        jsonString: try await mesh.run("drift", "landcover@production", "--json").stdoutText)
      #expect(drift.hasReference && drift.rows == 1 && drift.features.count == 5, "\(drift)")

      // Reviewers flip the training marks: the next version is worse on the held-out set.
      try await mark(training, 35200..<35230, flipped: true)
      _ = try await mesh.run("pipeline", "run", "tiles")
      let second = try #require(try await mesh.history("tiles").first)
      #expect(second.decision == "reject" && second.candidateVersion == 2 && second.productionVersion == 1, "\(second)")
      #expect(try await mesh.production(model: "landcover") == 1)

      // The marks are put right, and a candidate as good (margin 0) goes through a canary in
      // inference: half the alias's calls for a second, then the alias moves by itself.
      try await mark(training, 35200..<35230)
      try mesh.write(
        "tiles",
        #"""
        { "model": "landcover",
          "source": { "feedback_set": "\#(training)", "backbone": "backbone@production", "embedding_output": "features" },
          "test": { "feedback_set": "\#(test)" },
          "steps": [ { "step": "load" }, { "step": "validate", "min_per_class": 5 }, { "step": "train", "epochs": 200 },
            { "step": "evaluate" }, { "step": "decide", "margin": 0 },
            { "step": "promote", "canary": true, "canary_percent": 50, "canary_seconds": 1, "canary_min_requests": 3 } ] }
        """#)
      let canaried = try await mesh.run("pipeline", "run", "tiles")
      #expect(
        canaried.stdoutText.contains("canary: 50.00% of local/landcover@production to v3"), "\(canaried.stdoutText)")
      let third = try #require(try await mesh.history("tiles").first)
      #expect(
        third.decision == "promote" && third.promotedAlias == "staging" && third.candidateVersion == 3, "\(third)")
      #expect(try await mesh.production(model: "landcover") == 1)
      for _ in 0..<20 {
        _ = try await mesh.run("predict", "landcover@production", "--image", data.path("tiles/16/35232/21490.png"))
      }
      var moved: Int64 = 0
      for _ in 0..<100 {
        moved = try await mesh.production(model: "landcover")
        if moved == 3 { break }
        try await Task.sleep(for: .milliseconds(200))
      }
      #expect(moved == 3)
      for run in try await mesh.history("tiles").reversed() {
        print(
          "tiles loop: v\(run.candidateVersion) \(run.decision) accuracy \(run.candidate?.accuracy ?? -1) against "
            + "v\(run.productionVersion) \(run.production?.accuracy ?? -1)")
      }
      _ = try await up.waitForLines(containing: "local/landcover@production: serving v3", seconds: 30)
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }
}
