import Foundation
import Registry
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Synchronization
import Testing

/// Versions, files, aliases, search and watch, through the service on real sockets, on SQLite and
/// PostgreSQL.
struct ModelRegistryTests {
  @Test(arguments: Backend.available)
  func versionsCarryTheirFileSignatureAndAliases(_ backend: Backend) async throws {
    try await RegistryHarness.with(backend) { harness in
      let (client, rpc) = harness.local()
      let model = try await client.create("local", "roads", tags: ["area": "coast"], task: .segmentation)
      #expect(model.organization == "local" && model.createdBy == "local@local" && model.latestVersion == 0)
      let file = TestOnnx.relu(features: 7, name: "pixels")
      let v1 = try await client.push("", "roads", file, chunk: 33, sha256: BlobDigest.of(file).hex, semver: "1.0.0")
      #expect(v1.version == 1 && v1.status == .ready && v1.size == Int64(file.count))
      #expect(v1.artifact == BlobDigest.of(file).reference)
      #expect(v1.signature?.inputs.map(\.name) == ["pixels"])
      #expect(v1.signature?.inputs.first?.shape == [-1, 7])
      #expect(v1.signature?.inputs.first?.dimensionNames == ["batch", ""])
      #expect(v1.signature?.inputs.first?.dtype == "FLOAT")
      #expect(v1.signature?.outputs.map(\.name) == ["y"])
      let v2 = try await client.push("", "roads", TestOnnx.relu(features: 9))
      #expect(v2.version == 2)

      // Aliases: set, move, history with who and when; reserved names resolve by themselves.
      _ = try await client.alias("", "roads", "production", 1)
      let moved = try await client.alias("", "roads", "production", 2)
      #expect(moved.previousVersion == 1 && moved.version == 2 && moved.movedBy == "local@local")
      let unchanged = try await client.alias("", "roads", "production", 2)
      #expect(unchanged.previousVersion == 2)
      var history = RegistryV1.AliasHistoryRequest()
      history.model = "roads"
      let moves = try await client.aliasHistory(history).moves
      #expect(moves.map(\.version) == [1, 2] && moves.map(\.previousVersion) == [0, 1])

      let (production, bytes) = try await client.pull("", "roads", alias: "production")
      #expect(production.version == 2 && production.aliases == ["production"])
      #expect(bytes == TestOnnx.relu(features: 9))
      let (first, firstBytes) = try await client.pull("", "roads", alias: "v1")
      #expect(first.version == 1 && firstBytes == file)
      let (latest, _) = try await client.pull("", "roads", alias: "latest")
      #expect(latest.version == 2)
      let shown = try await client.model("", "roads")
      #expect(shown.latestVersion == 2 && shown.aliases == ["production": 2] && shown.tags == ["area": "coast"])

      var list = RegistryV1.ListVersionsRequest()
      list.model = "roads"
      list.pageSize = 1
      let page1 = try await client.listVersions(list)
      #expect(page1.versions.map(\.version) == [2] && !page1.nextPageToken.isEmpty)
      list.pageToken = page1.nextPageToken
      let page2 = try await client.listVersions(list)
      #expect(page2.versions.map(\.version) == [1] && page2.nextPageToken.isEmpty)
      await rpc.close()
    }
  }

