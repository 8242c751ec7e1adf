public import ShoalProto

/// What a handler knows about the call it serves.
public struct ServerContext: Sendable {
  /// The method being called.
  public let method: MethodDescriptor
  /// The metadata the client sent with CALL.
  public let metadata: Metadata
  /// When the client stops waiting; calls the handler makes through `RPCClient` inherit it.
  public let deadline: ContinuousClock.Instant?
  /// The remote peer, e.g. `unix` or `127.0.0.1:53412`.
  public let peer: String
}

/// The deadline of the call a task is serving, so that calls it makes inherit it.
enum CallScope {
  @TaskLocal static var deadline: ContinuousClock.Instant?
}
