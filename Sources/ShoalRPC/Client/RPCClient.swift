import NIOConcurrencyHelpers
public import NIOCore
public import NIOPosix
public import ShoalProto

/// A client for one server address: one multiplexed connection, opened on first use and
/// reopened (with backoff) after it breaks; typed calls of all four kinds, deadlines that
/// propagate from the call a handler serves, cancellation, and retries of idempotent methods.
public final class RPCClient: Sendable {
  /// Client settings.
  public struct Config: Sendable {
    /// Per-connection settings (limits, windows, compression, keepalive).
    public var connection: ConnectionConfig
    /// How long to wait for a connection (and the server's HELLO).
    public var connectTimeout: Duration
    /// Waits between failed connection attempts: 100 ms doubling to 5 s.
    public var reconnectBackoff: RetryPolicy
    /// Run around every call, first to last.
    public var interceptors: [any ClientInterceptor] = []

    /// Defaults: gRPC-like connection settings, 5 s connect timeout.
    public static var defaults: Config {
      Config(
        connection: .defaults, connectTimeout: .seconds(5),
        reconnectBackoff: RetryPolicy(
          maxAttempts: .max, initialBackoff: .milliseconds(100), maxBackoff: .seconds(5), multiplier: 2)
      )
    }
  }

  private enum ConnectionState {
    case idle(failures: Int, retryAfter: ContinuousClock.Instant?)
    case connecting(Task<ClientConnection, any Error>)
    case ready(ClientConnection)
    case closed
  }

  /// The server this client calls.
  public let address: RPCAddress
  private let config: Config
  private let group: any EventLoopGroup
  private let state = NIOLockedValueBox<ConnectionState>(.idle(failures: 0, retryAfter: nil))
  var interceptors: [any ClientInterceptor] { config.interceptors }

  /// A client for `address`; nothing connects until the first call.
  public init(
    address: RPCAddress, config: Config = .defaults, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    self.address = address
    self.config = config
    self.group = group
  }

  /// Refuses, before connecting, a call whose token would cross plaintext TCP off this machine.
  private func refusePlaintextToken(_ metadata: Metadata) throws(RPCError) {
    if case .tcp = address, !address.staysOnThisMachine, !config.connection.security.allowsPlaintextTokens,
      metadata["authorization"] != nil
    {
      throw .plaintextToken("not sending the token to \(address)")
    }
  }

  /// Closes the connection; calls in flight fail with UNAVAILABLE, later calls with CANCELLED.
  public func close() async {
    let previous = state.withLockedValue { state -> ConnectionState in
      defer { state = .closed }
      return state
    }
    switch previous {
    case .ready(let connection): try? await connection.channel.close()
    case .connecting(let task): task.cancel()
    default: break
    }
  }

  /// The current connection, connecting (or waiting out the reconnect backoff) if needed.
  private func connection() async throws(RPCError) -> ClientConnection {
    enum Next {
      case use(ClientConnection)
      case wait(Task<ClientConnection, any Error>)
      case failed(RPCError)
    }
    let next = state.withLockedValue { state -> Next in
      switch state {
      case .closed:
        return .failed(RPCError(.cancelled, "the client for \(address) is closed"))
      case .ready(let connection) where connection.channel.isActive:
        return .use(connection)
      case .connecting(let task):
        return .wait(task)
      case .ready:
        state = .idle(failures: 0, retryAfter: nil)
        return makeConnectTask(&state, failures: 0, retryAfter: nil)
      case .idle(let failures, let retryAfter):
        return makeConnectTask(&state, failures: failures, retryAfter: retryAfter)
      }

      func makeConnectTask(_ state: inout ConnectionState, failures: Int, retryAfter: ContinuousClock.Instant?) -> Next
      {
        let address = address
        let config = config
        let group = group
        // The task records its own outcome; it takes the lock held here, so it cannot finish
        // before `state` says it is connecting.
        let task = Task { () throws -> ClientConnection in
          let result: Result<ClientConnection, any Error>
          do {
            if let retryAfter { try await Task.sleep(until: retryAfter) }
            result = .success(
              try await ClientConnection.connect(
                to: address, config: config.connection, group: group, timeout: config.connectTimeout))
          } catch {
            result = .failure(error)
          }
          self.connectFinished(result, failures: failures)
          return try result.get()
        }
        state = .connecting(task)
        return .wait(task)
      }
    }
    switch next {
    case .use(let connection): return connection
    case .failed(let error): throw error
    case .wait(let task):
      do {
        return try await task.value
      } catch let error as RPCError {
        throw error
      } catch {
        throw RPCError(.unavailable, "cannot connect to \(address): \(error)")
      }
    }
  }

