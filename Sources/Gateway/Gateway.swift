import Foundation
import HTTPTypes
public import Hummingbird
import NIOCore
import ShoalImagery
public import ShoalMetrics
import ShoalProto
import ShoalRPC

/// The HTTP front of the mesh: MLflow's REST API over tracking and the registry, Open Inference
/// Protocol v2 over inference, a Label Studio ML backend and the review pages, each request
/// answered by calls into the mesh with the caller's token.
public struct Gateway: Sendable {
  /// Limits and access.
  public struct Config: Sendable {
    /// The largest JSON body an MLflow, Label Studio or page call accepts (default 16 MiB).
    public var maxJSONBytes: Int
    /// The largest inference request, JSON or binary (default 64 MiB, inference's message limit).
    public var maxInferBytes: Int
    /// The largest artifact upload, streamed through (default 8 GiB).
    public var maxArtifactBytes: Int64
    /// Whether a request without a token is refused even from loopback (default false: a
    /// loopback caller without one acts as the mesh's own, like a peer on a Unix socket).
    public var requireTokens: Bool
    /// The version OIP's server metadata reports (the binary's).
    public var serverVersion: String

    /// The defaults above.
    public static var defaults: Config {
      Config(
        maxJSONBytes: 16 << 20, maxInferBytes: 64 << 20, maxArtifactBytes: 8 << 30, requireTokens: false,
        serverVersion: "0.0.0")
    }
  }

  let mesh: GatewayMesh
  let metrics: MetricsRegistry
  let config: Config
  let requestMetrics: RequestMetrics
  /// What Label Studio's projects told the backend, and their feedback sets.
  let labelStudio = LabelStudioSessions()
  /// Fetches Label Studio's task images.
  let downloader: FileDownloader

  /// A gateway calling `mesh`, recording its requests in `metrics`.
  public init(mesh: GatewayMesh, metrics: MetricsRegistry, config: Config = .defaults) {
    self.mesh = mesh
    self.metrics = metrics
    self.config = config
    self.requestMetrics = RequestMetrics(registry: metrics)
    var policy = FetchPolicy()
    policy.concurrency = 4
    policy.attempts = 2
    policy.timeout = .seconds(20)
    self.downloader = FileDownloader(policy: policy)
  }

  /// The responder to serve: every route, with errors in each API's own shape and every request
  /// counted by route and status.
  public func responder() -> some HTTPResponder<GatewayContext> {
    let router = Router(context: GatewayContext.self)
    let metrics = self.metrics
    router.get("metrics") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
    }
    MLflowAPI(gateway: self).register(in: router)
    OpenInferenceAPI(gateway: self).register(in: router)
    LabelStudioAPI(gateway: self).register(in: router)
    ReviewPagesAPI(gateway: self).register(in: router)
    return GatewayResponder(routes: router.buildResponder(), metrics: requestMetrics)
  }

  /// Who `request` calls the mesh as; a request from off this host without a token, or any
  /// request without one when tokens are required, is refused with 401.
  func caller(_ request: Request, _ context: GatewayContext) throws(GatewayError) -> GatewayCaller {
    if let header = request.headers[.authorization] {
      if header.hasPrefix("Bearer "), header.count > 7 { return GatewayCaller(authorization: header) }
      // Label Studio's ML backend settings offer basic auth only: the password is the token.
      if header.hasPrefix("Basic "), let decoded = Data(base64Encoded: String(header.dropFirst(6))),
        let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":"),
        pair.index(after: colon) < pair.endIndex
      {
        return GatewayCaller(authorization: "Bearer \(pair[pair.index(after: colon)...])")
      }
      throw GatewayError(
        .unauthorized, "UNAUTHENTICATED",
        "the Authorization header must be 'Bearer <token>' (or basic auth with the token as the password)")
    }
    guard context.isLoopbackPeer, !config.requireTokens else {
      throw GatewayError(
        .unauthorized, "UNAUTHENTICATED",
        "this request needs a token: send 'Authorization: Bearer <token>' (MLFLOW_TRACKING_TOKEN for the mlflow client); "
          + "an admin creates one with `shoal admin token create`")
    }
    return GatewayCaller(authorization: nil)
  }

  /// The whole body, refused with 413 past `limit`.
  static func body(_ request: Request, limit: Int) async throws -> ByteBuffer {
    do {
      return try await request.body.collect(upTo: limit)
    } catch is NIOTooManyBytesError {
      throw GatewayError(.contentTooLarge, "RESOURCE_EXHAUSTED", "the body is larger than the limit of \(limit) bytes")
    }
  }

  /// The body as JSON fields.
  func fields(_ request: Request) async throws -> RequestFields {
    let buffer = try await Self.body(request, limit: config.maxJSONBytes)
    return try RequestFields(json: String(buffer: buffer))
  }

  /// The query string's parameters, percent-decoded.
  static func query(_ request: Request) -> [(String, String)] {
    request.uri.queryParameters.map { (String($0.key), String($0.value)) }
  }
}

/// How an API family writes its errors.
enum ErrorShape {
  /// MLflow: `{"error_code": …, "message": …}`.
  case mlflow
  /// OIP, Label Studio and the pages: `{"error": …}`.
  case plain

  /// The shape of the API `path` belongs to.
  init(path: String) {
    self = path.hasPrefix("/api/") ? .mlflow : .plain
  }

  func response(_ error: GatewayError) -> Response {
    let body: JSONValue =
      switch self {
      case .mlflow: .object([("error_code", .string(error.code)), ("message", .string(error.message))])
      case .plain: .object([("error", .string(error.message)), ("code", .string(error.code))])
      }
    return Response.json(body, status: error.status)
  }
}

extension Response {
  /// A JSON response.
  static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(
      status: status, headers: [.contentType: "application/json"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: value.serialized())))
  }
}

/// Routes a request, turns any failure into the API's error response, and counts it.
struct GatewayResponder<Routes: HTTPResponder>: HTTPResponder where Routes.Context == GatewayContext {
  let routes: Routes
  let metrics: RequestMetrics

  func respond(to request: Request, context: GatewayContext) async throws -> Response {
    let started = ContinuousClock.now
    var response: Response
    do {
      response = try await routes.respond(to: request, context: context)
      // The router answers a path it has no route for with an empty 404.
      if response.status == .notFound, Self.isUnmatched(context) {
        response = ErrorShape(path: request.uri.path).response(.noEndpoint(request.method, request.uri.path))
      }
    } catch {
      response = ErrorShape(path: request.uri.path).response(Self.gatewayError(error, request))
    }
    metrics.record(
      route: Self.isUnmatched(context) ? "unmatched" : context.endpointPath!, method: request.method.rawValue,
      status: response.status.code,
      since: started)
    return response
  }

  /// Whether the router found no route (it names that endpoint "NotFound").
  static func isUnmatched(_ context: GatewayContext) -> Bool {
    context.endpointPath == nil || context.endpointPath == "NotFound"
  }

  static func gatewayError(_ error: any Error, _ request: Request) -> GatewayError {
    switch error {
    case let error as GatewayError: return error
    case let error as RPCError: return GatewayError(error)
    case let error as HTTPError where error.status == .notFound:
      return .noEndpoint(request.method, request.uri.path)
    case let error as HTTPError where error.status == .contentTooLarge:
      return GatewayError(.contentTooLarge, "RESOURCE_EXHAUSTED", "the body is larger than the limit")
    case let error as HTTPError:
      return GatewayError(error.status, "BAD_REQUEST", error.body ?? error.status.reasonPhrase)
    default:
      return GatewayError(.internalServerError, "INTERNAL_ERROR", "\(error)")
    }
  }
}
