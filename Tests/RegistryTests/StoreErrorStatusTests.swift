import ShoalProto
import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Testing

/// A store failure that a handler lets propagate reaches the client with its status, whatever the
/// service (before, only handlers that mapped it themselves did; the others said UNKNOWN).
struct StoreErrorStatusTests {
  @Test(arguments: [
    (StoreError.Code.unavailable, RpcV1.StatusCode.unavailable), (.alreadyExists, .alreadyExists),
    (.conflict, .aborted), (.dataLoss, .dataLoss), (.notFound, .notFound), (.internal, .internal),
  ])
  func storeErrorsTravelWithTheirStatus(_ store: StoreError.Code, _ status: RpcV1.StatusCode) async throws {
    let directory = try TemporaryDirectory()
    var router = ServiceRouter()
    router.unary(BenchV1.Bench.echo) { _, _ in throw StoreError(store, "the database is locked", cause: "SQLite 5") }
    let server = RPCServer(router: router)
    let client = RPCClient(address: try await server.bind(to: .unix(path: directory.path("s.sock"))))
    let error = await #expect(throws: RPCError.self) {
      _ = try await client.unary(BenchV1.Bench.echo, BenchV1.BenchRequest(), options: CallOptions(retries: .none))
    }
    #expect(error?.code == status)
    #expect(error?.message == "the database is locked (SQLite 5)")
    await client.close()
    await server.shutdown()
  }
}
