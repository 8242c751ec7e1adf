import Bench
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import Testing

/// The generated typed client and server protocol, end to end.
struct GeneratedStubTests {
  @Test func typedClientCallsEveryKindOfMethod() async throws {
    try await TestServer.withServer { _, address in
      let client = RPCClient(address: address)
      let bench = BenchV1.Bench.Client(client)
      let echoed = try await bench.echo(TestServer.request())
      #expect(echoed.payload == Array("hello".utf8))
      let uploaded = try await bench.upload { sender in
        for _ in 0..<3 { try await sender.send(TestServer.request()) }
      }
      #expect(uploaded.requestsSeen == 3)
      let downloaded = try await bench.download(TestServer.request(count: 4)) { responses in
        try await responses.reduce(0) { count, _ in count + 1 }
      }
      #expect(downloaded == 4)
      let chatted = try await bench.chat { sender, responses in
        try await sender.send(TestServer.request())
        sender.close()
        return try await responses.reduce(0) { count, _ in count + 1 }
      }
      #expect(chatted == 1)
      await client.close()
    }
  }

  @Test func aServiceProtocolImplementationRegistersItsMethods() {
    var router = ServiceRouter()
    BenchService().register(in: &router)
    #expect(router.serviceNames == ["shoal.bench.v1.Bench"])
  }
}
