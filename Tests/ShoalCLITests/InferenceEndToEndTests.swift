import Foundation
import Inference
import ShoalClient
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// The inference service under `shoal up`, as real processes: models made and checked by the
/// Python peer (onnx, onnxruntime), pushed to the registry, loaded by alias, predicted with,
/// swapped while under load, unloaded while calls wait, evicted from the cache, and loaded again
/// after a `kill -9`.
@Suite(.serialized)
struct InferenceEndToEndTests {
  /// Three tiny CNNs (Conv → Relu → GlobalAveragePool → Gemm → Softmax on [N, 3, 16, 16], the
  /// shape of MLServer's peer model, smaller), inputs of 1 and 3 rows, and onnxruntime's outputs.
  static let makeModels = #"""
    import sys, numpy as np, onnx, onnxruntime as ort
    from onnx import helper, TensorProto, numpy_helper
    out = sys.argv[1]
    inputs = {"one": np.random.default_rng(10).standard_normal((1, 3, 16, 16)).astype(np.float32),
              "three": np.random.default_rng(11).standard_normal((3, 3, 16, 16)).astype(np.float32)}
    for name, x in inputs.items(): np.save(f"{out}/{name}.npy", x)
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        init = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "wc"),
                numpy_helper.from_array(np.zeros(8, np.float32), "bc"),
                numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "wg"),
                numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bg")]
        nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
                 helper.make_node("Flatten", ["g"], ["f"]),
                 helper.make_node("Gemm", ["f", "wg", "bg"], ["l"], transB=1),
                 helper.make_node("Softmax", ["l"], ["probs"], axis=1)]
        graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                                  [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])], init)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, f"{out}/tiny{seed}.onnx")
        session = ort.InferenceSession(f"{out}/tiny{seed}.onnx", providers=["CPUExecutionProvider"])
        for name, x in inputs.items():
            np.save(f"{out}/expected{seed}-{name}.npy", session.run(None, {"x": x})[0])
    """#

  private static func mesh(cacheSize: Int) -> String {
    """
    {
      "services": [
        { "name": "registry", "listen": ["unix:registry.sock", "tcp://127.0.0.1:0"] },
        { "name": "inference", "listen": ["unix:inference.sock", "tcp://127.0.0.1:0"], "cache_size": \(cacheSize),
          "models": ["tiny@production"] }
      ]
    }
    """
  }

  private struct Mesh {
    let up: ServerProcess
    let data: TemporaryDirectory
    let shoal: String

    func run(_ arguments: String..., environment: [String: String] = [:]) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path], environment: environment)
    }

    var location: RegistryLocation { try! RegistryLocation(data: data.url.path, environment: [:]) }

    /// The inference service's client over its Unix socket (the mesh's administrator).
    func inference() throws -> (InferenceV1.Inference.Client, RPCClient) {
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:inference.sock", relativeTo: data.url.path))
      return (InferenceV1.Inference.Client(rpc), rpc)
    }

    func file(_ name: String) -> String { data.path(name) }
  }

  /// `shoal up` on a mesh whose inference loads `tiny@production` at start, with the models made.
  private func withMesh(cacheSize: Int = 1 << 30, _ body: (Mesh) async throws -> Void) async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeModels, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    try Data(Self.mesh(cacheSize: cacheSize).utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up")
    _ = try await up.waitForLines(containing: "registered inference", count: 2)
    let mesh = Mesh(up: up, data: data, shoal: shoal)
    do {
      try await body(mesh)
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }

  static func predictRequest(_ model: String, _ file: String) throws -> InferenceV1.PredictRequest {
    var request = InferenceV1.PredictRequest()
    request.model = model
    request.inputs = [InferenceV1.InferTensor(name: "x", tensor: try Tensor(npyFile: file))]
    return request
  }

  static func largestDifference(_ response: InferenceV1.PredictResponse, _ expected: String) throws -> Float {
    let output = try #require(response.outputs.first { $0.name == "probs" })
    let expected = try Tensor(npyFile: expected)
    let got = output.rawContents.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    #expect(output.shape == expected.shape.map { Int64($0) } && output.datatype == "FP32")
    return zip(got, expected.elements(as: Float.self)).map { abs($0 - $1) }.max() ?? .infinity
  }

  @Test func loadPredictSwapUnloadAndAccess() async throws {
    try await withMesh { mesh in
      #expect(try await mesh.run("models", "create", "tiny", "--task", "classification").status == 0)
      let push = try await mesh.run(
        "models", "push", "tiny", mesh.file("tiny1.onnx"), "--alias", "production", "--class", "calm:#00ff00",
        "--class", "whale", "--class", "ship", "--class", "rain")
      #expect(push.status == 0, "\(push.stderrText)")
      #expect(try await mesh.run("models", "push", "tiny", mesh.file("tiny2.onnx")).status == 0)

      // The mesh file's model loads once it exists (the service tries again with backoff).
      let (client, rpc) = try mesh.inference()
      defer { Task { await rpc.close() } }
      _ = try await mesh.up.waitForLines(containing: "local/tiny@production: serving v1", seconds: 60)
      let health = try await mesh.run("health", "inference", "--service", "tiny@production")
      #expect(health.status == 0 && health.stdoutText.contains("SERVING"), "\(health.stdoutText)\(health.stderrText)")

      // Predict equals onnxruntime, batch of one and of three, and names the version.
      let one = try await client.predict(try Self.predictRequest("tiny@production", mesh.file("one.npy")))
      #expect(one.model == "local/tiny" && one.modelVersion == "1")
      #expect(try Self.largestDifference(one, mesh.file("expected1-one.npy")) <= 1e-5)
      var three = try Self.predictRequest("tiny@production", mesh.file("three.npy"))
      three.topK = 2
      three.id = "req-3"
      let answered = try await client.predict(three)
      #expect(try Self.largestDifference(answered, mesh.file("expected1-three.npy")) <= 1e-5)
      #expect(answered.id == "req-3" && answered.topClasses.count == 3)
      #expect(answered.topClasses.allSatisfy { $0.classes.count == 2 && $0.classes[0].score >= $0.classes[1].score })
      let names = Set(answered.topClasses.flatMap { $0.classes.map(\.name) })
      #expect(names.isSubset(of: ["calm", "whale", "ship", "rain"]), "\(names)")

      // The CLI: status, predict with --out, metrics.
      let status = try await mesh.run("inference", "status")
      #expect(status.stdoutText.contains("local/tiny@production") && status.stdoutText.contains("AVAILABLE"))
      let predicted = try await mesh.run(
        "predict", "tiny@production", "--input", "x=\(mesh.file("three.npy"))", "--top", "1", "--out", mesh.file("out"))
      #expect(predicted.status == 0 && predicted.stdoutText.contains("row 2:"), "\(predicted.stderrText)")
      let written = try Tensor(npyFile: mesh.file("out/probs.npy"))
      let expected = try Tensor(npyFile: mesh.file("expected1-three.npy"))
      #expect(
        zip(written.elements(as: Float.self), expected.elements(as: Float.self)).allSatisfy { abs($0 - $1) <= 1e-5 })
      let metrics = try await mesh.run("metrics", "inference", "--prefix", "shoal_inference_requests_total")
      #expect(
        metrics.stdoutText.contains(#"shoal_inference_requests_total{model="local/tiny",outcome="ok",version="1"}"#))

      // Bad input is refused, naming what was wrong.
      await Self.expectError(.notFound, "local/nothing@production") {
        _ = try await client.predict(try Self.predictRequest("nothing@production", mesh.file("one.npy")))
      }
      var renamed = try Self.predictRequest("tiny@production", mesh.file("one.npy"))
      renamed.inputs[0].name = "image"
      await Self.expectError(.invalidArgument, "input 'image' is not an input") {
        _ = try await client.predict(renamed)
      }
      var cut = try Self.predictRequest("tiny@production", mesh.file("one.npy"))
      cut.inputs[0].rawContents.removeLast()
      await Self.expectError(.invalidArgument, "raw_contents holds 3071 bytes") { _ = try await client.predict(cut) }
      var wrongType = cut
      wrongType.inputs[0].datatype = "INT64"
      await Self.expectError(.invalidArgument, "expects FP32, got INT64") { _ = try await client.predict(wrongType) }

      // The alias moves while load-inference runs: no call fails, and v2 answers after.
      let load = Task {
        try await mesh.run(
          "load-inference", "tiny@production", "--input", "x=\(mesh.file("one.npy"))", "--concurrency", "2",
          "--duration", "3", "--warmup", "0.2")
      }
      try await Task.sleep(for: .seconds(1.5))
      #expect(try await mesh.run("models", "alias", "tiny", "production", "2").status == 0)
      let loadResult = try await load.value
      let line = loadResult.stdoutText
      #expect(
        line.contains("errors=0") && line.contains("v1:") && line.contains("v2:"), "\(line)\(loadResult.stderrText)")
      let after = try await client.predict(try Self.predictRequest("tiny@production", mesh.file("one.npy")))
      #expect(after.modelVersion == "2")
      #expect(try Self.largestDifference(after, mesh.file("expected2-one.npy")) <= 1e-5)

      // Queue limit and a deadline in the queue, on a pinned version whose batches wait 5 s (long
      // enough that the calls after the first reach the queue before it flushes, under the full
      // suite's load too: with 2 s, a call started late was once answered with the batch).
      // (v1's series count what production's v1 ran too: batches of 3 or 4 rows are counted here.)
      let threeOrFourBefore = try await Self.batchesOfThreeOrFour(mesh)
      var pinned = InferenceV1.LoadModelRequest()
      pinned.model = "tiny/1"
      var batching = InferenceV1.BatchingConfig()
      batching.maxBatch = .maxBatchSize(64)
      batching.maxDelay = .maxQueueDelayUs(5_000_000)
      batching.maxQueue = .maxQueueSize(2)
      pinned.config = InferenceV1.ModelConfig()
      pinned.config!.batching = batching
      #expect(try await client.loadModel(pinned).version == 1)
      let waiting = Task { try await client.predict(try Self.predictRequest("tiny/1", mesh.file("one.npy"))) }
      try await Task.sleep(for: .milliseconds(200))
      await Self.expectError(.deadlineExceeded, "") {
        _ = try await client.predict(
          try Self.predictRequest("tiny/1", mesh.file("one.npy")), options: CallOptions(timeout: .milliseconds(300)))
      }
      let second = Task { try await client.predict(try Self.predictRequest("tiny/1", mesh.file("three.npy"))) }
      try await Task.sleep(for: .milliseconds(200))
      await Self.expectError(.resourceExhausted, "max_queue_size") {
        _ = try await client.predict(try Self.predictRequest("tiny/1", mesh.file("one.npy")))
      }
      // The two waiting requests run together, and each gets its own rows.
      #expect(try Self.largestDifference(try await waiting.value, mesh.file("expected1-one.npy")) <= 1e-5)
      #expect(try Self.largestDifference(try await second.value, mesh.file("expected1-three.npy")) <= 1e-5)
      #expect(try await Self.batchesOfThreeOrFour(mesh) == threeOrFourBefore + 1)

      // Unloading while calls wait in the queue: they finish, then the model is gone.
      let inFlight = (0..<2).map { _ in
        Task { try await client.predict(try Self.predictRequest("tiny/1", mesh.file("one.npy"))) }
      }
      try await Task.sleep(for: .milliseconds(200))
      var unload = InferenceV1.UnloadModelRequest()
      unload.model = "tiny/1"
      _ = try await client.unloadModel(unload)
      for call in inFlight { #expect(try await call.value.modelVersion == "1") }
      await Self.expectError(.notFound, "local/tiny/1 is not loaded") {
        _ = try await client.predict(try Self.predictRequest("tiny/1", mesh.file("one.npy")))
      }

      // Over TCP, a token of another organisation sees neither the model nor its predictions.
      #expect(try await mesh.run("admin", "org", "create", "acme").status == 0)
      let token = try await mesh.run("admin", "token", "create", "--org", "acme", "--role", "writer", "--name", "ana")
      let tcp = try #require(
        try await Self.tcpAddress(of: "inference", mesh), "inference registered no TCP address")
      var config = RPCClient.Config.defaults
      config.interceptors = [
        BearerTokenInterceptor(token: token.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
      ]
      let outsider = RPCClient(address: tcp, config: config)
      defer { Task { await outsider.close() } }
      let theirs = InferenceV1.Inference.Client(outsider)
      await Self.expectError(.notFound, "model 'tiny' not found in organisation 'local'") {
        _ = try await theirs.predict(try Self.predictRequest("local/tiny@production", mesh.file("one.npy")))
      }
      var steal = InferenceV1.LoadModelRequest()
      steal.model = "local/tiny@production"
      await Self.expectError(.notFound, "model 'tiny' not found in organisation 'local'") {
        _ = try await theirs.loadModel(steal)
      }
      #expect(try await theirs.modelStatus(InferenceV1.ModelStatusRequest()).models.isEmpty)
    }
  }

  /// A version's file stays cached while it is loaded; past the cache's limit the least recently
  /// used unloaded file goes first. After `kill -9` under load, the mesh file's model is loaded
  /// again from the cache and no call failed.
  @Test func cacheEvictionAndReloadAfterKill() async throws {
    // Room for two of the tiny models' files (1.4 KB each), not three.
    try await withMesh(cacheSize: 3200) { mesh in
      #expect(try await mesh.run("models", "create", "tiny").status == 0)
      for seed in 1...3 {
        let push = try await mesh.run("models", "push", "tiny", mesh.file("tiny\(seed).onnx"), "--json")
        #expect(push.status == 0, "\(push.stderrText)")
      }
      #expect(try await mesh.run("models", "alias", "tiny", "production", "3").status == 0)
      _ = try await mesh.up.waitForLines(containing: "local/tiny@production: serving v3", seconds: 60)
      let (client, rpc) = try mesh.inference()
      defer { Task { await rpc.close() } }
      func digest(_ version: Int) async throws -> String {
        var request = RegistryV1.GetVersionRequest()
        request.model = "tiny"
        request.version = Int64(version)
        let rpc = RPCClient(address: mesh.location.registry)
        defer { Task { await rpc.close() } }
        let artifact = try await RegistryV1.ModelRegistry.Client(rpc).getVersion(request).artifact
        return String(artifact.dropFirst("blob:sha256:".count))
      }
      func cached(_ version: Int) async throws -> Bool {
        let hex = try await digest(version)
        return FileManager.default.fileExists(atPath: mesh.file("inference-cache/sha256/\(hex.prefix(2))/\(hex)"))
      }
      for version in [1, 2] {
        var load = InferenceV1.LoadModelRequest()
        load.model = "tiny/\(version)"
        #expect(try await client.loadModel(load).state == .available)
        var unload = InferenceV1.UnloadModelRequest()
        unload.model = "tiny/\(version)"
        _ = try await client.unloadModel(unload)
      }
      // v3 is loaded and v2 the most recently used: v1 went.
      let kept = [try await cached(1), try await cached(2), try await cached(3)]
      #expect(kept == [false, true, true])

      // kill -9 under load: shoal up restarts inference, which loads tiny@production again, from
      // the cache, and the load's calls (idempotent, tried again while the service is away) all
      // go through.
      let load = Task {
        try await mesh.run(
          "load-inference", "tiny@production", "--input", "x=\(mesh.file("one.npy"))", "--concurrency", "2",
          "--duration", "8", "--warmup", "0")
      }
      try await Task.sleep(for: .seconds(1.5))
      let status = try await mesh.run("status", "--json")
      let pid = try #require(Self.pid(of: "inference", inStatus: status.stdoutText), "\(status.stdoutText)")
      kill(pid, SIGKILL)
      _ = try await mesh.up.waitForLines(containing: "local/tiny@production: loaded v3", count: 2, seconds: 60)
      let loaded = try await load.value
      #expect(
        loaded.stdoutText.contains("errors=0") && loaded.stdoutText.contains("v3:"),
        "\(loaded.stdoutText)\(loaded.stderrText)")
      #expect(mesh.up.text.contains("local/tiny@production: loaded v3 (1") && mesh.up.text.contains("cached)"))
      var answer: InferenceV1.PredictResponse?
      for _ in 0..<100 where answer == nil {
        answer = try? await client.predict(
          try Self.predictRequest("tiny@production", mesh.file("one.npy")), options: CallOptions(timeout: .seconds(5)))
        if answer == nil { try await Task.sleep(for: .milliseconds(100)) }
      }
      let answered = try #require(answer)
      #expect(answered.modelVersion == "3")
      #expect(try Self.largestDifference(answered, mesh.file("expected3-one.npy")) <= 1e-5)
    }
  }

  /// A PNG and a JPEG tile (32 × 24, resized to the model's 16 × 16) and what onnxruntime answers
  /// for them after Pillow's decoding and bilinear resize and the version's mean and std.
  static let makeImages = #"""
    import sys, numpy as np, onnxruntime as ort
    from PIL import Image
    out = sys.argv[1]
    yy, xx = np.mgrid[0:24, 0:32]
    tile = np.stack([(xx * 8) % 256, (yy * 10) % 256, ((xx * yy) * 3) % 256], -1).astype(np.uint8)
    Image.fromarray(tile, "RGB").save(f"{out}/tile.png")
    Image.fromarray(tile, "RGB").save(f"{out}/tile.jpg", quality=92)
    session = ort.InferenceSession(f"{out}/tiny1.onnx", providers=["CPUExecutionProvider"])
    mean, std = np.array([0.5, 0.4, 0.3], np.float32), np.array([0.25, 0.5, 1.0], np.float32)
    for name in ("tile.png", "tile.jpg"):
        image = np.asarray(Image.open(f"{out}/{name}").convert("RGB").resize((16, 16), Image.BILINEAR), np.float32)
        x = ((image / 255 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        np.save(f"{out}/expected-{name}.npy", session.run(None, {"x": x})[0])
    """#

  @Test func imageInputsMetadataStreamsAndWatches() async throws {
    try await withMesh { mesh in
      let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeImages, mesh.data.url.path])
      try #require(made.status == 0, "\(made.stderrText)")
      #expect(try await mesh.run("models", "create", "tiny").status == 0)
      let push = try await mesh.run(
        "models", "push", "tiny", mesh.file("tiny1.onnx"), "--alias", "production", "--tile-size", "16", "--mean",
        "0.5,0.4,0.3", "--std", "0.25,0.5,1")
      #expect(push.status == 0, "\(push.stderrText)")
      _ = try await mesh.up.waitForLines(containing: "local/tiny@production: serving v1", seconds: 60)
      let (client, rpc) = try mesh.inference()
      defer { Task { await rpc.close() } }
      for (name, tolerance) in [("tile.png", Float(1e-5)), ("tile.jpg", Float(2e-3))] {
        var request = InferenceV1.PredictRequest()
        request.model = "tiny@production"
        request.inputs = [
          InferenceV1.InferTensor(
            name: "x", files: [try [UInt8](Data(contentsOf: URL(fileURLWithPath: mesh.file(name))))])
        ]
        let answer = try await client.predict(request)
        #expect(try Self.largestDifference(answer, mesh.file("expected-\(name).npy")) <= tolerance, "\(name)")
      }
      let cli = try await mesh.run(
        "predict", "tiny@production", "--image", mesh.file("tile.png"), "--image", mesh.file("tile.jpg"))
      #expect(cli.status == 0 && cli.stdoutText.contains("probs FP32 [2, 4]"), "\(cli.stdoutText)\(cli.stderrText)")

      var corrupt = InferenceV1.PredictRequest()
      corrupt.model = "tiny@production"
      let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: mesh.file("tile.png"))))
      corrupt.inputs = [InferenceV1.InferTensor(name: "x", files: [png, Array(png.prefix(60))])]
      await Self.expectError(.invalidArgument, "input 'x': image 1: PNG: ") { _ = try await client.predict(corrupt) }
      corrupt.inputs = [InferenceV1.InferTensor(name: "x", files: [Array("not an image".utf8)])]
      await Self.expectError(.invalidArgument, "not a PNG or JPEG") { _ = try await client.predict(corrupt) }

      // Metadata in OIP's terms, with the version's preprocessing.
      var metadataRequest = InferenceV1.ModelMetadataRequest()
      metadataRequest.model = "tiny@production"
      let metadata = try await client.modelMetadata(metadataRequest)
      #expect(metadata.name == "local/tiny" && metadata.platform == "onnx" && metadata.versions == ["1"])
      #expect(metadata.inputs.map(\.shape) == [[-1, 3, 16, 16]] && metadata.outputs.map(\.datatype) == ["FP32"])
      #expect(metadata.preprocessing?.tileSize == 16)

      // Many requests on one stream, answered by id; a bad one fails alone.
      let good = try Self.predictRequest("tiny@production", mesh.file("one.npy"))
      var bad = good
      bad.inputs[0].datatype = "INT8"
      let answers = try await client.predictStream { requests, responses in
        for (index, request) in [good, bad, good].enumerated() {
          var request = request
          request.id = "r\(index)"
          try await requests.send(request)
        }
        requests.close()
        var answers: [String: InferenceV1.PredictStreamResponse] = [:]
        for try await answer in responses { answers[answer.id] = answer }
        return answers
      }
      #expect(Set(answers.keys) == ["r0", "r1", "r2"])
      #expect(answers["r0"]?.response?.modelVersion == "1" && answers["r2"]?.errorCode == 0)
      #expect(answers["r1"]?.errorCode == 3 && answers["r1"]?.errorMessage.contains("INT8") == true)

      // WatchModels: the current models, then a load's LOADING and AVAILABLE.
      let events = Task {
        var options = CallOptions()
        options.timeout = .seconds(30)
        return try await client.watchModels(InferenceV1.WatchModelsRequest(), options: options) { stream in
          var seen: [String] = []
          for try await event in stream {
            seen.append("\(event.model?.reference ?? "") \(event.model?.state.protoName ?? "")")
            if seen.contains("local/tiny/1 AVAILABLE") { break }
          }
          return seen
        }
      }
      try await Task.sleep(for: .milliseconds(300))
      var load = InferenceV1.LoadModelRequest()
      load.model = "tiny/1"
      _ = try await client.loadModel(load)
      let seen = try await events.value
      #expect(seen.first == "local/tiny@production AVAILABLE", "\(seen)")
      #expect(seen.suffix(2) == ["local/tiny/1 LOADING", "local/tiny/1 AVAILABLE"], "\(seen)")
    }
  }

  /// Executions of v1 with 3 or 4 rows so far, from `shoal metrics`.
  private static func batchesOfThreeOrFour(_ mesh: Mesh) async throws -> Int {
    let text = try await mesh.run("metrics", "inference", "--prefix", "shoal_inference_batch_size").stdoutText
    func bucket(_ bound: String) -> Int {
      let prefix = #"shoal_inference_batch_size_bucket{model="local/tiny",version="1",le="\#(bound)"} "#
      return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
    }
    return bucket("4") - bucket("2")
  }

  /// Rollouts on `tiny@production`: a canary split that is the same for a request id every time,
  /// a rollback asked for, a shadow that compares without answering, a candidate too slow for its
  /// p99 limit rolled back by itself (and the webhook told), and a canary promoted after its
  /// period, the alias moved in the registry and the host following it.
  @Test func canaryShadowRollbackAndPromotion() async throws {
    try await withMesh { mesh in
      #expect(try await mesh.run("models", "create", "tiny", "--task", "classification").status == 0)
      #expect(
        try await mesh.run("models", "push", "tiny", mesh.file("tiny1.onnx"), "--alias", "production").status == 0)
      #expect(try await mesh.run("models", "push", "tiny", mesh.file("tiny2.onnx")).status == 0)
      _ = try await mesh.up.waitForLines(containing: "local/tiny@production: serving v1", seconds: 60)
      let (client, rpc) = try mesh.inference()
      defer { Task { await rpc.close() } }
      let hook = try await TestHTTPServer { _ in .init(status: 200) }
      defer { Task { await hook.close() } }
      func versions(_ ids: Range<Int>) async throws -> [String] {
        var answers: [String] = []
        for index in ids {
          var request = try Self.predictRequest("tiny@production", mesh.file("one.npy"))
          request.id = "request-\(index)"
          answers.append(try await client.predict(request).modelVersion)
        }
        return answers
      }

      // A 30% canary: each request id always goes to the same side.
      let started = try await mesh.run(
        "rollout", "start", "tiny@production", "--candidate", "tiny/2", "--canary", "30", "--min-requests", "1000")
      #expect(
        started.status == 0 && started.stdoutText.contains("ACTIVE canary of local/tiny/2"), "\(started.stderrText)")
      let first = try await versions(0..<200)
      let toCandidate = first.filter { $0 == "2" }.count
      #expect((30...90).contains(toCandidate), "\(toCandidate) of 200 to the candidate")
      #expect(try await versions(0..<200) == first)
      var status = try InferenceV1.Rollout(
        jsonString: try await mesh.run("rollout", "status", "tiny@production", "--json").stdoutText)
      #expect(status.candidateArm?.totalRequests == Int64(2 * toCandidate))
      let back = try await mesh.run("rollout", "rollback", "tiny@production")
      #expect(back.status == 0 && back.stdoutText.contains("ROLLED_BACK"), "\(back.stderrText)")
      #expect(try await versions(0..<50).allSatisfy { $0 == "1" })

      // Shadow: production answers everything; the candidate's copies are compared.
      #expect(
        try await mesh.run(
          "rollout", "start", "tiny@production", "--candidate", "tiny/2", "--shadow", "--min-requests", "1000"
        )
        .status == 0)
      #expect(try await versions(0..<30).allSatisfy { $0 == "1" })
      for _ in 0..<100 {
        status = try InferenceV1.Rollout(
          jsonString: try await mesh.run("rollout", "status", "tiny@production", "--json").stdoutText)
        if status.compared == 30 { break }
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(status.compared == 30 && status.candidateArm?.totalRequests == 30 && (0...1).contains(status.agreement))
      _ = try await mesh.run("rollout", "rollback", "tiny@production")

      // A candidate slower than its p99 limit goes back by itself, and the webhook hears of it.
      let slow = try await mesh.run(
        "rollout", "start", "tiny@production", "--candidate", "tiny/2", "--canary", "100", "--max-p99-ms", "0.001",
        "--min-requests", "5", "--webhook", "\(hook.base)/rollout")
      #expect(slow.status == 0, "\(slow.stderrText)")
      let answered = try await versions(0..<20)
      #expect(
        answered.prefix(5).allSatisfy { $0 == "2" } && answered.suffix(10).allSatisfy { $0 == "1" }, "\(answered)")
      status = try InferenceV1.Rollout(
        jsonString: try await mesh.run("rollout", "status", "tiny@production", "--json").stdoutText)
      #expect(status.state == .rolledBack && status.events.last?.what.contains("p99") == true, "\(status.events)")
      for _ in 0..<50 where hook.requests.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
      let told = try #require(hook.requests.first)
      #expect(told.method == "POST" && String(decoding: told.body, as: UTF8.self).contains("ROLLED_BACK"))

      // A canary promoted after its period: the alias moves, and the host follows it.
      let promoted = try await mesh.run(
        "rollout", "start", "tiny@production", "--candidate", "tiny/2", "--canary", "50", "--min-requests", "3",
        "--promote-after", "1")
      #expect(promoted.status == 0, "\(promoted.stderrText)")
      _ = try await versions(0..<20)
      for _ in 0..<100 {
        status = try InferenceV1.Rollout(
          jsonString: try await mesh.run("rollout", "status", "tiny@production", "--json").stdoutText)
        if status.state == .promoted { break }
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(status.state == .promoted, "\(status)")
      let alias = try await mesh.run("models", "show", "tiny@production", "--json")
      #expect(try RegistryV1.ModelVersion(jsonString: alias.stdoutText).version == 2)
      let previous = try await mesh.run("models", "show", "tiny@previous-production", "--json")
      #expect(try RegistryV1.ModelVersion(jsonString: previous.stdoutText).version == 1)
      _ = try await mesh.up.waitForLines(containing: "local/tiny@production: serving v2", seconds: 30)
      #expect(try await versions(0..<10).allSatisfy { $0 == "2" })
      await Self.expectError(.invalidArgument, "roll out on an alias") {
        var request = InferenceV1.StartRolloutRequest()
        request.model = "tiny/1"
        request.candidate = "tiny/2"
        _ = try await client.startRollout(request)
      }
    }
  }

  /// Drift: a version pushed with a sample of its training inputs as its reference; calls like
  /// them stay quiet, and shifted ones raise an alert (the log, `shoal drift`, the webhook).
  @Test func shiftedInputsRaiseADriftAlert() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeModels, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    let hook = try await TestHTTPServer { _ in .init(status: 200) }
    defer { Task { await hook.close() } }
    try Data(
      #"""
      { "services": [ { "name": "registry" },
        { "name": "inference", "models": ["tiny@production"], "drift_webhook": "\#(hook.base)/drift" } ] }
      """#.utf8
    ).write(to: data.url.appendingPathComponent("mesh.json"))
    var random = SplitMix64(seed: 3)
    func batch(_ rows: Int, shift: Float) -> Tensor {
      Tensor(
        shape: [rows, 3, 16, 16],
        elements: (0..<(rows * 768)).map { _ in
          // Sums of uniforms: roughly normal.
          (0..<4).map { _ in Float.random(in: -1...1, using: &random) }.reduce(0, +) * 0.87 + shift
        })
    }
    try batch(200, shift: 0).writeNpy(to: data.path("training.npy"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    do {
      _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
      #expect(try await run("models", "create", "tiny", "--task", "classification").status == 0)
      let pushed = try await run(
        "models", "push", "tiny", data.path("tiny1.onnx"), "--alias", "production", "--drift-reference",
        data.path("training.npy"))
      #expect(pushed.status == 0, "\(pushed.stderrText)")
      _ = try await up.waitForLines(containing: "local/tiny@production: serving v1", seconds: 60)
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:inference.sock", relativeTo: data.url.path))
      defer { Task { await rpc.close() } }
      let client = InferenceV1.Inference.Client(rpc)
      func predict(_ tensor: Tensor) async throws {
        var request = InferenceV1.PredictRequest()
        request.model = "tiny@production"
        request.inputs = [InferenceV1.InferTensor(name: "x", tensor: tensor)]
        _ = try await client.predict(request)
      }
      func report() async throws -> InferenceV1.DriftReport {
        try InferenceV1.DriftReport(jsonString: try await run("drift", "tiny@production", "--json").stdoutText)
      }
      for _ in 0..<15 { try await predict(batch(10, shift: 0)) }
      var drift = try await report()
      #expect(drift.hasReference && drift.rows == 150 && drift.features.count == 5, "\(drift)")
      #expect(drift.features.allSatisfy { !$0.alert && $0.psi < 0.1 }, "\(drift.features.map { ($0.name, $0.psi) })")

      for _ in 0..<15 { try await predict(batch(10, shift: 1.5)) }
      drift = try await report()
      let inputs = drift.features.filter { $0.name.hasPrefix("input x") }
      #expect(
        inputs.count == 3 && inputs.allSatisfy { $0.alert && $0.psi > 0.25 }, "\(inputs.map { ($0.name, $0.psi) })")
      #expect(inputs.allSatisfy { abs($0.observedMean - 0.75) < 0.1 && abs($0.expectedMean) < 0.05 })
      _ = try await up.waitForLines(containing: "drift in input x channel 0", seconds: 10)
      let shown = try await run("drift", "tiny@production")
      #expect(shown.stdoutText.contains("ALERT"), "\(shown.stdoutText)")
      for _ in 0..<50 where hook.requests.count < 3 { try await Task.sleep(for: .milliseconds(100)) }
      let alerts = hook.requests.filter { $0.path == "/drift" && $0.method == "POST" }
      #expect(alerts.count >= 3, "\(alerts.count) drift posts")
      #expect(alerts.contains { String(decoding: $0.body, as: UTF8.self).contains("input x channel 1") })
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }

  static func expectError(
    _ code: RpcV1.StatusCode, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
  ) async {
    do {
      try await body()
      Issue.record("expected \(code) (\(fragment)), got an answer", sourceLocation: sourceLocation)
    } catch let error as RPCError {
      #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
      #expect(fragment.isEmpty || error.message.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    } catch {
      Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
    }
  }

  private static func tcpAddress(of service: String, _ mesh: Mesh) async throws -> RPCAddress? {
    let client = ShoalClient(location: mesh.location)
    defer { Task { await client.close() } }
    var request = RegistryV1.ResolveRequest()
    request.service = service
    let instances = try await client.directory.resolve(request).instances
    return try instances.first { $0.address.hasPrefix("tcp://") }.map { try RPCAddress(parsing: $0.address) }
  }

  private static func pid(of service: String, inStatus json: String) -> Int32? {
    guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
    let services = (object["services"] as? [[String: Any]]) ?? []
    return (services.first { $0["name"] as? String == service }?["pid"] as? Int).map { Int32($0) }
  }
}
