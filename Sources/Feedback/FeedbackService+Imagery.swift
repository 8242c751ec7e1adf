import Foundation
import ShoalGeo
import ShoalImagery
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import Synchronization

/// Imagery sources and areas of interest: named, per organisation, and the fetching of tiles.
extension FeedbackService {
  /// The most tiles one FetchTiles call takes.
  static let maxFetchTiles = 100_000

  public func addImagery(
    _ request: FeedbackV1.AddImageryRequest, context: ServerContext
  ) async throws -> FeedbackV1.ImagerySource {
    var source = request.source ?? FeedbackV1.ImagerySource()
    if source.tileSize == 0 { source.tileSize = 256 }
    if source.maxZoom == 0 { source.maxZoom = 22 }
    _ = try Self.imagerySource(source, headers: request.headers)
    source.organization = try CallerOrganization.owner(named: source.organization, of: "imagery sources")
    source.headerNames = []
    source.createdBy = CallerPrincipal.name
    source.createdAtMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    return try await store.putImagery(source, headers: request.headers, replace: request.replace)
  }

  public func getImagery(
    _ request: FeedbackV1.GetImageryRequest, context: ServerContext
  ) async throws -> FeedbackV1.ImagerySource {
    let organization = try CallerOrganization.owner(named: request.organization, of: "imagery sources")
    return try await store.imagery(request.name, organization: organization).source
  }

  public func revealImagery(
    _ request: FeedbackV1.GetImageryRequest, context: ServerContext
  ) async throws -> FeedbackV1.RevealedImagery {
    guard context.isUnixSocketPeer else {
      throw RPCError(
        .permissionDenied, "RevealImagery is for the mesh's services on this host (the Unix socket), not over TCP")
    }
    let organization = try CallerOrganization.owner(named: request.organization, of: "imagery sources")
    let stored = try await store.imagery(request.name, organization: organization)
    var revealed = FeedbackV1.RevealedImagery()
    revealed.source = stored.source
    revealed.headers = stored.headers
    return revealed
  }

  public func listImagery(
    _ request: FeedbackV1.ListImageryRequest, context: ServerContext
  ) async throws -> FeedbackV1.ListImageryResponse {
    let organization = try CallerOrganization.owner(named: request.organization, of: "imagery sources")
    var response = FeedbackV1.ListImageryResponse()
    response.sources = try await store.imagerySources(organization: organization)
    return response
  }

  public func removeImagery(
    _ request: FeedbackV1.RemoveImageryRequest, context: ServerContext
  ) async throws -> FeedbackV1.RemoveImageryResponse {
    let organization = try CallerOrganization.owner(named: request.organization, of: "imagery sources")
    guard try await store.removeImagery(request.name, organization: organization) else {
      throw RPCError(.notFound, "imagery source '\(request.name)' not found")
    }
    return FeedbackV1.RemoveImageryResponse()
  }

  public func fetchTiles(
    _ request: FeedbackV1.FetchTilesRequest, responses: RPCResponseWriter<FeedbackV1.FetchedTile>,
    context: ServerContext
  ) async throws {
    let organization = try CallerOrganization.owner(named: request.organization, of: "imagery sources")
    let stored = try await store.imagery(request.imagery, organization: organization)
    let source = try Self.imagerySource(stored.source, headers: stored.headers)
    let tiles = try await requestedTiles(request, organization: organization)
    guard !tiles.isEmpty else { throw RPCError(.invalidArgument, "tiles: the request names no tile") }
    guard tiles.count <= Self.maxFetchTiles else {
      throw RPCError(
        .invalidArgument, "the request names \(tiles.count) tiles; one call fetches at most \(Self.maxFetchTiles)")
    }
    if let outside = tiles.first(where: { !source.serves(zoom: $0.z) }) {
      throw RPCError(
        .invalidArgument,
        "tile \(outside) is at zoom \(outside.z); '\(source.name)' has zooms \(source.minZoom)–\(source.maxZoom)")
    }
    let total = Int64(tiles.count)
    let done = Mutex<Int64>(0)
    await fetcher.fetch(tiles, from: source, owner: organization) { result in
      var answer = FeedbackV1.FetchedTile()
      answer.total = total
      answer.done = done.withLock { done in
        done += 1
        return done
      }
      switch result {
      case .success(let fetched):
        answer.tileId = fetched.tile.description
        answer.format = fetched.format
        answer.fromCache = fetched.fromCache
        answer.attempts = Int32(fetched.attempts)
        if request.withData { answer.data = [UInt8](fetched.data) }
      case .failure(let failure):
        answer.tileId = failure.tile.description
        answer.attempts = Int32(failure.attempts)
        var reason = FeedbackV1.TileFailure()
        reason.status = Int32(failure.status)
        reason.url = failure.url
        reason.message = failure.message
        answer.failure = reason
      }
      try? await responses.send(answer)
    }
    try Task.checkCancellation()
  }

