/// Code that runs around every call a server handles: logging, metrics, authentication.
///
/// An interceptor may read the context, throw an `RPCError` to refuse the call before the handler
/// runs, or time and observe `next`.
public protocol ServerInterceptor: Sendable {
  /// Runs the rest of the chain (and the handler) by calling `next`.
  func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws
}
