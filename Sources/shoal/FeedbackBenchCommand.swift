import ArgumentParser
import Foundation
import ShoalGeo
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore

/// `shoal bench-feedback`: one side of scripts/bench-feedback. The same tiles, boxes and validity
/// batches (from one seed) go either to Shoal's feedback service or to PostGIS as ML Enabler keeps
/// tiles (a polygon per tile under a GiST index, validity as JSONB on the row, queried with
/// ST_Intersects). Prints one JSON line of figures.
struct FeedbackBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-feedback",
    abstract: "Benchmark feedback's tile store against PostGIS (scripts/bench-feedback).",
    shouldDisplay: false)

  @Option(help: "Shoal: the feedback service's address (unix:PATH or tcp://HOST:PORT).") var shoal: String?
  @Option(help: "PostGIS: a postgres:// URL (the postgis extension is installed in a schema of its own).")
  var postgis: String?
  @Option(help: "Tiles, in a square block at zoom 17.") var tiles = 1_000_000
  @Option(help: "Tiles per ingest batch.") var batch = 1000
  @Option(help: "Seconds for each query and validity load.") var duration: Double = 10
  @Option(help: "Validity changes per SetValidity batch.") var changes = 100

  /// The block's north-west tile: central Europe at zoom 17.
  static let origin = try! Tile(containing: 12.9, 52.9, zoom: 17)
  /// A small box (a few tiles) and a city-wide one (Berlin's extent, about 0.6° × 0.35°), in degrees.
  static let boxes: [(name: String, width: Double, height: Double)] = [("small", 0.01, 0.006), ("city", 0.6, 0.35)]

  func run() async throws {
    guard (shoal == nil) != (postgis == nil) else { throw ValidationError("give --shoal or --postgis") }
    let side = Int(Double(tiles).squareRoot().rounded(.up))
    let target: any FeedbackBenchTarget =
      if let shoal {
        try await ShoalTarget(address: try RPCAddress(parsing: shoal))
      } else {
        try await PostGISTarget(url: try StoreURL(parsing: postgis!))
      }
    var figures: [String: Any] = ["tiles": tiles]

    // Ingest: the batches are made first, then timed going in.
    var random = BenchRandom(seed: 17)
    var batches: [[BenchTile]] = []
    var made = 0
    while made < tiles {
      let count = min(batch, tiles - made)
      batches.append(
        (made..<(made + count)).map { index in
          let tile = try! Tile(z: 17, x: Self.origin.x + index % side, y: Self.origin.y + index / side)
          return BenchTile(tile: tile, road: random.unit(), building: random.unit())
        })
      made += count
    }
    let start = ContinuousClock.now
    try await target.ingest(batches)
    let ingestSeconds = (ContinuousClock.now - start) / .seconds(1)
    figures["ingest_tiles_per_s"] = Double(tiles) / ingestSeconds

    // Boxes at random places inside the block, the same sequence on both sides.
    let northWest = Self.origin.bounds
    let southEast = try Tile(z: 17, x: Self.origin.x + side - 1, y: Self.origin.y + side - 1).bounds
    for box in Self.boxes {
      var random = BenchRandom(seed: box.name == "small" ? 1 : 2)
      var queries = 0
      var returned = 0
      // The tiles of the first 20 boxes, the same boxes on both sides: a check that they agree.
      var firstTwenty = 0
      let until = ContinuousClock.now + .milliseconds(Int64(duration * 1000))
      let began = ContinuousClock.now
      while ContinuousClock.now < until {
        let west = northWest.west + random.unit() * max(0, southEast.east - northWest.west - box.width)
        let south = southEast.south + random.unit() * max(0, northWest.north - southEast.south - box.height)
        let found = try await target.query(
          BoundingBox(west: west, south: south, east: west + box.width, north: south + box.height))
        returned += found
        if queries < 20 { firstTwenty += found }
        queries += 1
      }
      let seconds = (ContinuousClock.now - began) / .seconds(1)
      figures["\(box.name)_queries_per_s"] = Double(queries) / seconds
      figures["\(box.name)_queries"] = queries
      figures["\(box.name)_tiles_first_20"] = queries >= 20 ? firstTwenty : -1
      figures["\(box.name)_tiles_per_query"] = queries == 0 ? 0 : Double(returned) / Double(queries)
    }

    // SetValidity batches of random tiles.
    random = BenchRandom(seed: 3)
    var validityBatches = 0
    let until = ContinuousClock.now + .milliseconds(Int64(duration * 1000))
    let began = ContinuousClock.now
    while ContinuousClock.now < until {
      let picked = (0..<changes).map { _ -> (Tile, Bool) in
        let index = Int(random.next() % UInt64(tiles))
        return (try! Tile(z: 17, x: Self.origin.x + index % side, y: Self.origin.y + index / side), random.unit() < 0.5)
      }
      try await target.setValidity(picked)
      validityBatches += 1
    }
    figures["validity_batches_per_s"] = Double(validityBatches) / ((ContinuousClock.now - began) / .seconds(1))
    figures["validity_changes_per_batch"] = changes
    await target.close()
    let data = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
    emit(String(decoding: data, as: UTF8.self))
  }
}

