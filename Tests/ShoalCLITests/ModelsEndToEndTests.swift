import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// `shoal models` and `shoal admin` against a registry started by `shoal up`, as real processes:
/// the README's first five minutes, then a token over TCP.
struct ModelsEndToEndTests {
  private static let mesh = """
    { "services": [ { "name": "registry", "listen": ["unix:registry.sock", "tcp://127.0.0.1:0"] } ] }
    """

  @Test func pushPullAliasAndTokens() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up")
    _ = try await up.waitForLines(containing: "registered registry", count: 2)
    func run(_ arguments: String..., environment: [String: String] = [:]) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path], environment: environment)
    }

    let first = TestOnnx.relu(features: 3)
    let second = TestOnnx.relu(features: 5)
    try Data(first).write(to: data.url.appendingPathComponent("first.onnx"))
    try Data(second).write(to: data.url.appendingPathComponent("second.onnx"))

    let create = try await run("models", "create", "roads", "--task", "segmentation", "--description", "Roads")
    #expect(create.status == 0, "\(create.stderrText)")
    let push1 = try await run(
      "models", "push", "roads", data.path("first.onnx"), "--alias", "production", "--semver", "1.0.0", "--class",
      "road:#FF8800", "--class", "background", "--tile-size", "256", "--channel-order", "rgb", "--mean",
      "0.5,0.25,0.125")
    #expect(push1.status == 0 && push1.stdoutText.contains("v1") && push1.stdoutText.contains("production → v1"))
    let push2 = try await run("models", "push", "roads", data.path("second.onnx"), "--json")
    let pushed = try RegistryV1.ModelVersion(jsonString: push2.stdoutText)
    #expect(pushed.version == 2 && pushed.signature?.inputs.first?.shape == [-1, 5])
    let alias = try await run("models", "alias", "roads", "production", "2")
    #expect(alias.stdoutText.contains("roads production: v1 → v2"), "\(alias.stdoutText)\(alias.stderrText)")

    let history = try RegistryV1.AliasHistoryResponse(
      jsonString: try await run("models", "history", "roads", "production", "--json").stdoutText)
    #expect(history.moves.map(\.version) == [1, 2] && history.moves.allSatisfy { $0.movedBy == "local@local" })
    #expect(
      try await run("models", "create", "rivers", "--task", "detection", "--public", "--tag", "area=coast").status == 0)
    let search = try await run("models", "search", "r", "--task", "detection", "--tag", "area=coast")
    #expect(
      search.stdoutText.contains("local/rivers") && !search.stdoutText.contains("local/roads"), "\(search.stdoutText)")
    let versions = try await run("models", "versions", "roads")
    #expect(versions.stdoutText.split(separator: "\n").count == 3, "\(versions.stdoutText)")
    let show = try await run("models", "show", "roads@production")
    #expect(show.stdoutText.contains("local/roads v2") && show.stdoutText.contains("x float[batch, 5]"))

    let shown1 = try await run("models", "show", "roads/1")
    #expect(shown1.stdoutText.contains("classes      road #ff8800, background"), "\(shown1.stdoutText)")
    #expect(shown1.stdoutText.contains("tile 256, RGB, mean [0.5, 0.25, 0.125]"), "\(shown1.stdoutText)")
    let pull = try await run("models", "pull", "roads@production", "--out", data.path("pulled.onnx"))
    #expect(pull.status == 0, "\(pull.stderrText)")
    #expect(try [UInt8](Data(contentsOf: data.url.appendingPathComponent("pulled.onnx"))) == second)
    let pullOld = try await run("models", "pull", "roads/1", "--out", data.path("old.onnx"))
    #expect(pullOld.status == 0)
    #expect(try [UInt8](Data(contentsOf: data.url.appendingPathComponent("old.onnx"))) == first)

    let missing = try await run("models", "pull", "roads@staging", "--out", data.path("x.onnx"))
    #expect(missing.status == 1 && missing.stderrText.contains("no version with alias 'staging'"))
    let reserved = try await run("models", "alias", "roads", "latest", "1")
    #expect(reserved.status == 1 && reserved.stderrText.contains("INVALID_ARGUMENT"))
    try Data("not onnx".utf8).write(to: data.url.appendingPathComponent("bad.onnx"))
    let bad = try await run("models", "push", "roads", data.path("bad.onnx"))
    #expect(bad.status == 1 && bad.stderrText.contains("not an ONNX model"), "\(bad.stderrText)")

    // An organisation and a reader's token; over TCP the token is required and private models
    // of other organisations stay invisible.
    #expect(try await run("admin", "org", "create", "acme").status == 0)
    let tokenRun = try await run("admin", "token", "create", "--org", "acme", "--role", "reader", "--name", "ana")
    let token = tokenRun.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(token.hasPrefix("shoal_"), "\(tokenRun.stderrText)")
    let client = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
    var resolve = RegistryV1.ResolveRequest()
    resolve.service = "registry"
    let tcp = try await client.directory.resolve(resolve).instances.map(\.address).first { $0.hasPrefix("tcp://") }
    await client.close()
    let tcpAddress = try #require(tcp)
    let anonymous = try await run("models", "list", "--registry", tcpAddress)
    #expect(anonymous.status == 1 && anonymous.stderrText.contains("UNAUTHENTICATED"), "\(anonymous.stderrText)")
    let whoami = try await run("admin", "whoami", "--registry", tcpAddress, environment: ["SHOAL_TOKEN": token])
    #expect(whoami.stdoutText.contains("ana@acme (reader)"), "\(whoami.stderrText)")
    let listed = try await run("models", "list", "--registry", tcpAddress, environment: ["SHOAL_TOKEN": token])
    #expect(listed.status == 0 && !listed.stdoutText.contains("roads"), "\(listed.stdoutText)")
    let refused = try await run("models", "create", "x", "--registry", tcpAddress, environment: ["SHOAL_TOKEN": token])
    #expect(refused.status == 1 && refused.stderrText.contains("PERMISSION_DENIED"), "\(refused.stderrText)")
    #expect(!up.text.contains(token), "a token appeared in the mesh's output")

    #expect(try await up.stop() == 0)
  }
}
