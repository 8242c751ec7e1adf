public import NIOCore
public import NIOPosix
public import ShoalProto
import Synchronization

/// Calls spread round-robin over the addresses of a service's live instances, as a resolver
/// (such as the registry's Watch) reports them with `update(_:)`. A call whose instance is
/// unreachable moves on to the next instance at once; idempotent calls also fail over on any
/// UNAVAILABLE. When no instance is known, a call waits for one within its deadline.
public final class BalancedChannel: RPCChannel {
  /// Channel settings.
  public struct Config: Sendable {
    /// Settings of the client made for each address.
    public var client: RPCClient.Config
    /// How long a call waits for a first instance when none is known (within its deadline).
    public var instanceWait: Duration

    /// Default client settings; calls wait up to 5 s for an instance.
    public static var defaults: Config { Config(client: .defaults, instanceWait: .seconds(5)) }
  }

  private struct State {
    var addresses: [RPCAddress] = []
    var clients: [RPCAddress: RPCClient] = [:]
    var next = 0
    var resolverError: RPCError?
    var resolved = false
    var closed = false
  }

  /// What the channel reaches, for messages ("service 'tracking' in the registry at …").
  public let target: String
  private let config: Config
  private let group: any EventLoopGroup
  private let state = Mutex(State())

  /// A channel with no addresses yet.
  public init(
    target: String, config: Config = .defaults, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    self.target = target
    self.config = config
    self.group = group
  }

  /// The addresses calls currently go to.
  public var addresses: [RPCAddress] { state.withLock { $0.addresses } }

  /// Replaces the set of addresses; clients of addresses that left are closed.
  public func update(_ addresses: [RPCAddress]) async {
    let removed = state.withLock { state -> [RPCClient] in
      state.addresses = addresses
      state.resolved = true
      state.resolverError = nil
      let keep = Set(addresses)
      let gone = state.clients.filter { !keep.contains($0.key) }
      for address in gone.keys { state.clients[address] = nil }
      return Array(gone.values)
    }
    for client in removed { await client.close() }
  }

  /// Records why the resolver cannot currently resolve (calls that find no address report it).
  public func resolverFailed(_ error: RPCError) {
    state.withLock { $0.resolverError = error }
  }

  /// Closes every client; later calls fail with CANCELLED.
  public func close() async {
    let clients = state.withLock { state -> [RPCClient] in
      state.closed = true
      defer { state.clients = [:] }
      return Array(state.clients.values)
    }
    for client in clients { await client.close() }
  }

  /// The next client round-robin, skipping `tried`; waits for a first address if there is none.
  private func pick(
    avoiding tried: Set<RPCAddress>, deadline: ContinuousClock.Instant?
  ) async throws(RPCError)
    -> RPCClient
  {
    let start = ContinuousClock.now
    let waitUntil = min(deadline ?? start + config.instanceWait, start + config.instanceWait)
    while true {
      let picked = state.withLock { state -> Result<RPCClient, RPCError>? in
        if state.closed { return .failure(RPCError(.cancelled, "the channel to \(target) is closed")) }
        guard !state.addresses.isEmpty else { return nil }
        var candidates = state.addresses.indices.map { (state.next + $0) % state.addresses.count }
        if candidates.contains(where: { !tried.contains(state.addresses[$0]) }) {
          candidates.removeAll { tried.contains(state.addresses[$0]) }
        }
        let index = candidates[0]
        state.next = index + 1
        let address = state.addresses[index]
        if let client = state.clients[address] { return .success(client) }
        let client = RPCClient(address: address, config: config.client, group: group)
        state.clients[address] = client
        return .success(client)
      }
      if let picked { return try picked.get() }
      if ContinuousClock.now >= waitUntil || Task.isCancelled {
        let (resolved, resolverError) = state.withLock { ($0.resolved, $0.resolverError) }
        if let resolverError { throw resolverError }
        let waited = ContinuousClock.now - start
        let waitedMs = waited.components.seconds * 1000 + waited.components.attoseconds / 1_000_000_000_000_000
        throw RPCError(
          .unavailable,
          resolved
            ? "no instance of \(target) is registered (waited \(waitedMs) ms)"
            : "\(target) has not been resolved yet (waited \(waitedMs) ms)")
      }
      try? await Task.sleep(for: .milliseconds(20))
    }
  }

