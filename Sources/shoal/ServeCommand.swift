import ArgumentParser
import Bench
import Foundation
import ShoalRPC

/// `shoal serve SERVICE --listen ADDR…`: runs one service until SIGINT or SIGTERM, then shuts
/// down gracefully (GOAWAY, drain, close).
struct ServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Run one service.",
    discussion: "Services available in this build: bench."
  )

  @Argument(help: "The service to run: bench.")
  var service: String

  @Option(
    name: .long, help: "An address to listen on: unix:///abs/path, unix:relative/path or tcp://host:port (repeatable).")
  var listen: [String] = []

  @Option(help: "The largest message accepted, in bytes.")
  var maxMessageSize: Int = ConnectionConfig.defaults.maxMessageSize

  @Flag(help: "Do not compress responses (and refuse compressed requests).")
  var noCompression = false

  func run() async throws {
    var router = ServiceRouter()
    switch service {
    case "bench": BenchService().register(in: &router)
    default: throw ValidationError("unknown service '\(service)'; this build serves: bench")
    }
    guard !listen.isEmpty else { throw ValidationError("give at least one --listen address") }
    var config = RPCServer.Config.defaults
    config.connection.maxMessageSize = maxMessageSize
    config.connection.compression.enabled = !noCompression
    config.connection.peerName =
      "shoal-\(service)/\(ShoalVersion.current) pid \(ProcessInfo.processInfo.processIdentifier)"
    let server = RPCServer(router: router, config: config)
    for text in listen {
      let address = try await server.bind(to: try RPCAddress(parsing: text))
      FileHandle.standardOutput.write(Data("\(service) listening on \(address)\n".utf8))
    }
    try await withSignalShutdown(of: server)
  }
}

/// Runs `server` until SIGINT or SIGTERM, then shuts it down gracefully.
func withSignalShutdown(of server: RPCServer) async throws {
  let signals = [SIGINT, SIGTERM].map { signal -> any DispatchSourceSignal in
    Foundation.signal(signal, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: signal)
    source.setEventHandler { Task { await server.shutdown() } }
    source.resume()
    return source
  }
  defer { for source in signals { source.cancel() } }
  try await server.run()
}
