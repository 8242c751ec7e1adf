import Foundation
import ShoalGeo
import ShoalImagery
import ShoalTestSupport
import Synchronization
import Testing

@Suite struct TileTemplateTests {
  @Test func placeholdersAreReplaced() throws {
    let tile = try Tile(z: 3, x: 5, y: 2)
    #expect(try TileTemplate("https://t.example/{z}/{x}/{y}.png").location(of: tile) == "https://t.example/3/5/2.png")
    // TMS counts rows from the south: 2^3 − 1 − 2.
    #expect(try TileTemplate("http://t/{z}/{x}/{-y}.jpg").location(of: tile) == "http://t/3/5/5.jpg")
    #expect(try TileTemplate("http://t/q/{quadkey}").location(of: tile) == "http://t/q/\(tile.quadkey)")
    let spread = try TileTemplate("https://{s}.t/{z}/{x}/{y}", subdomains: ["a", "b", "c"])
    // The subdomain is chosen by (x + y) mod their count, so a tile always has one URL.
    #expect(spread.location(of: tile) == "https://b.t/3/5/2")
    #expect(spread.location(of: try Tile(z: 3, x: 0, y: 0)) == "https://a.t/3/0/0")
    #expect(try TileTemplate("file:///data/tiles/{z}/{x}/{y}.png").location(of: tile) == "/data/tiles/3/5/2.png")
  }

  @Test func templatesWithoutATileAreRefused() {
    let refused: [(String, [String], String)] = [
      ("https://t.example/tiles.png", [], "names no tile"),
      ("https://t.example/{x}/{y}.png", [], "names no tile"),
      ("https://t.example/{z}/{x}.png", [], "give {x} and {y}"),
      ("https://t.example/{z}/{x}/{y}/{r}.png", [], "unknown placeholder {r}"),
      ("https://{s}.t.example/{z}/{x}/{y}.png", [], "give the subdomains"),
      ("ftp://t.example/{z}/{x}/{y}.png", [], "http://, https:// or file://"),
      ("https://t.example/{z/{x}/{y}.png", [], "unknown placeholder"),
      ("https://t.example/{z}/{x}/{y", [], "never closed"),
    ]
    for (text, subdomains, reason) in refused {
      #expect {
        _ = try TileTemplate(text, subdomains: subdomains)
      } throws: { error in
        (error as? ImageryError)?.message.contains(reason) == true
      }
    }
  }

  @Test func keyLikeQueryValuesAreHiddenInReports() {
    #expect(
      TileFetcher.redacted("https://t/1/2/3.png?access_token=sk.secret&style=dark")
        == "https://t/1/2/3.png?access_token=***&style=dark")
    #expect(TileFetcher.redacted("https://t/1/2/3.png?apiKey=abc") == "https://t/1/2/3.png?apiKey=***")
  }
}

@Suite(.serialized) struct TileFetcherTests {
  func source(_ server: TestHTTPServer, headers: [String: String] = [:], maxZoom: Int = 22) throws -> ImagerySource {
    try ImagerySource(
      name: "test", template: TileTemplate("\(server.base)/{z}/{x}/{y}.png"), maxZoom: maxZoom, headers: headers)
  }

  var quick: FetchPolicy {
    var policy = FetchPolicy()
    policy.backoff = .milliseconds(20)
    policy.maxBackoff = .milliseconds(100)
    return policy
  }

  @Test func retriesRateLimitsAndServerFailuresThenSucceeds() async throws {
    let server = try await TestHTTPServer { request in
      switch request.attempt {
      case 0: .init(status: 503)
      case 1: .init(status: 429, headers: ["Retry-After": "0"])
      default: .init(body: pngLike(request.path))
      }
    }
    defer { Task { await server.close() } }
    let fetcher = TileFetcher(policy: quick)
    let fetched = try await fetcher.fetch(try Tile(z: 4, x: 3, y: 2), from: try source(server), owner: "local").get()
    #expect(fetched.attempts == 3)
    #expect(fetched.format == "png")
    #expect(fetched.data == pngLike("/4/3/2.png"))
    #expect(server.requests.count == 3)
  }

