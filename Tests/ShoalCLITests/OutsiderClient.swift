import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalTestSupport
import Testing

/// A client of `service` over TCP with a writer's token of a new organisation `acme` (made with
/// the CLI): someone who must see none of the mesh's own organisation's rows.
func outsiderClient(service: String, shoal: String, data: TemporaryDirectory) async throws -> RPCClient {
  let made = try await Subprocess.run(shoal, ["admin", "org", "create", "acme", "--data", data.url.path])
  #expect(made.status == 0)
  return try await tokenClient(service: service, shoal: shoal, data: data, organization: "acme", name: "ana")
}

/// A client of `service` over TCP with a new writer's token for `name` of `organization`.
func tokenClient(
  service: String, shoal: String, data: TemporaryDirectory, organization: String, name: String
) async throws -> RPCClient {
  let token = try await Subprocess.run(
    shoal,
    ["admin", "token", "create", "--org", organization, "--role", "writer", "--name", name, "--data", data.url.path])
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
