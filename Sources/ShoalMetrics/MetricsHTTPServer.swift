import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves `GET /metrics` (Prometheus' text format) over HTTP/1.1 on one TCP address, for
/// Prometheus and `shoal metrics`. Anything else is 404; a method other than GET or HEAD is 405.
public final class MetricsHTTPServer: Sendable {
  private let registry: MetricsRegistry
  private let channel: any Channel

  /// The address it listens on, with the port the OS chose for port 0.
  public let host: String
  public let port: Int

  /// Listens on `host:port` (port 0: one the OS chooses).
  public init(registry: MetricsRegistry, host: String, port: Int) async throws {
    self.registry = registry
    let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          try channel.pipeline.syncOperations.addHandler(MetricsHandler(registry: registry))
        }
      }
    channel = try await bootstrap.bind(host: host, port: port).get()
    self.host = host
    self.port = channel.localAddress?.port ?? port
  }

  /// `http://host:port/metrics`.
  public var url: String {
    let shown = host.contains(":") ? "[\(host)]" : host
    return "http://\(shown):\(port)/metrics"
  }

  /// Stops listening.
  public func close() async {
    try? await channel.close()
  }
}

private final class MetricsHandler: ChannelInboundHandler, @unchecked Sendable {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let registry: MetricsRegistry
  private var head: HTTPRequestHead?

  init(registry: MetricsRegistry) { self.registry = registry }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let request): head = request
    case .body: break
    case .end:
      guard let request = head else { return }
      head = nil
      respond(to: request, context: context)
    }
  }

  private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
    let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
    let (status, type, body): (HTTPResponseStatus, String, String)
    if request.method != .GET && request.method != .HEAD {
      (status, type, body) = (.methodNotAllowed, "text/plain; charset=utf-8", "use GET /metrics\n")
    } else if path == "/metrics" {
      (status, type, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.exposition())
    } else {
      (status, type, body) = (.notFound, "text/plain; charset=utf-8", "not found: metrics are at /metrics\n")
    }
    var headers = HTTPHeaders()
    headers.add(name: "Content-Type", value: type)
    headers.add(name: "Content-Length", value: "\(body.utf8.count)")
    let keepAlive = request.isKeepAlive
    if !keepAlive { headers.add(name: "Connection", value: "close") }
    context.write(
      wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil
    )
    if request.method != .HEAD {
      context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
    }
    let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
    if !keepAlive {
      let channel = context.channel
      done.whenComplete { _ in channel.close(promise: nil) }
    }
  }
}
