import Foundation
import ShoalClient
import ShoalGeo
import ShoalImage
import ShoalImagery
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Synchronization
import Testing

/// AOI jobs under `shoal up`, as real processes: a local tile server whose imagery has bright
/// squares drawn at known places on a textured ground, three models made with the model core's
/// ONNX writer that find them (a classifier, a TF-API detector and a segmenter), and the
/// geometries in the prediction sets checked against where the squares were drawn (with shapely).
/// Then supertiles against plain tiles, a cancel, a `kill -9` of inference mid-job, a source whose
/// every tile fails, refusals, and the preview.
@Suite(.serialized)
struct AOIJobEndToEndTests {
  static let zoom = 16
  /// The north-west tile of the 4 × 4 test area (Berlin's centre).
  static let origin = try! Tile(containing: 13.40, 52.52, zoom: zoom)

  /// The squares, in world pixels relative to the origin tile's corner: one inside a tile, one
  /// over a vertical tile edge, one over a corner of four tiles, one inside another tile.
  static let squares: [(x0: Int, y0: Int, x1: Int, y1: Int)] = [
    (40, 40, 100, 100), (482, 100, 542, 160), (482, 482, 542, 542), (868, 828, 948, 888),
  ]

  /// One tile's image: a texture of grey levels below 0.4, with the squares in white.
  static func tileImage(_ tile: Tile) -> Data {
    var pixels = [UInt8](repeating: 0, count: 256 * 256 * 3)
    let baseX = (tile.x - origin.x) * 256
    let baseY = (tile.y - origin.y) * 256
    for y in 0..<256 {
      for x in 0..<256 {
        let (wx, wy) = (baseX + x, baseY + y)
        let inside = squares.contains { wx >= $0.x0 && wx < $0.x1 && wy >= $0.y0 && wy < $0.y1 }
        var hash = UInt64(bitPattern: Int64(wx &* 73_856_093 ^ wy &* 19_349_663))
        hash = (hash ^ (hash >> 13)) &* 0x9E37_79B9_7F4A_7C15
        let ground = UInt8(30 + Int(hash >> 58))
        let at = (y * 256 + x) * 3
        (pixels[at], pixels[at + 1], pixels[at + 2]) = inside ? (255, 255, 255) : (ground, ground &+ 10, ground / 2)
      }
    }
    let image = Image(width: 256, height: 256, channels: 3, pixels: pixels)
    return Data((try? image.pngBytes()) ?? [])
  }

  /// A square as a lon/lat polygon's GeoJSON coordinates.
  static func squareRing(_ square: (x0: Int, y0: Int, x1: Int, y1: Int)) -> [[Double]] {
    func position(_ x: Int, _ y: Int) -> [Double] {
      let point = Tile.lonLat(
        tileX: Double(origin.x) + Double(x) / 256, tileY: Double(origin.y) + Double(y) / 256, zoom: zoom)
      return [point.longitude, point.latitude]
    }
    return [
      position(square.x0, square.y1), position(square.x1, square.y1), position(square.x1, square.y0),
      position(square.x0, square.y0), position(square.x0, square.y1),
    ]
  }

  // MARK: Models, made with the model core's writer

  /// The mean of the three channels above 0.75, as 0 or 1: [N, 1, H, W] in `m`.
  static func brightMask(_ graph: inout OnnxGraphBuilder) {
    graph.initializer("third", Tensor(shape: [1, 3, 1, 1], elements: [Float](repeating: 1.0 / 3, count: 3)))
    graph.initializer("level", Tensor(shape: [1], elements: [Float(0.75)]))
    graph.node("Conv", ["x", "third"], ["mean"])
    graph.node("Greater", ["mean", "level"], ["bright"])
    graph.node("Cast", ["bright"], ["m"], attributes: ["to": .int(1)])
  }

