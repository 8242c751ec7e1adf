import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// `shoal experiments` and `shoal runs` against tracking started by `shoal up`, as real processes.
struct TrackingEndToEndTests {
  private static let mesh = """
    { "services": [ { "name": "registry" }, { "name": "tracking" } ] }
    """

  @Test func experimentsRunsAndTheirMetrics() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up")
    _ = try await up.waitForLines(containing: "registered tracking")
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }

    let created = try await run("experiments", "create", "roads", "--tag", "team=maps")
    #expect(created.stdoutText.contains("created experiment 1 'roads' in organisation local"), "\(created.stderrText)")
    var runIDs: [String] = []
    for (name, lr) in [("small", "0.1"), ("large", "0.01")] {
      let made = try await run("runs", "create", "--experiment", "roads", "--name", name)
      let id = made.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
      #expect(id.count == 32, "\(made.stderrText)")
      runIDs.append(id)
      for step in 0..<3 {
        let loss = String(Double(3 - step) * (lr == "0.1" ? 1 : 0.5))
        let logged = try await run(
          "runs", "log", id, "--metric", "loss=\(loss)@\(step)", "--param", "lr=\(lr)", "--dataset",
          "tiles:training:sha256:ab")
        #expect(logged.status == 0, "\(logged.stderrText)")
      }
    }
    // A watcher sees new metrics and the end live, then stops by itself.
    let watcher = try ServerProcess(shoal, ["runs", "watch", runIDs[1], "--data", data.url.path])
    _ = try await watcher.waitForLines(containing: "run \(runIDs[1])")
    #expect(try await run("runs", "log", runIDs[1], "--metric", "loss=0.25@3").status == 0)
    _ = try await watcher.waitForLines(containing: "loss=0.25@3")
    #expect(try await run("runs", "end", runIDs[1], "--status", "killed").status == 0)
    _ = try await watcher.waitForLines(containing: "status killed")
    #expect(try await watcher.stop(signal: 0) == 0)

    let clash = try await run("runs", "log", runIDs[0], "--param", "lr=0.5")
    #expect(clash.status == 1 && clash.stderrText.contains("param 'lr' was logged as '0.1'"), "\(clash.stderrText)")
    #expect(try await run("runs", "end", runIDs[0]).stdoutText.contains("finished"))
    #expect(try await run("runs", "log", runIDs[0], "--tag", "draft=yes", "--tag", "owner=ana").status == 0)
    let untagged = try await run("runs", "log", runIDs[0], "--delete-tag", "draft")
    #expect(untagged.stdoutText.contains("removed 1 tag(s)"), "\(untagged.stderrText)")
    let retagged = try await run("experiments", "update", "roads", "--tag", "stage=dev", "--delete-tag", "team")
    #expect(retagged.status == 0, "\(retagged.stderrText)")

    let show = try await run("runs", "show", runIDs[0])
    #expect(show.stdoutText.contains("lr=0.1") && show.stdoutText.contains("loss=1.0@2"), "\(show.stdoutText)")
    #expect(show.stdoutText.contains("tiles (training)") && show.stdoutText.contains("status       finished"))
    #expect(show.stdoutText.contains("owner=ana") && !show.stdoutText.contains("draft"), "\(show.stdoutText)")
    let experiments = try await run("experiments", "list").stdoutText
    #expect(experiments.contains("stage=dev") && !experiments.contains("team=maps"), "\(experiments)")
    let filtered = try await run("experiments", "list", "--filter", "tags.stage = 'dev' AND name LIKE 'ro%'")
    #expect(filtered.stdoutText.contains("roads"), "\(filtered.stderrText)")
    let none = try await run("experiments", "list", "--filter", "tags.stage = 'prod'")
    #expect(none.status == 0 && !none.stdoutText.contains("roads"), "\(none.stdoutText)")

    let search = try await run(
      "runs", "search", "--experiment", "roads", "--filter", "metrics.loss < 0.8 AND datasets.context = 'training'")
    #expect(search.stdoutText.contains(runIDs[1]) && !search.stdoutText.contains(runIDs[0]), "\(search.stdoutText)")
    let malformed = try await run("runs", "search", "--filter", "metrics.loss <")
    #expect(malformed.status == 1 && malformed.stderrText.contains("at position 15"), "\(malformed.stderrText)")

    let plotted = try await run(
      "runs", "plot", runIDs[0], runIDs[1], "--metric", "loss", "--out", data.path("loss.svg"))
    #expect(plotted.status == 0, "\(plotted.stderrText)")
    let svg = try SVGSummary(contentsOf: data.path("loss.svg"))
    #expect(svg.polylineRuns == ["small (\(runIDs[0].prefix(8)))", "large (\(runIDs[1].prefix(8)))"])
    #expect(svg.texts.contains("loss") && svg.texts.contains("step") && svg.texts.contains("loss by step"))
    // The same plot as PNG, decoded by Python's zlib: 800×480, both runs' colours and dark text drawn.
    let png = try await run(
      "runs", "plot", runIDs[0], runIDs[1], "--metric", "loss", "--out", data.path("loss.png"))
    #expect(png.status == 0, "\(png.stderrText)")
    let decoded = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.pngCensus, data.path("loss.png")])
    #expect(decoded.stdoutText.hasPrefix("800x480 "), "\(decoded.stdoutText)\(decoded.stderrText)")
    let counts = Dictionary(
      uniqueKeysWithValues: decoded.stdoutText.split(separator: " ").dropFirst().compactMap { pair -> (String, Int)? in
        let parts = pair.split(separator: "=")
        return parts.count == 2 ? (String(parts[0]), Int(parts[1].filter(\.isNumber)) ?? 0) : nil
      })
    #expect((counts["blue"] ?? 0) > 100 && (counts["orange"] ?? 0) > 100 && (counts["dark"] ?? 0) > 200, "\(counts)")

    let history = try await run("runs", "history", runIDs[0], "--metric", "loss")
    #expect(history.stdoutText.split(separator: "\n").count == 4, "\(history.stdoutText)")
    let compare = try await run("runs", "compare", runIDs[0], runIDs[1], "--metric", "loss")
    #expect(compare.stdoutText.contains("2     1.0       0.5"), "\(compare.stdoutText)")

    // Artifacts, and a model version copied from one with its lineage.
    try Data(TestOnnx.relu(features: 6)).write(to: data.url.appendingPathComponent("model.onnx"))
    let uploaded = try await run(
      "artifacts", "upload", runIDs[1], data.path("model.onnx"), "--path", "model/model.onnx")
    #expect(uploaded.stdoutText.contains("uploaded model/model.onnx"), "\(uploaded.stderrText)")
    #expect(try await run("artifacts", "list", runIDs[1], "--prefix", "model").stdoutText.contains("model/model.onnx"))
    let fetched = try await run("artifacts", "download", runIDs[1], "model/model.onnx", "--out", data.path("back.onnx"))
    #expect(fetched.status == 0, "\(fetched.stderrText)")
    #expect(try Data(contentsOf: data.url.appendingPathComponent("back.onnx")) == Data(TestOnnx.relu(features: 6)))
    let escape = try await run("artifacts", "upload", runIDs[1], data.path("model.onnx"), "--path", "../x")
    #expect(escape.status == 1 && escape.stderrText.contains("INVALID_ARGUMENT"), "\(escape.stderrText)")
    #expect(try await run("models", "create", "roads").status == 0)
    let pushed = try await run("models", "push", "roads", "model/model.onnx", "--from-run", runIDs[1])
    #expect(pushed.status == 0 && pushed.stdoutText.contains("v1"), "\(pushed.stderrText)")
    let shown = try await run("models", "show", "roads/1")
    #expect(
      shown.stdoutText.contains("source       run \(runIDs[1]), artifact model/model.onnx"), "\(shown.stdoutText)")

    #expect(try await run("experiments", "delete", "roads").status == 0)
    let deleted = try await run("experiments", "list", "--deleted").stdoutText
    #expect(deleted.contains("ORGANIZATION") && deleted.contains("roads") && deleted.contains("local"), "\(deleted)")
    #expect(try await run("experiments", "restore", "1").stdoutText.contains("restored experiment 1"))
    #expect(try await up.stop() == 0)
  }
}

