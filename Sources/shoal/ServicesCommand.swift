import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal services [SERVICE] [--watch]`: the registry's directory of live instances.
struct ServicesCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "services",
    abstract: "List the live service instances the registry knows (or follow changes with --watch)."
  )

  @Argument(help: "Only this service.")
  var service = ""

  @OptionGroup var mesh: MeshOptions

  @Flag(help: "Print every change until interrupted.")
  var watch = false

  @Flag(help: "Print JSON (one object per event with --watch).")
  var json = false

  @Option(help: "Seconds to wait for the registry.")
  var timeout: Double = 5

  func run() async throws {
    let location = try mesh.location()
    let client = ShoalClient(location: location)
    do {
      try await list(client)
      await client.close()
    } catch {
      await client.close()
      logLine("shoal services", "the registry at \(location.registry) did not answer: \(RPCError(from: error))")
      throw ExitCode(2)
    }
  }

  private func list(_ client: ShoalClient) async throws {
    let options = CallOptions(timeout: .milliseconds(Int64(timeout * 1000)))
    if watch {
      var request = RegistryV1.WatchRequest()
      request.service = service
      try await client.directory.watch(request) { events in
        for try await event in events {
          emit(json ? event.jsonString() : Self.describe(event))
        }
      }
      return
    }
    var request = RegistryV1.ResolveRequest()
    request.service = service
    let response = try await client.directory.resolve(request, options: options)
    if json {
      print(response.jsonString())
      return
    }
    var table = TextTable("SERVICE", "INSTANCE", "ADDRESS", "VERSION", "PID", "LEASE", "EXPIRES IN")
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    for instance in response.instances {
      table.add(
        instance.service, instance.instanceId, instance.address, instance.version, instance.metadata["pid"] ?? "-",
        String(instance.leaseId), String(format: "%.1f s", Double(instance.expiresAtMs - now) / 1000))
    }
    print(table.rendered)
    print(
      "\(response.instances.count) instance\(response.instances.count == 1 ? "" : "s") at revision \(response.revision)"
    )
  }

  static func describe(_ event: RegistryV1.WatchEvent) -> String {
    let instances = event.instances.map { "\($0.service) \($0.instanceId) \($0.address)" }
    switch event.kind {
    case .snapshot:
      return "#\(event.revision) SNAPSHOT \(event.instances.count) instance(s)" + instances.map { "\n  \($0)" }.joined()
    case .put: return "#\(event.revision) PUT \(instances.joined(separator: ", "))"
    case .delete: return "#\(event.revision) DELETE \(instances.joined(separator: ", ")) (\(event.reason))"
    case .reset: return "#\(event.revision) RESET (\(event.reason))"
    default: return "#\(event.revision) \(event.kind.protoName ?? "?")"
    }
  }
}