  @Test(arguments: Backend.available)
  func badInputIsRefusedNamingWhatWasWrong(_ backend: Backend) async throws {
    try await RegistryHarness.with(backend) { harness in
      let (client, rpc) = harness.local()
      _ = try await client.create("local", "roads")
      _ = try await client.push("local", "roads", TestOnnx.relu())

      func expect(_ code: RpcV1.StatusCode, _ fragment: String, _ call: () async throws -> Void) async {
        do {
          try await call()
          Issue.record("expected \(code.protoName ?? "") mentioning '\(fragment)'")
        } catch {
          let error = RPCError(from: error)
          #expect(error.code == code && error.message.contains(fragment), "\(error)")
        }
      }
      await expect(.alreadyExists, "model 'roads' already exists") { _ = try await client.create("local", "roads") }
      await expect(.notFound, "model 'nope' not found in organisation 'local'") {
        _ = try await client.model("", "nope")
      }
      await expect(.notFound, "has no version 9") { _ = try await client.pull("", "roads", version: 9) }
      await expect(.notFound, "has no version with alias 'production'") {
        _ = try await client.pull("", "roads", alias: "production")
      }
      await expect(.invalidArgument, "alias 'latest' is reserved") {
        _ = try await client.alias("", "roads", "latest", 1)
      }
      await expect(.invalidArgument, "alias 'v2' is reserved") { _ = try await client.alias("", "roads", "v2", 1) }
      await expect(.invalidArgument, "alias 'pro duction'") {
        _ = try await client.alias("", "roads", "pro duction", 1)
      }
      await expect(.notFound, "has no version 5") { _ = try await client.alias("", "roads", "production", 5) }
      await expect(.invalidArgument, "semver '1.0'") {
        _ = try await client.push("", "roads", TestOnnx.relu(), semver: "1.0")
      }
      await expect(.invalidArgument, "tags: the value of 'k'") {
        _ = try await client.create("local", "tagged", tags: ["k": String(repeating: "x", count: 300)])
      }
      await expect(.invalidArgument, "name 'a/b'") { _ = try await client.create("local", "a/b") }
      await expect(.invalidArgument, "not an ONNX model") {
        _ = try await client.push("", "roads", Array("definitely not onnx".utf8))
      }
      await expect(.dataLoss, "not the announced") {
        _ = try await client.push("", "roads", TestOnnx.relu(), sha256: String(repeating: "0", count: 64))
      }
      await expect(.invalidArgument, "starts with its header") {
        _ = try await client.uploadVersion { sender in
          var chunk = RegistryV1.UploadVersionRequest()
          chunk.part = .chunk([1, 2, 3])
          try await sender.send(chunk)
        }
      }
      // None of the refused uploads left a version or a blob behind.
      let model = try await client.model("", "roads")
      #expect(model.latestVersion == 1)
      #expect(try await harness.blobs.list() == [BlobDigest.of(TestOnnx.relu())])
      await rpc.close()
    }
  }

