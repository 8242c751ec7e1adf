import Feedback
import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Testing

/// The feedback service over a real Unix socket, on SQLite and PostgreSQL.
struct FeedbackServiceTests {
  private func makeSet(_ client: FeedbackClient, zoom: Int32 = 15) async throws -> FeedbackV1.PredictionSet {
    var request = FeedbackV1.CreateSetRequest()
    request.model = "roads@production"
    request.modelVersion = 3
    request.task = .classification
    request.classes = classLabels("road", "building")
    request.zoom = zoom
    request.imagery = "osm"
    return try await client.createSet(request)
  }

  /// `count` random tiles at `zoom` in a city-sized area, with random scores.
  private static func randomTiles(_ count: Int, zoom: Int, seed: UInt64) -> [FeedbackV1.PredictedTile] {
    var random = SplitMix64(seed: seed)
    let origin = try! Tile(containing: 13.3, 52.55, zoom: zoom)
    var seen = Set<Tile>()
    var tiles: [FeedbackV1.PredictedTile] = []
    while tiles.count < count {
      let tile = try! Tile(z: zoom, x: origin.x + Int(random.next() % 120), y: origin.y + Int(random.next() % 120))
      guard seen.insert(tile).inserted else { continue }
      var predicted = FeedbackV1.PredictedTile()
      predicted.z = Int32(zoom)
      predicted.x = Int64(tile.x)
      predicted.y = Int64(tile.y)
      predicted.scores = ["road": Double(random.next() % 1000) / 1000, "building": Double(random.next() % 1000) / 1000]
      tiles.append(predicted)
    }
    return tiles
  }

  private func put(
    _ client: FeedbackClient, _ set: FeedbackV1.PredictionSet, _ tiles: [FeedbackV1.PredictedTile], batch: Int = 500
  )
    async throws -> FeedbackV1.PutPredictionsResponse
  {
    try await client.putPredictions { sender in
      for (index, start) in stride(from: 0, to: tiles.count, by: batch).enumerated() {
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set.setId
        request.requestId = "batch-\(index)"
        request.tiles = Array(tiles[start..<min(start + batch, tiles.count)])
        try await sender.send(request)
      }
    }
  }

  private func allTiles(
    _ client: FeedbackClient, _ request: FeedbackV1.QueryTilesRequest
  ) async throws -> [FeedbackV1.TileRecord] {
    var request = request
    var tiles: [FeedbackV1.TileRecord] = []
    repeat {
      let page = try await client.queryTiles(request)
      tiles += page.tiles
      request.pageToken = page.nextPageToken
    } while !request.pageToken.isEmpty
    return tiles
  }

