import NIOConcurrencyHelpers
import NIOCore

/// What every connection of one server shares: configuration, routes, interceptors, and the
/// list of open connections (for shutdown).
final class ServerCore: Sendable {
  let config: RPCServer.Config
  let router: ServiceRouter
  let interceptors: [any ServerInterceptor]
  private let connections = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<ServerConnectionHandler>]>([:])

  init(config: RPCServer.Config, router: ServiceRouter, interceptors: [any ServerInterceptor]) {
    self.config = config
    self.router = router
    self.interceptors = interceptors
  }

  func connectionOpened(_ connection: NIOLoopBound<ServerConnectionHandler>) {
    connections.withLockedValue { $0[ObjectIdentifier(connection.value)] = connection }
  }

  func connectionClosed(_ id: ObjectIdentifier) {
    _ = connections.withLockedValue { $0.removeValue(forKey: id) }
  }

  var openConnections: [NIOLoopBound<ServerConnectionHandler>] {
    connections.withLockedValue { Array($0.values) }
  }
}
