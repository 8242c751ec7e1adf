import Foundation
import ShoalGeo
public import ShoalImagery
public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs
public import ShoalStore

/// `shoal.feedback.v1.Feedback`: prediction sets stored as quadkey-indexed tiles, and what people
/// say of them, valid or invalid per class, with the history of every change.
///
/// Sets belong to a registry organisation, as experiments do: a caller with a token sees only its
/// organisation's sets (any other is NOT_FOUND); peers on the Unix socket see every organisation's.
public struct FeedbackService: FeedbackV1.Feedback.ServiceProtocol {
  /// The role each method needs over TCP: reading needs reader, reviewing and writing writer.
  public static let requirements: [String: RegistryV1.Role] = [
    "GetSet": .reader, "ListSets": .reader, "QueryTiles": .reader, "ValidityHistory": .reader, "Stats": .reader,
    "CreateSet": .writer, "UpdateSet": .writer, "PutPredictions": .writer, "SetValidity": .writer,
    "NextForReview": .writer, "ReleaseLocks": .writer, "Export": .reader,
    "AddImagery": .writer, "RemoveImagery": .writer, "GetImagery": .reader, "ListImagery": .reader,
    // Refused over TCP by the service itself too: a key is never shown to a person.
    "RevealImagery": .admin,
    "FetchTiles": .reader, "AddArea": .writer, "GetArea": .reader, "ListAreas": .reader,
    "BuildTrainingSet": .reader, "ListTrainingSets": .reader, "DownloadTrainingSet": .reader,
  ]

  /// The most quadkey ranges one query sends to the database; a cover with more is widened to
  /// that many (merging the closest ranges) and filtered exactly afterwards.
  static let maxRanges = 256

  let store: FeedbackStore
  let fetcher: TileFetcher
  let blobs: BlobStore?
  let tracking: TrackingV1.Tracking.Client?

  /// The service over `store`, fetching imagery with `fetcher`, keeping training sets in `blobs`
  /// and recording them in `tracking`.
  public init(
    store: FeedbackStore, fetcher: TileFetcher = TileFetcher(), blobs: BlobStore? = nil,
    tracking: TrackingV1.Tracking.Client? = nil
  ) {
    self.store = store
    self.fetcher = fetcher
    self.blobs = blobs
    self.tracking = tracking
  }

  public func createSet(
    _ request: FeedbackV1.CreateSetRequest, context: ServerContext
  ) async throws -> FeedbackV1.PredictionSet {
    guard !request.model.isEmpty else { throw RPCError(.invalidArgument, "model: give the model reference") }
    var request = request
    if request.items {
      guard request.imagery.isEmpty, request.aoi.isEmpty, request.zoom == 0 else {
        throw RPCError(.invalidArgument, "items: a set of items has no imagery, aoi or zoom")
      }
      request.zoom = Int32(ItemKey.zoom)
    }
    guard (0...Tile.maxZoom).contains(Int(request.zoom)) else {
      throw RPCError(.invalidArgument, "zoom \(request.zoom) is outside 0–\(Tile.maxZoom)")
    }
    let names = request.classes.map(\.name)
    guard !names.isEmpty, Set(names).count == names.count, names.allSatisfy({ !$0.isEmpty }) else {
      throw RPCError(.invalidArgument, "classes: give one or more distinct, non-empty class names")
    }
    if !request.aoi.isEmpty {
      do {
        _ = try GeoJSON.features(from: Data(request.aoi.utf8))
      } catch {
        throw RPCError(.invalidArgument, "aoi: \(error.message)")
      }
    }
    let organization = try CallerOrganization.owner(named: request.organization, of: "sets")
    return try await store.createSet(request, organization: organization, principal: CallerPrincipal.name)
  }

  public func getSet(
    _ request: FeedbackV1.GetSetRequest, context: ServerContext
  ) async throws -> FeedbackV1.PredictionSet {
    try await store.set(request.setId, visibleTo: CallerOrganization.current)
  }

  public func listSets(
    _ request: FeedbackV1.ListSetsRequest, context: ServerContext
  ) async throws -> FeedbackV1.ListSetsResponse {
    try await store.sets(request, visibleTo: CallerOrganization.current)
  }

