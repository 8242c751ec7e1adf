import Foundation
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Testing
import Tracking

/// Run artifacts streamed through the tracking service, on SQLite and PostgreSQL.
struct ArtifactTests {
  private typealias Client = TrackingV1.Tracking.Client

  private func withRun(
    _ backend: Backend, _ body: (Client, String, TemporaryDirectory) async throws -> Void
  ) async throws {
    try await backend.withDatabase { database, directory in
      try await database.migrate(TrackingStore.migrations)
      var router = ServiceRouter()
      TrackingService(
        store: TrackingStore(database: database), blobs: try BlobStore(root: directory.path("blobs")),
        blobGracePeriod: 0
      ).register(in: &router)
      let server = RPCServer(router: router)
      let rpc = RPCClient(address: try await server.bind(to: .unix(path: directory.path("tracking.sock"))))
      let client = Client(rpc)
      var experiment = TrackingV1.CreateExperimentRequest()
      experiment.name = "artifacts"
      var create = TrackingV1.CreateRunRequest()
      create.experimentId = try await client.createExperiment(experiment).experimentId
      let run = try await client.createRun(create)
      do {
        try await body(client, run.runId, directory)
      } catch {
        await rpc.close()
        await server.shutdown()
        throw error
      }
      await rpc.close()
      await server.shutdown()
    }
  }

  private func upload(
    _ client: Client, _ run: String, _ path: String, _ bytes: [UInt8], sha256: String = "",
    chunk: Int = 1 << 20
  ) async throws -> TrackingV1.Artifact {
    try await client.uploadArtifact { sender in
      var header = TrackingV1.ArtifactUploadHeader()
      header.runId = run
      header.path = path
      header.sha256 = sha256
      var first = TrackingV1.UploadArtifactRequest()
      first.part = .header(header)
      try await sender.send(first)
      var offset = 0
      while offset < bytes.count {
        var message = TrackingV1.UploadArtifactRequest()
        message.part = .chunk(Array(bytes[offset..<min(offset + chunk, bytes.count)]))
        try await sender.send(message)
        offset += chunk
      }
    }
  }

  private func download(
    _ client: Client, _ run: String, _ path: String
  ) async throws -> (
    TrackingV1.Artifact?, [UInt8]
  ) {
    var request = TrackingV1.DownloadArtifactRequest()
    request.runId = run
    request.path = path
    return try await client.downloadArtifact(request) { responses in
      var artifact: TrackingV1.Artifact?
      var bytes: [UInt8] = []
      for try await response in responses {
        switch response.part {
        case .artifact(let header): artifact = header
        case .chunk(let chunk): bytes += chunk
        case nil: break
        }
      }
      return (artifact, bytes)
    }
  }

