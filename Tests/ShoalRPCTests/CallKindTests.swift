import Bench
import ShoalProto
import ShoalRPC
import Testing

/// Every call kind end to end over real Unix and TCP sockets.
struct CallKindTests {
  @Test(arguments: TestServer.Transport.allCases)
  func unaryEcho(transport: TestServer.Transport) async throws {
    try await TestServer.withServer(transport) { _, address in
      let client = RPCClient(address: address)
      let response = try await client.unary(BenchV1.Bench.echo, TestServer.request())
      #expect(response.payload == Array("hello".utf8))
      #expect(response.requestsSeen == 1)
      await client.close()
    }
  }

  @Test(arguments: TestServer.Transport.allCases)
  func clientStreamingUpload(transport: TestServer.Transport) async throws {
    try await TestServer.withServer(transport) { _, address in
      let client = RPCClient(address: address)
      let response = try await client.clientStreaming(BenchV1.Bench.upload) { sender in
        for i in 0..<100 { try await sender.send(TestServer.request([UInt8](repeating: UInt8(i), count: 1000))) }
      }
      #expect(response.requestsSeen == 100)
      #expect(response.bytesSeen == 100_000)
      await client.close()
    }
  }

  @Test(arguments: TestServer.Transport.allCases)
  func serverStreamingDownload(transport: TestServer.Transport) async throws {
    try await TestServer.withServer(transport) { _, address in
      let client = RPCClient(address: address)
      let sizes = try await client.serverStreaming(
        BenchV1.Bench.download, TestServer.request(responseSize: 3000, count: 500)
      ) {
        responses in
        var sizes: [Int] = []
        for try await response in responses { sizes.append(response.payload.count) }
        return sizes
      }
      #expect(sizes == Array(repeating: 3000, count: 500))
      await client.close()
    }
  }

  @Test(arguments: TestServer.Transport.allCases)
  func bidirectionalChat(transport: TestServer.Transport) async throws {
    try await TestServer.withServer(transport) { _, address in
      let client = RPCClient(address: address)
      let seen = try await client.bidirectional(BenchV1.Bench.chat) { sender, responses in
        var iterator = responses.makeAsyncIterator()
        var seen: [UInt64] = []
        for i in 0..<50 {
          try await sender.send(TestServer.request([UInt8(i)]))
          seen.append(try #require(try await iterator.next()).requestsSeen)
        }
        sender.close()
        #expect(try await iterator.next() == nil)
        return seen
      }
      #expect(seen == Array(1...50))
      await client.close()
    }
  }

  @Test func largeStreamsRespectFlowControl() async throws {
    // 64 MiB through a 1 MiB window: the server must wait for credit, and nothing is lost.
    try await TestServer.withServer { _, address in
      let client = RPCClient(address: address)
      let total = try await client.serverStreaming(
        BenchV1.Bench.download, TestServer.request(responseSize: 1 << 20, count: 64)
      ) {
        responses in
        var total = 0
        for try await response in responses {
          total += response.payload.count
          try await Task.sleep(for: .milliseconds(1))
        }
        return total
      }
      #expect(total == 64 << 20)
      await client.close()
    }
  }

  @Test func manyConcurrentCallsShareOneConnection() async throws {
    try await TestServer.withServer { _, address in
      let client = RPCClient(address: address)
      let results = try await withThrowingTaskGroup(of: Int.self) { group in
        for i in 0..<1000 {
          group.addTask {
            let response = try await client.unary(BenchV1.Bench.echo, TestServer.request(Array(String(i).utf8)))
            return Int(String(decoding: response.payload, as: UTF8.self))!
          }
        }
        return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
      }
      #expect(results == Set(0..<1000))
      await client.close()
    }
  }

  @Test func healthAndReflectionAreServed() async throws {
    try await TestServer.withServer { server, address in
      let client = RPCClient(address: address)
      var request = HealthV1.HealthCheckRequest()
      #expect(try await client.unary(HealthV1.Health.check, request).status == .serving)
      request.service = "shoal.bench.v1.Bench"
      #expect(try await client.unary(HealthV1.Health.check, request).status == .serving)
      request.service = "shoal.nope.v1.Nothing"
      await #expect {
        try await client.unary(HealthV1.Health.check, request)
      } throws: { ($0 as? RPCError)?.code == .notFound }
      // A string the codec would cut short at its NUL is refused before it is sent, and the
      // connection carries on.
      request.service = "shoal.bench.v1.Bench\u{0}.Nothing"
      let nul = await #expect(throws: RPCError.self) { try await client.unary(HealthV1.Health.check, request) }
      #expect(nul?.code == .invalidArgument && nul?.message.contains("string field 'service'") == true)
      request.service = "shoal.bench.v1.Bench"
      #expect(try await client.unary(HealthV1.Health.check, request).status == .serving)

      let services = try await client.unary(RpcV1.Reflection.listServices, RpcV1.ListServicesRequest()).services
      #expect(services.map(\.name).contains("shoal.bench.v1.Bench"))
      let echo = try #require(services.first { $0.name == "shoal.bench.v1.Bench" }?.methods.first { $0.name == "Echo" })
      #expect(echo.inputType == "shoal.bench.v1.BenchRequest" && echo.idempotent)

      request.service = "shoal.bench.v1.Bench"
      let statuses = try await client.serverStreaming(HealthV1.Health.watch, request) { responses in
        var statuses: [HealthV1.HealthCheckResponse.ServingStatus] = []
        for try await response in responses {
          statuses.append(response.status)
          if statuses.count == 1 { server.health.set("shoal.bench.v1.Bench", .notServing) }
          if statuses.count == 2 { break }
        }
        return statuses
      }
      #expect(statuses == [.serving, .notServing])
      await client.close()
    }
  }
}