  public func updateSet(
    _ request: FeedbackV1.UpdateSetRequest, context: ServerContext
  ) async throws -> FeedbackV1.PredictionSet {
    switch request.status {
    case .open, .complete, .cancelled: break
    default: throw RPCError(.invalidArgument, "status: give OPEN, COMPLETE or CANCELLED")
    }
    return try await store.updateStatus(request.setId, request.status, visibleTo: CallerOrganization.current)
  }

  public func putPredictions(
    _ requests: RPCRequestStream<FeedbackV1.PutPredictionsRequest>, context: ServerContext
  ) async throws -> FeedbackV1.PutPredictionsResponse {
    // Batches are read and checked while earlier ones are written; the writer takes whatever has
    // arrived (up to 10,000 tiles) into one transaction, so a fast client's batches share commits
    // and a slow client's are stored as each comes.
    let handoff = BatchHandoff(limit: 20_000)
    let store = store
    let writer = Task {
      var response = FeedbackV1.PutPredictionsResponse()
      do {
        while let group = await handoff.take(upTo: 10_000) {
          for stored in try await store.putBatches(group) {
            if let stored {
              response.tilesStored += Int64(stored)
              response.batchesStored += 1
            } else {
              response.batchesRepeated += 1
            }
          }
        }
      } catch {
        await handoff.fail()
        throw error
      }
      return response
    }
    do {
      try await readBatches(requests, into: handoff)
    } catch {
      // What was read and checked before the failure is still stored, as batches are one by one.
      await handoff.finish()
      _ = try? await writer.value
      throw error
    }
    await handoff.finish()
    return try await withTaskCancellationHandler {
      try await writer.value
    } onCancel: {
      writer.cancel()
    }
  }

  /// Reads and checks PutPredictions batches, handing each to the writer.
  private func readBatches(
    _ requests: RPCRequestStream<FeedbackV1.PutPredictionsRequest>, into handoff: BatchHandoff
  ) async throws {
    var sets: [String: FeedbackV1.PredictionSet] = [:]
    var batch = 0
    for try await request in requests {
      defer { batch += 1 }
      if await handoff.failed { return }
      let set: FeedbackV1.PredictionSet
      if let known = sets[request.setId] {
        set = known
      } else {
        set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
        sets[request.setId] = set
      }
      guard set.status == .open else {
        throw RPCError(
          .failedPrecondition,
          "prediction set \(set.setId) is \(set.status.protoName ?? "closed"); only OPEN sets take predictions")
      }
      let classes = Set(set.classes.map(\.name))
      let tiles = try request.tiles.enumerated().map { index, predicted throws(RPCError) in
        let at = "batch \(batch), tiles[\(index)]"
        let tile: Tile
        if set.items {
          guard predicted.quadkey.isEmpty, predicted.z == 0, predicted.x == 0, predicted.y == 0 else {
            throw RPCError(.invalidArgument, "\(at): set \(set.setId) holds items; give each its item key, not a tile")
          }
          tile = try ItemKey.tile(predicted.item, at: "\(at).item")
        } else {
          guard predicted.item.isEmpty else {
            throw RPCError(.invalidArgument, "\(at): set \(set.setId) holds map tiles; give z/x/y, not an item")
          }
          do throws(GeoError) {
            tile =
              predicted.quadkey.isEmpty
              ? try Tile(z: Int(predicted.z), x: Int(clamping: predicted.x), y: Int(clamping: predicted.y))
              : try Tile(quadkey: predicted.quadkey)
          } catch {
            throw RPCError(.invalidArgument, "\(at): \(error.message)")
          }
        }
        guard tile.z == Int(set.zoom) else {
          throw RPCError(
            .invalidArgument, "\(at): tile \(tile) is at zoom \(tile.z); the set's tiles are at \(set.zoom)")
        }
        if let unknown = predicted.scores.keys.first(where: { !classes.contains($0) }) {
          throw RPCError(.invalidArgument, "\(at): the set has no class '\(unknown)'")
        }
        if let bad = predicted.scores.first(where: { !$0.value.isFinite }) {
          throw RPCError(.invalidArgument, "\(at): the score of '\(bad.key)' is \(bad.value)")
        }
        for (number, feature) in predicted.features.enumerated() {
          guard classes.contains(feature.className) else {
            throw RPCError(.invalidArgument, "\(at).features[\(number)]: the set has no class '\(feature.className)'")
          }
          do throws(GeoError) {
            let geometry = try GeoJSON.features(from: Data(feature.geometry.utf8))
            guard geometry.count == 1, geometry[0].geometry != nil else { throw GeoError("not one geometry") }
          } catch {
            throw RPCError(.invalidArgument, "\(at).features[\(number)].geometry: \(error.message)")
          }
        }
        return (tile, predicted.item, predicted.scores, predicted.features)
      }
      await handoff.put(FeedbackStore.PutBatch(setID: Int64(set.setId)!, requestID: request.requestId, tiles: tiles))
    }
  }

