import Foundation
import ShoalClient
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// A mesh over four hosts, each a network namespace the test makes (`scripts/mesh-netns`, as
/// root or through passwordless sudo): host A runs the registry, tracking and feedback, hosts B and C an inference replica
/// each, host D the clients, with one PostgreSQL for every service. Load from D is spread over B
/// and C; B killed with `kill -9` leaves the directory within its lease's TTL + 1 s while D's
/// calls move to C with none failing; B restarted joins again; B cut off (its link down) leaves
/// the directory in time with D's calls unharmed, and comes back with its link.
@Suite(.serialized)
struct MultiHostTests {
  static let root = TestEnvironment.repositoryRoot

  /// `command` as root: directly when the tests run as root (as CI does), else through
  /// passwordless sudo, keeping the environment.
  private static func asRoot(
    _ command: [String], environment: [String: String] = [:]
  ) async throws -> SubprocessResult {
    if getuid() == 0 {
      return try await Subprocess.run(command[0], Array(command.dropFirst()), environment: environment)
    }
    let settings = environment.map { "\($0.key)=\($0.value)" }
    return try await Subprocess.run("/usr/bin/sudo", ["-n", "/usr/bin/env"] + settings + command)
  }

  /// One run of `scripts/mesh-netns` with `arguments`.
  private static func netns(
    _ arguments: [String], environment: [String: String] = [:]
  ) async throws -> SubprocessResult {
    var environment = environment
    environment["SHOAL"] = try TestEnvironment.product("shoal")
    return try await asRoot(["\(root)/scripts/mesh-netns"] + arguments, environment: environment)
  }

  /// Each inference replica's count of Predict calls answered, by its address, read from its
  /// metrics over the bridge.
  private static func answered() async throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for host in ["10.77.0.2", "10.77.0.3"] {
      let (data, _) = try await URLSession.shared.data(from: URL(string: "http://\(host):9402/metrics")!)
      let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first {
        $0.hasPrefix("shoal_inference_requests_total") && $0.contains(#"outcome="ok""#)
      }
      counts[host] = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }
    return counts
  }

