import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One open connection to a server: its channel and the handler that multiplexes calls on it.
struct ClientConnection: Sendable {
  let channel: any Channel
  let handler: NIOLoopBound<ClientConnectionHandler>

  var eventLoop: any EventLoop { channel.eventLoop }

  /// Connects and waits for the server's HELLO.
  static func connect(
    to address: RPCAddress, config: ConnectionConfig, group: any EventLoopGroup, timeout: Duration
  ) async throws(RPCError) -> ClientConnection {
    let loop = group.next()
    let tls: (context: NIOSSLContext, serverName: String?)?
    if case .tls(let host, _) = address {
      // SNI takes names only; an address is checked against the certificate's IP entries.
      let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
      tls = (try config.security.clientContext(), isAddress ? nil : host)
    } else {
      tls = nil
    }
    let ready = loop.makePromise(of: Void.self)
    let handlerBox = NIOLockedHandlerBox()
    let bootstrap = ClientBootstrap(group: loop)
      .connectTimeout(
        .milliseconds(Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
      )
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
      .channelOption(.writeBufferWaterMark, value: .init(low: 256 << 10, high: 1 << 20))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls {
            try channel.pipeline.syncOperations.addHandler(
              try NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverName))
          }
          let handler = ClientConnectionHandler(config: config, address: address, ready: ready)
          try channel.pipeline.syncOperations.addHandler(handler)
          handlerBox.set(NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }
      }
    do {
      let channel: any Channel
      switch address {
      case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
      case .tcp(let host, let port), .tls(let host, let port):
        channel = try await bootstrap.connect(host: host, port: port).get()
      }
      try await ready.futureResult.get()
      return ClientConnection(channel: channel, handler: handlerBox.get()!)
    } catch let error as RPCError {
      throw error
    } catch {
      ready.fail(error)
      throw RPCError(.unavailable, "cannot connect to \(address): \(error)", cause: error)
    }
  }
}

/// Hands the handler created in the channel initializer back to the caller.
private final class NIOLockedHandlerBox: Sendable {
  private let box = NIOLockedValueBox<NIOLoopBound<ClientConnectionHandler>?>(nil)
  func set(_ handler: NIOLoopBound<ClientConnectionHandler>) { box.withLockedValue { $0 = handler } }
  func get() -> NIOLoopBound<ClientConnectionHandler>? { box.withLockedValue { $0 } }
}