  public func queryTiles(
    _ request: FeedbackV1.QueryTilesRequest, context: ServerContext
  ) async throws -> FeedbackV1.QueryTilesResponse {
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    let classes = Set(set.classes.map(\.name))
    guard request.className.isEmpty || classes.contains(request.className) else {
      throw RPCError(.notFound, "class_name: the set has no class '\(request.className)'")
    }
    let pageSize = request.pageSize == 0 ? 1000 : Int(request.pageSize)
    guard (1...10_000).contains(pageSize) else { throw RPCError(.invalidArgument, "page_size must be 1–10000") }
    // A cursor: the last tile's id, or for an area's query its quadkey number (-1: from the start).
    var after: Int64 = request.area == nil && request.items.isEmpty ? 0 : -1
    if !request.pageToken.isEmpty {
      guard let token = Int64(request.pageToken) else { throw RPCError(.invalidArgument, "page_token is malformed") }
      after = token
    }
    let zoom = Int(set.zoom)
    if set.items, request.area != nil {
      throw RPCError(.invalidArgument, "area: set \(set.setId) holds items, not map tiles; query it without an area")
    }
    var cover: Set<Tile>?
    var ranges: [QuadkeyRange]?
    do throws(GeoError) {
      switch request.area {
      case .bbox(let box)?:
        let tiles = try TileCover.tiles(
          in: BoundingBox(box), zoom: zoom)
        cover = Set(tiles)
        ranges = Self.widened(QuadkeyRange.ranges(covering: tiles))
      case .geojson(let text)?:
        let polygons = try GeoJSON.features(from: Data(text.utf8)).flatMap { $0.geometry?.polygons ?? [] }
        guard !polygons.isEmpty else { throw GeoError("geojson holds no Polygon or MultiPolygon") }
        let tiles = try TileCover.tiles(covering: polygons, zoom: zoom)
        cover = Set(tiles)
        ranges = Self.widened(QuadkeyRange.ranges(covering: tiles))
      case nil:
        break
      }
    } catch {
      throw RPCError(.invalidArgument, "area: \(error.message)")
    }
    if !request.items.isEmpty {
      guard set.items else {
        throw RPCError(.invalidArgument, "items: set \(set.setId) holds map tiles; query it by area")
      }
      guard request.items.count <= 10_000 else { throw RPCError(.invalidArgument, "items: give at most 10000 keys") }
      let tiles = try request.items.enumerated().map { index, key throws(RPCError) in
        try ItemKey.tile(key, at: "items[\(index)]")
      }
      cover = Set(tiles)
      ranges = Self.widened(QuadkeyRange.ranges(covering: tiles))
    }
    var records: [FeedbackV1.TileRecord] = []
    var more = true
    while records.count < pageSize && more {
      // Without filters every tile read is kept, so one page's worth is read; with them, more.
      let filtered = request.status != .anyStatus || request.minScore > 0
      let batch = try await store.tiles(
        setID: Int64(set.setId)!, zoom: zoom, ranges: ranges, after: after,
        limit: filtered ? max(2 * pageSize, 500) : pageSize)
      more = !batch.isEmpty
      guard let last = batch.last else { break }
      let candidates = batch.filter { stored in
        (cover?.contains(stored.tile) ?? true) && Self.score(stored, request.className) >= request.minScore
      }
      let validity = try await store.validity(of: candidates.filter(\.marked).map(\.id))
      var kept: [(FeedbackStore.StoredTile, [FeedbackV1.ClassValidity])] = []
      for stored in candidates {
        let marks = (validity[stored.id] ?? []).filter { $0.feature == 0 }.map(\.record)
        let state = Self.state(marks, request.className)
        let wanted: Bool =
          switch request.status {
          case .anyStatus: true
          case .onlyUnvalidated: state == .unvalidated
          case .onlyValid: state == .valid
          case .onlyInvalid: state == .invalid
          case .unrecognized: true
          }
        if wanted { kept.append((stored, marks)) }
        if records.count + kept.count == pageSize {
          after = Self.cursor(stored, byQuadkey: ranges != nil)
          break
        }
      }
      if records.count + kept.count < pageSize { after = Self.cursor(last, byQuadkey: ranges != nil) }
      let features = try await store.features(of: kept.map(\.0).filter(\.featured).map(\.id))
      for (stored, marks) in kept {
        let colors = set.colors ?? FeedbackV1.DisplayColors()
        let color: String =
          switch Self.state(marks, request.className) {
          case .valid: colors.valid
          case .invalid: colors.invalid
          default: colors.unvalidated
          }
        records.append(
          Self.record(
            stored, validity: marks, color: color,
            features: Self.marked(features[stored.id] ?? [], validity[stored.id] ?? [])))
      }
    }
    var response = FeedbackV1.QueryTilesResponse()
    response.tiles = records
    if records.count == pageSize { response.nextPageToken = String(after) }
    return response
  }

