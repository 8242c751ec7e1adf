import Foundation
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// The gateway under `shoal up`, driven by the peers' own clients: the real `mlflow` package and
/// `tritonclient.http` from PyPI, unchanged, and plain HTTP for tokens and bad input.
@Suite(.serialized)
struct GatewayEndToEndTests {
  private static let mesh = """
    {
      "services": [
        { "name": "registry" }, { "name": "tracking" }, { "name": "inference" },
        { "name": "gateway", "http": "127.0.0.1:0" }
      ]
    }
    """

  private struct Mesh {
    let up: ServerProcess
    let data: TemporaryDirectory
    let shoal: String
    let url: String

    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }

    /// A client of a service's own Unix socket in the data directory.
    func client(_ service: String) throws -> RPCClient {
      RPCClient(address: try RPCAddress(parsing: "unix:\(service).sock", relativeTo: data.url.path))
    }
  }

  private func withMesh(_ body: (Mesh) async throws -> Void) async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    let line = try await up.waitForLines(containing: "gateway http at ")[0]
    let url = String(line[line.range(of: "gateway http at ")!.upperBound...]).trimmingCharacters(in: .whitespaces)
    for service in ["tracking", "inference", "gateway"] {
      _ = try await up.waitForLines(containing: "registered \(service)")
    }
    let mesh = Mesh(up: up, data: data, shoal: shoal, url: url)
    do {
      try await body(mesh)
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }

  /// One HTTP request: the status and the body.
  private static func http(
    _ method: String, _ url: String, body: String? = nil, token: String? = nil
  ) async throws -> (Int, String) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    if let body { request.httpBody = Data(body.utf8) }
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
  }

  @Test func theMlflowClientRunsAUsersSessionUnchanged() async throws {
    try await withMesh { mesh in
      let folder = mesh.data.path("model")
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      try Data(TestOnnx.classifier()).write(to: URL(fileURLWithPath: "\(folder)/model.onnx"))
      try Data("flavors:\n  onnx:\n    data: model.onnx\n".utf8).write(to: URL(fileURLWithPath: "\(folder)/MLmodel"))
      let script = "\(TestEnvironment.repositoryRoot)/Tests/ShoalCLITests/Python/mlflow_session.py"
      let out = mesh.data.path("session.json")
      let session = try await Subprocess.run(
        try TestEnvironment.peersPython(), [script, folder, out],
        environment: ["MLFLOW_TRACKING_URI": mesh.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"])
      try #require(session.status == 0, "\(session.stdoutText)\(session.stderrText)\n\(mesh.up.text)")
      let ids = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: String]

      // What the client logged is in Shoal's own services, read back over RPC.
      let trackingRPC = try mesh.client("tracking")
      let registryRPC = try mesh.client("registry")
      defer {
        Task {
          await trackingRPC.close()
          await registryRPC.close()
        }
      }
      let tracking = TrackingV1.Tracking.Client(trackingRPC)
      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [ids["run_id"]!, ids["second_run_id"]!]
      history.key = "loss"
      let series = try await tracking.getMetricHistory(history).series
      #expect(series.map(\.points.count) == [5, 100])
      var artifacts = TrackingV1.ListArtifactsRequest()
      artifacts.runId = ids["run_id"]!
      let files = try await tracking.listArtifacts(artifacts).artifacts.map(\.path)
      #expect(files == ["model/MLmodel", "model/model.onnx", "notes.txt", "reports/daily/notes.txt"])
      let models = RegistryV1.ModelRegistry.Client(registryRPC)
      var lookup = RegistryV1.GetVersionRequest()
      lookup.model = "road-classifier"
      lookup.alias = "champion"
      let version = try await models.getVersion(lookup)
      #expect(version.version == 1 && version.sourceRun == ids["run_id"]! && version.sourcePath == "model")
      #expect(version.signature?.inputs.first?.name == "x")
    }
  }

  @Test func tokensOrganisationsAndBadInput() async throws {
    try await withMesh { mesh in
      let api = "\(mesh.url)/api/2.0/mlflow"
      let (created, body) = try await Self.http("POST", "\(api)/experiments/create", body: #"{"name":"local-only"}"#)
      #expect(created == 200 && body.contains(#""experiment_id":"1""#), "\(body)")
      #expect(try await mesh.run("admin", "org", "create", "acme").status == 0)
      let made = try await mesh.run("admin", "token", "create", "--org", "acme", "--role", "writer", "--json")
      let token = try #require(
        (try JSONSerialization.jsonObject(with: Data(made.stdoutText.utf8)) as? [String: Any])?["token"] as? String)

      // A token of another organisation does not see the experiment: 404, as over RPC.
      let (hidden, hiddenBody) = try await Self.http("GET", "\(api)/experiments/get?experiment_id=1", token: token)
      #expect(hidden == 404 && hiddenBody.contains("RESOURCE_DOES_NOT_EXIST"), "\(hiddenBody)")
      let (own, _) = try await Self.http(
        "POST", "\(api)/experiments/create", body: #"{"name":"acme-roads"}"#, token: token)
      #expect(own == 200)
      let (listed, listedBody) = try await Self.http("POST", "\(api)/experiments/search", body: "{}", token: token)
      #expect(listed == 200 && listedBody.contains("acme-roads") && !listedBody.contains("local-only"), "\(listedBody)")
      let (bad, badBody) = try await Self.http("GET", "\(api)/experiments/get?experiment_id=1", token: "shoal_nope")
      #expect(bad == 401 && badBody.contains("UNAUTHENTICATED"), "\(badBody)")

      // A caller's mistakes are 4xx in MLflow's shape, naming the field.
      let (unknown, unknownBody) = try await Self.http("GET", "\(api)/nosuch")
      #expect(unknown == 404 && unknownBody.contains("ENDPOINT_NOT_FOUND"), "\(unknownBody)")
      let (missing, missingBody) = try await Self.http(
        "POST", "\(api)/runs/log-metric", body: #"{"run_id":"x","key":"a"}"#)
      #expect(missing == 400 && missingBody.contains("'value'"), "\(missingBody)")
      let (typed, typedBody) = try await Self.http(
        "POST", "\(api)/runs/log-batch", body: #"{"run_id":"x","metrics":[{"key":"a","value":[1],"timestamp":1}]}"#)
      #expect(typed == 400 && typedBody.contains("metrics[0].value"), "\(typedBody)")
      let (malformed, malformedBody) = try await Self.http("POST", "\(api)/experiments/create", body: "{nope")
      #expect(malformed == 400 && malformedBody.contains("BAD_REQUEST"), "\(malformedBody)")
      let (traversal, traversalBody) = try await Self.http(
        "GET", "\(mesh.url)/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/..%2F..%2Fsecret")
      #expect(traversal == 400 && traversalBody.contains("'..'"), "\(traversalBody)")
      let (oip, oipBody) = try await Self.http("POST", "\(mesh.url)/v2/models/nosuch/infer", body: "[]")
      #expect(oip == 400 && oipBody.contains(#""error""#), "\(oipBody)")

      // Every request is counted by route and status.
      let (_, metrics) = try await Self.http("GET", "\(mesh.url)/metrics")
      #expect(
        metrics.contains(#"shoal_gateway_requests_total{method="GET",route="unmatched",status="404"} 1"#), "\(metrics)")
      #expect(metrics.contains(#"route="/api/2.0/mlflow/experiments/create",status="200"} 2"#), "\(metrics)")
    }
  }

  /// A GlobalAveragePool over a 16 × 16 RGB input: the image's normalised channel means.
  private static func poolingModel() throws -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "pooling", opset: 13)
    graph.input("x", .float32, [.symbolic("batch"), .fixed(3), .fixed(16), .fixed(16)])
    graph.node("GlobalAveragePool", ["x"], ["pooled"])
    graph.node("Flatten", ["pooled"], ["y"])
    graph.output("y", .float32, [.symbolic("batch"), .fixed(3)])
    return try graph.bytes()
  }

  @Test func tritonclientInfersWithJSONAndBinaryTensors() async throws {
    try await withMesh { mesh in
      try Data(TestOnnx.classifier()).write(to: URL(fileURLWithPath: mesh.data.path("classifier.onnx")))
      try Data(try Self.poolingModel()).write(to: URL(fileURLWithPath: mesh.data.path("pooling.onnx")))
      for name in ["classifier", "pooling"] { #expect(try await mesh.run("models", "create", name).status == 0) }
      #expect(try await mesh.run("models", "push", "classifier", mesh.data.path("classifier.onnx")).status == 0)
      let pushed = try await mesh.run(
        "models", "push", "pooling", mesh.data.path("pooling.onnx"), "--tile-size", "16", "--mean", "0.5,0.4,0.3",
        "--std", "0.25,0.5,1")
      #expect(pushed.status == 0, "\(pushed.stderrText)")
      // A version pushed without a run downloads from the registry's own file.
      let artifacts = "\(mesh.url)/api/2.0/mlflow-artifacts/artifacts"
      let (listed, listing) = try await Self.http("GET", "\(artifacts)?path=_registry/local/classifier/1")
      #expect(listed == 200 && listing.contains(#""path":"model.onnx""#), "\(listing)")
      var download = URLRequest(url: URL(string: "\(artifacts)/_registry/local/classifier/1/model.onnx")!)
      download.httpMethod = "GET"
      let (file, _) = try await URLSession.shared.data(for: download)
      #expect([UInt8](file) == TestOnnx.classifier())
      for name in ["classifier", "pooling"] {
        let loaded = try await mesh.run("inference", "load", name)
        #expect(loaded.status == 0, "\(loaded.stderrText)")
      }
      // What the model core answers in-process is what tritonclient must get through the gateway.
      let x: [Float] = [0.5, -1, 0.25, 2, 1, 1, 1, 1, 0, 0, 0, 0]
      let model = try Model(onnx: TestOnnx.classifier())
      let probs = try model.run(["x": Tensor(shape: [3, 4], elements: x)])["probs"]!.elements(as: Float.self)
      let expected: [String: Any] = [
        "x": stride(from: 0, to: 12, by: 4).map { Array(x[$0..<$0 + 4]) },
        "probs": stride(from: 0, to: 9, by: 3).map { Array(probs[$0..<$0 + 3]) },
        "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.5, 1],
      ]
      try JSONSerialization.data(withJSONObject: expected).write(
        to: URL(fileURLWithPath: mesh.data.path("expected.json")))
      let script = "\(TestEnvironment.repositoryRoot)/Tests/ShoalCLITests/Python/triton_session.py"
      let host = String(mesh.url.dropFirst("http://".count))
      let session = try await Subprocess.run(
        try TestEnvironment.peersPython(), [script, host, mesh.data.path("expected.json")])
      #expect(session.status == 0, "\(session.stdoutText)\(session.stderrText)\n\(mesh.up.text)")
    }
  }
}