struct BenchTile {
  var tile: Tile
  var road: Double
  var building: Double
}

/// SplitMix64, so that both sides see the same tiles, boxes and changes.
struct BenchRandom {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

protocol FeedbackBenchTarget: Sendable {
  func ingest(_ batches: [[BenchTile]]) async throws
  /// Every tile meeting `box` (all pages), with scores and validity; returns how many.
  func query(_ box: BoundingBox) async throws -> Int
  /// Marks each tile's `road` valid (true) or invalid, with the change kept in a history.
  func setValidity(_ changes: [(Tile, Bool)]) async throws
  func close() async
}

/// Shoal's feedback service: one PutPredictions stream, QueryTiles pages, SetValidity calls.
final class ShoalTarget: FeedbackBenchTarget, @unchecked Sendable {
  let rpc: RPCClient
  let client: FeedbackV1.Feedback.Client
  let setID: String

  init(address: RPCAddress) async throws {
    rpc = RPCClient(address: address)
    client = FeedbackV1.Feedback.Client(rpc)
    var create = FeedbackV1.CreateSetRequest()
    create.model = "bench@production"
    create.zoom = 17
    create.classes = ["road", "building"].map { name in
      var label = RegistryV1.ClassLabel()
      label.name = name
      return label
    }
    setID = try await client.createSet(create).setId
  }

  /// One client stream of every batch.
  func ingest(_ batches: [[BenchTile]]) async throws {
    let setID = setID
    let response = try await client.putPredictions { sender in
      for (number, tiles) in batches.enumerated() {
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = setID
        request.requestId = "bench-\(number)"
        request.tiles = tiles.map { bench in
          var tile = FeedbackV1.PredictedTile()
          (tile.z, tile.x, tile.y) = (17, Int64(bench.tile.x), Int64(bench.tile.y))
          tile.scores = ["road": bench.road, "building": bench.building]
          return tile
        }
        try await sender.send(request)
      }
    }
    guard response.batchesStored == batches.count else {
      throw ValidationError("\(response.batchesStored) of \(batches.count) batches were stored")
    }
  }

  func query(_ box: BoundingBox) async throws -> Int {
    var request = FeedbackV1.QueryTilesRequest()
    request.setId = setID
    request.area = .bbox(FeedbackV1.BoundingBox(box))
    request.pageSize = 10_000
    var count = 0
    repeat {
      let page = try await client.queryTiles(request)
      count += page.tiles.count
      request.pageToken = page.nextPageToken
    } while !request.pageToken.isEmpty
    return count
  }

  func setValidity(_ changes: [(Tile, Bool)]) async throws {
    var request = FeedbackV1.SetValidityRequest()
    request.setId = setID
    request.changes = changes.map { tile, valid in
      var change = FeedbackV1.ValidityChange()
      change.target = .tileId(tile.description)
      change.className = "road"
      change.validity = valid ? .valid : .invalid
      return change
    }
    _ = try await client.setValidity(request)
  }