  public func setValidity(
    _ request: FeedbackV1.SetValidityRequest, context: ServerContext
  ) async throws -> FeedbackV1.SetValidityResponse {
    guard !request.changes.isEmpty, request.changes.count <= 10_000 else {
      throw RPCError(.invalidArgument, "changes: give 1–10000 changes")
    }
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    var changes = request.changes
    // In a set of items, each key is looked up at its place; an error names the key again.
    var keys: [String: String] = [:]
    if set.items {
      for index in changes.indices {
        if case .tileId(let key)? = changes[index].target {
          let place = "\(try ItemKey.tile(key, at: "changes[\(index)].tile_id"))"
          keys[place] = key
          changes[index].target = .tileId(place)
        }
      }
    }
    var response = FeedbackV1.SetValidityResponse()
    do {
      response.applied = Int32(
        try await store.setValidity(
          setID: Int64(set.setId)!, classes: Set(set.classes.map(\.name)), changes: changes,
          by: CallerPrincipal.name))
    } catch let error as RPCError where !keys.isEmpty {
      var message = error.message
      for (place, key) in keys {
        message = message.replacingOccurrences(of: "tile '\(place)'", with: "item '\(key)'")
          .replacingOccurrences(of: "tile \(place)", with: "item '\(key)'")
      }
      throw RPCError(error.code, message)
    }
    return response
  }

  public func validityHistory(
    _ request: FeedbackV1.ValidityHistoryRequest, context: ServerContext
  ) async throws -> FeedbackV1.ValidityHistoryResponse {
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    var tile: Tile?
    if set.items, !request.tileId.isEmpty {
      tile = try ItemKey.tile(request.tileId, at: "tile_id")
    } else if !request.tileId.isEmpty {
      do {
        tile = try Tile(parsing: request.tileId)
      } catch {
        throw RPCError(.invalidArgument, "tile_id: \(error.message)")
      }
    }
    var response = FeedbackV1.ValidityHistoryResponse()
    response.entries = try await store.history(setID: Int64(set.setId)!, tile: tile)
    return response
  }

  public func nextForReview(
    _ request: FeedbackV1.NextForReviewRequest, context: ServerContext
  ) async throws -> FeedbackV1.NextForReviewResponse {
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    let n = request.n == 0 ? 10 : Int(request.n)
    guard (1...100).contains(n) else { throw RPCError(.invalidArgument, "n must be 1–100") }
    let seconds = request.lockSeconds == 0 ? 300 : Int64(request.lockSeconds)
    guard (1...86_400).contains(seconds) else { throw RPCError(.invalidArgument, "lock_seconds must be 1–86400") }
    guard request.className.isEmpty || set.classes.contains(where: { $0.name == request.className }) else {
      throw RPCError(.notFound, "class_name: the set has no class '\(request.className)'")
    }
    switch request.strategy {
    case .leastConfidence, .margin, .entropy: break
    case .unrecognized(let value): throw RPCError(.invalidArgument, "strategy \(value) is not a review strategy")
    }
    let chosen = try await store.nextForReview(
      setID: Int64(set.setId)!, strategy: request.strategy,
      className: request.className.isEmpty ? nil : request.className, n: n, holder: CallerPrincipal.name,
      lockMs: seconds * 1000)
    let features = try await store.features(of: chosen.map(\.tile).filter(\.featured).map(\.id))
    var response = FeedbackV1.NextForReviewResponse()
    response.items = chosen.map { stored, uncertainty, until in
      var item = FeedbackV1.ReviewItem()
      item.tile = Self.record(
        stored, validity: [], color: set.colors?.unvalidated ?? "", features: features[stored.id] ?? [])
      item.uncertainty = uncertainty
      item.lockedUntilMs = until
      return item
    }
    return response
  }

