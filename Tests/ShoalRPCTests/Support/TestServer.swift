import Bench
import Foundation
import ShoalProto
import ShoalRPC
import ShoalTestSupport

/// A real server on a temporary Unix socket or a free TCP port, with the Bench service and any
/// extra routes, torn down after the test body.
enum TestServer {
  enum Transport: String, CaseIterable, Sendable {
    case unix
    case tcp
  }

  static func withServer<Result>(
    _ transport: Transport = .unix,
    config: RPCServer.Config = .defaults,
    interceptors: [any ServerInterceptor] = [],
    routes: (inout ServiceRouter) -> Void = { _ in },
    _ body: (RPCServer, RPCAddress) async throws -> Result
  ) async throws -> Result {
    var router = ServiceRouter()
    BenchService().register(in: &router)
    routes(&router)
    let server = RPCServer(router: router, config: config, interceptors: interceptors)
    let directory = try TemporaryDirectory()
    let requested: RPCAddress =
      transport == .unix ? .unix(path: directory.path("s.sock")) : .tcp(host: "127.0.0.1", port: 0)
    let address = try await server.bind(to: requested)
    do {
      let result = try await body(server, address)
      await server.shutdown()
      return result
    } catch {
      await server.shutdown()
      throw error
    }
  }

  static func request(
    _ payload: [UInt8] = Array("hello".utf8), responseSize: UInt32 = 0, count: UInt32 = 0
  ) -> BenchV1.BenchRequest {
    var request = BenchV1.BenchRequest()
    request.payload = payload
    request.responseSize = responseSize
    request.responseCount = count
    return request
  }
}
