import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// A mesh whose TCP is mutual TLS, from its mesh file, with certificates that `shoal admin cert`
/// made: the right certificate gets in; a server certificate of another CA, a client without a
/// certificate or with another CA's, and plaintext to a TLS port are refused UNAVAILABLE, each
/// naming why; an expired token and a revoked one are refused UNAUTHENTICATED by the registry at
/// once and by tracking within its token cache (1 s here).
struct TLSEndToEndTests {
  @Test func mutualTLSAndTokensThatExpireOrAreRevoked() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    func run(_ arguments: [String]) async throws -> String {
      let result = try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
      #expect(result.status == 0, "shoal \(arguments): \(result.stderrText)")
      return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let made = try await run(["admin", "cert", "--out", data.path("tls"), "--name", "node"])
    #expect(made.contains("made a CA") && made.contains("localhost, 127.0.0.1, ::1"), "\(made)")
    _ = try await run(["admin", "cert", "--out", data.path("rogue"), "--name", "node"])
    let mesh = """
      { "tls": { "ca": "tls/ca.pem", "certificate": "tls/node.pem", "key": "tls/node-key.pem",
                 "client_certificates": "require" },
        "token_cache_seconds": 1,
        "services": [ { "name": "registry", "listen": ["unix:registry.sock", "tls://127.0.0.1:0"] },
                      { "name": "tracking", "listen": ["unix:tracking.sock", "tls://127.0.0.1:0"] } ] }
      """
    try Data(mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up")
    _ = try await up.waitForLines(containing: "registered tracking", count: 2)
    let local = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
    func address(of service: String) async throws -> RPCAddress {
      var resolve = RegistryV1.ResolveRequest()
      resolve.service = service
      let addresses = try await local.directory.resolve(resolve).instances.map(\.address)
      return try RPCAddress(parsing: try #require(addresses.first { $0.hasPrefix("tls://") }, "\(addresses)"))
    }
    let registryAddress = try await address(of: "registry")
    let trackingAddress = try await address(of: "tracking")
    await local.close()

    let trusted = TransportSecurity(
      trustRoots: data.path("tls/ca.pem"), certificate: data.path("tls/node.pem"),
      privateKey: data.path("tls/node-key.pem"))
    func client(_ address: RPCAddress, _ security: TransportSecurity) -> RPCClient {
      var config = RPCClient.Config.defaults
      config.connection.security = security
      return RPCClient(address: address, config: config)
    }
    // (A minute: the first calls over TLS took over 5 s while every suite was starting.)
    func bearer(_ token: String) -> CallOptions {
      var options = CallOptions(timeout: .seconds(60))
      options.metadata.add("authorization", "Bearer \(token)")
      return options
    }
    func refusal(_ call: () async throws -> Void) async -> RPCError? {
      do {
        try await call()
        return nil
      } catch let error as RPCError {
        return error
      } catch {
        return RPCError(.unknown, "\(error)")
      }
    }

    let admin = try await run(["admin", "token", "create", "--role", "admin", "--name", "ops"])
    let registryRPC = client(registryAddress, trusted)
    let registry = RegistryV1.ModelRegistry.Client(registryRPC)
    let trackingRPC = client(trackingAddress, trusted)
    let tracking = TrackingV1.Tracking.Client(trackingRPC)
    let me = try await registry.whoAmI(RegistryV1.WhoAmIRequest(), options: bearer(admin))
    #expect(me.name == "ops" && me.organization == "local")
    var experiment = TrackingV1.CreateExperimentRequest()
    experiment.name = "over-tls"
    #expect(try await tracking.createExperiment(experiment, options: bearer(admin)).name == "over-tls")

    // Wrong certificates, each refused while connecting, saying why.
    let wrongServer = TransportSecurity(
      trustRoots: data.path("rogue/ca.pem"), certificate: data.path("tls/node.pem"),
      privateKey: data.path("tls/node-key.pem"))
    let noCertificate = TransportSecurity(trustRoots: data.path("tls/ca.pem"))
    let wrongClient = TransportSecurity(
      trustRoots: data.path("tls/ca.pem"), certificate: data.path("rogue/node.pem"),
      privateKey: data.path("rogue/node-key.pem"))
    let cases: [(String, RPCAddress, TransportSecurity, String)] = [
      ("a server certificate of another CA", registryAddress, wrongServer, "CERTIFICATE_VERIFY_FAILED"),
      ("no client certificate", registryAddress, noCertificate, "CERTIFICATE_REQUIRED"),
      ("a client certificate of another CA", trackingAddress, wrongClient, "TLS with"),
    ]
    for (what, address, security, reason) in cases {
      let rpc = client(address, security)
      let error = await refusal {
        _ = try await RegistryV1.ModelRegistry.Client(rpc).whoAmI(RegistryV1.WhoAmIRequest(), options: bearer(admin))
      }
      #expect(
        error?.code == .unavailable && error?.message.contains(reason) == true, "\(what): \(String(describing: error))")
      await rpc.close()
    }
    guard let (host, port) = registryAddress.hostAndPort else { throw RPCError(.internal, "no port") }
    let plaintext = client(.tcp(host: host, port: port), trusted)
    let error = await refusal {
      _ = try await RegistryV1.ModelRegistry.Client(plaintext).whoAmI(
        RegistryV1.WhoAmIRequest(), options: bearer(admin))
    }
    #expect(error?.code == .unavailable, "plaintext to a TLS port: \(String(describing: error))")
    await plaintext.close()

    // A token that expires: good until then, refused after, by the registry and by tracking.
    // (Ten seconds, so that a loaded machine still makes the first call in time.)
    let created = try await run([
      "admin", "token", "create", "--role", "writer", "--name", "brief", "--expires", "10s", "--json",
    ])
    let expiringToken = try RegistryV1.CreateTokenResponse(jsonString: created)
    let expiring = expiringToken.token
    #expect(try await tracking.getExperiment(Self.named("over-tls"), options: bearer(expiring)).name == "over-tls")
    let left = Double(expiringToken.expiresAtMs) / 1000 - Date().timeIntervalSince1970
    try await Task.sleep(for: .milliseconds(Int64(max(0, left) * 1000) + 300))
    for (service, call) in [
      ("registry", { () async throws in _ = try await registry.whoAmI(.init(), options: bearer(expiring)) }),
      (
        "tracking",
        { () async throws in
          _ = try await tracking.getExperiment(Self.named("over-tls"), options: bearer(expiring))
        }
      ),
    ] {
      let expired = await refusal(call)
      #expect(
        expired?.code == .unauthenticated && expired?.message.contains("expired at") == true,
        "\(service): \(String(describing: expired))")
    }

    // A revoked token: the registry refuses it at once, tracking once its cache of 1 s lapses.
    let revoked = try await run(["admin", "token", "create", "--role", "writer", "--name", "leaver"])
    #expect(try await tracking.getExperiment(Self.named("over-tls"), options: bearer(revoked)).name == "over-tls")
    let revocation = try await run(["admin", "token", "revoke", revoked])
    #expect(revocation.contains("revoked token") && revocation.contains("leaver@local"), "\(revocation)")
    let atOnce = await refusal { _ = try await registry.whoAmI(.init(), options: bearer(revoked)) }
    #expect(
      atOnce?.code == .unauthenticated && atOnce?.message.contains("was revoked") == true,
      "\(String(describing: atOnce))")
    try await Task.sleep(for: .seconds(1.5))
    let later = await refusal { _ = try await tracking.getExperiment(Self.named("over-tls"), options: bearer(revoked)) }
    #expect(
      later?.code == .unauthenticated && later?.message.contains("was revoked") == true, "\(String(describing: later))")
    let listed = try await run(["admin", "token", "list"])
    #expect(listed.contains("leaver@local") && listed.contains("brief@local"), "\(listed)")

    // The admin token still works: nothing else was touched.
    #expect(try await registry.whoAmI(.init(), options: bearer(admin)).name == "ops")
    await registryRPC.close()
    await trackingRPC.close()
    #expect(try await up.stop() == 0)
  }

  private static func named(_ name: String) -> TrackingV1.GetExperimentRequest {
    var request = TrackingV1.GetExperimentRequest()
    request.name = name
    return request
  }
}
