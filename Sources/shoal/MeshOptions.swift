import ArgumentParser
import Foundation
import ShoalClient
import ShoalRPC

/// The options every mesh-facing command takes: where the data directory and the registry are,
/// and the token to send.
struct MeshOptions: ParsableArguments {
  @Option(help: "The data directory (default: $SHOAL_DATA, else ~/.shoal).")
  var data: String?

  @Option(help: "The registry's address (default: $SHOAL_REGISTRY, else the registry socket in the data directory).")
  var registry: String?

  @Option(help: .hidden)
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

/// One line on standard error, prefixed with the component speaking.
func logLine(_ component: String, _ message: String) {
  FileHandle.standardError.write(Data("\(component): \(message)\n".utf8))
}

/// One line on standard output, written at once (not buffered), so a reader of a pipe sees it.
func emit(_ line: String) {
  FileHandle.standardOutput.write(Data("\(line)\n".utf8))
}
