import Bench
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

struct ServerBindTests {
  private func benchServer() -> RPCServer {
    var router = ServiceRouter()
    BenchService().register(in: &router)
    return RPCServer(router: router)
  }

  @Test func aLiveServersUnixSocketIsNotTakenOverButAStaleOneIs() async throws {
    let directory = try TemporaryDirectory()
    let address = RPCAddress.unix(path: directory.path("s.sock"))
    let first = benchServer()
    try await first.bind(to: address)
    let second = benchServer()
    let error = await #expect(throws: RPCError.self) { try await second.bind(to: address) }
    #expect(error?.code == .alreadyExists)
    #expect(error?.message.contains("another server is listening") == true)
    // The first still answers.
    let client = RPCClient(address: address)
    _ = try await BenchV1.Bench.Client(client).echo(BenchV1.BenchRequest())
    await client.close()
    await first.shutdown()
    await second.shutdown()

    // A socket file nobody listens on any more is replaced.
    let third = benchServer()
    try await third.bind(to: address)
    await third.shutdown()
  }
}
