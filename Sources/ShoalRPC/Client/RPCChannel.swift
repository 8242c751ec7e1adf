public import ShoalProto

/// Something calls can be made through: one server's `RPCClient`, or a `BalancedChannel` that
/// spreads calls over the live instances of a service. Generated typed clients take any of them.
public protocol RPCChannel: Sendable {
  /// Calls a unary method and returns the response with the server's trailing metadata.
  func unaryWithTrailers<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions
  ) async throws(RPCError) -> (response: Output, trailers: Metadata)

  /// Calls a server-streaming method; `body` reads the responses.
  func serverStreaming<Input, Output, Result: Sendable>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions,
    _ body: (RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result

  /// Calls a client-streaming method; `body` sends the requests; returns the one response.
  func clientStreaming<Input, Output>(
    _ method: TypedMethod<Input, Output>, options: CallOptions,
    _ body: (RPCRequestSender<Input>) async throws -> Void
  ) async throws -> Output

  /// Calls a bidirectional-streaming method; `body` sends requests and reads responses.
  func bidirectional<Input, Output, Result: Sendable>(
    _ method: TypedMethod<Input, Output>, options: CallOptions,
    _ body: (RPCRequestSender<Input>, RPCResponseStream<Output>) async throws -> Result
  ) async throws -> Result
}

extension RPCChannel {
  /// Calls a unary method.
  public func unary<Input, Output>(
    _ method: TypedMethod<Input, Output>, _ request: Input, options: CallOptions = CallOptions()
  ) async throws(RPCError) -> Output {
    try await unaryWithTrailers(method, request, options: options).response
  }
}

extension RPCClient: RPCChannel {}