/// What an SVG file draws, read with an XML parser.
private final class SVGSummary: NSObject, XMLParserDelegate {
  var polylineRuns: [String] = []
  var texts: [String] = []
  private var text = ""

  init(contentsOf path: String) throws {
    super.init()
    let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: path)))
    parser.delegate = self
    guard parser.parse() else {
      throw TestEnvironmentError("not well-formed XML: \(String(describing: parser.parserError))")
    }
  }

  func parser(
    _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
    attributes: [String: String] = [:]
  ) {
    if name == "polyline", let run = attributes["data-run"] { polylineRuns.append(run) }
    text = ""
  }

  func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

  func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
    if name == "text" { texts.append(text) }
  }
}

extension TrackingEndToEndTests {
  /// Prints a PNG's size and how many pixels are close to the first two series colours and dark
  /// (text, frame): `WxH blue=N orange=N dark=N`. Only the standard library: zlib and the five
  /// PNG filters.
  static let pngCensus = """
    import sys, struct, zlib
    data = open(sys.argv[1], "rb").read()
    assert data[:8] == b"\\x89PNG\\r\\n\\x1a\\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = {2: 3, 6: 4}[colour]
    raw, stride, rows, prev, i = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if kind == 1: line[x] = (line[x] + a) & 255
            elif kind == 2: line[x] = (line[x] + b) & 255
            elif kind == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    def near(r, g, b, target): return abs(r - target[0]) + abs(g - target[1]) + abs(b - target[2]) < 60
    blue = orange = dark = 0
    for line in rows:
        for x in range(0, stride, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            blue += near(r, g, b, (0x1f, 0x77, 0xb4)); orange += near(r, g, b, (0xff, 0x7f, 0x0e))
            dark += r + g + b < 150
    print(f"{width}x{height} blue={blue} orange={orange} dark={dark}")
    """

