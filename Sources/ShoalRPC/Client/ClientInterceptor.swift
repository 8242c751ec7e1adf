public import ShoalProto

/// Code that runs around every call a client makes: adding metadata (such as a token),
/// logging, metrics. It may change the call's options, refuse the call by throwing, or observe
/// how `next` ends; retries happen inside `next`.
public protocol ClientInterceptor: Sendable {
  /// Runs the rest of the chain (and the call) by calling `next`.
  func intercept<Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions,
    next: @Sendable (CallOptions) async throws -> Result
  ) async throws -> Result
}

extension RPCClient {
  /// Runs `call` inside the configured interceptors.
  func intercepted<Result: Sendable>(
    _ method: MethodDescriptor, _ options: CallOptions,
    _ call: @escaping @Sendable (CallOptions) async throws -> Result
  ) async throws -> Result {
    try await Self.chain(interceptors[...], method, options, call)
  }

  private static func chain<Result: Sendable>(
    _ interceptors: ArraySlice<any ClientInterceptor>, _ method: MethodDescriptor, _ options: CallOptions,
    _ call: @escaping @Sendable (CallOptions) async throws -> Result
  ) async throws -> Result {
    guard let first = interceptors.first else { return try await call(options) }
    return try await first.intercept(method, options: options) { options in
      try await chain(interceptors.dropFirst(), method, options, call)
    }
  }
}
