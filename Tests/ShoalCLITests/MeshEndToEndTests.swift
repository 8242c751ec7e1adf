import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Synchronization
import Testing

/// `shoal up`, `shoal serve`, `shoal status` and `shoal services` as real processes on temporary
/// Unix sockets in a temporary data directory.
@Suite(.serialized)
struct MeshEndToEndTests {
  /// A mesh of the registry, tracking, inference and bench with 1 s leases (geocoder, a service
  /// of some later build, is listed but not in this one).
  private static let mesh = """
    {
      "lease_ttl_seconds": 1,
      "services": [
        { "name": "registry" },
        { "name": "geocoder" },
        { "name": "inference" },
        { "name": "tracking" },
        { "name": "bench", "listen": ["unix:bench.sock"] }
      ]
    }
    """

  private struct Mesh {
    let up: ServerProcess
    let data: TemporaryDirectory
    let shoal: String
    var location: RegistryLocation { try! RegistryLocation(data: data.url.path, environment: [:]) }
  }

  private func withMesh(_ body: (Mesh) async throws -> Void) async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "mesh up")
    for service in ["bench", "inference", "tracking"] {
      _ = try await up.waitForLines(containing: "registered \(service)")
    }
    let mesh = Mesh(up: up, data: data, shoal: shoal)
    do {
      try await body(mesh)
    } catch {
      _ = try? await up.stop()
      throw error
    }
    let children = MeshState.childPIDs(data.url.path)
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
    for pid in children.values { #expect(kill(pid, 0) != 0, "child \(pid) outlived shoal up") }
    #expect(!FileManager.default.fileExists(atPath: data.path("up.json")))
  }

  /// Waits until `condition` holds, polling for up to `seconds`.
  private func eventually(seconds: Double = 10, _ condition: @Sendable () async throws -> Bool) async throws -> Bool {
    let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < end {
      if try await condition() { return true }
      try await Task.sleep(for: .milliseconds(50))
    }
    return false
  }

  @Test func upStartsTheMeshAndStatusAndServicesShowIt() async throws {
    try await withMesh { mesh in
      let status = try await Subprocess.run(mesh.shoal, ["status", "--data", mesh.data.url.path])
      #expect(status.status == 0, "\(status.stdoutText)\(status.stderrText)")
      #expect(status.stdoutText.contains("shoal up: pid \(mesh.up.pid)"))
      let benchRow = status.stdoutText.split(separator: "\n").first { $0.hasPrefix("bench") }
      #expect(benchRow?.contains("running") == true && benchRow?.contains("SERVING") == true, "\(status.stdoutText)")
      #expect(status.stdoutText.contains("not in this build"))

      let services = try await Subprocess.run(mesh.shoal, ["services", "--data", mesh.data.url.path, "--json"])
      #expect(services.status == 0, "\(services.stderrText)")
      let listed = try RegistryV1.ResolveResponse(jsonString: services.stdoutText)
      #expect(listed.instances.map(\.service) == ["bench", "inference", "registry", "tracking"])
      #expect(listed.instances[0].address == "unix://\(mesh.data.path("bench.sock"))")

      // The bench server is reachable through the SDK, resolved by name (the first call waits
      // for the watch generously: a busy CI machine can take longer than the SDK's default 5 s).
      var config = BalancedChannel.Config.defaults
      config.instanceWait = .seconds(60)
      let client = ShoalClient(location: mesh.location, config: config)
      let echoed = try await BenchV1.Bench.Client(client.channel(for: "bench")).echo(BenchV1.BenchRequest())
      #expect(echoed.requestsSeen == 1)
      // So is tracking, with its own SQLite file in the data directory.
      let tracking = TrackingV1.Tracking.Client(client.channel(for: "tracking"))
      var experiment = TrackingV1.CreateExperimentRequest()
      experiment.name = "first"
      let created = try await tracking.createExperiment(experiment)
      #expect(created.experimentId == "1")
      #expect(FileManager.default.fileExists(atPath: mesh.data.path("tracking.sqlite")))
      await client.close()

      // The tools take a service name instead of an address and look it up in the registry.
      let health = try await Subprocess.run(mesh.shoal, ["health", "bench", "--data", mesh.data.url.path])
      #expect(health.status == 0 && health.stdoutText.contains("SERVING"), "\(health.stderrText)")
      let call = try await Subprocess.run(
        mesh.shoal,
        ["call", "bench", "shoal.bench.v1.Bench/Echo", #"{"payload":"aGk="}"#, "--data", mesh.data.url.path])
      #expect(call.status == 0 && call.stdoutText.contains("aGk="), "\(call.stderrText)")
      let unknown = try await Subprocess.run(mesh.shoal, ["health", "nosuch", "--data", mesh.data.url.path])
      #expect(
        unknown.status != 0 && unknown.stderrText.contains("no instance of service 'nosuch'"), "\(unknown.stderrText)")

      // A second supervisor on the same data directory refuses, naming the first.
      let second = try await Subprocess.run(mesh.shoal, ["up", "--data", mesh.data.url.path])
      #expect(second.status != 0)
      #expect(second.stderrText.contains("pid \(mesh.up.pid)"), "\(second.stderrText)")
    }
  }

  @Test func aKilledServiceIsRestartedAndRegistersAgain() async throws {
    try await withMesh { mesh in
      let client = ShoalClient(location: mesh.location)
      let before = try await client.directory.resolve(Self.resolve("bench")).instances
      #expect(before.count == 1)
      let oldPID = MeshState.childPIDs(mesh.data.url.path)["bench"]!
      kill(oldPID, SIGKILL)
      _ = try await mesh.up.waitForLines(containing: "was killed by signal 9")
      let back = try await eventually {
        let now = try await client.directory.resolve(Self.resolve("bench")).instances
        return now.count == 1 && now[0].metadata["pid"] != "\(oldPID)"
      }
      #expect(back, "bench did not come back: \(mesh.up.text)")
      let status = try await Subprocess.run(mesh.shoal, ["status", "--data", mesh.data.url.path, "--json"])
      #expect(status.stdoutText.contains(#""restarts" : 1"#), "\(status.stdoutText)")
      await client.close()
    }
  }

  @Test func aRestartedRegistryKeepsItsInstancesAndWatchersResume() async throws {
    try await withMesh { mesh in
      let client = ShoalClient(location: mesh.location)
      let channel = client.channel(for: "bench")
      let resolved = try await eventually { channel.addresses.count == 1 }
      #expect(resolved)
      let before = try await client.directory.resolve(Self.resolve("bench")).instances
      let registryPID = MeshState.childPIDs(mesh.data.url.path)["registry"]!
      kill(registryPID, SIGKILL)
      _ = try await mesh.up.waitForLines(containing: "registry (pid \(registryPID)) was killed")
      // The new registry restores the directory from its database: the same lease, still renewed.
      let restored = try await eventually {
        let pid = MeshState.childPIDs(mesh.data.url.path)["registry"]
        guard let pid, pid != registryPID else { return false }
        let now = try? await client.directory.resolve(Self.resolve("bench")).instances
        return now?.map(\.leaseId) == before.map(\.leaseId)
      }
      #expect(restored, "\(mesh.up.text)")
      try await Task.sleep(for: .seconds(1.5))
      let after = try await client.directory.resolve(Self.resolve("bench")).instances
      #expect(after.map(\.leaseId) == before.map(\.leaseId), "the lease was not kept alive: \(mesh.up.text)")
      #expect(mesh.up.text.components(separatedBy: "registered bench").count == 2, "bench registered again")
      // The SDK's watch resumed on the new registry and still routes calls.
      let echoed = try await BenchV1.Bench.Client(channel).echo(BenchV1.BenchRequest())
      #expect(echoed.requestsSeen == 1)
      await client.close()
    }
  }

  @Test func aRegistryThatLostItsDatabaseIsRepopulatedByItsServers() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    var registry = try ServerProcess(shoal, ["serve", "registry", "--data", data.url.path])
    _ = try await registry.waitForLines(containing: "registered registry")
    let bench = try ServerProcess(shoal, ["serve", "bench", "--data", data.url.path, "--lease-ttl", "1"])
    _ = try await bench.waitForLines(containing: "registered bench")
    #expect(try await registry.stop() == 0)
    for suffix in ["", "-wal", "-shm"] {
      try? FileManager.default.removeItem(atPath: data.path("registry.sqlite\(suffix)"))
    }
    registry = try ServerProcess(shoal, ["serve", "registry", "--data", data.url.path])
    _ = try await registry.waitForLines(containing: "registered registry")
    // bench's next KeepAlive is refused (unknown lease) and it registers again.
    _ = try await bench.waitForLines(containing: "registered bench", count: 2)
    let client = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
    let instances = try await client.directory.resolve(Self.resolve("bench")).instances
    #expect(instances.count == 1)
    await client.close()
    #expect(try await bench.stop() == 0)
    #expect(try await registry.stop() == 0)
  }

  @Test func aKilledServerDisappearsForWatchersWithinItsTTL() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    let registry = try ServerProcess(shoal, ["serve", "registry", "--data", data.url.path])
    _ = try await registry.waitForLines(containing: "registered registry")
    let bench = try ServerProcess(shoal, ["serve", "bench", "--data", data.url.path, "--lease-ttl", "1"])
    _ = try await bench.waitForLines(containing: "registered bench")

    let client = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
    var request = RegistryV1.WatchRequest()
    request.service = "bench"
    let killedAt = Mutex<ContinuousClock.Instant?>(nil)
    let deleted = try await client.directory.watch(request, options: CallOptions(timeout: .seconds(30))) { events in
      for try await event in events {
        if event.kind == .snapshot {
          #expect(event.instances.count == 1)
          killedAt.withLock { $0 = .now }
          kill(bench.pid, SIGKILL)
        }
        if event.kind == .delete { return Optional(event) }
      }
      return RegistryV1.WatchEvent?.none
    }
    let elapsed = ContinuousClock.now - killedAt.withLock { $0! }
    #expect(deleted?.reason == "lease expired")
    // Well under the default 10 s TTL, so the 1 s one given is what expired (with room for a
    // loaded machine; expired leases are swept every 100 ms).
    #expect(elapsed < .seconds(5), "the instance stayed listed \(elapsed) after kill -9 with a 1 s TTL")
    await client.close()
    #expect(try await registry.stop() == 0)
  }

  @Test func aMalformedMeshFileIsRefusedNamingTheKey() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    try Data(#"{"services": [{"name": "registry", "listen": "unix:r.sock"}]}"#.utf8)
      .write(to: data.url.appendingPathComponent("bad.json"))
    let result = try await Subprocess.run(shoal, ["up", "--mesh", data.path("bad.json"), "--data", data.url.path])
    #expect(result.status != 0)
    #expect(result.stderrText.contains("key 'services[0].listen' must be an array of strings"), "\(result.stderrText)")
  }

  private static func resolve(_ service: String) -> RegistryV1.ResolveRequest {
    var request = RegistryV1.ResolveRequest()
    request.service = service
    return request
  }
}
