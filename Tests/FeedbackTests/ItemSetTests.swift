import Feedback
import Foundation
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// Sets of items that are not map tiles (audio clips): put by key, queried, marked, reviewed and
/// locked by key as tiles are, counted in stats; refused where a map is needed. On SQLite and
/// PostgreSQL, over a real Unix socket.
struct ItemSetTests {
  @Test(arguments: Backend.available)
  func itemsAreReviewedByKey(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, _ in
      var create = FeedbackV1.CreateSetRequest()
      create.model = "local/orca"
      create.modelVersion = 1
      create.task = .audio
      create.classes = classLabels("noise", "call")
      create.items = true
      let set = try await client.createSet(create)
      #expect(set.items && set.imagery.isEmpty)
      create.zoom = 12
      await expectCode(.invalidArgument, "a set of items has no imagery, aoi or zoom") {
        _ = try await client.createSet(create)
      }

      // 200 clips by digest-like keys, p(call) spread over 0…1; put twice, stored once.
      let keys = (0..<200).map { String(format: "clip-%03d", $0) }
      let items = keys.enumerated().map { index, key in
        var item = FeedbackV1.PredictedTile()
        item.item = key
        let p = Double(index) / 199
        item.scores = ["call": p, "noise": 1 - p]
        return item
      }
      for attempt in 0..<2 {
        let stored = try await client.putPredictions { sender in
          var request = FeedbackV1.PutPredictionsRequest()
          request.setId = set.setId
          request.requestId = "attempt \(attempt)"
          request.tiles = items
          try await sender.send(request)
        }
        #expect(stored.tilesStored == (attempt == 0 ? 200 : 0))
      }
      var tile = FeedbackV1.PredictedTile()
      (tile.z, tile.x, tile.y) = (3, 1, 1)
      await expectCode(.invalidArgument, "holds items; give each its item key") {
        _ = try await client.putPredictions { sender in
          var request = FeedbackV1.PutPredictionsRequest()
          request.setId = set.setId
          request.tiles = [tile]
          try await sender.send(request)
        }
      }

      var query = FeedbackV1.QueryTilesRequest()
      query.setId = set.setId
      query.pageSize = 1000
      let records = try await client.queryTiles(query).tiles
      #expect(Set(records.map(\.tileId)) == Set(keys) && records.allSatisfy { $0.item == $0.tileId })
      // By key: the items asked for that are in the set, whatever the order of the keys.
      var byKey = query
      byKey.items = ["clip-150", "clip-007", "not-a-clip", "clip-150"]
      #expect(Set(try await client.queryTiles(byKey).tiles.map(\.item)) == ["clip-007", "clip-150"])
      byKey.items = [""]
      await expectCode(.invalidArgument, "items[0]: give the item's key") { _ = try await client.queryTiles(byKey) }
      query.area = .bbox(FeedbackV1.BoundingBox())
      await expectCode(.invalidArgument, "holds items, not map tiles") { _ = try await client.queryTiles(query) }

      // The least certain first (p nearest 0.5), locked; marked by key; then left out.
      var next = FeedbackV1.NextForReviewRequest()
      next.setId = set.setId
      next.n = 4
      let chosen = try await client.nextForReview(next).items.compactMap(\.tile?.item)
      #expect(Set(chosen) == ["clip-098", "clip-099", "clip-100", "clip-101"])
      var validity = FeedbackV1.SetValidityRequest()
      validity.setId = set.setId
      validity.changes = chosen.prefix(2).flatMap { key in
        ["call", "noise"].map { name in
          var change = FeedbackV1.ValidityChange()
          change.target = .tileId(key)
          change.className = name
          change.validity = name == "call" ? .valid : .invalid
          return change
        }
      }
      #expect(try await client.setValidity(validity).applied == 4)
      validity.changes[0].target = .tileId("clip-999")
      await expectCode(.notFound, "item 'clip-999' is not in the set") { _ = try await client.setValidity(validity) }
      var release = FeedbackV1.ReleaseLocksRequest()
      release.setId = set.setId
      release.tileIds = Array(chosen.suffix(2))
      #expect(try await client.releaseLocks(release).released == 2)
      let again = try await client.nextForReview(next).items.compactMap(\.tile?.item)
      #expect(Set(again).isDisjoint(with: chosen.prefix(2)) && Set(again).isSuperset(of: chosen.suffix(2)))

      var history = FeedbackV1.ValidityHistoryRequest()
      history.setId = set.setId
      history.tileId = chosen[0]
      #expect(try await client.validityHistory(history).entries.map(\.tileId) == [chosen[0], chosen[0]])
      var stats = FeedbackV1.StatsRequest()
      stats.setId = set.setId
      let counted = try await client.stats(stats)
      #expect(counted.tiles == 200 && counted.validatedTiles == 2)

      var export = FeedbackV1.ExportRequest()
      export.setId = set.setId
      await expectCode(.failedPrecondition, "has no geometry to export") {
        try await client.export(export) { chunks in for try await _ in chunks {} }
      }
    }
  }
}
