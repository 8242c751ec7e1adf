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
/// the directory in time with D's calls unharmed, and comes back with its link. The registry
/// killed and restarted: D's calls go on, and a watch resumes. PostgreSQL stopped and started
/// under tracking load: nothing acknowledged is lost. Every call between hosts is mutual TLS, and
/// a token is never sent or accepted over plaintext TCP.
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

  /// Runs `command` as root and returns the wall-clock time at which it started, as read just
  /// before it, so that what is timed from it does not include starting a process.
  private static func timedAsRoot(_ command: [String]) async throws -> Date {
    let result = try await asRoot(["/bin/sh", "-c", #"date +%s.%N && exec "$@""#, "sh"] + command)
    let started = result.stdoutText.split(separator: "\n").first.flatMap { Double($0) }
    guard result.status == 0, let started else {
      throw TestEnvironmentError("\(command) failed: \(result.stdoutText)\(result.stderrText)")
    }
    return Date(timeIntervalSince1970: started)
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

      // Tokens never cross plaintext TCP between hosts: D's client does not send one to the
      // registry's plaintext port, and the registry refuses one sent anyway.
      let plaintext = [
        "exec", "d", shoal, "admin", "whoami", "--registry", "tcp://10.77.0.1:7410", "--data", clientData,
      ]
      let unsent = try await Self.netns(plaintext, environment: clientEnvironment)
      #expect(
        unsent.status != 0 && unsent.stderrText.contains("UNAUTHENTICATED: not sending the token"),
        "\(unsent.stderrText)")
      var insist = clientEnvironment
      insist["SHOAL_PLAINTEXT_TOKENS"] = "1"
      let refused = try await Self.netns(plaintext, environment: insist)
      #expect(
        refused.status != 0
          && refused.stderrText.contains("UNAUTHENTICATED: the call came with a token over plaintext"),
        "\(refused.stderrText)")
      let overTLS = try await Self.netns(
        ["exec", "d", shoal, "admin", "whoami", "--data", clientData], environment: clientEnvironment)
      #expect(overTLS.status == 0 && overTLS.stdoutText.contains("netns-hosts@local"), "\(overTLS.stderrText)")

      // B killed under load: D's calls go on on C, none failing, and B's lease ends in time.
      let registry = RPCClient(
        address: try RPCAddress(parsing: environment["SHOAL_REGISTRY"]!),
        config: {
          var config = RPCClient.Config.defaults
          config.interceptors.append(BearerTokenInterceptor(token: environment["SHOAL_TOKEN"]!))
          config.connection.security = TransportSecurity.fromEnvironment { environment[$0] }
          return config
        }())
      let directory = RegistryV1.Directory.Client(registry)
      func inferenceAddresses() async throws -> Set<String> {
        var resolve = RegistryV1.ResolveRequest()
        resolve.service = "inference"
        return Set(try await directory.resolve(resolve).instances.map { $0.address })
      }
      #expect(try await inferenceAddresses() == ["tls://10.77.0.2:7402", "tls://10.77.0.3:7402"])
      let underLoad = Task { try await load(seconds: 8) }
      try await Task.sleep(for: .seconds(2))
      let pid = try #require(
        Int32(
          try String(contentsOfFile: dir.path("b.pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        ))
      // When the registry's watch reports `address` gone: pushed as the lease ends, so the time
      // is not stretched by a poll's round trip (a resolve took seconds while every suite ran).
      func departure(of address: String) -> Task<Date?, any Error> {
        Task {
          var request = RegistryV1.WatchRequest()
          request.service = "inference"
          return try await directory.watch(request, options: CallOptions(timeout: .seconds(40))) { events in
            for try await event in events
            where event.kind == .delete && event.instances.contains(where: { $0.address == address }) {
              return Date()
            }
            return nil
          }
        }
      }
      // How long after `start` the directory lists `wanted` (seconds), within `limit`.
      func waitFor(_ wanted: Set<String>, within limit: TimeInterval, since start: Date) async throws -> TimeInterval? {
        while Date().timeIntervalSince(start) < limit {
          if try await inferenceAddresses() == wanted { return Date().timeIntervalSince(start) }
          try await Task.sleep(for: .milliseconds(100))
        }
        return nil
      }
      let killedWatch = departure(of: "tls://10.77.0.2:7402")
      try await Task.sleep(for: .milliseconds(500))
      let killed = try await Self.timedAsRoot(["/bin/kill", "-9", "\(pid)"])
      let gone = try await waitFor(["tls://10.77.0.3:7402"], within: 15, since: killed)
      _ = try #require(gone, "B stayed in the directory")
      let failover = try #require(try await killedWatch.value, "no watch event for B").timeIntervalSince(killed)
      #expect(failover <= 11, "B left the directory after \(failover) s (lease TTL 10 s)")
      let moved = try await underLoad.value
      #expect(moved.status == 0 && moved.stdoutText.contains("errors=0"), "\(moved.stdoutText)\(moved.stderrText)")

      // B restarted joins again.
      let restarted = try await Self.netns(["start-inference", dir.url.path, "b", "--load", "demo@production"])
      #expect(restarted.status == 0, "\(restarted.stderrText)")
      #expect(try await inferenceAddresses() == ["tls://10.77.0.2:7402", "tls://10.77.0.3:7402"])

      // B cut off (its link down) under load: it leaves the directory when its lease runs out and
      // D's calls go on on C; its link back, it renews or registers again.
      let partitioned = Task { try await load(seconds: 8) }
      try await Task.sleep(for: .seconds(1))
      var listing = RegistryV1.ResolveRequest()
      listing.service = "inference"
      let cutWatch = departure(of: "tls://10.77.0.2:7402")
      try await Task.sleep(for: .milliseconds(500))
      let cutAt = try await Self.timedAsRoot(["/usr/sbin/ip", "link", "set", "veth-b", "down"])
      let polled = try await waitFor(["tls://10.77.0.3:7402"], within: 15, since: cutAt)
      #expect(polled != nil, "B cut off, still listed after 15 s")
      let cutOff = try await cutWatch.value?.timeIntervalSince(cutAt)
      #expect(cutOff.map { $0 <= 11 } == true, "B cut off, still listed after \(String(describing: cutOff)) s")
      let during = try await partitioned.value
      #expect(during.status == 0 && during.stdoutText.contains("errors=0"), "\(during.stdoutText)\(during.stderrText)")
      let restoredAt = try await Self.timedAsRoot(["/usr/sbin/ip", "link", "set", "veth-b", "up"])
      let rejoined = try await waitFor(["tls://10.77.0.2:7402", "tls://10.77.0.3:7402"], within: 30, since: restoredAt)
      #expect(rejoined != nil, "B did not come back after its link did")
      // The registry restarts (kill -9; `shoal up` on A starts it again). D's calls go on through
      // the replicas its SDK knows, and watches resume: a resolver whose watch broke with the
      // restart sees B leave (SIGTERM deregisters it) and come back.
      var channelConfig = BalancedChannel.Config.defaults
      channelConfig.client.connection.security = TransportSecurity.fromEnvironment { environment[$0] }
      let watched = BalancedChannel(target: "inference", config: channelConfig)
      let following = Task {
        await ServiceResolver(service: "inference", registry: registry, channel: watched).run()
      }
      func watchedSees(_ count: Int, within limit: Duration) async throws -> Bool {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
          if watched.addresses.count == count { return true }
          try await Task.sleep(for: .milliseconds(50))
        }
        return false
      }
      #expect(try await watchedSees(2, within: .seconds(10)), "\(watched.addresses)")
      let registryPID = try #require(MeshState.childPIDs(dir.path("a"))["registry"])
      let throughRestart = Task { try await load(seconds: 6) }
      try await Task.sleep(for: .seconds(1))
      let registryKilled = ContinuousClock.now
      #expect(try await Self.asRoot(["/bin/kill", "-9", "\(registryPID)"]).status == 0)
      var registryBack: Duration?
      while ContinuousClock.now - registryKilled < .seconds(30) {
        if let pid = MeshState.childPIDs(dir.path("a"))["registry"], pid != registryPID,
          (try? await inferenceAddresses()) == ["tls://10.77.0.2:7402", "tls://10.77.0.3:7402"]
        {
          registryBack = ContinuousClock.now - registryKilled
          break
        }
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(registryBack != nil, "the registry did not come back with both replicas listed")
      let acrossRestart = try await throughRestart.value
      #expect(
        acrossRestart.status == 0 && acrossRestart.stdoutText.contains("errors=0"),
        "\(acrossRestart.stdoutText)\(acrossRestart.stderrText)")
      let bPID = try #require(
        Int32(
          try String(contentsOfFile: dir.path("b.pid"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        ))
      #expect(try await Self.asRoot(["/bin/kill", "-TERM", "\(bPID)"]).status == 0)
      #expect(try await watchedSees(1, within: .seconds(10)), "the resumed watch did not see B leave")
      let again = try await Self.netns(["start-inference", dir.url.path, "b", "--load", "demo@production"])
      #expect(again.status == 0, "\(again.stderrText)")
      #expect(try await watchedSees(2, within: .seconds(10)), "the resumed watch did not see B come back")
      following.cancel()
      await following.value
      await watched.close()

      // PostgreSQL restarts under tracking load from D: calls fail UNAVAILABLE while it is away
      // and succeed after, and every acknowledged metric is read back (`lost=0`).
      let underTracking = Task {
        try await Self.netns(
          [
            "exec", "d", shoal, "load-tracking", "--retry", "--mode", "batch", "--batch-size", "50",
            "--concurrency", "2", "--duration", "14", "--data", clientData,
          ], environment: clientEnvironment)
      }
      // (The load makes its experiment and runs first, which needs PostgreSQL.)
      try await Task.sleep(for: .seconds(4))
      let pgStopped = ContinuousClock.now
      #expect(try await Self.netns(["pg-stop", dir.url.path]).status == 0)
      try await Task.sleep(for: .seconds(2))
      #expect(try await Self.netns(["pg-start", dir.url.path]).status == 0)
      let pgAway = ContinuousClock.now - pgStopped
      let tracked = try await underTracking.value
      let fields = Dictionary(
        tracked.stdoutText.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pair in
          let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
          return parts.count == 2 ? (parts[0], parts[1]) : nil
        }, uniquingKeysWith: { $1 })
      #expect(
        tracked.status == 0 && fields["lost"] == "0" && fields["errors_other"] == "0"
          && Int(fields["metrics"] ?? "") ?? 0 > 0,
        "\(tracked.stdoutText)\(tracked.stderrText)")
      #expect(try await inferenceAddresses() == ["tls://10.77.0.2:7402", "tls://10.77.0.3:7402"])
      print(
        "multi-host: registry_back_after=\(String(describing: registryBack)) postgres_away=\(pgAway) "
          + "tracking: \(tracked.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines))")
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