  func close() async { await rpc.close() }
}

/// PostGIS as ML Enabler keeps prediction tiles: a row per tile with its polygon (SRID 4326)
/// under a GiST index, its scores and its validity as JSONB; ST_Intersects finds a box's tiles.
/// Validity changes update the row and add a history row, as Shoal keeps one.
final class PostGISTarget: FeedbackBenchTarget, @unchecked Sendable {
  let database: Database

  init(url: StoreURL) async throws {
    let schema = "feedback_bench"
    database = try await Database.open(url, service: schema, dataDirectory: "/tmp")
    _ = try await database.transaction { connection in
      try connection.executeScript(
        """
        CREATE EXTENSION IF NOT EXISTS postgis SCHEMA \(schema);
        DROP TABLE IF EXISTS prediction_tiles; DROP TABLE IF EXISTS validity_history;
        CREATE TABLE prediction_tiles (
          id BIGSERIAL PRIMARY KEY, set_id BIGINT NOT NULL, z INT NOT NULL, x BIGINT NOT NULL, y BIGINT NOT NULL,
          quadkey TEXT NOT NULL, scores JSONB NOT NULL, validity JSONB NOT NULL DEFAULT '{}',
          geom geometry(Polygon, 4326) NOT NULL, UNIQUE (set_id, z, x, y));
        CREATE INDEX prediction_tiles_geom ON prediction_tiles USING GIST (geom);
        CREATE TABLE validity_history (
          id BIGSERIAL PRIMARY KEY, tile_id BIGINT NOT NULL, class_name TEXT NOT NULL, state TEXT NOT NULL,
          by_principal TEXT NOT NULL, at_ms BIGINT NOT NULL);
        """)
    }
  }

  /// A transaction per batch, its rows pipelined through one prepared INSERT.
  func ingest(_ batches: [[BenchTile]]) async throws {
    for tiles in batches { try await insert(tiles) }
    _ = try await database.transaction { connection in try connection.executeScript("ANALYZE prediction_tiles") }
  }

  private func insert(_ tiles: [BenchTile]) async throws {
    let rows = tiles.map { bench -> [SQLValue] in
      let box = bench.tile.bounds
      return [
        .integer(Int64(bench.tile.x)), .integer(Int64(bench.tile.y)), .text(bench.tile.quadkey),
        .text(#"{"road": \#(bench.road), "building": \#(bench.building)}"#), .real(box.west), .real(box.south),
        .real(box.east), .real(box.north),
      ]
    }
    try await database.transaction { connection in
      try connection.executeBatch(
        """
        INSERT INTO prediction_tiles (set_id, z, x, y, quadkey, scores, geom)
        VALUES (1, 17, $1, $2, $3, $4::jsonb, ST_MakeEnvelope($5, $6, $7, $8, 4326))
        """, rows)
    }
  }

  func query(_ box: BoundingBox) async throws -> Int {
    try await database.read { connection in
      try connection.query(
        """
        SELECT id, z, x, y, quadkey, scores::text AS scores, validity::text AS validity FROM prediction_tiles
        WHERE set_id = 1 AND ST_Intersects(geom, ST_MakeEnvelope($1, $2, $3, $4, 4326))
        """, .real(box.west), .real(box.south), .real(box.east), .real(box.north))
    }.count
  }

  func setValidity(_ changes: [(Tile, Bool)]) async throws {
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    try await database.transaction { connection in
      for (tile, valid) in changes {
        let state = valid ? "valid" : "invalid"
        let rows = try connection.query(
          """
          UPDATE prediction_tiles SET validity = validity || jsonb_build_object('road', $1::text)
          WHERE set_id = 1 AND z = 17 AND x = $2 AND y = $3 RETURNING id
          """, .text(state), .integer(Int64(tile.x)), .integer(Int64(tile.y)))
        guard let id = rows.first else { throw ValidationError("tile \(tile) is not stored") }
        _ = try connection.execute(
          "INSERT INTO validity_history (tile_id, class_name, state, by_principal, at_ms) VALUES ($1, 'road', $2, 'bench', $3)",
          .integer(try id.int("id")), .text(state), .integer(now))
      }
    }
  }

  func close() async { await database.close() }
}
