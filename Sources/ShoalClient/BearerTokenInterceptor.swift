public import ShoalProto
public import ShoalRPC

/// Adds `authorization: Bearer <token>` to every call (unless the call set its own).
public struct BearerTokenInterceptor: ClientInterceptor {
  private let token: String

  /// An interceptor sending `token`.
  public init(token: String) { self.token = token }

  public func intercept<Result: Sendable>(
    _ method: MethodDescriptor, options: CallOptions, next: @Sendable (CallOptions) async throws -> Result
  ) async throws -> Result {
    var options = options
    if options.metadata["authorization"] == nil { options.metadata.add("authorization", "Bearer \(token)") }
    return try await next(options)
  }
}
