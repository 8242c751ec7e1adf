import ShoalProto
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
    instances.values.sorted { $0.leaseId < $1.leaseId }.compactMap { try? RPCAddress(parsing: $0.address) }
  }
}