  private func connectFinished(_ result: Result<ClientConnection, any Error>, failures: Int) {
    state.withLockedValue { state in
      guard case .connecting = state else { return }
      switch result {
      case .success(let connection): state = .ready(connection)
      case .failure:
        let wait = config.reconnectBackoff.backoff(beforeAttempt: failures + 2)
        state = .idle(failures: failures + 1, retryAfter: .now + wait)
      }
    }
  }

  /// Bytes this client's current connection has written and read, frame headers included (for
  /// load tests measuring what compression saves); zeros when not connected.
  public func wireBytes() async -> (sent: Int, received: Int) {
    let current = state.withLockedValue { state -> ClientConnection? in
      if case .ready(let connection) = state { return connection }
      return nil
    }
    guard let connection = current else { return (0, 0) }
    let handler = connection.handler
    return (try? await connection.eventLoop.submit { (handler.value.bytesSent, handler.value.bytesReceived) }.get())
      ?? (0, 0)
  }

  /// The timeout to send: the call's own, or what is left of the served call's deadline.
  private func effectiveTimeout(_ options: CallOptions) -> (timeout: Duration?, deadline: ContinuousClock.Instant?) {
    let now = ContinuousClock.now
    var deadline = options.timeout.map { now + $0 }
    if let inherited = CallScope.deadline { deadline = min(deadline ?? inherited, inherited) }
    return (deadline.map { max($0 - now, .microseconds(1)) }, deadline)
  }

  // MARK: Unary