  @Test func anUploadCutHalfWayLeavesNoVersionAndNoBlob() async throws {
    try await RegistryHarness.with(.sqlite) { harness in
      let (client, rpc) = harness.local()
      _ = try await client.create("local", "roads")
      struct Cut: Error {}
      await #expect(throws: (any Error).self) {
        _ = try await client.uploadVersion { sender in
          var header = RegistryV1.UploadHeader()
          header.model = "roads"
          var first = RegistryV1.UploadVersionRequest()
          first.part = .header(header)
          try await sender.send(first)
          var chunk = RegistryV1.UploadVersionRequest()
          chunk.part = .chunk(Array(TestOnnx.relu().prefix(20)))
          try await sender.send(chunk)
          throw Cut()
        }
      }
      // The server notices the cancelled stream and drops the partial file (within 10 s, for a
      // machine busy with the rest of the suite).
      var left: [BlobDigest] = []
      for _ in 0..<500 {
        left = try await harness.blobs.list()
        let temporary = try FileManager.default.contentsOfDirectory(atPath: harness.blobs.root + "/tmp")
        if left.isEmpty && temporary.isEmpty { break }
        try await Task.sleep(for: .milliseconds(20))
      }
      #expect(left.isEmpty)
      #expect(try FileManager.default.contentsOfDirectory(atPath: harness.blobs.root + "/tmp").isEmpty)
      #expect(try await client.model("", "roads").latestVersion == 0)
      await rpc.close()
    }
  }

  @Test(arguments: Backend.available)
  func watchersSeeVersionsAndAliasMovesAndCanResume(_ backend: Backend) async throws {
    try await RegistryHarness.with(backend) { harness in
      let (client, rpc) = harness.local()
      _ = try await client.create("local", "roads")
      var request = RegistryV1.WatchModelRequest()
      request.model = "roads"
      let live = request
      let started = Flag()
      let events = try await withThrowingTaskGroup(of: [RegistryV1.ModelEvent].self) { group in
        group.addTask {
          try await client.watchModel(live, options: CallOptions(timeout: .seconds(30))) { stream in
            var events: [RegistryV1.ModelEvent] = []
            started.set()
            for try await event in stream {
              events.append(event)
              if events.count == 3 { break }
            }
            return events
          }
        }
        // The watch is live once the call is open; give it a moment before changing things.
        while !started.isSet { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        _ = try await client.push("", "roads", TestOnnx.relu())
        _ = try await client.alias("", "roads", "production", 1)
        _ = try await client.push("", "roads", TestOnnx.relu(features: 2))
        return try await group.next()!
      }
      guard events.count == 3, case .versionCreated(let v1) = events[0].change,
        case .aliasMoved(let move) = events[1].change, case .versionCreated(let v2) = events[2].change
      else {
        Issue.record("unexpected events \(events)")
        return
      }
      #expect(v1.version == 1 && move.alias == "production" && v2.version == 2)
      #expect(events[0].sequence < events[1].sequence && events[1].sequence < events[2].sequence)

      // Resuming after the first event replays the other two from the store.
      request.afterSequence = events[0].sequence
      let replayed = try await client.watchModel(request, options: CallOptions(timeout: .seconds(30))) { stream in
        var replayed: [RegistryV1.ModelEvent] = []
        for try await event in stream {
          replayed.append(event)
          if replayed.count == 2 { break }
        }
        return replayed
      }
      #expect(replayed == Array(events[1...]))
      await rpc.close()
    }
  }

  @Test func aWatcherThatFallsBehindIsCaughtUpFromTheStore() async throws {
    var config = ModelRegistryService.Config.defaults
    config.watchBacklog = 1
    try await RegistryHarness.with(.sqlite, config: config) { harness in
      let (client, rpc) = harness.local()
      _ = try await client.create("local", "roads")
      _ = try await client.push("", "roads", TestOnnx.relu())
      _ = try await client.push("", "roads", TestOnnx.relu(features: 2))
      var request = RegistryV1.WatchModelRequest()
      request.model = "roads"
      let live = request
      let started = Flag()
      let moves = try await withThrowingTaskGroup(of: [Int64].self) { group in
        group.addTask {
          try await client.watchModel(live, options: CallOptions(timeout: .seconds(30))) { stream in
            var versions: [Int64] = []
            started.set()
            for try await event in stream {
              guard case .aliasMoved(let move) = event.change else { continue }
              versions.append(move.version)
              // A slow reader: the server's one-event backlog overflows behind it.
              try await Task.sleep(for: .milliseconds(5))
              if versions.count == 20 { break }
            }
            return versions
          }
        }
        while !started.isSet { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        for index in 0..<20 { _ = try await client.alias("", "roads", "production", Int64(index % 2 + 1)) }
        return try await group.next()!
      }
      let expected: [Int64] = (0..<20).map { Int64($0 % 2 + 1) }
      #expect(moves == expected)
      await rpc.close()
    }
  }

  @Test(arguments: Backend.available)
  func searchFiltersAndPages(_ backend: Backend) async throws {
    try await RegistryHarness.with(backend) { harness in
      let (client, rpc) = harness.local()
      for index in 0..<7 {
        _ = try await client.create(
          "local", "model-\(index)", visibility: index.isMultiple(of: 2) ? .public : .private,
          tags: ["team": index < 4 ? "maps" : "audio"], task: index < 4 ? .detection : .audio)
      }
      var literal = RegistryV1.CreateModelRequest()
      literal.name = "literal"
      literal.description = "100%_sure"
      _ = try await client.createModel(literal)
      func search(_ configure: (inout RegistryV1.SearchModelsRequest) -> Void) async throws -> [String] {
        var request = RegistryV1.SearchModelsRequest()
        configure(&request)
        return try await client.searchModels(request).models.map(\.name)
      }
      #expect(try await search { $0.tags = ["team": "audio"] } == ["model-4", "model-5", "model-6"])
      #expect(
        try await search {
          $0.task = .detection; $0.visibility = .public
        } == ["model-0", "model-2"])
      #expect(try await search { $0.query = "%_" } == ["literal"])
      #expect(try await search { $0.query = "MODEL-3" } == ["model-3"])
      var request = RegistryV1.SearchModelsRequest()
      request.pageSize = 3
      var pages: [[String]] = []
      repeat {
        let response = try await client.searchModels(request)
        pages.append(response.models.map(\.name))
        request.pageToken = response.nextPageToken
      } while !request.pageToken.isEmpty
      #expect(pages.map(\.count) == [3, 3, 2])
      request.pageToken = "not-a-token"
      let error = await #expect(throws: RPCError.self) { try await client.searchModels(request) }
      #expect(error?.code == .invalidArgument && error?.message.contains("page_token") == true)
      await rpc.close()
    }
  }
}

/// A flag one task raises and another polls.
private final class Flag: Sendable {
  private let raised = Atomic(false)
  func set() { raised.store(true, ordering: .relaxed) }
  var isSet: Bool { raised.load(ordering: .relaxed) }
}
