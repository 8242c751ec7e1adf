import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// The options every mesh-facing command takes: where the data directory and the registry are,
/// and the token to send.
struct MeshOptions: ParsableArguments {
  @Option(help: "The data directory (default: $SHOAL_DATA, else ~/.shoal).")
  var data: String?

  @Option(help: "The registry's address (default: $SHOAL_REGISTRY, else the registry socket in the data directory).")
  var registry: String?

  @Option(help: "The API token to send (default: $SHOAL_TOKEN); peers on the registry's Unix socket need none.")
  var token: String?

  /// The resolved location; a malformed address is a usage error.
  func location() throws -> RegistryLocation {
    do {
      return try RegistryLocation(registry: registry, data: data, token: token)
    } catch {
      throw ValidationError(error.message)
    }
  }
}

extension MeshOptions {
  /// The address `target` names: an address as given (`unix:relative` inside the data directory),
  /// or a service name looked up in the registry (its first live instance).
  func address(of target: String) async throws -> RPCAddress {
    let location = try location()
    if target.contains(":") {
      do {
        return try RPCAddress(parsing: target, relativeTo: location.dataDirectory)
      } catch {
        throw ValidationError("'\(target)': \(error.message)")
      }
    }
    let client = ShoalClient(location: location)
    var request = RegistryV1.ResolveRequest()
    request.service = target
    let outcome: Result<[RegistryV1.Instance], RPCError>
    do {
      outcome = .success(
        try await client.directory.resolve(request, options: CallOptions(timeout: .seconds(5))).instances)
    } catch {
      outcome = .failure(error)
    }
    await client.close()
    switch outcome {
    case .failure(let error):
      throw ValidationError("cannot look up '\(target)' in the registry at \(location.registry): \(error.message)")
    case .success(let instances):
      // The first server, through the address the SDK would call it by (its Unix socket on this host).
      guard let address = ServiceResolver.addresses(of: instances, localHost: ProcessInfo.processInfo.hostName).first
      else {
        throw ValidationError(
          "no instance of service '\(target)' is registered in the registry at \(location.registry) (see `shoal services`)"
        )
      }
      return address
    }
  }
}

/// One line on standard error, prefixed with the component speaking.
func logLine(_ component: String, _ message: String) {
  FileHandle.standardError.write(Data("\(component): \(message)\n".utf8))
}

/// One line on standard output, written at once (not buffered), so a reader of a pipe sees it.
func emit(_ line: String) {
  do {
    try FileHandle.standardOutput.write(contentsOf: Data("\(line)\n".utf8))
  } catch {
    // The reader went away (`shoal … | head`): stop quietly, as a tool killed by SIGPIPE does.
    exit(0)
  }
}