  @Test(arguments: Backend.available)
  func quadkeyRangeQueriesEqualABruteForceScan(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, _ in
      let set = try await makeSet(client)
      let predicted = Self.randomTiles(3000, zoom: 15, seed: 7)
      let stored = try await put(client, set, predicted)
      #expect(stored.tilesStored == 3000 && stored.batchesStored == 6)
      let all = predicted.map { try! Tile(z: 15, x: Int($0.x), y: Int($0.y)) }
      var random = SplitMix64(seed: 11)
      let area = (try Tile(containing: 13.3, 52.55, zoom: 15)).bounds
      for round in 0..<12 {
        let span = 0.004 + Double(random.next() % 1000) / 1000 * 0.1
        let west = area.west + Double(random.next() % 1000) / 1000 * 0.6 - 0.05
        let north = area.north - Double(random.next() % 1000) / 1000 * 0.3 + 0.02
        let box = BoundingBox(west: west, south: north - span / 2, east: west + span, north: north)
        var request = FeedbackV1.QueryTilesRequest()
        request.setId = set.setId
        var bbox = FeedbackV1.BoundingBox()
        (bbox.west, bbox.south, bbox.east, bbox.north) = (box.west, box.south, box.east, box.north)
        request.area = .bbox(bbox)
        request.pageSize = Int32(50 + round * 37)
        let got = Set(try await allTiles(client, request).map { try Tile(parsing: $0.tileId) })
        // The scan: every stored tile whose bounds overlap the box.
        let expected = Set(
          all.filter { tile in
            let b = tile.bounds
            return b.west < box.east && b.east > box.west && b.south < box.north && b.north > box.south
          })
        #expect(got == expected, "round \(round): \(got.count) against \(expected.count)")
      }
      // Scattered squares whose cover has more ranges than one query sends (widened, then filtered).
      let origin = try Tile(containing: 13.3, 52.55, zoom: 15)
      var polygons: [Polygon] = []
      for i in 0..<20 {
        for j in 0..<20 {
          let center = origin.lonLat(pixelX: Double(3 * i) + 0.5, pixelY: Double(3 * j) + 0.5, size: 1)
          let half = 0.1 * (origin.bounds.east - origin.bounds.west)
          polygons.append(
            Polygon(
              BoundingBox(
                west: center.longitude - half, south: center.latitude - half, east: center.longitude + half,
                north: center.latitude + half)))
        }
      }
      let cover = Set(try TileCover.tiles(covering: polygons, zoom: 15))
      #expect(cover.count == 400 && QuadkeyRange.ranges(covering: Array(cover)).count > 256)
      var request = FeedbackV1.QueryTilesRequest()
      request.setId = set.setId
      request.area = .geojson(
        String(
          decoding: try JSONSerialization.data(withJSONObject: GeoJSON.object(.multiPolygon(polygons))), as: UTF8.self))
      let got = Set(try await allTiles(client, request).map { try Tile(parsing: $0.tileId) })
      #expect(!got.isEmpty && got == Set(all.filter(cover.contains)))
    }
  }

  @Test(arguments: Backend.available)
  func validityIsAllOrNothingWithHistoryFiltersAndStats(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withFeedback(backend) { client, store in
      let set = try await makeSet(client)
      var tiles = Self.randomTiles(40, zoom: 15, seed: 3)
      for index in tiles.indices { tiles[index].scores = ["road": index < 20 ? 0.9 : 0.2, "building": 0.1] }
      var feature = FeedbackV1.Feature()
      feature.className = "building"
      feature.score = 0.7
      feature.geometry = #"{"type":"Polygon","coordinates":[[[13.3,52.5],[13.31,52.5],[13.31,52.51],[13.3,52.5]]]}"#
      tiles[0].features = [feature]
      _ = try await put(client, set, tiles)
      // The same batch again (a retry): stored once.
      let again = try await put(client, set, Array(tiles.prefix(10)), batch: 500)
      #expect(again.batchesRepeated == 1 && again.tilesStored == 0)
      #expect(
        try await client.getSet(
          {
            var r = FeedbackV1.GetSetRequest(); r.setId = set.setId; return r
          }()
        ).tileCount == 40)

      func id(_ index: Int) -> String { "15/\(tiles[index].x)/\(tiles[index].y)" }
      func change(
        _ index: Int, _ validity: FeedbackV1.Validity, _ className: String = "road"
      ) -> FeedbackV1.ValidityChange {
        var change = FeedbackV1.ValidityChange()
        change.target = .tileId(id(index))
        change.className = className
        change.validity = validity
        return change
      }
      var request = FeedbackV1.SetValidityRequest()
      request.setId = set.setId
      // One unknown tile: NOT_FOUND naming it, and nothing applied.
      var unknown = change(0, .valid)
      unknown.target = .tileId("15/1/1")
      request.changes = [change(0, .valid), unknown]
      await expectCode(.notFound, "changes[1]: tile 15/1/1 is not in the set") {
        _ = try await client.setValidity(request)
      }
      request.changes = [change(1, .valid, "river")]
      await expectCode(.notFound, "no class 'river'") { _ = try await client.setValidity(request) }
      var history = FeedbackV1.ValidityHistoryRequest()
      history.setId = set.setId
      #expect(try await client.validityHistory(history).entries.isEmpty)

      // 15 of the 20 road tiles valid, 5 invalid; then one changed back to unvalidated.
      request.changes = (0..<15).map { change($0, .valid) } + (15..<20).map { change($0, .invalid) }
      #expect(try await client.setValidity(request).applied == 20)
      request.changes = [change(14, .unvalidated)]
      _ = try await client.setValidity(request)
      var featureChange = FeedbackV1.ValidityChange()
      var query = FeedbackV1.QueryTilesRequest()
      query.setId = set.setId
      query.className = "road"
      let first = try await allTiles(client, query).first { $0.tileId == id(0) }!
      featureChange.target = .featureId(first.features[0].featureId)
      featureChange.className = "building"
      featureChange.validity = .invalid
      request.changes = [featureChange]
      _ = try await client.setValidity(request)
      // A feature's marks come with it; the tile's own marks stay the tile's.
      let marked = try await allTiles(client, query).first { $0.tileId == id(0) }!
      #expect(marked.features[0].validity.map(\.className) == ["building"])
      #expect(marked.features[0].validity.first?.validity == .invalid)
      #expect(
        marked.validity.map(\.className) == ["road"] && marked.features.dropFirst().allSatisfy(\.validity.isEmpty))

      history.tileId = id(14)
      let entries = try await client.validityHistory(history).entries
      #expect(entries.map(\.validity) == [.valid, .unvalidated] && entries.map(\.previous) == [.unvalidated, .valid])
      #expect(entries.allSatisfy { $0.by == "local@local" && $0.atMs > 0 })

      query.status = .onlyValid
      let valid = try await allTiles(client, query)
      #expect(valid.count == 14 && valid.allSatisfy { $0.color == "#00ff00" })
      query.status = .onlyInvalid
      #expect(try await allTiles(client, query).allSatisfy { $0.color == "#ffffff" })
      query.status = .onlyUnvalidated
      query.minScore = 0.5
      let open = try await allTiles(client, query)
      #expect(open.map(\.tileId) == [id(14)] && open[0].color == "#ff0000")

      var stats = FeedbackV1.StatsRequest()
      stats.setId = set.setId
      let counted = try await client.stats(stats)
      #expect(counted.tiles == 40 && counted.validatedTiles == 19)
      let road = try #require(counted.classes.first { $0.className == "road" })
      #expect(road.predicted == 20 && road.valid == 14 && road.invalid == 5 && road.unvalidated == 1)
      #expect(abs(road.precision - 14.0 / 19.0) < 1e-12)

      // Another organisation sees no set; a closed set takes no predictions.
      await expectCode(.notFound, "prediction set") { _ = try await store.set(set.setId, visibleTo: "acme") }
      var close = FeedbackV1.UpdateSetRequest()
      close.setId = set.setId
      close.status = .complete
      #expect(try await client.updateSet(close).status == .complete)
      await expectCode(.failedPrecondition, "COMPLETE") { _ = try await put(client, set, Array(tiles.prefix(1))) }
    }
  }

  @Test(arguments: Backend.available)
  func badPredictionsNameWhatIsWrong(_ backend: Backend) async throws {
    try await withFeedback(backend) { client, _ in
      var request = FeedbackV1.CreateSetRequest()
      request.model = "roads"
      request.zoom = 25
      await expectCode(.invalidArgument, "zoom 25") { _ = try await client.createSet(request) }
      request.zoom = 12
      request.classes = []
      await expectCode(.invalidArgument, "classes") { _ = try await client.createSet(request) }
      request.classes = classLabels("road")
      request.aoi = #"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#
      await expectCode(.invalidArgument, "aoi: geometry.coordinates[0]: the ring is not closed") {
        _ = try await client.createSet(request)
      }
      let set = try await makeSet(client, zoom: 12)
      var tiles = Self.randomTiles(2, zoom: 12, seed: 1)
      tiles[1].z = 13
      await expectCode(.invalidArgument, "tiles[1]: tile 13/") { _ = try await put(client, set, tiles) }
      tiles[1].z = 12
      tiles[1].scores["river"] = 0.3
      await expectCode(.invalidArgument, "no class 'river'") { _ = try await put(client, set, tiles) }
    }
  }
}
