public import Hummingbird
import Logging
import NIOCore

/// Serves a gateway over HTTP/1.1 on one address until the calling task is cancelled.
public enum GatewayServer {
  /// Binds `host:port` (port 0: one the OS chooses), calls `listening` with the URL once bound,
  /// and serves until cancelled; connections then drain and close.
  public static func run(
    _ gateway: Gateway, host: String, port: Int, listening: @escaping @Sendable (String) async -> Void
  ) async throws {
    var logger = Logger(label: "shoal-gateway")
    logger.logLevel = .error
    let app = Application(
      responder: gateway.responder(),
      configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "shoal-gateway"),
      onServerRunning: { channel in
        let bound = channel.localAddress?.port ?? port
        let shown = host.contains(":") ? "[\(host)]" : host
        await listening("http://\(shown):\(bound)")
      },
      logger: logger)
    try await app.run()
  }
}