  /// A mesh of the registry and tracking (on its Unix socket and on TCP) started by `shoal up`,
  /// with clients of tracking over each.
  private struct TCPMesh {
    let shoal: String
    let data: TemporaryDirectory
    let up: ServerProcess
    let overTCP: TrackingV1.Tracking.Client
    let local: TrackingV1.Tracking.Client

    /// Runs `shoal ARGUMENTS… --data DATA`, expects it to succeed and returns its output.
    func run(_ arguments: String...) async throws -> String {
      let result = try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
      #expect(result.status == 0, "\(result.stderrText)")
      return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new token of `organization` with `role`.
    func token(_ organization: String, _ role: String, _ name: String) async throws -> String {
      try await run("admin", "token", "create", "--org", organization, "--role", role, "--name", name)
    }

    func with(_ token: String) -> CallOptions {
      var options = CallOptions()
      options.metadata.add("authorization", "Bearer \(token)")
      return options
    }
  }

  private func withTCPMesh(_ body: (TCPMesh) async throws -> Void) async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let mesh = """
      { "services": [ { "name": "registry" },
                      { "name": "tracking", "listen": ["unix:tracking.sock", "tcp://127.0.0.1:0"] } ] }
      """
    try Data(mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up")
    _ = try await up.waitForLines(containing: "registered tracking", count: 2)
    let client = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
    var resolve = RegistryV1.ResolveRequest()
    resolve.service = "tracking"
    let addresses = try await client.directory.resolve(resolve).instances.map(\.address)
    await client.close()
    let tcp = try #require(addresses.first { $0.hasPrefix("tcp://") })
    let unix = try #require(addresses.first { $0.hasPrefix("unix://") })
    let overTCP = RPCClient(address: try RPCAddress(parsing: tcp))
    let local = RPCClient(address: try RPCAddress(parsing: unix))
    try await body(
      TCPMesh(
        shoal: shoal, data: data, up: up, overTCP: TrackingV1.Tracking.Client(overTCP),
        local: TrackingV1.Tracking.Client(local)))
    await overTCP.close()
    await local.close()
    #expect(try await up.stop() == 0)
  }

