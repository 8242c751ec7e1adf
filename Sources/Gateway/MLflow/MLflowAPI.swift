import Hummingbird
import ShoalProto
import ShoalRPC

/// MLflow's REST API, the part the `mlflow` 3.x client uses for tracking, the model registry and
/// proxied artifacts, over Shoal's tracking service and registry.
///
/// `MLFLOW_TRACKING_URI=http://HOST:PORT` points unchanged user code here; `MLFLOW_TRACKING_TOKEN`
/// arrives as a bearer token, which is a Shoal token.
struct MLflowAPI: Sendable {
  let gateway: Gateway

  var tracking: TrackingV1.Tracking.Client { gateway.mesh.tracking }
  var models: RegistryV1.ModelRegistry.Client { gateway.mesh.models }

  /// A handler of one endpoint: the request's fields (query string for GET, JSON body otherwise)
  /// and the caller, answering an object.
  typealias Handler = @Sendable (RequestFields, GatewayCaller) async throws -> JSONValue

  func register(in router: Router<GatewayContext>) {
    registerTracking(in: router)
    registerRegistry(in: router)
    registerArtifacts(in: router)
  }

  /// Adds `handler` at `/api/2.0/mlflow/PATH` for each method in `methods`.
  func endpoint(
    _ router: Router<GatewayContext>, _ path: String, _ methods: [HTTPRequest.Method], _ handler: @escaping Handler
  ) {
    let gateway = self.gateway
    for method in methods {
      router.on(RouterPath("api/2.0/mlflow/\(path)"), method: method) { request, context in
        let caller = try gateway.caller(request, context)
        let fields =
          method == .get ? RequestFields(query: Gateway.query(request)) : try await gateway.fields(request)
        return Response.json(try await handler(fields, caller))
      }
    }
  }
}
