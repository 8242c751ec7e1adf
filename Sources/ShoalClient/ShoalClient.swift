public import ShoalProto
public import ShoalRPC
public import ShoalServiceStubs
import Synchronization

/// The entry point of the client SDK: finds the registry, resolves services through its Watch,
/// balances calls round-robin over their instances with fail-over, and sends the caller's token.
///
/// ```swift
/// let shoal = ShoalClient(location: try RegistryLocation(data: "/tmp/mesh"))
/// let bench = BenchV1.Bench.Client(shoal.channel(for: "bench"))
/// ```
public final class ShoalClient: Sendable {
  /// Where the registry is, and the token.
  public let location: RegistryLocation
  /// The registry's own client.
  public let registry: RPCClient
  private let channelConfig: BalancedChannel.Config
  private let resolvers = Mutex<[String: (channel: BalancedChannel, task: Task<Void, Never>)]>([:])

  /// A client for the mesh at `location`; nothing connects until the first call.
  public init(location: RegistryLocation, config: BalancedChannel.Config = .defaults) {
    self.location = location
    var config = config
    if let token = location.token { config.client.interceptors.append(BearerTokenInterceptor(token: token)) }
    channelConfig = config
    registry = RPCClient(address: location.registry, config: config.client)
  }

  /// The directory of the registry.
  public var directory: RegistryV1.Directory.Client { RegistryV1.Directory.Client(registry) }

  /// A channel to the live instances of `service`, kept current by a watch that starts on first
  /// use and stops at `close()`. The same channel is returned for the same service.
  public func channel(for service: String) -> BalancedChannel {
    resolvers.withLock { resolvers in
      if let existing = resolvers[service] { return existing.channel }
      let channel = BalancedChannel(
        target: "service '\(service)' (registry at \(location.registry))", config: channelConfig)
      let resolver = ServiceResolver(service: service, registry: registry, channel: channel)
      // Owned by this client and cancelled in close().
      let task = Task { await resolver.run() }
      resolvers[service] = (channel, task)
      return channel
    }
  }

  /// Stops every watch and closes every connection.
  public func close() async {
    let all = resolvers.withLock { resolvers in
      defer { resolvers = [:] }
      return Array(resolvers.values)
    }
    for (channel, task) in all {
      task.cancel()
      await task.value
      await channel.close()
    }
    await registry.close()
  }
}