  /// Over TCP, tracking wants a token the registry vouches for, with the role the method needs;
  /// its Unix socket stays open to local peers.
  @Test func overTCPCallsNeedATokenWithTheRightRole() async throws {
    try await withTCPMesh { mesh in
      let (overTCP, local) = (mesh.overTCP, mesh.local)
      _ = try await mesh.run("admin", "org", "create", "acme")
      let reader = try await mesh.token("acme", "reader", "ana")
      let writer = try await mesh.token("acme", "writer", "wes")
      var experiment = TrackingV1.CreateExperimentRequest()
      experiment.name = "roads"

      let anonymous = await #expect(throws: RPCError.self) {
        try await overTCP.listExperiments(TrackingV1.ListExperimentsRequest())
      }
      #expect(anonymous?.code == .unauthenticated && anonymous?.message.contains("SHOAL_TOKEN") == true)
      let forged = await #expect(throws: RPCError.self) {
        try await overTCP.listExperiments(TrackingV1.ListExperimentsRequest(), options: mesh.with("shoal_not-a-token"))
      }
      #expect(forged?.code == .unauthenticated)
      _ = try await overTCP.listExperiments(TrackingV1.ListExperimentsRequest(), options: mesh.with(reader))
      let readOnly = await #expect(throws: RPCError.self) {
        try await overTCP.createExperiment(experiment, options: mesh.with(reader))
      }
      #expect(readOnly?.code == .permissionDenied && readOnly?.message.contains("needs role writer") == true)
      #expect(try await overTCP.createExperiment(experiment, options: mesh.with(writer)).name == "roads")
      let collect = await #expect(throws: RPCError.self) {
        try await overTCP.garbageCollect(TrackingV1.GarbageCollectRequest(), options: mesh.with(writer))
      }
      #expect(collect?.code == .permissionDenied && collect?.message.contains("needs role admin") == true)
      // A local peer needs no token.
      experiment.name = "rivers"
      _ = try await local.createExperiment(experiment)
      #expect(try await local.listExperiments(TrackingV1.ListExperimentsRequest()).experiments.count == 2)
      #expect(
        !mesh.up.text.contains(reader) && !mesh.up.text.contains(writer), "a token appeared in the mesh's output")
    }
  }

  /// An experiment belongs to the organisation of the token that created it: another
  /// organisation's callers find neither it nor its runs (NOT_FOUND, as if it did not exist), nor
  /// them in lists, searches or garbage collection; local peers see every organisation's.
  @Test func experimentsAndTheirRunsAreSeenOnlyByTheirOrganisation() async throws {
    try await withTCPMesh { mesh in
      let (overTCP, local) = (mesh.overTCP, mesh.local)
      _ = try await mesh.run("admin", "org", "create", "acme")
      _ = try await mesh.run("admin", "org", "create", "globex")
      let acme = mesh.with(try await mesh.token("acme", "admin", "ana"))
      let acmeReader = mesh.with(try await mesh.token("acme", "reader", "ari"))
      let globex = mesh.with(try await mesh.token("globex", "admin", "gus"))

      var request = TrackingV1.CreateExperimentRequest()
      request.name = "roads"
      let roads = try await overTCP.createExperiment(request, options: acme)
      #expect(roads.organization == "acme")
      var runRequest = TrackingV1.CreateRunRequest()
      runRequest.experimentId = roads.experimentId
      let run = try await overTCP.createRun(runRequest, options: acme)
      var batch = TrackingV1.LogBatchRequest()
      batch.runId = run.runId
      var metric = TrackingV1.Metric()
      metric.key = "loss"
      metric.value = 0.5
      batch.metrics = [metric]
      _ = try await overTCP.logBatch(batch, options: acme)
      request.name = "rivers"
      request.organization = "acme"
      let denied = await #expect(throws: RPCError.self) { try await overTCP.createExperiment(request, options: globex) }
      #expect(denied?.code == .permissionDenied && denied?.message.contains("'globex'") == true)
      request.organization = ""
      let rivers = try await overTCP.createExperiment(request, options: globex)
      #expect(rivers.organization == "globex")
      // Names are unique in the mesh; the error does not say whose the name is.
      request.name = "roads"
      let taken = await #expect(throws: RPCError.self) { try await overTCP.createExperiment(request, options: globex) }
      #expect(taken?.code == .alreadyExists && taken?.message.contains("acme") == false)

      // What globex's token cannot see is NOT_FOUND, whatever the call.
      var getExperiment = TrackingV1.GetExperimentRequest()
      getExperiment.experimentId = roads.experimentId
      var byName = TrackingV1.GetExperimentRequest()
      byName.name = "roads"
      var experimentLifecycle = TrackingV1.ExperimentLifecycleRequest()
      experimentLifecycle.experimentId = roads.experimentId
      var getRun = TrackingV1.GetRunRequest()
      getRun.runId = run.runId
      var runLifecycle = TrackingV1.RunLifecycleRequest()
      runLifecycle.runId = run.runId
      var update = TrackingV1.UpdateRunRequest()
      update.runId = run.runId
      update.status = .finished
      var history = TrackingV1.GetMetricHistoryRequest()
      history.runIds = [run.runId]
      history.key = "loss"
      var listArtifacts = TrackingV1.ListArtifactsRequest()
      listArtifacts.runId = run.runId
      var inputs = TrackingV1.LogInputsRequest()
      inputs.runId = run.runId
      var watch = TrackingV1.WatchRunRequest()
      watch.runId = run.runId
      let hidden: [(String, () async throws -> Void)] = [
        ("GetExperiment", { _ = try await overTCP.getExperiment(getExperiment, options: globex) }),
        ("GetExperiment by name", { _ = try await overTCP.getExperiment(byName, options: globex) }),
        ("DeleteExperiment", { _ = try await overTCP.deleteExperiment(experimentLifecycle, options: globex) }),
        ("RestoreExperiment", { _ = try await overTCP.restoreExperiment(experimentLifecycle, options: globex) }),
        ("CreateRun", { _ = try await overTCP.createRun(runRequest, options: globex) }),
        ("GetRun", { _ = try await overTCP.getRun(getRun, options: globex) }),
        ("UpdateRun", { _ = try await overTCP.updateRun(update, options: globex) }),
        ("DeleteRun", { _ = try await overTCP.deleteRun(runLifecycle, options: globex) }),
        ("RestoreRun", { _ = try await overTCP.restoreRun(runLifecycle, options: globex) }),
        ("LogBatch", { _ = try await overTCP.logBatch(batch, options: globex) }),
        ("LogInputs", { _ = try await overTCP.logInputs(inputs, options: globex) }),
        ("GetMetricHistory", { _ = try await overTCP.getMetricHistory(history, options: globex) }),
        ("ListArtifacts", { _ = try await overTCP.listArtifacts(listArtifacts, options: globex) }),
        (
          "WatchRun",
          {
            try await overTCP.watchRun(watch, options: globex) { events in for try await _ in events { break } }
          }
        ),
      ]
      for (name, call) in hidden {
        let error = await #expect(throws: RPCError.self, "\(name)") { try await call() }
        #expect(error?.code == .notFound, "\(name): \(String(describing: error))")
      }
      let globexList = try await overTCP.listExperiments(TrackingV1.ListExperimentsRequest(), options: globex)
      #expect(globexList.experiments.map(\.name) == ["rivers"])
      let globexSearch = try await overTCP.searchRuns(TrackingV1.SearchRunsRequest(), options: globex)
      #expect(globexSearch.runs.isEmpty)

      // acme's reader sees acme's; nothing of it changed above.
      #expect(try await overTCP.getRun(getRun, options: acmeReader).status == .running)
      #expect(try await overTCP.getMetricHistory(history, options: acmeReader).series.first?.points.count == 1)
      let acmeSearch = try await overTCP.searchRuns(TrackingV1.SearchRunsRequest(), options: acmeReader)
      #expect(acmeSearch.runs.map(\.runId) == [run.runId])

      // Garbage collection by globex's admin leaves acme's deleted run alone.
      _ = try await overTCP.deleteRun(runLifecycle, options: acme)
      var collect = TrackingV1.GarbageCollectRequest()
      collect.olderThanMs = 0
      #expect(try await overTCP.garbageCollect(collect, options: globex).runsRemoved == 0)
      _ = try await overTCP.restoreRun(runLifecycle, options: acme)

      // The local peer sees both organisations' experiments, and can create one for either.
      let all = try await local.listExperiments(TrackingV1.ListExperimentsRequest()).experiments
      #expect(all.map { "\($0.organization)/\($0.name)" } == ["acme/roads", "globex/rivers"])
      request.name = "lakes"
      request.organization = "globex"
      #expect(try await local.createExperiment(request).organization == "globex")
      // The CLI on this host, without a token, reaches tracking through its Unix socket.
      let listed = try await mesh.run("experiments", "list")
      #expect(listed.contains("ORGANIZATION") && listed.contains("acme") && listed.contains("lakes"), "\(listed)")
      let called = try await mesh.run("call", "tracking", "shoal.tracking.v1.Tracking/ListExperiments", "{}")
      #expect(called.contains("lakes"), "\(called)")

      // A token renames and tags its own experiments (a name in use elsewhere is taken), and moves
      // none; the local peer moves one, with its runs, which the other organisation then sees.
      var change = TrackingV1.UpdateExperimentRequest()
      change.experimentId = roads.experimentId
      change.newName = "roads-v2"
      change.tags = ["team": "maps"]
      let renamed = try await overTCP.updateExperiment(change, options: acme)
      #expect(renamed.name == "roads-v2" && renamed.tags == ["team": "maps"] && renamed.organization == "acme")
      change.newName = "rivers"
      let clash = await #expect(throws: RPCError.self) { try await overTCP.updateExperiment(change, options: acme) }
      #expect(clash?.code == .alreadyExists)
      change.newName = ""
      change.organization = "globex"
      let move = await #expect(throws: RPCError.self) { try await overTCP.updateExperiment(change, options: acme) }
      #expect(move?.code == .permissionDenied)
      let moved = try await mesh.run("experiments", "update", "roads-v2", "--org", "globex", "--tag", "stage=dev")
      #expect(moved.contains("in organisation globex"), "\(moved)")
      #expect(try await overTCP.getRun(getRun, options: globex).runId == run.runId)
      let gone = await #expect(throws: RPCError.self) { try await overTCP.getRun(getRun, options: acmeReader) }
      #expect(gone?.code == .notFound)
    }
  }
}
