import Foundation
public import ShoalProto
public import ShoalRPC
import ShoalServiceStubs

/// Keeps a `BalancedChannel` pointed at the live instances of one service by following the
/// registry's Watch: a snapshot, then each change; after a broken stream it resumes from the last
/// revision seen (the registry answers RESET and a fresh snapshot if it can no longer replay).
public struct ServiceResolver: Sendable {
  /// The service followed.
  public let service: String
  private let directory: RegistryV1.Directory.Client
  private let channel: BalancedChannel
  private let registryAddress: RPCAddress

  /// A resolver feeding `channel` from the registry at `registry`.
  public init(service: String, registry: RPCClient, channel: BalancedChannel) {
    self.service = service
    directory = RegistryV1.Directory.Client(registry)
    registryAddress = registry.address
    self.channel = channel
  }

  /// Follows the directory until cancelled, reconnecting with backoff (100 ms doubling to 2 s).
  public func run() async {
    var instances: [Int64: RegistryV1.Instance] = [:]
    var revision: Int64 = 0
    var failures = 0
    while !Task.isCancelled {
      var request = RegistryV1.WatchRequest()
      request.service = service
      request.afterRevision = revision
      do {
        try await directory.watch(request) { events in
          for try await event in events {
            failures = 0
            switch event.kind {
            case .snapshot:
              instances = Dictionary(event.instances.map { ($0.leaseId, $0) }, uniquingKeysWith: { $1 })
            case .put: for instance in event.instances { instances[instance.leaseId] = instance }
            case .delete: for instance in event.instances { instances[instance.leaseId] = nil }
            case .reset: instances = [:]
            default: continue
            }
            revision = max(revision, event.revision)
            // A RESET is always followed by a snapshot; publish once that has arrived.
            if event.kind != .reset { await channel.update(Self.addresses(of: instances)) }
          }
        }
      } catch {
        if Task.isCancelled { return }
        failures += 1
        channel.resolverFailed(
          RPCError(
            .unavailable,
            "cannot resolve service '\(service)': the registry at \(registryAddress) did not answer "
              + "(\(failures) attempt\(failures == 1 ? "" : "s")): \(RPCError(from: error).message)"))
      }
      let wait = min(Duration.milliseconds(100) * (1 << min(failures, 5)), .seconds(2))
      try? await Task.sleep(for: wait)
    }
  }

  /// The instances' addresses, oldest registration first (stable round-robin order).
  static func addresses(of instances: [Int64: RegistryV1.Instance]) -> [RPCAddress] {
    addresses(of: Array(instances.values), localHost: ProcessInfo.processInfo.hostName)
  }

  /// One address per server, oldest registration first: a server that listens on several
  /// addresses registers each (same `host` and `pid` metadata) and is called through one of
  /// them — its Unix socket when it runs on `localHost` (faster, and trusted without a token),
  /// else its first TLS address, or its first TCP one. A Unix socket registered from another host is out of reach and
  /// left out. Instances without that metadata count as servers of their own, on this host.
  public static func addresses(of instances: [RegistryV1.Instance], localHost: String) -> [RPCAddress] {
    var servers: [String: [RegistryV1.Instance]] = [:]
    for instance in instances {
      let host = instance.metadata["host"] ?? localHost
      let server = instance.metadata["pid"].map { "\(host) \($0)" } ?? "lease \(instance.leaseId)"
      servers[server, default: []].append(instance)
    }
    return servers.values.compactMap { registrations -> (Int64, RPCAddress)? in
      let ordered = registrations.sorted { $0.leaseId < $1.leaseId }
      let local = (ordered[0].metadata["host"] ?? localHost) == localHost
      let parsed = ordered.compactMap { instance in
        (try? RPCAddress(parsing: instance.address)).map { (instance.leaseId, $0) }
      }
      let unix = parsed.first { if case .unix = $0.1 { true } else { false } }
      // TLS before plaintext, where a server listens on both.
      let tls = parsed.first { if case .tls = $0.1 { true } else { false } }
      let tcp = tls ?? parsed.first { if case .tcp = $0.1 { true } else { false } }
      return local ? unix ?? tcp : tcp
    }.sorted { $0.0 < $1.0 }.map(\.1)
  }
}
