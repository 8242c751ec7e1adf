import Bench
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// `tls://` addresses, the process's TLS settings from the environment, and tokens kept off
/// plaintext TCP that leaves the machine.
struct TransportSecurityTests {
  @Test func tlsAddressesParseAndSayWhetherTheyStayOnThisMachine() throws {
    #expect(try RPCAddress(parsing: "tls://10.0.0.1:7400") == .tls(host: "10.0.0.1", port: 7400))
    #expect(try RPCAddress(parsing: "tls://[::1]:7400").description == "tls://[::1]:7400")
    #expect(try RPCAddress(parsing: "tls://127.0.0.1:1").staysOnThisMachine)
    #expect(try RPCAddress(parsing: "tcp://localhost:1").staysOnThisMachine)
    #expect(try !RPCAddress(parsing: "tcp://10.0.0.1:1").staysOnThisMachine)
    #expect(RPCAddress.unix(path: "/s.sock").staysOnThisMachine)
    #expect(throws: RPCError.self) { try RPCAddress(parsing: "tls://:7400") }
  }

  @Test func theEnvironmentGivesTheProcessSettings() {
    let environment = [
      "SHOAL_TLS_CA": "/ca.pem", "SHOAL_TLS_CERT": "/c.pem", "SHOAL_TLS_KEY": "/k.pem",
      "SHOAL_TLS_CLIENT_CERTS": "require", "SHOAL_PLAINTEXT_TOKENS": "1", "SHOAL_TLS_VERIFY_HOSTNAME": "0",
    ]
    let security = TransportSecurity.fromEnvironment { environment[$0] }
    #expect(
      security
        == TransportSecurity(
          trustRoots: "/ca.pem", certificate: "/c.pem", privateKey: "/k.pem", clientCertificates: .require,
          allowsPlaintextTokens: true, verifiesHostname: false))
    #expect(TransportSecurity.fromEnvironment { _ in nil } == TransportSecurity())
  }

  @Test func aTokenIsNotSentOverPlaintextTCPOffTheMachine() async throws {
    // 192.0.2.1 (TEST-NET-1) is never dialled: the call is refused before connecting.
    let client = RPCClient(address: .tcp(host: "192.0.2.1", port: 7400))
    var options = CallOptions(timeout: .seconds(5))
    options.metadata.add("authorization", "Bearer shoal_x_y")
    let error = await #expect(throws: RPCError.self) {
      _ = try await BenchV1.Bench.Client(client).echo(BenchV1.BenchRequest(), options: options)
    }
    #expect(error?.code == .unauthenticated)
    #expect(error?.message.contains("not sending the token to tcp://192.0.2.1:7400") == true)
    await client.close()
  }

  @Test func aTLSListenerWithoutACertificateIsRefusedSayingWhatToGive() async throws {
    var config = RPCServer.Config.defaults
    config.connection.security = TransportSecurity()
    let server = RPCServer(router: ServiceRouter(), config: config)
    let error = await #expect(throws: RPCError.self) { try await server.bind(to: .tls(host: "127.0.0.1", port: 0)) }
    #expect(error?.code == .failedPrecondition && error?.message.contains("shoal admin cert") == true)
    await server.shutdown()
  }
}
