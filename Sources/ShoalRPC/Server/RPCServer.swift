import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
import NIOSSL

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

/// A server for wire protocol v1 on Unix-domain and TCP sockets.
///
/// ```swift
/// var router = ServiceRouter()
/// router.unary(BenchV1.Bench.echo) { request, _ in … }
/// let server = RPCServer(router: router)
/// let address = try await server.bind(to: .unix(path: "/tmp/bench.sock"))
/// try await server.run()   // until the task is cancelled: then GOAWAY, drain, close
/// ```
///
/// Every server also serves `shoal.health.v1.Health` and `shoal.rpc.v1.Reflection`.
public final class RPCServer: Sendable {
  /// Server settings.
  public struct Config: Sendable {
    /// Per-connection settings (limits, windows, compression).
    public var connection: ConnectionConfig
    /// How long a graceful shutdown waits for calls in flight before cancelling them.
    public var shutdownGrace: Duration

    /// gRPC-like defaults and a 10 s grace period.
    public static var defaults: Config { Config(connection: .defaults, shutdownGrace: .seconds(10)) }
  }

  private let core: ServerCore
  private let group: any EventLoopGroup
  private let listeners = NIOLockedValueBox<[any Channel]>([])
  private let stopped = NIOLockedValueBox<Bool>(false)
  /// The health status of this server's services; set them as they become ready.
  public let health: HealthService

  /// A server for the routes in `router`, plus Health and Reflection.
  public init(
    router: ServiceRouter, config: Config = .defaults, interceptors: [any ServerInterceptor] = [],
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    let health = HealthService()
    var router = router
    health.register(in: &router)
    ReflectionService(router: router).register(in: &router)
    self.health = health
    core = ServerCore(config: config, router: router, interceptors: interceptors)
    self.group = group
  }

  /// Starts listening on `address`; returns the bound address (TCP port 0 becomes the real port).
  /// A stale Unix socket file at the path is replaced; one a live server listens on is not.
  @discardableResult
  public func bind(to address: RPCAddress) async throws -> RPCAddress {
    let core = core
    let tls: NIOSSLContext?
    if case .tls = address { tls = try core.config.connection.security.serverContext() } else { tls = nil }
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 << 10, high: 1 << 20))
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
          try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(server: core, encrypted: tls != nil))
        }
      }
    let channel: any Channel
    do {
      switch address {
      case .unix(let path):
        if Self.someoneListens(onUnixSocket: path) {
          throw RPCError(.alreadyExists, "another server is listening on \(address); stop it or choose another address")
        }
        channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
      case .tcp(let host, let port), .tls(let host, let port):
        channel = try await bootstrap.bind(host: host, port: port).get()
      }
    } catch let error as RPCError {
      throw error
    } catch {
      throw RPCError(.unavailable, "cannot listen on \(address): \(error)", cause: error)
    }
    listeners.withLockedValue { $0.append(channel) }
    if let port = channel.localAddress?.port {
      switch address {
      case .unix: break
      case .tcp(let host, _): return .tcp(host: host, port: port)
      case .tls(let host, _): return .tls(host: host, port: port)
      }
    }
    return address
  }

  /// Whether a connection to the Unix socket at `path` is accepted (a live server, not a stale file).
  private static func someoneListens(onUnixSocket path: String) -> Bool {
    guard let address = try? SocketAddress(unixDomainSocketPath: path) else { return false }
    let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    return address.withSockAddr { pointer, length in connect(descriptor, pointer, socklen_t(length)) == 0 }
  }

  /// Serves until the task is cancelled or `shutdown()` is called, then shuts down gracefully.
  public func run() async throws {
    await withTaskCancellationHandler {
      let closeFutures = listeners.withLockedValue { $0.map(\.closeFuture) }
      for future in closeFutures { try? await future.get() }
    } onCancel: {
      Task { await self.shutdown() }
    }
  }

  /// Stops listening, sends GOAWAY on every connection, lets calls in flight finish for the
  /// grace period, then ends the rest with UNAVAILABLE and closes.
  public func shutdown() async {
    let first = stopped.withLockedValue { stopped -> Bool in
      defer { stopped = true }
      return !stopped
    }
    guard first else { return }
    health.setAll(.notServing)
    let channels = listeners.withLockedValue { $0 }
    for channel in channels { try? await channel.close() }
    // Awaited on each loop, so that no connection takes a new call once this returns.
    for connection in core.openConnections {
      try? await connection.eventLoop.submit { connection.value.beginShutdown() }.get()
    }
    let deadline = ContinuousClock.now + core.config.shutdownGrace
    while !core.openConnections.isEmpty && ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(20))
    }
    for connection in core.openConnections {
      try? await connection.eventLoop.submit { connection.value.forceClose() }.get()
    }
  }
}
