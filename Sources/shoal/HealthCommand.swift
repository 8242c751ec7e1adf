import ArgumentParser
import Foundation
import ShoalProto
import ShoalRPC

/// `shoal health ADDR [--service S] [--watch]`: a server's (or one service's) health.
struct HealthCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "health",
    abstract: "Check a server's health (exit status 0 when SERVING)."
  )

  @Argument(help: "The server's address, or a service name to look up in the registry.")
  var address: String

  @OptionGroup var mesh: MeshOptions

  @Option(help: "A fully qualified service name; the server as a whole by default.")
  var service = ""

  @Flag(help: "Print every change until interrupted.")
  var watch = false

  @Option(help: "Seconds to wait for an answer.")
  var timeout: Double = 5

  func run() async throws {
    let client = RPCClient(address: try await mesh.address(of: address))
    defer { Task { await client.close() } }
    var request = HealthV1.HealthCheckRequest()
    request.service = service
    let name = service.isEmpty ? "server" : service
    do {
      if watch {
        try await client.serverStreaming(HealthV1.Health.watch, request) { responses in
          for try await response in responses {
            print("\(name): \(response.status.protoName ?? "\(response.status.rawValue)")")
          }
        }
        return
      }
      let response = try await client.unary(
        HealthV1.Health.check, request, options: CallOptions(timeout: .milliseconds(Int64(timeout * 1000))))
      print("\(name): \(response.status.protoName ?? "\(response.status.rawValue)")")
      if response.status != .serving { throw ExitCode(1) }
    } catch let error as RPCError {
      FileHandle.standardError.write(Data("shoal health: \(error)\n".utf8))
      throw ExitCode(2)
    }
  }
}
