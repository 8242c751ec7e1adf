import CHTTPGet
public import Foundation
public import ShoalGeo

/// How tiles are fetched: how many at once, how long to wait, how often to try again.
public struct FetchPolicy: Sendable {
  /// Requests in flight at once, over every fetch of one fetcher.
  public var concurrency = 8
  public var connectTimeout: Duration = .seconds(5)
  /// For the whole request, body included.
  public var timeout: Duration = .seconds(30)
  /// Tries per tile: a 429, a 5xx or a failed connection is tried again, up to this many times.
  public var attempts = 4
  /// The wait before the second try, doubled for each later one (a server's Retry-After is
  /// honoured instead), and at most `maxBackoff`.
  public var backoff: Duration = .milliseconds(250)
  public var maxBackoff: Duration = .seconds(8)
  /// The largest tile taken.
  public var maxBytes = 32 << 20

  public init() {}
}

/// A tile's image as fetched (or found in the cache).
public struct FetchedTile: Sendable {
  public var tile: Tile
  public var data: Data
  /// `png`, `jpeg`, `webp` or `tiff`, from the bytes.
  public var format: String
  public var fromCache: Bool
  /// Requests made for it (0 from the cache).
  public var attempts: Int
}

/// A tile that could not be fetched: the last HTTP status (0: no response), the URL (with the
/// values of key-like query parameters hidden; headers never appear) and why.
public struct TileFetchFailure: Error, Sendable, CustomStringConvertible {
  public var tile: Tile
  public var status: Int
  public var url: String
  public var message: String
  public var attempts: Int

  public var description: String {
    "\(tile): \(status == 0 ? "" : "HTTP \(status) ")from \(url): \(message)"
      + (attempts > 1 ? " (after \(attempts) tries)" : "")
  }
}

/// Fetches tiles over HTTP (libcurl, connections kept alive per worker) or from `file://`
/// directories, through an optional cache, with retries and a concurrency limit.
public final class TileFetcher: Sendable {
  public let policy: FetchPolicy
  public let cache: TileCache?
  /// Threads that each own a libcurl handle.
  private let workers: WorkerThreads<OpaquePointer>

  public init(policy: FetchPolicy = FetchPolicy(), cache: TileCache? = nil) {
    self.policy = policy
    self.cache = cache
    workers = WorkerThreads(
      count: max(1, policy.concurrency), name: "shoal-imagery", setUp: { shoal_http_handle_new()! },
      tearDown: { shoal_http_handle_free($0) })
  }

  /// Fetches `tile` of `source`, owned by `owner` (which keys the cache).
  public func fetch(
    _ tile: Tile, from source: ImagerySource, owner: String
  ) async -> Result<FetchedTile, TileFetchFailure> {
    await fetch(tile, Request(source, owner: owner))
  }

  /// Fetches `tiles` with at most `policy.concurrency` at once, handing each result to `handle` as
  /// it comes (in no particular order). Stops early when the task is cancelled.
  public func fetch(
    _ tiles: [Tile], from source: ImagerySource, owner: String,
    handle: @Sendable (Result<FetchedTile, TileFetchFailure>) async -> Void
  ) async {
    let request = Request(source, owner: owner)
    await withTaskGroup(of: Result<FetchedTile, TileFetchFailure>.self) { group in
      var next = tiles.makeIterator()
      var running = 0
      while running < policy.concurrency * 2, let tile = next.next() {
        group.addTask { await self.fetch(tile, request) }
        running += 1
      }
      while let result = await group.next() {
        await handle(result)
        if Task.isCancelled {
          group.cancelAll()
          continue
        }
        if let tile = next.next() { group.addTask { await self.fetch(tile, request) } }
      }
    }
  }

  /// What every tile of one source's fetch shares: the cache key and the header lines.
  struct Request: Sendable {
    var source: ImagerySource
    var cacheKey: String
    var headerLines: [String]

    init(_ source: ImagerySource, owner: String) {
      self.source = source
      cacheKey = source.cacheKey(owner: owner)
      headerLines = source.headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
    }

    /// The URL or path of `location` as reports show it.
    func shown(_ location: String) -> String {
      source.template.isFile ? "file://\(location)" : TileFetcher.redacted(location)
    }
  }

  private func fetch(_ tile: Tile, _ request: Request) async -> Result<FetchedTile, TileFetchFailure> {
    let source = request.source
    let location = source.template.location(of: tile)
    guard source.serves(zoom: tile.z) else {
      return .failure(
        TileFetchFailure(
          tile: tile, status: 0, url: request.shown(location),
          message: "the source '\(source.name)' has zooms \(source.minZoom)–\(source.maxZoom)", attempts: 0))
    }
    if let data = cache?.get(request.cacheKey, tile), let format = Self.imageFormat(data) {
      return .success(FetchedTile(tile: tile, data: data, format: format, fromCache: true, attempts: 0))
    }
    let result =
      source.template.isFile
      ? await readFile(tile, path: location, request)
      : await download(tile, url: location, request)
    if case .success(let fetched) = result { cache?.put(request.cacheKey, tile, fetched.data) }
    return result
  }