  @Test func loadSpreadsOverReplicasAndMovesOffAKilledOne() async throws {
    let privileged = try await Self.asRoot(["/usr/bin/true"])
    try #require(privileged.status == 0, "the multi-host tests make network namespaces: run them as root or with sudo")
    let dir = try TemporaryDirectory()
    // The demo model and an input of zeros for it.
    let up = try await Self.netns(["up", dir.url.path, "\(Self.root)/Fuzz/corpus/onnx/classifier.onnx"])
    do {
      try #require(up.status == 0, "\(up.stdoutText)\(up.stderrText)")
      var environment: [String: String] = [:]
      for line in try String(contentsOfFile: dir.path("env"), encoding: .utf8).split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 { environment[parts[0]] = parts[1] }
      }
      let npy = Tensor(shape: [1, 3, 8, 8], elements: [Float](repeating: 0, count: 192)).npyBytes()
      try Data(npy).write(to: URL(fileURLWithPath: dir.path("x.npy")))
      let shoal = try TestEnvironment.product("shoal")
      let clientEnvironment = environment
      let input = dir.path("x.npy")
      let clientData = dir.path("d")
      @Sendable func load(seconds: Int) async throws -> SubprocessResult {
        try await Self.netns(
          [
            "exec", "d", shoal, "load-inference", "demo@production", "--balanced", "--input", "x=\(input)",
            "--concurrency", "4", "--duration", "\(seconds)", "--warmup", "0.5", "--data", clientData,
          ], environment: clientEnvironment)
      }

      // Spread: each replica takes a fair share of D's calls.
      let before = try await Self.answered()
      let spread = try await load(seconds: 3)
      #expect(spread.status == 0 && spread.stdoutText.contains("errors=0"), "\(spread.stdoutText)\(spread.stderrText)")
      let after = try await Self.answered()
      let shares = ["10.77.0.2", "10.77.0.3"].map { after[$0]! - before[$0]! }
      #expect(shares.allSatisfy { $0 > 0 } && Double(shares.min()!) / Double(shares.max()!) > 0.5, "\(shares)")

      // B killed under load: D's calls go on on C, none failing, and B's lease ends in time.
      let registry = RPCClient(
        address: try RPCAddress(parsing: environment["SHOAL_REGISTRY"]!),
        config: {
          var config = RPCClient.Config.defaults
          config.interceptors.append(BearerTokenInterceptor(token: environment["SHOAL_TOKEN"]!))
          return config
        }())
      let directory = RegistryV1.Directory.Client(registry)
      func inferenceAddresses() async throws -> Set<String> {
        var resolve = RegistryV1.ResolveRequest()
        resolve.service = "inference"
        return Set(try await directory.resolve(resolve).instances.map { $0.address })
      }
      #expect(try await inferenceAddresses() == ["tcp://10.77.0.2:7402", "tcp://10.77.0.3:7402"])
      let underLoad = Task { try await load(seconds: 8) }
      try await Task.sleep(for: .seconds(2))
      let pid = try #require(
        Int32(
          try String(contentsOfFile: dir.path("b.pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        ))
      #expect(try await Self.asRoot(["/bin/kill", "-9", "\(pid)"]).status == 0)
      let killed = ContinuousClock.now
      var gone: Duration?
      while ContinuousClock.now - killed < .seconds(15) {
        if try await inferenceAddresses() == ["tcp://10.77.0.3:7402"] {
          gone = ContinuousClock.now - killed
          break
        }
        try await Task.sleep(for: .milliseconds(100))
      }
      let failover = try #require(gone, "B stayed in the directory")
      #expect(failover <= .seconds(11), "B left the directory after \(failover) (lease TTL 10 s)")
      let moved = try await underLoad.value
      #expect(moved.status == 0 && moved.stdoutText.contains("errors=0"), "\(moved.stdoutText)\(moved.stderrText)")

      // B restarted joins again.
      let restarted = try await Self.netns(["start-inference", dir.url.path, "b", "--load", "demo@production"])
      #expect(restarted.status == 0, "\(restarted.stderrText)")
      #expect(try await inferenceAddresses() == ["tcp://10.77.0.2:7402", "tcp://10.77.0.3:7402"])

      // B cut off (its link down) under load: it leaves the directory when its lease runs out and
      // D's calls go on on C; its link back, it renews or registers again.
      func waitFor(_ wanted: Set<String>, within limit: Duration) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
          if try await inferenceAddresses() == wanted { return ContinuousClock.now - start }
          try await Task.sleep(for: .milliseconds(100))
        }
        return nil
      }
      let partitioned = Task { try await load(seconds: 8) }
      try await Task.sleep(for: .seconds(1))
      var listing = RegistryV1.ResolveRequest()
      listing.service = "inference"
      let beforeCut = try await directory.resolve(listing).instances.map { "\($0.address) lease \($0.leaseId)" }
      #expect(try await Self.asRoot(["/usr/sbin/ip", "link", "set", "veth-b", "down"]).status == 0)
      let cutOff = try await waitFor(["tcp://10.77.0.3:7402"], within: .seconds(15))
      #expect(cutOff.map { $0 <= .seconds(11) } == true, "B cut off, still listed after \(String(describing: cutOff))")
      print("multi-host: before the cut \(beforeCut)")
      let during = try await partitioned.value
      #expect(during.status == 0 && during.stdoutText.contains("errors=0"), "\(during.stdoutText)\(during.stderrText)")
      #expect(try await Self.asRoot(["/usr/sbin/ip", "link", "set", "veth-b", "up"]).status == 0)
      let rejoined = try await waitFor(["tcp://10.77.0.2:7402", "tcp://10.77.0.3:7402"], within: .seconds(30))
      #expect(rejoined != nil, "B did not come back after its link did")
      await registry.close()
      print(
        "multi-host: shares=\(shares) killed_gone_after=\(failover) partitioned_gone_after=\(String(describing: cutOff)) "
          + "rejoined_after=\(String(describing: rejoined))")
    } catch {
      _ = try? await Self.netns(["down", dir.url.path])
      throw error
    }
    let down = try await Self.netns(["down", dir.url.path])
    #expect(down.status == 0, "\(down.stderrText)")
  }
}
