import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// Runs `body` with a client of the registry's ModelRegistry (token from --token or SHOAL_TOKEN);
/// an RPC failure is printed as `shoal COMMAND: CODE: message` and exits with status 1.
func withModelRegistry<T>(
  _ mesh: MeshOptions, command: String, _ body: (RegistryV1.ModelRegistry.Client) async throws -> T
) async throws -> T {
  let location = try mesh.location()
  var config = RPCClient.Config.defaults
  if let token = location.token { config.interceptors = [BearerTokenInterceptor(token: token)] }
  let rpc = RPCClient(address: location.registry, config: config)
  return try await reportingRPCErrors(command: command, closing: { await rpc.close() }) {
    try await body(RegistryV1.ModelRegistry.Client(rpc))
  }
}

/// Runs `body`, then `close`. An RPC failure is printed as `shoal COMMAND: CODE: message` and
/// ends the command with exit status 1.
func reportingRPCErrors<T>(
  command: String, closing close: () async -> Void, _ body: () async throws -> T
) async throws -> T {
  do {
    let result = try await body()
    await close()
    return result
  } catch let error as RPCError {
    await close()
    logLine("shoal \(command)", "\(error.codeName): \(error.message)")
    throw ExitCode(1)
  } catch {
    await close()
    throw error
  }
}

/// Prints `message` as proto3 JSON (pretty).
func emitJSON(_ message: some ProtoMessage) {
  emit(message.jsonString(pretty: true))
}

/// A Unix time in milliseconds as local date and time.
func formatTime(_ ms: Int64) -> String {
  guard ms > 0 else { return "-" }
  let formatter = DateFormatter()
  formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
  return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
}

/// `key=value` pairs from the command line.
func parsePairs(_ pairs: [String], option: String) throws -> [String: String] {
  var result: [String: String] = [:]
  for pair in pairs {
    guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
      throw ValidationError("\(option) takes key=value, not '\(pair)'")
    }
    result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
  }
  return result
}