  private func readFile(_ tile: Tile, path: String, _ request: Request) async -> Result<FetchedTile, TileFetchFailure> {
    let data = await workers.run { _ in FileManager.default.contents(atPath: path) }
    guard let data else {
      return .failure(
        TileFetchFailure(tile: tile, status: 0, url: request.shown(path), message: "no such file", attempts: 1))
    }
    guard let format = Self.imageFormat(data) else {
      return .failure(
        TileFetchFailure(
          tile: tile, status: 0, url: request.shown(path), message: "the file is not an image", attempts: 1))
    }
    return .success(FetchedTile(tile: tile, data: data, format: format, fromCache: false, attempts: 1))
  }

  private func download(_ tile: Tile, url: String, _ request: Request) async -> Result<FetchedTile, TileFetchFailure> {
    let lines = request.headerLines
    let policy = policy
    var attempt = 0
    var wait = policy.backoff
    while true {
      attempt += 1
      let response = await workers.run { handle in Self.get(handle, url: url, headers: lines, policy: policy) }
      let failure: (status: Int, message: String, retry: Bool, after: Int)
      switch response {
      case .transport(let message):
        failure = (0, message, true, -1)
      case .response(let status, let body, let contentType, let retryAfter):
        if status == 200 {
          if let format = Self.imageFormat(body) {
            return .success(FetchedTile(tile: tile, data: body, format: format, fromCache: false, attempts: attempt))
          }
          failure = (
            status, "the response is not an image (Content-Type \(contentType.isEmpty ? "none" : contentType))",
            false, -1
          )
        } else {
          failure = (status, Self.reason(status), status == 429 || (500...599).contains(status), retryAfter)
        }
      }
      guard failure.retry, attempt < policy.attempts, !Task.isCancelled else {
        return .failure(
          TileFetchFailure(
            tile: tile, status: failure.status, url: request.shown(url), message: failure.message, attempts: attempt))
      }
      let pause = failure.after >= 0 ? min(.seconds(failure.after), policy.maxBackoff) : wait
      try? await Task.sleep(for: pause)
      wait = min(wait * 2, policy.maxBackoff)
    }
  }

  enum Response: Sendable {
    case response(status: Int, body: Data, contentType: String, retryAfter: Int)
    case transport(String)
  }

  static func get(_ handle: OpaquePointer, url: String, headers: [String], policy: FetchPolicy) -> Response {
    var result = shoal_http_result()
    let connect = Int(policy.connectTimeout / .milliseconds(1))
    let total = Int(policy.timeout / .milliseconds(1))
    let code = withCStrings(headers) { pointers in
      shoal_http_get(
        handle, url, pointers.baseAddress, Int32(headers.count), connect, total, policy.maxBytes, &result)
    }
    defer { shoal_http_result_free(&result) }
    guard code == 0 else { return .transport(String(cStringTuple: result.error)) }
    let body = result.body.map { Data(bytes: $0, count: result.length) } ?? Data()
    return .response(
      status: result.status, body: body, contentType: String(cStringTuple: result.content_type),
      retryAfter: result.retry_after)
  }

  /// POSTs `body` as `get` GETs (no redirects followed; the answer's body is not kept).
  static func post(
    _ handle: OpaquePointer, url: String, headers: [String], body: [UInt8], policy: FetchPolicy
  )
    -> Response
  {
    var result = shoal_http_result()
    let connect = Int(policy.connectTimeout / .milliseconds(1))
    let total = Int(policy.timeout / .milliseconds(1))
    let code = withCStrings(headers) { pointers in
      body.withUnsafeBufferPointer { buffer in
        shoal_http_post(
          handle, url, pointers.baseAddress, Int32(headers.count), buffer.baseAddress, buffer.count, connect, total,
          1 << 20, &result)
      }
    }
    defer { shoal_http_result_free(&result) }
    guard code == 0 else { return .transport(String(cStringTuple: result.error)) }
    return .response(status: result.status, body: Data(), contentType: "", retryAfter: result.retry_after)
  }

  static func reason(_ status: Int) -> String {
    switch status {
    case 204, 404: return "the server has no such tile"
    case 401, 403: return "the server refused the request (check the source's key)"
    case 429: return "the server is rate-limiting"
    case 500...599: return "the server failed"
    default: return "unexpected status"
    }
  }

  /// `png`, `jpeg`, `webp` or `tiff` by the first bytes; nil for anything else.
  public static func imageFormat(_ data: Data) -> String? {
    let head = [UInt8](data.prefix(12))
    if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
    if head.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpeg" }
    if head.count == 12, head.starts(with: Array("RIFF".utf8)), Array(head[8..<12]) == Array("WEBP".utf8) {
      return "webp"
    }
    if head.starts(with: [0x49, 0x49, 0x2A, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "tiff" }
    return nil
  }

  /// `url` with the values of query parameters that look like keys (key, token, secret,
  /// signature, password, auth) replaced by `***`.
  public static func redacted(_ url: String) -> String {
    guard var components = URLComponents(string: url), let items = components.queryItems else { return url }
    let secretish = ["key", "token", "secret", "sig", "password", "auth"]
    components.queryItems = items.map { item in
      let name = item.name.lowercased()
      guard secretish.contains(where: { name.contains($0) }) else { return item }
      return URLQueryItem(name: item.name, value: "***")
    }
    return components.string ?? url
  }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R) -> R {
  let copies = strings.map { strdup($0) }
  defer { copies.forEach { free($0) } }
  let pointers = copies.map { UnsafePointer($0) }
  return pointers.withUnsafeBufferPointer(body)
}

extension String {
  fileprivate init<T>(cStringTuple tuple: T) {
    self = withUnsafeBytes(of: tuple) { bytes in
      String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
  }
}
