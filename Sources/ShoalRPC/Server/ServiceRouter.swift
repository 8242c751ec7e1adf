public import ShoalProto

/// The methods a server serves, by path, with their handlers.
public struct ServiceRouter: Sendable {
  struct Route: Sendable {
    let descriptor: MethodDescriptor
    /// Runs the handler for one call and ends the call (the last response and its status).
    let run: @Sendable (ServerCall) async throws -> Void
  }

  private(set) var routes: [String: Route] = [:]
  private(set) var services: [String: [MethodDescriptor]] = [:]

  /// An empty router.
  public init() {}

  private mutating func add(
    _ descriptor: MethodDescriptor, expected kind: CallKind,
    _ run: @escaping @Sendable (ServerCall) async throws -> Void
  ) {
    precondition(descriptor.kind == kind, "\(descriptor.path) is \(descriptor.kind), registered as \(kind)")
    routes[descriptor.path] = Route(descriptor: descriptor, run: run)
    services[descriptor.service, default: []].append(descriptor)
  }

  /// Serves a unary method.
  public mutating func unary<Input, Output>(
    _ method: TypedMethod<Input, Output>,
    _ handler: @escaping @Sendable (Input, ServerContext) async throws -> Output
  ) {
    add(method.descriptor, expected: .unary) { call in
      let request = try await call.receiveOnly(Input.self)
      call.finish(with: try await handler(request, call.context))
    }
  }

  /// Serves a client-streaming method.
  public mutating func clientStreaming<Input, Output>(
    _ method: TypedMethod<Input, Output>,
    _ handler: @escaping @Sendable (RPCRequestStream<Input>, ServerContext) async throws -> Output
  ) {
    add(method.descriptor, expected: .clientStreaming) { call in
      call.finish(with: try await handler(RPCRequestStream(call: call), call.context))
    }
  }

  /// Serves a server-streaming method.
  public mutating func serverStreaming<Input, Output>(
    _ method: TypedMethod<Input, Output>,
    _ handler: @escaping @Sendable (Input, RPCResponseWriter<Output>, ServerContext) async throws -> Void
  ) {
    add(method.descriptor, expected: .serverStreaming) { call in
      let request = try await call.receiveOnly(Input.self)
      try await handler(request, RPCResponseWriter(call: call), call.context)
      call.finish(.success(()))
    }
  }

  /// Serves a bidirectional-streaming method.
  public mutating func bidirectional<Input, Output>(
    _ method: TypedMethod<Input, Output>,
    _ handler:
      @escaping @Sendable (RPCRequestStream<Input>, RPCResponseWriter<Output>, ServerContext) async throws -> Void
  ) {
    add(method.descriptor, expected: .bidirectionalStreaming) { call in
      try await handler(RPCRequestStream(call: call), RPCResponseWriter(call: call), call.context)
      call.finish(.success(()))
    }
  }

  /// Every service with at least one method, by name.
  public var serviceNames: [String] { services.keys.sorted() }

  func route(_ path: String) -> Route? { routes[path] }
}