  private static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
      let words = buffer.bindMemory(to: UInt64.self)
      for index in words.indices { words[index] = generator.next() }
    }
    return bytes
  }

  @Test(arguments: Backend.available)
  func aFiftyMebibyteFileStreamsBothWays(_ backend: Backend) async throws {
    try await withRun(backend) { client, run, _ in
      let bytes = Self.randomBytes(50 << 20, seed: 50)
      let digest = BlobDigest.of(bytes)
      let stored = try await upload(client, run, "model/weights.bin", bytes, sha256: digest.hex)
      #expect(stored.size == 50 << 20 && stored.digest == digest.reference)
      let (artifact, received) = try await download(client, run, "model/weights.bin")
      #expect(artifact?.digest == digest.reference)
      #expect(received.count == bytes.count && received == bytes)

      _ = try await upload(client, run, "model/config.json", Array("{}".utf8))
      _ = try await upload(client, run, "curves.svg", Array("<svg/>".utf8))
      var list = TrackingV1.ListArtifactsRequest()
      list.runId = run
      let all = try await client.listArtifacts(list).artifacts.map(\.path)
      #expect(all == ["curves.svg", "model/config.json", "model/weights.bin"])
      list.prefix = "model"
      let model = try await client.listArtifacts(list).artifacts.map(\.path)
      #expect(model == ["model/config.json", "model/weights.bin"])
    }
  }

  @Test(arguments: Backend.available)
  func garbageCollectionRemovesDeletedRunsAndTheirFiles(_ backend: Backend) async throws {
    try await withRun(backend) { client, kept, _ in
      var get = TrackingV1.GetRunRequest()
      get.runId = kept
      let experimentID = try await client.getRun(get).experimentId
      var create = TrackingV1.CreateRunRequest()
      create.experimentId = experimentID
      let doomed = try await client.createRun(create).runId
      _ = try await upload(client, kept, "kept.bin", [1, 2, 3])
      _ = try await upload(client, doomed, "doomed.bin", [4, 5, 6, 7])
      _ = try await upload(client, doomed, "shared.bin", [1, 2, 3])
      var batch = TrackingV1.LogBatchRequest()
      batch.runId = doomed
      var metric = TrackingV1.Metric()
      metric.key = "loss"
      batch.metrics = [metric]
      _ = try await client.logBatch(batch)
      var delete = TrackingV1.RunLifecycleRequest()
      delete.runId = doomed
      _ = try await client.deleteRun(delete)
      // A deleted experiment with no runs goes too.
      var emptyExperiment = TrackingV1.CreateExperimentRequest()
      emptyExperiment.name = "empty"
      var lifecycle = TrackingV1.ExperimentLifecycleRequest()
      lifecycle.experimentId = try await client.createExperiment(emptyExperiment).experimentId
      _ = try await client.deleteExperiment(lifecycle)

      var recent = TrackingV1.GarbageCollectRequest()
      recent.olderThanMs = 3_600_000
      let none = try await client.garbageCollect(recent)
      #expect(none.runsRemoved == 0)
      let result = try await client.garbageCollect(TrackingV1.GarbageCollectRequest())
      #expect(result.runsRemoved == 1 && result.experimentsRemoved == 1, "\(result)")
      // [1, 2, 3] is still the kept run's file; only [4, 5, 6, 7] goes.
      #expect(result.blobsRemoved == 1 && result.bytesFreed == 4)
      get.runId = doomed
      let gone = await #expect(throws: RPCError.self) { try await client.getRun(get) }
      #expect(gone?.code == .notFound)
      let (_, bytes) = try await download(client, kept, "kept.bin")
      #expect(bytes == [1, 2, 3])
    }
  }

  @Test func badPathsCutUploadsAndWrongDigestsLeaveNothing() async throws {
    try await withRun(.sqlite) { client, run, directory in
      // (A NUL cannot be sent: protobuf-c carries strings as C strings; see the session note.)
      for path in ["../escape", "/etc/passwd", "a//b", "a/./b", "dir/", ""] {
        do {
          _ = try await upload(client, run, path, [1, 2, 3])
          Issue.record("accepted the path \(path)")
        } catch {
          #expect(RPCError(from: error).code == .invalidArgument, "\(path): \(error)")
        }
      }
      let mismatch = await #expect(throws: RPCError.self) {
        _ = try await upload(client, run, "x.bin", [1, 2, 3], sha256: String(repeating: "a", count: 64))
      }
      #expect(mismatch?.code == .dataLoss)
      struct Cut: Error {}
      await #expect(throws: (any Error).self) {
        _ = try await client.uploadArtifact { sender in
          var header = TrackingV1.ArtifactUploadHeader()
          header.runId = run
          header.path = "half.bin"
          var first = TrackingV1.UploadArtifactRequest()
          first.part = .header(header)
          try await sender.send(first)
          var chunk = TrackingV1.UploadArtifactRequest()
          chunk.part = .chunk([UInt8](repeating: 9, count: 1000))
          try await sender.send(chunk)
          throw Cut()
        }
      }
      var list = TrackingV1.ListArtifactsRequest()
      list.runId = run
      let listed = try await client.listArtifacts(list).artifacts
      #expect(listed.isEmpty)
      var left: [String] = []
      for _ in 0..<100 {
        left = try FileManager.default.subpathsOfDirectory(atPath: directory.path("blobs")).filter {
          !["sha256", "tmp"].contains($0)
        }
        if left.isEmpty { break }
        try await Task.sleep(for: .milliseconds(20))
      }
      #expect(left.isEmpty, "left behind: \(left)")
      let missing = await #expect(throws: RPCError.self) { _ = try await download(client, run, "nope.bin") }
      #expect(missing?.code == .notFound && missing?.message.contains("no artifact 'nope.bin'") == true)
    }
  }
}
