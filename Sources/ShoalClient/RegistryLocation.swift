import Foundation
public import ShoalRPC

/// Where the client finds the registry and its data: the `--registry`, `--data` and `--token`
/// options, then `SHOAL_REGISTRY`, `SHOAL_DATA` and `SHOAL_TOKEN`, then the registry socket
/// inside the data directory (default `~/.shoal`).
public struct RegistryLocation: Sendable, Equatable {
  /// The data directory (absolute).
  public var dataDirectory: String
  /// The registry's address.
  public var registry: RPCAddress
  /// The token sent as `authorization: Bearer <token>`, if any.
  public var token: String?

  /// The file name of the registry's socket inside the data directory.
  public static let registrySocketName = "registry.sock"

  /// Resolves the location from explicit options, then `environment` (the process's own by default).
  ///
  /// - Throws: `RPCError.invalidArgument` when a given registry address is malformed.
  public init(
    registry: String? = nil, data: String? = nil, token: String? = nil,
    environment: [String: String]? = nil
  ) throws(RPCError) {
    let environment = environment ?? ProcessInfo.processInfo.environment
    let home = environment["HOME"] ?? NSHomeDirectory()
    let data = data ?? environment["SHOAL_DATA"] ?? "\(home)/.shoal"
    dataDirectory = Self.absolute(data)
    let registryText = registry ?? environment["SHOAL_REGISTRY"]
    if let registryText, !registryText.isEmpty {
      do {
        self.registry = try RPCAddress(parsing: registryText, relativeTo: dataDirectory)
      } catch {
        throw RPCError(.invalidArgument, "registry address '\(registryText)': \(error.message)")
      }
    } else {
      self.registry = .unix(path: "\(dataDirectory)/\(Self.registrySocketName)")
    }
    let token = token ?? environment["SHOAL_TOKEN"]
    self.token = (token?.isEmpty ?? true) ? nil : token
  }

  /// `path` made absolute against the current directory, with `~/` expanded.
  public static func absolute(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    if expanded.hasPrefix("/") { return (expanded as NSString).standardizingPath }
    return ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded) as NSString)
      .standardizingPath
  }
}