  public func addArea(_ request: FeedbackV1.AddAreaRequest, context: ServerContext) async throws -> FeedbackV1.Area {
    guard !request.name.isEmpty, request.name.count <= 128, !request.name.contains("/") else {
      throw RPCError(.invalidArgument, "name '\(request.name)': give 1 to 128 characters without '/'")
    }
    _ = try Self.areaPolygons(request.geojson)
    var area = FeedbackV1.Area()
    area.name = request.name
    area.organization = try CallerOrganization.owner(named: request.organization, of: "areas")
    area.geojson = request.geojson
    area.description = request.description
    area.createdBy = CallerPrincipal.name
    area.createdAtMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    return try Self.withBounds(try await store.putArea(area, replace: request.replace))
  }

  public func getArea(_ request: FeedbackV1.GetAreaRequest, context: ServerContext) async throws -> FeedbackV1.Area {
    let organization = try CallerOrganization.owner(named: request.organization, of: "areas")
    return try Self.withBounds(try await store.area(request.name, organization: organization))
  }

  public func listAreas(
    _ request: FeedbackV1.ListAreasRequest, context: ServerContext
  ) async throws -> FeedbackV1.ListAreasResponse {
    let organization = try CallerOrganization.owner(named: request.organization, of: "areas")
    var response = FeedbackV1.ListAreasResponse()
    response.areas = try await store.areas(organization: organization).map(Self.withBounds)
    return response
  }

  /// The tiles a FetchTiles request names: its list, or its area's cover at its zoom.
  private func requestedTiles(_ request: FeedbackV1.FetchTilesRequest, organization: String) async throws -> [Tile] {
    if !request.tiles.isEmpty {
      guard request.area == nil else { throw RPCError(.invalidArgument, "give tiles or an area, not both") }
      return try request.tiles.enumerated().map { index, text throws(RPCError) in
        do throws(GeoError) {
          return text.contains("/") ? try Tile(parsing: text) : try Tile(quadkey: text)
        } catch {
          throw RPCError(.invalidArgument, "tiles[\(index)] '\(text)': \(error.message)")
        }
      }
    }
    let zoom = Int(request.zoom)
    guard (0...Tile.maxZoom).contains(zoom) else {
      throw RPCError(.invalidArgument, "zoom \(request.zoom) is outside 0–\(Tile.maxZoom)")
    }
    let polygons: [Polygon]
    switch request.area {
    case .bbox(let box)?:
      do throws(GeoError) {
        return try TileCover.tiles(
          in: BoundingBox(box), zoom: zoom)
      } catch {
        throw RPCError(.invalidArgument, "bbox: \(error.message)")
      }
    case .geojson(let text)?:
      polygons = try Self.areaPolygons(text)
    case .areaName(let name)?:
      polygons = try Self.areaPolygons(try await store.area(name, organization: organization).geojson)
    case nil:
      throw RPCError(.invalidArgument, "give tiles, a bbox, a GeoJSON polygon or an area name")
    }
    do throws(GeoError) {
      return try TileCover.tiles(covering: polygons, zoom: zoom)
    } catch {
      throw RPCError(.invalidArgument, "area: \(error.message)")
    }
  }

  /// The polygons of an area's GeoJSON, checked.
  ///
  /// - Throws: INVALID_ARGUMENT naming what is wrong.
  static func areaPolygons(_ text: String) throws(RPCError) -> [Polygon] {
    do throws(GeoError) {
      return try GeoJSON.areaPolygons(text)
    } catch {
      throw RPCError(.invalidArgument, "geojson: \(error.message)")
    }
  }

  static func withBounds(_ area: FeedbackV1.Area) throws -> FeedbackV1.Area {
    var area = area
    area.bbox = FeedbackV1.BoundingBox(Geometry.multiPolygon(try areaPolygons(area.geojson)).bounds)
    return area
  }

  /// The stored source as ShoalImagery's, checked.
  ///
  /// - Throws: INVALID_ARGUMENT naming what is wrong.
  static func imagerySource(
    _ source: FeedbackV1.ImagerySource, headers: [String: String]
  ) throws(RPCError) -> ImagerySource {
    do throws(ImageryError) {
      return try ImagerySource(source, headers: headers)
    } catch {
      throw RPCError(.invalidArgument, error.message)
    }
  }
}
