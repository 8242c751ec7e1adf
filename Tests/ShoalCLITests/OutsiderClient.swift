import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalTestSupport
import Testing

/// A client of `service` over TCP with a writer's token of a new organisation `acme` (made with
/// the CLI): someone who must see none of the mesh's own organisation's rows.
func outsiderClient(service: String, shoal: String, data: TemporaryDirectory) async throws -> RPCClient {
  func run(_ arguments: String...) async throws -> SubprocessResult {
    try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
  }
  #expect(try await run("admin", "org", "create", "acme").status == 0)
  let token = try await run("admin", "token", "create", "--org", "acme", "--role", "writer", "--name", "ana")
  let sdk = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
  var resolve = RegistryV1.ResolveRequest()
  resolve.service = service
  let address = try #require(
    try await sdk.directory.resolve(resolve).instances.first { $0.address.hasPrefix("tcp://") },
    "\(service) listens on no TCP address")
  await sdk.close()
  var config = RPCClient.Config.defaults
  config.interceptors = [
    BearerTokenInterceptor(token: token.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))
  ]
  return RPCClient(address: try RPCAddress(parsing: address.address), config: config)
}
