import ArgumentParser
import Foundation
import ShoalClient
import ShoalMesh
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal status`: the supervisor, every service it runs, their instances, addresses and health.
struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Show the mesh: each service, its instances, addresses and health (exit status 1 if any is unhealthy)."
  )

  @OptionGroup var mesh: MeshOptions

  @Flag(help: "Print JSON.")
  var json = false

  @Option(help: "Seconds to wait for each answer.")
  var timeout: Double = 3

  func run() async throws {
    let location = try mesh.location()
    let supervised = Self.readState(location.dataDirectory)
    let client = ShoalClient(location: location)
    let options = CallOptions(timeout: .milliseconds(Int64(timeout * 1000)))
    var instances: [RegistryV1.Instance] = []
    var registryError: RPCError?
    do {
      instances = try await client.directory.resolve(RegistryV1.ResolveRequest(), options: options).instances
    } catch {
      registryError = error
    }
    var health: [String: String] = [:]
    await withTaskGroup(of: (String, String).self) { group in
      for instance in instances {
        group.addTask {
          guard let address = try? RPCAddress(parsing: instance.address) else {
            return (instance.address, "bad address")
          }
          let rpc = RPCClient(address: address)
          let status: String
          do {
            let response = try await rpc.unary(
              HealthV1.Health.check, HealthV1.HealthCheckRequest(),
              options: CallOptions(timeout: options.timeout, retries: .none))
            status = response.status.protoName ?? "UNKNOWN"
          } catch {
            status = "UNREACHABLE"
          }
          await rpc.close()
          return (instance.address, status)
        }
      }
      for await (address, status) in group { health[address] = status }
    }
    await client.close()

    let services = supervised?["services"] as? [[String: Any]] ?? []
    if json {
      let object: [String: Any] = [
        "data": location.dataDirectory, "registry": location.registry.description,
        "registry_error": registryError.map { "\($0)" } ?? NSNull(),
        "supervisor": supervised.map { ["pid": $0["pid"] ?? NSNull(), "mesh": $0["mesh"] ?? NSNull()] } ?? NSNull(),
        "services": services,
        "instances": instances.map {
          [
            "service": $0.service, "instance": $0.instanceId, "address": $0.address, "version": $0.version,
            "health": health[$0.address] ?? "UNKNOWN",
          ]
        },
      ]
      let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
      print(String(decoding: data, as: UTF8.self))
    } else {
      if let supervised {
        print(
          "shoal up: pid \(supervised["pid"] ?? "?"), mesh \(supervised["mesh"] ?? "?"), data \(location.dataDirectory)"
        )
      } else {
        print("shoal up: not running on \(location.dataDirectory)")
      }
      if let registryError { print("registry: unreachable at \(location.registry): \(registryError.message)") }
      var table = TextTable("SERVICE", "STATE", "PID", "RESTARTS", "INSTANCE", "ADDRESS", "HEALTH")
      var listed = Set<String>()
      for entry in services {
        let name = entry["name"] as? String ?? "?"
        let state = entry["state"] as? String ?? "?"
        let pid = (entry["pid"] as? Int).map(String.init) ?? "-"
        let restarts = (entry["restarts"] as? Int).map(String.init) ?? "-"
        let own = instances.filter { $0.service == name }
        if own.isEmpty {
          table.add(name, state, pid, restarts, "-", "-", state == "running" ? "NOT REGISTERED" : "-")
        }
        for instance in own {
          table.add(name, state, pid, restarts, instance.instanceId, instance.address, health[instance.address] ?? "?")
        }
        listed.insert(name)
      }
      for instance in instances where !listed.contains(instance.service) {
        table.add(
          instance.service, "external", instance.metadata["pid"] ?? "-", "-", instance.instanceId, instance.address,
          health[instance.address] ?? "?")
      }
      print(table.rendered)
    }
    let healthy = registryError == nil && health.values.allSatisfy { $0 == "SERVING" }
    if !healthy { throw ExitCode(1) }
  }

  /// The state file `shoal up` keeps, if a live supervisor wrote it.
  static func readState(_ dataDirectory: String) -> [String: Any]? {
    let path = Supervisor.stateFile(in: dataDirectory)
    guard let data = FileManager.default.contents(atPath: path),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let pid = object["pid"] as? Int, kill(Int32(pid), 0) == 0
    else { return nil }
    return object
  }
}