  /// Calls a unary method.
  ///
  /// - Throws: `RPCError` with the server's status, DEADLINE_EXCEEDED, CANCELLED (the calling
  ///   task was cancelled) or UNAVAILABLE (no connection, after retries where allowed).
  public func unary<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions = CallOptions()
  ) async throws(RPCError) -> Output {
    try await unaryWithTrailers(method, request, options: options).response
  }

  /// Calls a unary method and returns the trailing metadata the server sent with OK too.
  public func unaryWithTrailers<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions = CallOptions()
  ) async throws(RPCError) -> (response: Output, trailers: Metadata) {
    if interceptors.isEmpty { return try await unaryWithRetries(method, request, options: options) }
    do {
      let result = try await intercepted(method.descriptor, options) { options in
        let (response, trailers) = try await self.unaryWithRetries(method, request, options: options)
        return UnaryResult(response: response, trailers: trailers)
      }
      return (result.response, result.trailers)
    } catch {
      throw RPCError(from: error)
    }
  }

  private func unaryWithRetries<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions
  ) async throws(RPCError) -> (Output, Metadata) {
    let (_, deadline) = effectiveTimeout(options)
    var attempt = 1
    while true {
      do {
        return try await unaryAttempt(method.descriptor, request, Output.self, options: options)
      } catch {
        attempt += 1
        guard error.code == .unavailable, attempt <= options.retries.maxAttempts, !Task.isCancelled,
          method.descriptor.idempotent || error.cause is ConnectFailure
        else { throw error }
        let wait = options.retries.backoff(beforeAttempt: attempt)
        if let deadline, ContinuousClock.now + wait >= deadline { throw error }
        try? await Task.sleep(for: wait)
      }
    }
  }

  /// Calls a unary method given by descriptor, with the message types found at run time (for
  /// generic tools such as `shoal call`).
  public func unary(
    _ method: MethodDescriptor, _ request: any ProtoMessage, options: CallOptions = CallOptions()
  ) async throws(RPCError)
    -> any ProtoMessage
  {
    func call<Input: ProtoMessage, Output: ProtoMessage>(
      _ request: Input, _ output: Output.Type
    ) async throws(RPCError) -> any ProtoMessage {
      try await unary(TypedMethod<Input, Output>(descriptor: method), request, options: options)
    }
    return try await call(request, method.outputType)
  }

  private func unaryAttempt<Input: ProtoMessage, Output: ProtoMessage>(
    _ method: MethodDescriptor, _ request: Input, _ output: Output.Type, options: CallOptions
  ) async throws(RPCError) -> (Output, Metadata) {
    try refusePlaintextToken(options.metadata)
    let connection: ClientConnection
    do {
      connection = try await self.connection()
    } catch {
      throw RPCError(error.code, error.message, cause: ConnectFailure())
    }
    let (timeout, _) = effectiveTimeout(options)
    let handler = connection.handler
    let token = CallToken()
    let outcome: CallOutcome
    do {
      outcome = try await withTaskCancellationHandler {
        // The stream opens on the connection's event loop (at once when the caller runs there), and
        // its end resumes the caller: no futures in between.
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<CallOutcome, any Error>) in
          let open: @Sendable () -> Void = {
            if token.cancelled { return continuation.resume(throwing: RPCError(.cancelled, "the call was cancelled")) }
            do {
              let (id, stream) = try handler.value.open(
                path: method.path, metadata: options.metadata, timeout: timeout, streaming: false
              ) {
                (buffer, id) throws(RPCError) in
                try handler.value.writeRequest(request, stream: id, to: &buffer)
              }
              token.streamID = id
              stream.done.futureResult.whenComplete { continuation.resume(with: $0) }
            } catch {
              continuation.resume(throwing: error)
            }
          }
          if connection.eventLoop.inEventLoop { open() } else { connection.eventLoop.execute(open) }
        }
      } onCancel: {
        connection.eventLoop.execute {
          token.cancelled = true
          if let id = token.streamID { handler.value.cancel(id, RPCError(.cancelled, "the caller cancelled the call")) }
        }
      }
    } catch {
      throw RPCError(from: error)
    }
    guard let response = outcome.response else { throw RPCError(.internal, "no response") }
    if let limit = options.maxResponseSize, response.readableBytes > limit {
      throw RPCError(
        .resourceExhausted, "response of \(response.readableBytes) bytes exceeds this call's limit of \(limit) bytes")
    }
    return (try response.decodeMessage(as: Output.self), outcome.trailers)
  }

  // MARK: Streaming

  /// Opens a streaming call; `body` sends requests and reads responses; the call is cancelled if
  /// `body` returns or throws before the server has finished.
  private func streaming<Input: ProtoMessage, Output: ProtoMessage, Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions, firstRequest: Input?,
    _ body: (RPCRequestSender<Input>, RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result {
    guard !interceptors.isEmpty else {
      return try await openStream(method, options: options, firstRequest: firstRequest, body)
    }
    return try await withoutActuallyEscaping(body) { body in
      let box = UncheckedSendableBox(body)
      return try await intercepted(method, options) { options in
        try await self.openStream(method, options: options, firstRequest: firstRequest, box.value)
      }
    }
  }

  private func openStream<Input: ProtoMessage, Output: ProtoMessage, Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions, firstRequest: Input?,
    _ body: (RPCRequestSender<Input>, RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result {
    try refusePlaintextToken(options.metadata)
    let connection: ClientConnection
    do {
      connection = try await self.connection()
    } catch {
      throw RPCError(error.code, error.message, cause: ConnectFailure())
    }
    let (timeout, _) = effectiveTimeout(options)
    let handler = connection.handler
    let opened = try await connection.eventLoop.submit { () throws -> StreamHandle in
      let (id, stream) = try handler.value.open(
        path: method.path, metadata: options.metadata, timeout: timeout, streaming: true
      ) {
        (buffer, id) throws(RPCError) in
        if let firstRequest { try handler.value.writeRequest(firstRequest, stream: id, to: &buffer) }
      }
      return StreamHandle(id: id, inbound: stream.inbound!, done: stream.done.futureResult)
    }.get()
    let sender = RPCRequestSender<Input>(handler: handler, streamID: opened.id)
    let responses = RPCResponseStream<Output>(
      inbound: opened.inbound, done: opened.done, maxSize: options.maxResponseSize)
    do {
      let result = try await withTaskCancellationHandler {
        try await body(sender, responses)
      } onCancel: {
        connection.eventLoop.execute {
          handler.value.cancel(opened.id, RPCError(.cancelled, "the caller cancelled the call"))
        }
      }
      connection.eventLoop.execute {
        handler.value.cancel(opened.id, RPCError(.cancelled, "the caller stopped reading"))
      }
      return result
    } catch {
      connection.eventLoop.execute {
        handler.value.cancel(opened.id, RPCError(.cancelled, "the caller stopped: \(error)"))
      }
      let failure = RPCError(from: error)
      if failure.cause is CallEnded {
        // The server ended the call while the caller was still sending: its status says why.
        do {
          _ = try await opened.done.get()
        } catch {
          throw RPCError(from: error)
        }
      }
      throw failure
    }
  }

  /// Calls a server-streaming method; `body` reads the responses.
  public func serverStreaming<Input, Output, Result: Sendable>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions = CallOptions(),
    _ body: (RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result {
    try await streaming(method.descriptor, options: options, firstRequest: request) {
      (_: RPCRequestSender<Input>, responses) in
      try await body(responses)
    }
  }

  /// Calls a client-streaming method; `body` sends the requests; returns the one response.
  public func clientStreaming<Input, Output>(
    _ method: TypedMethod<Input, Output>, options: CallOptions = CallOptions(),
    _ body: (RPCRequestSender<Input>) async throws -> Void
  ) async throws -> Output {
    try await streaming(method.descriptor, options: options, firstRequest: nil) {
      (sender: RPCRequestSender<Input>, responses: RPCResponseStream<Output>) in
      try await body(sender)
      sender.close()
      var iterator = responses.makeAsyncIterator()
      guard let response = try await iterator.next() else {
        throw RPCError(.internal, "\(method.descriptor.path) ended with OK but no response")
      }
      return response
    }
  }

  /// Calls a bidirectional-streaming method; `body` sends requests and reads responses.
  public func bidirectional<Input, Output, Result: Sendable>(
    _ method: TypedMethod<Input, Output>, options: CallOptions = CallOptions(),
    _ body: (RPCRequestSender<Input>, RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result {
    try await streaming(method.descriptor, options: options, firstRequest: nil, body)
  }
}

/// Marks an UNAVAILABLE that happened before the request left this process, so that even a
/// non-idempotent call may be retried (or sent to another instance).
public struct ConnectFailure: Error {
  /// A marker; `RPCClient` creates these.
  public init() {}
}

/// The stream id of a unary call, once it has one, and whether the caller cancelled first;
/// used only on the connection's event loop.
private final class CallToken: @unchecked Sendable {
  var streamID: UInt32?
  var cancelled = false
}

private struct StreamHandle: Sendable {
  let id: UInt32
  let inbound: InboundMessageQueue
  let done: EventLoopFuture<CallOutcome>
}

/// The result of an intercepted unary call.
private struct UnaryResult<Output: ProtoMessage>: Sendable {
  let response: Output
  let trailers: Metadata
}

/// Sends the requests of a client-streaming or bidirectional call.
public struct RPCRequestSender<Message: ProtoMessage>: Sendable {
  let handler: NIOLoopBound<ClientConnectionHandler>
  let streamID: UInt32

  /// Sends one request; waits while the server is not reading (flow control).
  public func send(_ message: Message) async throws {
    let handler = handler
    let id = streamID
    try await handler.eventLoop.flatSubmit { handler.value.send(message, stream: id, endStream: false) }.get()
  }

  /// Says that no more requests follow.
  public func close() {
    let handler = handler
    let id = streamID
    handler.eventLoop.execute { handler.value.closeSend(stream: id) }
  }
}

/// The responses of a server-streaming or bidirectional call; ends when the server sends OK,
/// throws the status otherwise.
public struct RPCResponseStream<Message: ProtoMessage>: AsyncSequence, Sendable {
  let inbound: InboundMessageQueue
  let done: EventLoopFuture<CallOutcome>
  let maxSize: Int?

  /// The trailing metadata of the call's status, once the call has ended (after the last
  /// response); throws the status if the call failed.
  public var trailers: Metadata {
    get async throws { try await done.get().trailers }
  }

  public struct AsyncIterator: AsyncIteratorProtocol {
    let inbound: InboundMessageQueue
    let maxSize: Int?

    public mutating func next() async throws -> Message? {
      guard let payload = try await inbound.next() else { return nil }
      if let maxSize, payload.readableBytes > maxSize {
        throw RPCError(
          .resourceExhausted, "response of \(payload.readableBytes) bytes exceeds this call's limit of \(maxSize) bytes"
        )
      }
      return try payload.decodeMessage(as: Message.self)
    }
  }

  public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbound: inbound, maxSize: maxSize) }
}

/// Carries a non-Sendable closure into an interceptor chain that runs it before returning.
private struct UncheckedSendableBox<Value>: @unchecked Sendable {
  let value: Value
  init(_ value: Value) { self.value = value }
}

extension ClientConnectionHandler {
  /// Appends the MESSAGE frame (with END_STREAM) of a unary or server-streaming request.
  func writeRequest<M: ProtoMessage>(_ message: M, stream: UInt32, to buffer: inout ByteBuffer) throws(RPCError) {
    try codec.writeMessage(message, stream: stream, endStream: true, to: &buffer)
  }
}

extension TypedMethod {
  /// A typed view of a descriptor whose types the caller has checked.
  init(descriptor: MethodDescriptor) {
    self.init(
      service: descriptor.service, name: descriptor.name, kind: descriptor.kind, idempotent: descriptor.idempotent)
  }
}

extension RPCClient {
  /// Calls a server-streaming method given by descriptor (for generic tools such as `shoal call`).
  public func serverStreaming(
    _ method: MethodDescriptor, _ request: any ProtoMessage, options: CallOptions = CallOptions(),
    onResponse: @escaping (any ProtoMessage) async throws -> Void
  ) async throws {
    func call<Input: ProtoMessage, Output: ProtoMessage>(_ request: Input, _ output: Output.Type) async throws {
      try await serverStreaming(TypedMethod<Input, Output>(descriptor: method), request, options: options) {
        responses in
        for try await response in responses { try await onResponse(response) }
      }
    }
    try await call(request, method.outputType)
  }

  /// Calls a client-streaming or bidirectional method given by descriptor: sends `requests`,
  /// half-closes, and hands each response to `onResponse`.
  public func streaming(
    _ method: MethodDescriptor, requests: [any ProtoMessage], options: CallOptions = CallOptions(),
    onResponse: @escaping (any ProtoMessage) async throws -> Void
  ) async throws {
    func call<Input: ProtoMessage, Output: ProtoMessage>(_ input: Input.Type, _ output: Output.Type) async throws {
      let typed = requests.compactMap { $0 as? Input }
      guard typed.count == requests.count else {
        throw RPCError(.invalidArgument, "\(method.path) takes \(Input.protoMessageName) requests")
      }
      try await bidirectionalOrClient(
        TypedMethod<Input, Output>(descriptor: method), typed, options: options, onResponse)
    }
    try await call(method.inputType, method.outputType)
  }

  private func bidirectionalOrClient<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ requests: [Input], options: CallOptions,
    _ onResponse: @escaping (any ProtoMessage) async throws -> Void
  ) async throws {
    try await bidirectional(method, options: options) { sender, responses in
      for request in requests { try await sender.send(request) }
      sender.close()
      for try await response in responses { try await onResponse(response) }
    }
  }
}
