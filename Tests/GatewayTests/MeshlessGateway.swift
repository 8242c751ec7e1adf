import Hummingbird
import ShoalMetrics
import ShoalRPC

@testable import Gateway

/// A gateway whose services are all on a socket nobody listens on, in an application for
/// HummingbirdTesting's router framework (whose peer is not on loopback): for the answers a
/// gateway gives before, or instead of, calling the mesh.
enum MeshlessGateway {
  static func application(config: Gateway.Config = .defaults) throws -> some ApplicationProtocol {
    let nowhere = RPCClient(address: try RPCAddress(parsing: "unix:///nonexistent/shoal-gateway-test.sock"))
    let gateway = Gateway(
      mesh: GatewayMesh(
        tracking: nowhere, registry: nowhere, inference: nowhere, feedback: nowhere, audio: nowhere, pipelines: nowhere),
      metrics: MetricsRegistry(), config: config)
    return Application(responder: gateway.responder())
  }
}