  public func releaseLocks(
    _ request: FeedbackV1.ReleaseLocksRequest, context: ServerContext
  ) async throws -> FeedbackV1.ReleaseLocksResponse {
    let set = try await store.set(request.setId, visibleTo: CallerOrganization.current)
    let tiles = try request.tileIds.map { text throws(RPCError) in
      if set.items { return try ItemKey.tile(text, at: "tile_ids") }
      do throws(GeoError) {
        return try Tile(parsing: text)
      } catch {
        throw RPCError(.invalidArgument, "tile_ids: \(error.message)")
      }
    }
    var response = FeedbackV1.ReleaseLocksResponse()
    response.released = Int32(
      try await store.releaseLocks(setID: Int64(set.setId)!, holder: CallerPrincipal.name, tiles: tiles))
    return response
  }

  // MARK: Helpers

  /// A stored tile as the service answers it.
  static func record(
    _ stored: FeedbackStore.StoredTile, validity: [FeedbackV1.ClassValidity], color: String,
    features: [FeedbackV1.Feature]
  ) -> FeedbackV1.TileRecord {
    var record = FeedbackV1.TileRecord()
    record.tileId = stored.item.isEmpty ? "\(stored.tile)" : stored.item
    record.item = stored.item
    record.z = Int32(stored.tile.z)
    record.x = Int64(stored.tile.x)
    record.y = Int64(stored.tile.y)
    record.quadkey = stored.tile.quadkey
    record.scores = stored.scores
    record.validity = validity
    record.color = color
    record.features = features
    return record
  }

  /// `features` with what was said of each (`marks` are a tile's: of the tile itself, feature 0,
  /// and of its features).
  static func marked(
    _ features: [FeedbackV1.Feature], _ marks: [(feature: Int64, record: FeedbackV1.ClassValidity)]
  ) -> [FeedbackV1.Feature] {
    guard marks.contains(where: { $0.feature != 0 }) else { return features }
    return features.map { feature in
      var feature = feature
      feature.validity = marks.filter { String($0.feature) == feature.featureId }.map(\.record)
      return feature
    }
  }

  /// A tile's score for `className`, or its best score when no class is named.
  /// Where a page of tiles ends: the last tile's quadkey number for an area's query (in quadkey
  /// order), else its id.
  static func cursor(_ tile: FeedbackStore.StoredTile, byQuadkey: Bool) -> Int64 {
    byQuadkey ? QuadkeyRange.number(of: tile.tile) : tile.id
  }

  static func score(_ tile: FeedbackStore.StoredTile, _ className: String) -> Double {
    className.isEmpty ? tile.scores.values.max() ?? 0 : tile.scores[className] ?? 0
  }

  /// What was said of a tile for `className`, or for any class (valid if any class is valid,
  /// else invalid if any is, else unvalidated).
  static func state(_ marks: [FeedbackV1.ClassValidity], _ className: String) -> FeedbackV1.Validity {
    let relevant = className.isEmpty ? marks : marks.filter { $0.className == className }
    if relevant.contains(where: { $0.validity == .valid }) { return .valid }
    if relevant.contains(where: { $0.validity == .invalid }) { return .invalid }
    return .unvalidated
  }

  /// At most `maxRanges` ranges holding `ranges`: the closest neighbours merged first.
  static func widened(_ ranges: [QuadkeyRange]) -> [QuadkeyRange] {
    guard ranges.count > maxRanges else { return ranges }
    var bounds = ranges.map { ($0.first, $0.last) }
    let gaps = (1..<bounds.count).map { bounds[$0].0 - bounds[$0 - 1].1 }.sorted()
    let cutoff = gaps[gaps.count - maxRanges]
    var merged: [(Int64, Int64)] = [bounds.removeFirst()]
    for range in bounds {
      if range.0 - merged[merged.count - 1].1 < cutoff {
        merged[merged.count - 1].1 = range.1
      } else {
        merged.append(range)
      }
    }
    return merged.map { QuadkeyRange(zoom: ranges[0].zoom, first: $0.0, last: $0.1) }
  }
}
