import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ShoalProto
import ShoalRPC

/// The review pages (`/review/`: map review of a prediction set, clip labelling, runs), plain
/// HTML, CSS and JavaScript built into the binary, and the calls they make.
///
/// The pages call the services' own methods as proto3 JSON (`POST /review/api/feedback/QueryTiles`
/// with the request's JSON, answered with the response's), a fixed list of them, with the
/// caller's token as every gateway request; images and audio come as files. The runs page calls
/// the gateway's MLflow endpoints.
struct ReviewPagesAPI: Sendable {
  let gateway: Gateway

  /// The pages' files: name, bytes and content type.
  static let files: [String: ([UInt8], String)] = [
    "index.html": (PackageResources.index_html, "text/html; charset=utf-8"),
    "map.html": (PackageResources.map_html, "text/html; charset=utf-8"),
    "clips.html": (PackageResources.clips_html, "text/html; charset=utf-8"),
    "runs.html": (PackageResources.runs_html, "text/html; charset=utf-8"),
    "review.js": (PackageResources.review_js, "text/javascript; charset=utf-8"),
    "review.css": (PackageResources.review_css, "text/css; charset=utf-8"),
  ]

  /// Only this origin's scripts and styles; images and audio from it or from blob URLs.
  static let securityHeaders: HTTPFields = [
    HTTPField.Name("Content-Security-Policy")!:
      "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
      + "img-src 'self' blob:; media-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    HTTPField.Name("X-Content-Type-Options")!: "nosniff",
    HTTPField.Name("Referrer-Policy")!: "no-referrer",
  ]

  func register(in router: Router<GatewayContext>) {
    router.get("review") { _, _ in Self.file("index.html") }
    router.get("review/:file") { _, context in
      guard let name = context.parameters.get("file"), Self.files[name] != nil else {
        throw GatewayError.notFound("no page \(context.parameters.get("file") ?? "")")
      }
      return Self.file(name)
    }
    let mesh = gateway.mesh
    let feedback = "review/api/feedback"
    method(router, "\(feedback)/ListSets") { try await mesh.feedback.listSets($0, options: $1) }
    method(router, "\(feedback)/GetSet") { try await mesh.feedback.getSet($0, options: $1) }
    method(router, "\(feedback)/QueryTiles") { try await mesh.feedback.queryTiles($0, options: $1) }
    method(router, "\(feedback)/SetValidity") { try await mesh.feedback.setValidity($0, options: $1) }
    method(router, "\(feedback)/Stats") { try await mesh.feedback.stats($0, options: $1) }
    method(router, "\(feedback)/NextForReview") { try await mesh.feedback.nextForReview($0, options: $1) }
    method(router, "\(feedback)/ReleaseLocks") { try await mesh.feedback.releaseLocks($0, options: $1) }
    let audio = "review/api/audio"
    method(router, "\(audio)/ListDatasets") { try await mesh.audio.listDatasets($0, options: $1) }
    method(router, "\(audio)/GetDataset") { try await mesh.audio.getDataset($0, options: $1) }
    method(router, "\(audio)/NextToLabel") { try await mesh.audio.nextToLabel($0, options: $1) }
    method(router, "\(audio)/SubmitLabels") { try await mesh.audio.submitLabels($0, options: $1) }

    let api = self
    router.get("review/api/imagery/:name/:z/:x/:y") { request, context in
      try await api.tile(try api.gateway.caller(request, context), context)
    }
    router.get("review/api/audio/clips/:digest/spectrogram.png") { request, context in
      let caller = try api.gateway.caller(request, context)
      var spectrogram = AudioV1.SpectrogramRequest()
      spectrogram.digest = context.parameters.get("digest") ?? ""
      spectrogram.png = true
      spectrogram.seconds = 0
      let answer = try await mesh.audio.spectrogram(spectrogram, options: caller.options())
      return Self.bytes(answer.png, type: "image/png")
    }
    router.get("review/api/audio/clips/:digest/audio") { request, context in
      let caller = try api.gateway.caller(request, context)
      var clip = AudioV1.ClipAudioRequest()
      clip.digest = context.parameters.get("digest") ?? ""
      let data = try await mesh.audio.clipAudio(clip, options: caller.options()) { stream in
        var data: [UInt8] = []
        for try await chunk in stream { data += chunk.data }
        return data
      }
      return Self.bytes(data, type: Self.audioType(data))
    }
  }

  /// `POST path` with a `Request` as proto3 JSON, answered with `call`'s response as JSON.
  private func method<Request: ProtoMessage & Sendable, Answer: ProtoMessage>(
    _ router: Router<GatewayContext>, _ path: String,
    _ call: @escaping @Sendable (Request, CallOptions) async throws -> Answer
  ) {
    let gateway = self.gateway
    router.post(RouterPath(path)) { request, context in
      let caller = try gateway.caller(request, context)
      let body = try await Gateway.body(request, limit: gateway.config.maxJSONBytes)
      let text = String(buffer: body)
      let message: Request
      do {
        message = try Request(jsonString: text.isEmpty ? "{}" : text)
      } catch {
        throw GatewayError.invalid("the body is not a \(Request.protoMessageName): \(error)")
      }
      return Response.json(try await call(message, caller.options()).jsonValue)
    }
  }

  /// One imagery tile through feedback's cache, as the source sent it.
  private func tile(_ caller: GatewayCaller, _ context: GatewayContext) async throws -> Response {
    let parts = ["z", "x", "y"].map { context.parameters.get($0).flatMap { Int($0) } }
    guard let z = parts[0], let x = parts[1], let y = parts[2] else {
      throw GatewayError.invalid("the tile must be z/x/y in whole numbers")
    }
    var request = FeedbackV1.FetchTilesRequest()
    request.imagery = context.parameters.get("name")?.removingPercentEncoding ?? ""
    request.tiles = ["\(z)/\(x)/\(y)"]
    request.withData = true
    let fetched = try await gateway.mesh.feedback.fetchTiles(request, options: caller.options()) { stream in
      var tiles: [FeedbackV1.FetchedTile] = []
      for try await tile in stream { tiles.append(tile) }
      return tiles
    }
    guard let tile = fetched.first else { throw GatewayError.notFound("no tile \(z)/\(x)/\(y)") }
    if let failure = tile.failure {
      throw GatewayError(.badGateway, "UPSTREAM_FAILED", "tile \(z)/\(x)/\(y): \(failure.message)")
    }
    let type =
      switch tile.format {
      case "jpeg", "jpg": "image/jpeg"
      case "webp": "image/webp"
      case "tiff": "image/tiff"
      default: "image/png"
      }
    return Self.bytes(tile.data, type: type)
  }

  static func file(_ name: String) -> Response {
    let (bytes, type) = files[name]!
    var headers = securityHeaders
    headers[.contentType] = type
    headers[.cacheControl] = "no-cache"
    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
  }

  static func bytes(_ data: [UInt8], type: String) -> Response {
    var headers = securityHeaders
    headers[.contentType] = type
    headers[.cacheControl] = "private, max-age=300"
    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
  }

  /// The content type of an audio file from its first bytes.
  static func audioType(_ data: [UInt8]) -> String {
    func starts(_ magic: String) -> Bool { data.starts(with: Array(magic.utf8)) }
    if starts("RIFF") { return "audio/wav" }
    if starts("fLaC") { return "audio/flac" }
    if starts("OggS") { return "audio/ogg" }
    if starts("ID3") || (data.count > 1 && data[0] == 0xFF && data[1] & 0xE0 == 0xE0) { return "audio/mpeg" }
    return "application/octet-stream"
  }
}
