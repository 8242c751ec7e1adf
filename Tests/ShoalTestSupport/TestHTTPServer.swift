public import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 and a port the OS chooses, answering each request with what
/// `respond` returns, and recording every request (path, headers, method and body) it is sent.
public final class TestHTTPServer: Sendable {
  /// A request as it came: the path with its query, the headers (names lower-cased), and how many
  /// requests for the same path came before it.
  public struct Request: Sendable {
    public var path: String
    public var headers: [String: String]
    public var attempt: Int
    /// GET, POST, …, and the body sent (a webhook's JSON).
    public var method = "GET"
    public var body = Data()
  }

  /// An answer: a status, headers and a body; `delay` holds it back first.
  public struct Response: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data
    public var delay: Duration

    public init(status: Int = 200, headers: [String: String] = [:], body: Data = Data(), delay: Duration = .zero) {
      self.status = status
      self.headers = headers
      self.body = body
      self.delay = delay
    }
  }

  public let port: Int
  private let channel: any Channel
  private let log = Log()

  /// Listens and answers with `respond`.
  public init(_ respond: @escaping @Sendable (Request) -> Response) async throws {
    let log = self.log
    let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          try channel.pipeline.syncOperations.addHandler(Handler(log: log, respond: respond))
        }
      }
    channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
    port = channel.localAddress?.port ?? 0
  }

  /// `http://127.0.0.1:PORT`.
  public var base: String { "http://127.0.0.1:\(port)" }

  /// Every request so far, in order.
  public var requests: [Request] { log.requests.withLock { $0 } }

  public func close() async { try? await channel.close() }

  private final class Log: Sendable {
    let requests = Mutex<[Request]>([])
  }

  private final class Handler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let log: Log
    let respond: @Sendable (Request) -> Response
    var head: HTTPRequestHead?
    var body = Data()

    init(log: Log, respond: @escaping @Sendable (Request) -> Response) {
      self.log = log
      self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      switch unwrapInboundIn(data) {
      case .head(let request):
        head = request
        body = Data()
      case .body(var buffer): body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
      case .end:
        guard let head else { return }
        self.head = nil
        var headers: [String: String] = [:]
        for (name, value) in head.headers { headers[name.lowercased()] = value }
        let request = log.requests.withLock { log -> Request in
          var request = Request(
            path: head.uri, headers: headers, attempt: log.filter { $0.path == head.uri }.count)
          request.method = head.method.rawValue
          request.body = body
          log.append(request)
          return request
        }
        let response = respond(request)
        let keepAlive = head.isKeepAlive
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        loop.scheduleTask(in: TimeAmount(response.delay)) {
          let (handler, context) = bound.value
          handler.write(response, keepAlive: keepAlive, version: head.version, context: context)
        }
      }
    }

    func write(_ response: Response, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
      var headers = HTTPHeaders()
      for (name, value) in response.headers { headers.add(name: name, value: value) }
      headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
      headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
      let head = HTTPResponseHead(
        version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
      context.write(wrapOutboundOut(.head(head)), promise: nil)
      var buffer = context.channel.allocator.buffer(capacity: response.body.count)
      buffer.writeBytes(response.body)
      context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
      let channel = context.channel
      context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
        if !keepAlive { channel.close(promise: nil) }
      }
    }
  }
}

/// Bytes that start as a PNG does followed by `text` (a fetcher checks tiles by their first bytes).
public func pngLike(_ text: String) -> Data {
  Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + Data(text.utf8)
}
