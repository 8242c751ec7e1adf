import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalStore
import ShoalTestSupport
import Testing

@testable import Feedback

/// Stats over sets of one model: per-class counts, the confusion table by model version (from
/// tiles' class marks and corrected features), and agreement between two reviewers.
struct StatsTests {
  func makeSet(_ client: FeedbackClient, version: Int64) async throws -> FeedbackV1.PredictionSet {
    var request = FeedbackV1.CreateSetRequest()
    request.model = "roads@production"
    request.modelVersion = version
    request.task = .classification
    request.zoom = 16
    request.classes = classLabels("road", "building")
    return try await client.createSet(request)
  }

  func put(_ client: FeedbackClient, _ set: FeedbackV1.PredictionSet, _ tiles: [FeedbackV1.PredictedTile]) async throws
  {
    _ = try await client.putPredictions { sender in
      var request = FeedbackV1.PutPredictionsRequest()
      request.setId = set.setId
      request.requestId = "only"
      request.tiles = tiles
      try await sender.send(request)
    }
  }

  func tile(_ x: Int64, _ scores: [String: Double], features: [FeedbackV1.Feature] = []) -> FeedbackV1.PredictedTile {
    var tile = FeedbackV1.PredictedTile()
    (tile.z, tile.x, tile.y) = (16, 35205 + x, 21494)
    tile.scores = scores
    tile.features = features
    return tile
  }

  func change(
    _ target: FeedbackV1.ValidityChange.Target, _ className: String, _ validity: FeedbackV1.Validity
  ) -> FeedbackV1.ValidityChange {
    var change = FeedbackV1.ValidityChange()
    change.target = target
    change.className = className
    change.validity = validity
    return change
  }

  @Test(arguments: Backend.available)
  func confusionByVersionAndReviewerAgreement(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, store in
      let v3 = try await makeSet(client, version: 3)
      try await put(
        client, v3,
        [tile(0, ["road": 0.9, "building": 0.2]), tile(1, ["road": 0.8]), tile(2, ["road": 0.1, "building": 0.7])])
      let classes: Set = ["road", "building"]
      let set3 = Int64(v3.setId)!
      // Both say tile 0 is a road; they disagree on tile 1 (bob has the last word); ana alone says
      // tile 2 is a building and a road the model missed.
      _ = try await store.setValidity(
        setID: set3, classes: classes,
        changes: [
          change(.tileId("16/35205/21494"), "road", .valid), change(.tileId("16/35206/21494"), "road", .invalid),
        ],
        by: "ana@local")
      _ = try await store.setValidity(
        setID: set3, classes: classes,
        changes: [
          change(.tileId("16/35205/21494"), "road", .valid), change(.tileId("16/35206/21494"), "road", .valid),
        ],
        by: "bob@local")
      _ = try await store.setValidity(
        setID: set3, classes: classes,
        changes: [
          change(.tileId("16/35207/21494"), "building", .valid), change(.tileId("16/35207/21494"), "road", .valid),
        ],
        by: "ana@local")

      var one = FeedbackV1.StatsRequest()
      one.setId = v3.setId
      let stats = try await client.stats(one)
      #expect(stats.sets == 1 && stats.tiles == 3 && stats.validatedTiles == 3)
      let road = try #require(stats.classes.first { $0.className == "road" })
      #expect(road.predicted == 2 && road.valid == 2 && road.precision == 1)
      #expect(
        stats.confusion.map { "v\($0.modelVersion) \($0.predicted)→\($0.actual) \($0.count)" } == [
          "v3 →road 1", "v3 building→building 1", "v3 road→road 2",
        ])
      let agreement = try #require(stats.agreement)
      #expect(agreement.items == 2 && agreement.unanimous == 1 && agreement.pairwise == 0.5)
      let pair = try #require(agreement.pairs.first)
      #expect(pair.first == "ana@local" && pair.second == "bob@local" && pair.items == 2 && pair.agreed == 1)
      // Observed 1/2; by chance ana says valid half the time and bob always: 1/2. Kappa 0.
      #expect(abs(pair.kappa) < 1e-12)

      // Version 4: its road tile is wrong, and a building it found is a road.
      let v4 = try await makeSet(client, version: 4)
      var found = FeedbackV1.Feature()
      let object = GeoJSON.object(.polygon(Polygon(try Tile(z: 16, x: 35205, y: 21494).bounds)))
      found.geometry = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
      found.className = "building"
      found.score = 0.8
      try await put(client, v4, [tile(0, ["road": 0.9], features: [found])])
      var query = FeedbackV1.QueryTilesRequest()
      query.setId = v4.setId
      let feature = try #require(try await client.queryTiles(query).tiles.first?.features.first)
      _ = try await store.setValidity(
        setID: Int64(v4.setId)!, classes: classes,
        changes: [
          change(.tileId("16/35205/21494"), "road", .invalid),
          change(.featureId(feature.featureId), "building", .invalid),
          change(.featureId(feature.featureId), "road", .valid),
        ],
        by: "ana@local")
      var byModel = FeedbackV1.StatsRequest()
      byModel.model = "roads@production"
      let both = try await client.stats(byModel)
      #expect(both.sets == 2 && both.tiles == 4)
      #expect(
        both.confusion.map { "v\($0.modelVersion) \($0.predicted)→\($0.actual) \($0.count)" } == [
          "v3 →road 1", "v3 building→building 1", "v3 road→road 2", "v4 building→road 1", "v4 road→ 1",
        ])
      #expect(both.classes.first { $0.className == "road" }?.predicted == 3)

      byModel.model = "nothing@production"
      await expectCode(.notFound, "no prediction set of model 'nothing@production'") {
        _ = try await client.stats(byModel)
      }
      await expectCode(.invalidArgument, "give set_id or model") {
        _ = try await client.stats(FeedbackV1.StatsRequest())
      }
    }
  }
}
