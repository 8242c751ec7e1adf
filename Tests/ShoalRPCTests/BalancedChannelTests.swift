import ShoalProto
import ShoalRPC
import ShoalTestSupport
import Synchronization
import Testing

struct BalancedChannelTests {
  /// A streaming call fails over only when its stream could not be opened: a connect failure
  /// that the caller's own body meets (a call it makes elsewhere) ends the call after one run of
  /// the body, instead of sending it all again to the next instance.
  @Test func aConnectFailureInsideTheBodyIsNotTakenForTheStreams() async throws {
    try await TestServer.withServer { _, first in
      try await TestServer.withServer { _, second in
        let channel = BalancedChannel(target: "bench")
        await channel.update([first, second])
        let directory = try TemporaryDirectory()
        let nowhere = RPCClient(address: .unix(path: directory.path("nobody-listens.sock")))
        let runs = Atomic(0)
        let error = await #expect(throws: RPCError.self) {
          try await channel.serverStreaming(
            BenchV1.Bench.download, TestServer.request(count: 2), options: CallOptions(timeout: .seconds(30))
          ) { responses in
            runs.add(1, ordering: .relaxed)
            for try await _ in responses {}
            _ = try await nowhere.unary(BenchV1.Bench.echo, TestServer.request())
          }
        }
        #expect(error?.code == .unavailable)
        #expect(runs.load(ordering: .relaxed) == 1)

        // A stream that cannot be opened still moves on to the next instance.
        await channel.update([.unix(path: directory.path("gone.sock")), second])
        let received = try await channel.serverStreaming(
          BenchV1.Bench.download, TestServer.request(count: 3), options: CallOptions(timeout: .seconds(30))
        ) { responses in
          var count = 0
          for try await _ in responses { count += 1 }
          return count
        }
        #expect(received == 3)
        await nowhere.close()
        await channel.close()
      }
    }
  }
}