  /// Runs `call` on one instance after another: a failure that `mayFailOver` accepts moves to the
  /// next instance at once; once every instance has failed, the retry policy's backoff applies
  /// before going round again, within the deadline.
  private func withFailover<Result>(
    options: CallOptions, mayFailOver: (RPCError) -> Bool, _ call: (RPCClient, CallOptions) async throws -> Result
  ) async throws(RPCError) -> Result {
    let deadline = options.timeout.map { ContinuousClock.now + $0 }
    var single = options
    single.retries = .none
    var tried: Set<RPCAddress> = []
    var attempt = 1
    while true {
      let client = try await pick(avoiding: tried, deadline: deadline)
      if let deadline { single.timeout = max(deadline - .now, .microseconds(1)) }
      do {
        return try await call(client, single)
      } catch {
        let error = RPCError(from: error)
        guard mayFailOver(error), !Task.isCancelled else { throw error }
        tried.insert(client.address)
        guard tried.count >= addresses.count else { continue }
        attempt += 1
        guard attempt <= options.retries.maxAttempts else { throw error }
        let wait = options.retries.backoff(beforeAttempt: attempt)
        if let deadline, ContinuousClock.now + wait >= deadline { throw error }
        try? await Task.sleep(for: wait)
        tried = []
      }
    }
  }

  /// Unary calls fail over when the request never left (connect failure), and idempotent ones
  /// on any UNAVAILABLE.
  public func unaryWithTrailers<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions
  ) async throws(RPCError) -> (response: Output, trailers: Metadata) {
    let idempotent = method.descriptor.idempotent
    return try await withFailover(
      options: options, mayFailOver: { $0.code == .unavailable && (idempotent || $0.cause is ConnectFailure) }
    ) { client, options in
      try await client.unaryWithTrailers(method, request, options: options)
    }
  }

  /// Streaming calls fail over only when the stream could not be opened: once `body` has run,
  /// moving elsewhere would repeat what it sent. (`body`'s own failure is never taken for the
  /// stream's, even a connect failure of a call it makes itself.)
  private func streaming<Result>(
    options: CallOptions, _ open: (RPCClient, CallOptions, _ bodyStarts: () -> Void) async throws -> Result
  ) async throws -> Result {
    var bodyStarted = false
    return try await withFailover(
      options: options, mayFailOver: { !bodyStarted && $0.code == .unavailable && $0.cause is ConnectFailure }
    ) { client, options in
      try await open(client, options) { bodyStarted = true }
    }
  }

  public func serverStreaming<Input, Output, Result: Sendable>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions,
    _ body: (RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result {
    try await streaming(options: options) { client, options, bodyStarts in
      try await client.serverStreaming(method, request, options: options) { responses in
        bodyStarts()
        return try await body(responses)
      }
    }
  }

  public func clientStreaming<Input, Output>(
    _ method: TypedMethod<Input, Output>, options: CallOptions,
    _ body: (RPCRequestSender<Input>) async throws -> Void
  ) async throws -> Output {
    try await streaming(options: options) { client, options, bodyStarts in
      try await client.clientStreaming(method, options: options) { sender in
        bodyStarts()
        try await body(sender)
      }
    }
  }

  public func bidirectional<Input, Output, Result: Sendable>(
    _ method: TypedMethod<Input, Output>, options: CallOptions,
    _ body: (RPCRequestSender<Input>, RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result {
    try await streaming(options: options) { client, options, bodyStarts in
      try await client.bidirectional(method, options: options) { sender, responses in
        bodyStarts()
        return try await body(sender, responses)
      }
    }
  }
}
