import Foundation
import Registry
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// Who may change the service directory: over TCP only an admin of the mesh's organisation
/// `local` (a registration decides where clients send their calls and tokens), on the Unix socket
/// anyone who can open it. Against a real `shoal serve registry` process.
struct DirectoryAccessTests {
  private enum Who: String, CaseIterable, Sendable {
    case unix, unixWithAcmeToken, anonymous, forged, acmeAdmin, localReader, localWriter, localAdmin
  }

  private typealias Code = RpcV1.StatusCode

  /// The code each caller gets for a write (nil: OK).
  private static let writes: [Who: Code] = [
    .anonymous: .unauthenticated, .forged: .unauthenticated, .acmeAdmin: .permissionDenied,
    .localReader: .permissionDenied, .localWriter: .permissionDenied,
  ]

  private static func registration(_ service: String, port: Int) -> RegistryV1.RegisterRequest {
    var request = RegistryV1.RegisterRequest()
    request.service = service
    request.address = "tcp://127.0.0.1:\(port)"
    request.ttlMs = 60_000
    return request
  }

  @Test func onlyTheMeshAdministratorChangesTheDirectoryOverTCPAndARefusalChangesNothing() async throws {
    try await RegistryHarness.withProcess(.sqlite) { harness in
      let (local, localRPC) = harness.local()
      let localDirectory = RegistryV1.Directory.Client(localRPC)
      try await local.organization("acme")
      var tokens: [Who: String] = [.forged: "shoal_0123456789ab_" + String(repeating: "f", count: 48)]
      tokens[.acmeAdmin] = try await local.token("acme", "acme-admin", .admin)
      tokens[.unixWithAcmeToken] = tokens[.acmeAdmin]
      tokens[.localReader] = try await local.token("local", "reader", .reader)
      tokens[.localWriter] = try await local.token("local", "writer", .writer)
      tokens[.localAdmin] = try await local.token("local", "worker-1", .admin)

      for (index, who) in Who.allCases.enumerated() {
        var config = RPCClient.Config.defaults
        if let token = tokens[who] { config.interceptors = [BearerTokenInterceptor(token: token)] }
        let address = who == .unix || who == .unixWithAcmeToken ? harness.unix : harness.tcp
        let rpc = RPCClient(address: address, config: config)
        let directory = RegistryV1.Directory.Client(rpc)
        let expected = Self.writes[who]
        func check(_ name: String, _ call: () async throws -> Void) async {
          do {
            try await call()
            #expect(expected == nil, "\(who) \(name): OK, expected \(expected?.protoName ?? "")")
          } catch {
            #expect(RPCError(from: error).code == expected, "\(who) \(name): \(error)")
          }
        }

        // Its own registration, then a lease the mesh administrator holds.
        let service = "worker-\(index)"
        await check("RegisterInstance") {
          _ = try await directory.registerInstance(Self.registration(service, port: 9000 + index))
        }
        let held = try await localDirectory.registerInstance(Self.registration("held-\(index)", port: 9100 + index))
        let lease = try #require(held.instance).leaseId
        await check("KeepAlive") {
          var request = RegistryV1.KeepAliveRequest()
          request.leaseId = lease
          _ = try await directory.keepAlive(request)
        }
        await check("Deregister") {
          var request = RegistryV1.DeregisterRequest()
          request.leaseId = lease
          _ = try await directory.deregister(request)
        }

        // A refused write changed nothing; reading needs no token.
        var resolve = RegistryV1.ResolveRequest()
        resolve.service = service
        let registered = try await directory.resolve(resolve).instances.map(\.address)
        #expect(registered == (expected == nil ? ["tcp://127.0.0.1:\(9000 + index)"] : []), "\(who)")
        resolve.service = "held-\(index)"
        let kept = try await directory.resolve(resolve).instances.count
        #expect(kept == (expected == nil ? 0 : 1), "\(who): the lease it tried to end")
        var watch = RegistryV1.WatchRequest()
        watch.service = "held-\(index)"
        let first = try await directory.watch(watch, options: CallOptions(timeout: .seconds(30))) {
          events -> RegistryV1.WatchEvent? in
          for try await event in events { return event }
          return nil
        }
        #expect(first?.kind == .snapshot, "\(who) Watch")
        await rpc.close()
      }
      await localRPC.close()
    }
  }

  @Test func aServerRegistersOverTCPWithTheMeshAdministratorsTokenAndSaysWhyWithoutIt() async throws {
    try await RegistryHarness.withProcess(.sqlite) { harness in
      let (local, localRPC) = harness.local()
      let token = try await local.token("local", "worker-1", .admin)
      await localRPC.close()
      let shoal = try TestEnvironment.product("shoal")
      let directory = try TemporaryDirectory()
      func serve(_ name: String, token: String?) throws -> ServerProcess {
        var arguments = [
          "serve", "bench", "--data", directory.path(name), "--registry", harness.tcp.description, "--listen",
          "unix:bench.sock",
        ]
        if let token { arguments += ["--token", token] }
        return try ServerProcess(shoal, arguments, environment: ["SHOAL_TOKEN": ""])
      }

      let refused = try serve("refused", token: nil)
      let line = try await refused.waitForLines(containing: "refused bench").first ?? ""
      #expect(line.contains("UNAUTHENTICATED") || line.contains("need a token"), "\(line)")
      let accepted = try serve("accepted", token: token)
      _ = try await accepted.waitForLines(containing: "registered bench at")

      let rpc = RPCClient(address: harness.tcp)
      var resolve = RegistryV1.ResolveRequest()
      resolve.service = "bench"
      let addresses = try await RegistryV1.Directory.Client(rpc).resolve(resolve).instances.map(\.address)
      #expect(addresses == ["unix://\(directory.path("accepted"))/bench.sock"])
      await rpc.close()
      #expect(try await refused.stop() == 0)
      #expect(try await accepted.stop() == 0)
    }
  }
}
