import Bench
import NIOCore
import NIOPosix
import ShoalProto
import ShoalRPC
import ShoalTestSupport
import Testing

/// Retries of idempotent methods, reconnection after a server restart, and keepalive.
struct ClientResilienceTests {
  @Test func idempotentMethodsAreRetriedOnUnavailableAndOthersAreNot() async throws {
    let attempts = Probe(0)
    let flaky = TestMethods.unary("Flaky", idempotent: true)
    let flakyWrite = TestMethods.unary("FlakyWrite")
    try await TestServer.withServer(routes: { router in
      for method in [flaky, flakyWrite] {
        router.unary(method) { _, _ in
          var count = 0
          attempts.update {
            $0 += 1
            count = $0
          }
          if count % 3 != 0 { throw RPCError(.unavailable, "try again") }
          return BenchV1.BenchResponse()
        }
      }
    }) { _, address in
      let client = RPCClient(address: address)
      _ = try await client.unary(flaky, TestServer.request())
      #expect(attempts.value == 3)
      await #expect {
        try await client.unary(flakyWrite, TestServer.request())
      } throws: { ($0 as? RPCError)?.code == .unavailable }
      #expect(attempts.value == 4, "a non-idempotent call that reached the server is not retried")
      await client.close()
    }
  }

  @Test func clientReconnectsAfterTheServerRestarts() async throws {
    let directory = try TemporaryDirectory()
    let address = RPCAddress.unix(path: directory.path("restart.sock"))
    var router = ServiceRouter()
    BenchService().register(in: &router)
    let client = RPCClient(address: address)

    let first = RPCServer(router: router)
    try await first.bind(to: address)
    _ = try await client.unary(BenchV1.Bench.echo, TestServer.request())
    await first.shutdown()

    let second = RPCServer(router: router)
    try await second.bind(to: address)
    // Echo is idempotent: the call rides out the broken connection and the reconnect backoff.
    let response = try await client.unary(
      BenchV1.Bench.echo, TestServer.request(), options: CallOptions(timeout: .seconds(10)))
    #expect(response.payload == Array("hello".utf8))
    await second.shutdown()
    await client.close()
  }

  @Test func aServerThatStopsAnsweringPingsIsDroppedByKeepalive() async throws {
    // A "server" that says HELLO and then never answers anything, PINGs included.
    let directory = try TemporaryDirectory()
    let path = directory.path("mute.sock")
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(MuteServer()) }
      }
      .bind(unixDomainSocketPath: path).get()
    var config = RPCClient.Config.defaults
    config.connection.keepalive.interval = .milliseconds(100)
    config.connection.keepalive.timeout = .milliseconds(200)
    let client = RPCClient(address: .unix(path: path), config: config)
    await #expect {
      try await client.unary(BenchV1.Bench.echo, TestServer.request(), options: CallOptions(retries: .none))
    } throws: { error in
      guard let error = error as? RPCError else { return false }
      return error.code == .unavailable && error.message.contains("keepalive")
    }
    await client.close()
    try await listener.close()
  }
}

extension ClientResilienceTests {
  @Test func theServerDropsAClientThatStopsAnsweringPings() async throws {
    var config = RPCServer.Config.defaults
    config.connection.keepalive.interval = .milliseconds(100)
    config.connection.keepalive.timeout = .milliseconds(200)
    try await TestServer.withServer(config: config) { _, address in
      guard case .unix(let path) = address else { return }
      let socket = try RawSocket(unixPath: path)
      socket.send(WireFrames.hello())
      let (bytes, closed) = socket.readUntilClosed(seconds: 20)
      let frames = WireFrames.parse(bytes)
      #expect(closed)
      #expect(frames.contains { $0.type == .ping })
      #expect(WireFrames.goAway(in: frames)?.code == .goawayKeepaliveTimeout)
    }
  }
}

/// Says HELLO when a client connects, then reads and ignores everything.
private final class MuteServer: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  func channelActive(context: ChannelHandlerContext) {
    var hello = RpcV1.Hello()
    hello.protocolVersion = 1
    hello.maxFrameSize = 4 << 20
    hello.initialWindow = 1 << 20
    var buffer = context.channel.allocator.buffer(capacity: 64)
    Frame(type: .hello, stream: 0, payload: ByteBuffer(bytes: WireFrames.bytes(hello))).write(to: &buffer)
    context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