  static func classifier() throws -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "bright-tiles", opset: 13)
    graph.input("x", .float32, [.symbolic("N"), .fixed(3), .symbolic("H"), .symbolic("W")])
    brightMask(&graph)
    graph.initializer("one", Tensor(shape: [1], elements: [Float(1)]))
    graph.node("GlobalMaxPool", ["m"], ["pooled"])
    graph.node("Flatten", ["pooled"], ["p"], attributes: ["axis": .int(1)])
    graph.node("Sub", ["one", "p"], ["q"])
    graph.node("Concat", ["q", "p"], ["scores"], attributes: ["axis": .int(1)])
    graph.output("scores", .float32, [.symbolic("N"), .fixed(2)])
    return try graph.bytes()
  }

  /// Two channels, 0.75 and the mean: argmax is the object where the mean is above 0.75.
  static func segmenter() throws -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "bright-segments", opset: 13)
    graph.input("x", .float32, [.symbolic("N"), .fixed(3), .symbolic("H"), .symbolic("W")])
    let third = Float(1.0 / 3)
    graph.initializer("w", Tensor(shape: [2, 3, 1, 1], elements: [0, 0, 0, third, third, third]))
    graph.initializer("b", Tensor(shape: [2], elements: [Float(0.75), 0]))
    graph.node("Conv", ["x", "w", "b"], ["mask"])
    graph.output("mask", .float32, [.symbolic("N"), .fixed(2), .symbolic("H"), .symbolic("W")])
    return try graph.bytes()
  }

  /// The TF Object Detection API's outputs for one box per tile: the bounds of its bright pixels.
  static func detector() throws -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "bright-boxes", opset: 13)
    graph.input("x", .float32, [.symbolic("N"), .fixed(3), .fixed(256), .fixed(256)])
    brightMask(&graph)
    graph.initializer("index", Tensor(shape: [1, 1, 256], elements: (0..<256).map { Float($0) }))
    graph.initializer("next", Tensor(shape: [1, 1, 256], elements: (1...256).map { Float($0) }))
    graph.initializer("far", Tensor(shape: [1], elements: [Float(1e6)]))
    graph.initializer("one", Tensor(shape: [1], elements: [Float(1)]))
    graph.initializer("zero", Tensor(shape: [1], elements: [Float(0)]))
    graph.initializer("side", Tensor(shape: [1], elements: [Float(256)]))
    graph.initializer("axis1", Tensor(shape: [1], elements: [Int64(1)]))
    for (profile, axis) in [("columns", 2), ("rows", 3)] {
      let name = profile == "columns" ? "x" : "y"
      graph.node("ReduceMax", ["m"], [profile], attributes: ["axes": .ints([axis]), "keepdims": .int(0)])
      graph.node("Mul", [profile, "index"], ["\(name)at"])
      graph.node("Sub", ["one", profile], ["\(name)off"])
      graph.node("Mul", ["\(name)off", "far"], ["\(name)far"])
      graph.node("Add", ["\(name)at", "\(name)far"], ["\(name)first"])
      graph.node("ReduceMin", ["\(name)first"], ["\(name)0px"], attributes: ["axes": .ints([2]), "keepdims": .int(0)])
      graph.node("Mul", [profile, "next"], ["\(name)end"])
      graph.node("ReduceMax", ["\(name)end"], ["\(name)1px"], attributes: ["axes": .ints([2]), "keepdims": .int(0)])
      graph.node("Div", ["\(name)0px", "side"], ["\(name)0"])
      graph.node("Div", ["\(name)1px", "side"], ["\(name)1"])
    }
    graph.node("Concat", ["y0", "x0", "y1", "x1"], ["flat"], attributes: ["axis": .int(1)])
    graph.node("Unsqueeze", ["flat", "axis1"], ["detection_boxes"])
    graph.node("ReduceMax", ["columns"], ["detection_scores"], attributes: ["axes": .ints([2]), "keepdims": .int(0)])
    graph.node("Mul", ["detection_scores", "zero"], ["nothing"])
    graph.node("Add", ["nothing", "one"], ["detection_classes"])
    graph.node(
      "ReduceMax", ["detection_scores"], ["num_detections"], attributes: ["axes": .ints([1]), "keepdims": .int(0)])
    graph.output("detection_boxes", .float32, [.symbolic("N"), .fixed(1), .fixed(4)])
    graph.output("detection_scores", .float32, [.symbolic("N"), .fixed(1)])
    graph.output("detection_classes", .float32, [.symbolic("N"), .fixed(1)])
    graph.output("num_detections", .float32, [.symbolic("N")])
    return try graph.bytes()
  }

  // MARK: The mesh

  private static let meshFile = """
    { "services": [
      { "name": "registry", "listen": ["unix:registry.sock"] },
      { "name": "feedback", "listen": ["unix:feedback.sock"] },
      { "name": "inference", "listen": ["unix:inference.sock", "tcp://127.0.0.1:0"] } ] }
    """

  /// IoU of each expected square with the best-matching predicted polygon, by shapely.
  static let matchPolygons = #"""
    import json, sys
    from shapely.geometry import shape, Polygon
    features = json.load(open(sys.argv[1]))
    squares = [Polygon(ring) for ring in json.load(open(sys.argv[2]))]
    shapes = [shape(json.loads(f)) for f in features]
    assert all(s.is_valid for s in shapes)
    print(json.dumps([max((s.intersection(q).area / s.union(q).area for s in shapes), default=0) for q in squares]))
    """#

  struct Mesh {
    let up: ServerProcess
    let data: TemporaryDirectory
    let shoal: String

    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }

    func client<C>(_ socket: String, _ make: (RPCClient) -> C) throws -> (C, RPCClient) {
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:\(socket).sock", relativeTo: data.url.path))
      return (make(rpc), rpc)
    }

    func file(_ name: String) -> String { data.path(name) }

    /// Starts a job with the CLI and waits for it (the CLI follows WatchJob); the job as it ended.
    func job(_ arguments: String...) async throws -> InferenceV1.Job {
      let result = try await Subprocess.run(
        shoal, ["jobs", "start"] + arguments + ["--json", "--data", data.url.path])
      let job = try InferenceV1.Job(jsonString: result.stdoutText)
      return job
    }

    /// Every feature's geometry and every tile of a set.
    func tiles(_ set: String) async throws -> [FeedbackV1.TileRecord] {
      let (feedback, rpc) = try client("feedback") { FeedbackV1.Feedback.Client($0) }
      defer { Task { await rpc.close() } }
      var query = FeedbackV1.QueryTilesRequest()
      query.setId = set
      query.pageSize = 10_000
      return try await feedback.queryTiles(query).tiles
    }

    func set(_ id: String) async throws -> FeedbackV1.PredictionSet {
      let (feedback, rpc) = try client("feedback") { FeedbackV1.Feedback.Client($0) }
      defer { Task { await rpc.close() } }
      var get = FeedbackV1.GetSetRequest()
      get.setId = id
      return try await feedback.getSet(get)
    }

    /// The IoU of each drawn square with its best predicted polygon.
    func matches(_ features: [String]) async throws -> [Double] {
      try JSONSerialization.data(withJSONObject: features).write(to: URL(fileURLWithPath: file("features.json")))
      try JSONSerialization.data(withJSONObject: AOIJobEndToEndTests.squares.map(AOIJobEndToEndTests.squareRing))
        .write(to: URL(fileURLWithPath: file("squares.json")))
      let result = try await Subprocess.run(
        try TestEnvironment.python(),
        ["-c", AOIJobEndToEndTests.matchPolygons, file("features.json"), file("squares.json")])
      try #require(result.status == 0, "\(result.stderrText)")
      return try JSONDecoder().decode([Double].self, from: Data(result.stdoutText.utf8))
    }
  }

  private func withMesh(_ body: (Mesh, TestHTTPServer) async throws -> Void) async throws {
    // /slow/… answers after 250 ms, /missing/… with 404; the rest at once.
    let server = try await TestHTTPServer { request in
      let parts = request.path.split(separator: "/").map(String.init)
      guard !parts.contains("missing"), parts.count >= 3,
        let tile = try? Tile(
          z: Int(parts[parts.count - 3]) ?? -1, x: Int(parts[parts.count - 2]) ?? -1,
          y: Int(parts[parts.count - 1].split(separator: ".")[0]) ?? -1)
      else { return TestHTTPServer.Response(status: 404, body: Data("no such tile".utf8)) }
      return TestHTTPServer.Response(
        headers: ["Content-Type": "image/png"], body: Self.tileImage(tile),
        delay: parts.contains("slow") ? .milliseconds(250) : .zero)
    }
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.meshFile.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
    let mesh = Mesh(up: up, data: data, shoal: shoal)
    do {
      for (name, task, bytes, classes) in [
        ("bright-tiles", "classification", try Self.classifier(), ["empty", "object:#00ff00"]),
        ("bright-boxes", "detection", try Self.detector(), ["object:#ff8800"]),
        ("bright-segments", "segmentation", try Self.segmenter(), ["roof:#ff0000"]),
      ] {
        try Data(bytes).write(to: URL(fileURLWithPath: mesh.file("\(name).onnx")))
        #expect(try await mesh.run("models", "create", name, "--task", task).status == 0)
        let push = try await Subprocess.run(
          shoal,
          ["models", "push", name, mesh.file("\(name).onnx"), "--alias", "production"]
            + classes.flatMap { ["--class", $0] } + ["--data", data.url.path])
        try #require(push.status == 0, "\(push.stderrText)")
      }
      for (name, path) in [("fast", ""), ("slow", "/slow"), ("broken", "/missing")] {
        let added = try await mesh.run("imagery", "add", name, "\(server.base)\(path)/{z}/{x}/{y}.png")
        try #require(added.status == 0, "\(added.stderrText)")
      }
      try await body(mesh, server)
    } catch {
      _ = try? await up.stop()
      await server.close()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
    await server.close()
  }

  /// The 4 × 4 tiles' area, a little inside their outer edges.
  static var area: String {
    let northWest = Tile.lonLat(tileX: Double(origin.x) + 0.1, tileY: Double(origin.y) + 0.1, zoom: zoom)
    let southEast = Tile.lonLat(tileX: Double(origin.x) + 3.9, tileY: Double(origin.y) + 3.9, zoom: zoom)
    return "\(northWest.longitude),\(southEast.latitude),\(southEast.longitude),\(northWest.latitude)"
  }

  /// The 8 × 8 tiles from the origin, for the slow jobs.
  static var largeArea: String {
    let northWest = Tile.lonLat(tileX: Double(origin.x) + 0.1, tileY: Double(origin.y) + 0.1, zoom: zoom)
    let southEast = Tile.lonLat(tileX: Double(origin.x) + 7.9, tileY: Double(origin.y) + 7.9, zoom: zoom)
    return "\(northWest.longitude),\(southEast.latitude),\(southEast.longitude),\(northWest.latitude)"
  }

  @Test func jobsFindTheDrawnSquares() async throws {
    try await withMesh { mesh, _ in
      // Classification: the tiles with a square (or part of one) are "object", the rest "empty".
      let classified = try await mesh.job(
        "bright-tiles@production", "--imagery", "fast", "--bbox", Self.area, "--zoom", "16")
      #expect(
        classified.state == .succeeded && classified.tilesTotal == 16 && classified.tilesDone == 16, "\(classified)")
      let withSquares: Set<String> = ["0/0", "1/0", "2/0", "1/1", "2/1", "1/2", "2/2", "3/3"]
      let tiles = try await mesh.tiles(classified.setId)
      #expect(tiles.count == 16)
      for tile in tiles {
        let key = "\(Int(tile.x) - Self.origin.x)/\(Int(tile.y) - Self.origin.y)"
        #expect(tile.scores["object"] == (withSquares.contains(key) ? 1 : 0), "\(key): \(tile.scores)")
      }
      let set = try await mesh.set(classified.setId)
      #expect(set.status == .complete && set.jobId == classified.jobId && set.tileCount == 16)

      // Segmentation: one polygon per square after the merge over tile edges, IoU ≥ 0.9.
      let segmented = try await mesh.job(
        "bright-segments@production", "--imagery", "fast", "--bbox", Self.area, "--zoom", "16")
      #expect(segmented.state == .succeeded && segmented.tilesDone == 16, "\(segmented)")
      let segments = try await mesh.tiles(segmented.setId).flatMap(\.features)
      #expect(segments.count == 4 && segments.allSatisfy { $0.className == "roof" }, "\(segments.map(\.geometry))")
      let segmentIoU = try await mesh.matches(segments.map(\.geometry))
      #expect(segmentIoU.allSatisfy { $0 >= 0.9 }, "\(segmentIoU)")

      // Supertiles: the same polygons (the model is per pixel, so they must agree).
      let supertiled = try await mesh.job(
        "bright-segments@production", "--imagery", "fast", "--bbox", Self.area, "--zoom", "16", "--supertile")
      #expect(supertiled.state == .succeeded && supertiled.tilesDone == 16, "\(supertiled)")
      let superSegments = try await mesh.tiles(supertiled.setId).flatMap(\.features)
      #expect(superSegments.count == 4)
      let superIoU = try await mesh.matches(superSegments.map(\.geometry))
      #expect(zip(superIoU, segmentIoU).allSatisfy { abs($0 - $1) < 1e-9 }, "\(superIoU) vs \(segmentIoU)")

      // Detection: one box per square, the cut ones merged.
      let detected = try await mesh.job(
        "bright-boxes@production", "--imagery", "fast", "--bbox", Self.area, "--zoom", "16", "--threshold", "0.5")
      #expect(detected.state == .succeeded && detected.tilesDone == 16, "\(detected)")
      let boxes = try await mesh.tiles(detected.setId).flatMap(\.features)
      #expect(boxes.count == 4 && boxes.allSatisfy { $0.className == "object" && $0.score == 1 })
      let boxIoU = try await mesh.matches(boxes.map(\.geometry))
      #expect(boxIoU.allSatisfy { $0 >= 0.9 }, "\(boxIoU)")

      // The list, and the preview as a PNG and as GeoJSON.
      let listed = try await mesh.run("jobs", "list")
      #expect(
        listed.stdoutText.contains(detected.jobId) && listed.stdoutText.contains("SUCCEEDED"), "\(listed.stdoutText)")
      let preview = try await mesh.run("jobs", "preview", segmented.setId, "--out", mesh.file("map.png"))
      #expect(preview.status == 0, "\(preview.stderrText)")
      let png = try Image(decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: mesh.file("map.png")))))
      #expect(png.width == 1024 && png.height == 1024)
      // The square inside the origin tile is drawn over the imagery in roof red (blended), its
      // ground elsewhere dark.
      let at = (70 * png.width + 70) * png.channels
      #expect(png.pixels[at] > 200 && png.pixels[at + 1] < 200, "\(png.pixels[at..<(at + 3)])")
      let styled = try await mesh.run(
        "jobs", "preview", segmented.setId, "--validity", "--out", mesh.file("map.geojson"))
      #expect(styled.status == 0, "\(styled.stderrText)")
      let collection = try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: mesh.file("map.geojson"))))
      let features = try #require((collection as? [String: Any])?["features"] as? [[String: Any]])
      #expect(features.count == 4)
      #expect(features.allSatisfy { ($0["properties"] as? [String: Any])?["fill"] as? String == "#ff0000" })

      // Over TCP, a token of another organisation sees none of these jobs and cannot start one
      // with this organisation's model.
      let outsider = try await outsiderClient(service: "inference", shoal: mesh.shoal, data: mesh.data)
      let client = InferenceV1.Inference.Client(outsider)
      var list = InferenceV1.ListJobsRequest()
      list.pageSize = 100
      #expect(try await client.listJobs(list).jobs.isEmpty)
      var cancel = InferenceV1.CancelJobRequest()
      cancel.jobId = detected.jobId
      await #expect { _ = try await client.cancelJob(cancel) } throws: { ($0 as? RPCError)?.code == .notFound }
      var start = InferenceV1.StartJobRequest()
      start.model = "local/bright-tiles@production"
      start.imagery = "fast"
      start.zoom = 16
      start.area = .bbox(try FeedbackV1.BoundingBox(BoundingBox(parsing: Self.area)))
      await #expect { _ = try await client.startJob(start) } throws: { ($0 as? RPCError)?.code == .notFound }
      await outsider.close()
    }
  }

  @Test func cancelResumeFailuresAndRefusals() async throws {
    try await withMesh { mesh, server in
      let (inference, rpc) = try mesh.client("inference") { InferenceV1.Inference.Client($0) }
      defer { Task { await rpc.close() } }
      func job(_ id: String) async throws -> InferenceV1.Job {
        var list = InferenceV1.ListJobsRequest()
        list.pageSize = 100
        return try #require(try await inference.listJobs(list).jobs.first { $0.jobId == id })
      }
      func waitFor(_ id: String, done: Int64) async throws {
        for _ in 0..<600 {
          if let current = try? await job(id), current.tilesDone >= done { return }
          try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("job \(id) did not reach \(done) tiles")
      }

      // Cancel: what was written stays, the set is CANCELLED.
      let started = try await mesh.run(
        "jobs", "start", "bright-tiles@production", "--imagery", "slow", "--bbox", Self.largeArea, "--zoom", "16",
        "--concurrency", "2", "--detach")
      #expect(started.status == 0, "\(started.stderrText)")
      let cancelID = started.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
      try await waitFor(cancelID, done: 4)
      let cancel = try await mesh.run("jobs", "cancel", cancelID, "--json")
      let cancelled = try InferenceV1.Job(jsonString: cancel.stdoutText)
      #expect(cancelled.state == .cancelled && cancelled.tilesDone < 64, "\(cancelled)")
      let cancelledSet = try await mesh.set(cancelled.setId)
      #expect(cancelledSet.status == .cancelled && cancelledSet.tileCount == cancelled.tilesDone)

      // kill -9 mid-job: shoal up restarts inference, the job resumes on the tiles not yet in
      // the set, and the set holds each of the 64 once. Tiles fetched before are not fetched again.
      let resumable = try await mesh.run(
        "jobs", "start", "bright-segments@production", "--imagery", "slow", "--bbox", Self.largeArea, "--zoom", "16",
        "--concurrency", "4", "--detach")
      let resumeID = resumable.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
      try await waitFor(resumeID, done: 8)
      let before = server.requests.filter { $0.path.hasPrefix("/slow/") }.count
      let status = try await mesh.run("status", "--json")
      let object = try JSONSerialization.jsonObject(with: Data(status.stdoutText.utf8)) as? [String: Any]
      let services = (object?["services"] as? [[String: Any]]) ?? []
      let pid = try #require(services.first { $0["name"] as? String == "inference" }?["pid"] as? Int)
      kill(Int32(pid), SIGKILL)
      _ = try await mesh.up.waitForLines(containing: "resuming (restart 1)", seconds: 60)
      let watched = try await mesh.run("jobs", "watch", resumeID, "--json")
      let resumed = try InferenceV1.Job(jsonString: watched.stdoutText)
      #expect(resumed.state == .succeeded && resumed.resumed == 1 && resumed.tilesDone == 64, "\(resumed)")
      let tiles = try await mesh.tiles(resumed.setId)
      #expect(tiles.count == 64 && Set(tiles.map(\.tileId)).count == 64)
      #expect(try await mesh.set(resumed.setId).tileCount == 64)
      // Each of the 64 tiles fetched once, but for those in flight at the cancel (2 at most) and
      // at the kill (4 at most): the rest come from inference's tile cache.
      let slowPaths = server.requests.filter { $0.path.hasPrefix("/slow/") }.map(\.path)
      #expect(
        Set(slowPaths).count == 64 && slowPaths.count <= 64 + 2 + 4,
        "\(slowPaths.count) requests, \(before) before the kill")

      // Every tile fails: FAILED, with the first reasons (the HTTP status and URL).
      let broken = try await mesh.job(
        "bright-tiles@production", "--imagery", "broken", "--bbox", Self.area, "--zoom", "16")
      #expect(broken.state == .jobFailed && broken.tilesFailed == 16 && broken.tilesDone == 0, "\(broken)")
      #expect(broken.message.contains("every tile failed") && broken.failures.first?.status == 404, "\(broken)")

      // Refusals, before anything is fetched.
      let huge = try await mesh.run(
        "jobs", "start", "bright-tiles@production", "--imagery", "fast", "--bbox", "13.0,52.3,13.8,52.7", "--zoom", "19"
      )
      #expect(huge.status != 0 && huge.stderrText.contains("a job takes at most 100000"), "\(huge.stderrText)")
      #expect(huge.stderrText.contains("tiles at zoom 19"))
      // The classifier registered as a segmentation model: its [N, 2] output is no class map.
      #expect(try await mesh.run("models", "create", "not-a-mask", "--task", "segmentation").status == 0)
      #expect(
        try await mesh.run("models", "push", "not-a-mask", mesh.file("bright-tiles.onnx"), "--alias", "production")
          .status == 0)
      let wrong = try await mesh.run(
        "jobs", "start", "not-a-mask@production", "--imagery", "fast", "--bbox", Self.area, "--zoom", "16")
      #expect(wrong.status != 0 && wrong.stderrText.contains("output 'scores' has rank 2"), "\(wrong.stderrText)")
      let unknown = try await mesh.run(
        "jobs", "start", "bright-tiles@production", "--imagery", "nowhere", "--bbox", Self.area, "--zoom", "16")
      #expect(unknown.status != 0 && unknown.stderrText.contains("nowhere"), "\(unknown.stderrText)")
    }
  }
}
