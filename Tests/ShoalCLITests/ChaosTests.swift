import Foundation
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// `kill -9` under load, the short version of `scripts/chaos`: tracking, feedback and the
/// registry are killed in turn while `shoal load-tracking --retry` logs metrics and a loop sets
/// validity in feedback. After each restart every acknowledged metric and validity change is
/// there, and the calls that failed failed with UNAVAILABLE only.
@Suite(.serialized)
struct ChaosTests {
  private static let mesh = """
    { "services": [ { "name": "registry" }, { "name": "tracking" }, { "name": "feedback" } ] }
    """

  @Test func killedServicesLoseNothingTheyAcknowledged() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up", seconds: 60)
    let feedbackRPC = RPCClient(address: try RPCAddress(parsing: "unix:feedback.sock", relativeTo: data.url.path))
    let feedback = FeedbackV1.Feedback.Client(feedbackRPC)
    do {
      var create = FeedbackV1.CreateSetRequest()
      create.model = "local/roads"
      create.modelVersion = 1
      create.task = .classification
      var road = RegistryV1.ClassLabel()
      road.name = "road"
      create.classes = [road]
      create.zoom = 16
      let set = try await feedback.createSet(create)
      let tiles = (0..<20).map { index in
        var tile = FeedbackV1.PredictedTile()
        (tile.z, tile.x, tile.y) = (16, Int64(35_000 + index), 21_000)
        tile.scores = ["road": 0.5]
        return tile
      }
      _ = try await feedback.putPredictions { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set.setId
        request.tiles = tiles
        try await sender.send(request)
      }

      // The loads: metrics through the CLI, validity changes from here (each retried until
      // acknowledged; the last acknowledged state of each tile is what must be there).
      let load = Task {
        try await Subprocess.run(
          shoal,
          [
            "load-tracking", "--retry", "--mode", "batch", "--batch-size", "100", "--concurrency", "2", "--duration",
            "14", "--data", data.url.path,
          ])
      }
      let deadline = ContinuousClock.now + .seconds(14)
      let marking = Task {
        () -> (acknowledged: [String: FeedbackV1.Validity], changes: Int, unavailable: Int, other: [String]) in
        var acknowledged: [String: FeedbackV1.Validity] = [:]
        var (changes, unavailable, other) = (0, 0, [String]())
        var step = 0
        // Past the kills' window until 20 changes are acknowledged (up to 45 s more): when every
        // suite starts at once, the first seconds can be too slow for that many.
        while ContinuousClock.now < deadline || (changes < 20 && ContinuousClock.now < deadline + .seconds(45)) {
          let tile = tiles[step % tiles.count]
          let id = "\(tile.z)/\(tile.x)/\(tile.y)"
          let validity: FeedbackV1.Validity = (step / tiles.count) % 2 == 0 ? .valid : .invalid
          var request = FeedbackV1.SetValidityRequest()
          request.setId = set.setId
          var change = FeedbackV1.ValidityChange()
          change.target = .tileId(id)
          change.className = "road"
          change.validity = validity
          request.changes = [change]
          do {
            _ = try await feedback.setValidity(request, options: CallOptions(timeout: .seconds(5)))
            acknowledged[id] = validity
            changes += 1
            step += 1
          } catch let error as RPCError where error.code == .unavailable {
            unavailable += 1
            try await Task.sleep(for: .milliseconds(20))
          } catch {
            other.append("\(error)")
            try await Task.sleep(for: .milliseconds(20))
          }
        }
        return (acknowledged, changes, unavailable, other)
      }

      // kill -9 each in turn, each once the one before is back.
      for service in ["tracking", "feedback", "registry"] {
        try await Task.sleep(for: .seconds(3))
        let pid = try #require(MeshState.childPIDs(data.url.path)[service], "\(up.text)")
        kill(pid, SIGKILL)
        _ = try await up.waitForLines(containing: "\(service) (pid \(pid)) was killed", seconds: 30)
        _ = try await up.waitForLines(containing: "registered \(service)", count: 2, seconds: 30)
      }

      let loaded = try await load.value
      let line = loaded.stdoutText.split(separator: "\n").last.map(String.init) ?? ""
      #expect(loaded.status == 0, "\(loaded.stdoutText)\(loaded.stderrText)\n\(up.text)")
      #expect(line.contains(" lost=0") && line.contains("errors_other=0"), "\(line)\n\(loaded.stderrText)")
      // LogBatch is idempotent (by its request id), so the client itself sent the calls in flight
      // when tracking died again once it was back: the load may see no error at all. SetValidity
      // is not idempotent: a call in flight when feedback dies fails with UNAVAILABLE.
      let marked = try await marking.value
      #expect(marked.other.isEmpty, "\(marked.other.prefix(3))")
      // Whether a SetValidity was in flight when feedback died is chance (the restarts are counted
      // below), so its UNAVAILABLE failures are not required, only that nothing else failed.
      #expect(marked.changes > 20, "\(marked.changes) \(marked.unavailable)")

      // Every tile's last acknowledged state is its state now, and each acknowledged change is in
      // the history (a change retried after an UNAVAILABLE may be there twice, never missing).
      var query = FeedbackV1.QueryTilesRequest()
      query.setId = set.setId
      let now = try await feedback.queryTiles(query).tiles
      for (id, validity) in marked.acknowledged {
        #expect(now.first { $0.tileId == id }?.validity.first?.validity == validity, "\(id)")
      }
      var history = FeedbackV1.ValidityHistoryRequest()
      history.setId = set.setId
      #expect(try await feedback.validityHistory(history).entries.count >= marked.changes)
      let restarts = try await Subprocess.run(shoal, ["status", "--json", "--data", data.url.path])
      #expect(restarts.stdoutText.components(separatedBy: #""restarts" : 1"#).count - 1 == 3, "\(restarts.stdoutText)")
    } catch {
      await feedbackRPC.close()
      _ = try? await up.stop()
      throw error
    }
    await feedbackRPC.close()
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }
}