  @Test func failuresAreReportedWithStatusAndURLAndNotRetriedWhenFinal() async throws {
    let server = try await TestHTTPServer { request in
      if request.path.hasPrefix("/1/") { return .init(status: 404) }
      if request.path.hasPrefix("/2/") { return .init(status: 500) }
      return .init(headers: ["Content-Type": "text/html"], body: Data("<html>sign in</html>".utf8))
    }
    defer { Task { await server.close() } }
    let secret = "Bearer sk-do-not-show"
    let fetcher = TileFetcher(policy: quick)
    let source = try source(server, headers: ["Authorization": secret])

    guard case .failure(let missing) = await fetcher.fetch(try Tile(z: 1, x: 0, y: 1), from: source, owner: "o")
    else { Issue.record("a 404 was taken"); return }
    #expect(missing.status == 404)
    #expect(missing.attempts == 1)
    #expect(missing.url == "\(server.base)/1/0/1.png")

    guard case .failure(let failing) = await fetcher.fetch(try Tile(z: 2, x: 1, y: 1), from: source, owner: "o")
    else { Issue.record("a 500 was taken"); return }
    #expect(failing.status == 500)
    #expect(failing.attempts == quick.attempts)
    #expect(failing.description.contains("after 4 tries"))

    guard case .failure(let html) = await fetcher.fetch(try Tile(z: 3, x: 1, y: 1), from: source, owner: "o")
    else { Issue.record("an HTML page was taken for a tile"); return }
    #expect(html.message.contains("not an image (Content-Type text/html)"))

    // The key went to the server, and into no report.
    #expect(server.requests.allSatisfy { $0.headers["authorization"] == secret })
    for failure in [missing, failing, html] { #expect(!failure.description.contains("sk-do-not-show")) }
  }

  @Test func aServerThatDoesNotAnswerTimesOut() async throws {
    let server = try await TestHTTPServer { _ in .init(body: pngLike("late"), delay: .seconds(5)) }
    defer { Task { await server.close() } }
    var policy = quick
    policy.timeout = .milliseconds(300)
    policy.attempts = 2
    let result = await TileFetcher(policy: policy).fetch(
      try Tile(z: 1, x: 1, y: 1), from: try source(server), owner: "o")
    guard case .failure(let failure) = result else { Issue.record("a late tile was taken"); return }
    #expect(failure.status == 0)
    #expect(failure.attempts == 2)
    #expect(failure.message.lowercased().contains("timed out") || failure.message.lowercased().contains("timeout"))
  }

  @Test func atMostTheConcurrencyLimitIsInFlight() async throws {
    let delay = Duration.milliseconds(150)
    let arrivals = Mutex<[ContinuousClock.Instant]>([])
    let server = try await TestHTTPServer { request in
      arrivals.withLock { $0.append(.now) }
      return .init(body: pngLike(request.path), delay: delay)
    }
    defer { Task { await server.close() } }
    var policy = quick
    policy.concurrency = 2
    let fetcher = TileFetcher(policy: policy)
    let tiles = try (0..<8).map { try Tile(z: 5, x: $0, y: 1) }
    let got = Mutex(0)
    await fetcher.fetch(tiles, from: try source(server), owner: "o") { result in
      if case .success = result { got.withLock { $0 += 1 } }
    }
    #expect(got.withLock { $0 } == 8)
    // A request that arrived while two earlier ones were still held back would be a third in flight.
    let times = arrivals.withLock { $0 }
    for (index, arrival) in times.enumerated() {
      let holding = times[..<index].filter { $0 + delay > arrival }.count
      #expect(holding < 2, "request \(index) arrived with \(holding) others in flight")
    }
  }

  @Test func theCacheServesRepeatsAndKeepsItsLimit() async throws {
    let server = try await TestHTTPServer { request in
      .init(body: pngLike(request.path + String(repeating: "x", count: 100)))
    }
    defer { Task { await server.close() } }
    let directory = try TemporaryDirectory()
    let tileBytes = Int64(pngLike("/6/0/1.png" + String(repeating: "x", count: 100)).count)
    let cache = try TileCache(root: directory.path("cache"), limit: tileBytes * 3 + 5)
    let fetcher = TileFetcher(policy: quick, cache: cache)
    let source = try source(server)
    let first = try await fetcher.fetch(try Tile(z: 6, x: 0, y: 1), from: source, owner: "o").get()
    let again = try await fetcher.fetch(try Tile(z: 6, x: 0, y: 1), from: source, owner: "o").get()
    #expect(!first.fromCache && again.fromCache && again.data == first.data)
    #expect(server.requests.count == 1)
    // Another owner (or other headers) never gets this owner's tiles.
    let other = try await fetcher.fetch(try Tile(z: 6, x: 0, y: 1), from: source, owner: "p").get()
    #expect(!other.fromCache)

    for x in 1...5 { _ = try await fetcher.fetch(try Tile(z: 6, x: x, y: 1), from: source, owner: "o").get() }
    #expect(cache.size <= cache.limit)
    #expect(cache.count <= 3)
    // The newest tile is kept, the oldest went first.
    #expect(try await fetcher.fetch(try Tile(z: 6, x: 5, y: 1), from: source, owner: "o").get().fromCache)
    #expect(try await !fetcher.fetch(try Tile(z: 6, x: 0, y: 1), from: source, owner: "o").get().fromCache)

    // Reopened, the cache counts what is on disk.
    let reopened = try TileCache(root: directory.path("cache"), limit: cache.limit)
    #expect(reopened.count == cache.count && reopened.size == cache.size)
  }

  @Test func fileTemplatesReadADirectory() async throws {
    let directory = try TemporaryDirectory()
    try FileManager.default.createDirectory(atPath: directory.path("tiles/7/3"), withIntermediateDirectories: true)
    try pngLike("here").write(to: URL(fileURLWithPath: directory.path("tiles/7/3/4.png")))
    let source = try ImagerySource(
      name: "disk", template: TileTemplate("file://\(directory.path("tiles"))/{z}/{x}/{y}.png"))
    let fetcher = TileFetcher()
    #expect(try await fetcher.fetch(try Tile(z: 7, x: 3, y: 4), from: source, owner: "o").get().data == pngLike("here"))
    guard case .failure(let missing) = await fetcher.fetch(try Tile(z: 7, x: 3, y: 5), from: source, owner: "o")
    else { Issue.record("a missing file was taken"); return }
    #expect(missing.message == "no such file")
    #expect(missing.url.hasSuffix("tiles/7/3/5.png"))
  }

  @Test func zoomsOutsideTheSourceAreRefused() async throws {
    let server = try await TestHTTPServer { request in .init(body: pngLike(request.path)) }
    defer { Task { await server.close() } }
    let result = await TileFetcher().fetch(
      try Tile(z: 19, x: 1, y: 1), from: try source(server, maxZoom: 18), owner: "o")
    guard case .failure(let failure) = result else { Issue.record("zoom 19 was fetched"); return }
    #expect(failure.message.contains("zooms 0–18"))
    #expect(server.requests.isEmpty)
  }
}
