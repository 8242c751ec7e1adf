public import ShoalProto
import Synchronization

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
  /// Trailing metadata sent with the call's status, whether it succeeds or fails.
  public let trailers: ResponseTrailers

  /// Whether the peer came through a Unix socket (and so passed the socket file's permissions).
  public var isUnixSocketPeer: Bool { peer == "unix" }
}

/// Trailing metadata a handler adds while it serves a call; sent with the status.
public final class ResponseTrailers: Sendable {
  private let entries = Mutex(Metadata())

  init() {}

  /// Adds a text entry.
  public func add(_ key: String, _ value: String) {
    entries.withLock { $0.add(key, value) }
  }

  /// Adds a binary entry (the key should end in `-bin`).
  public func add(_ key: String, binary value: [UInt8]) {
    entries.withLock { $0.add(key, binary: value) }
  }

  /// Everything added so far.
  public var metadata: Metadata { entries.withLock { $0 } }
}

/// The deadline of the call a task is serving, so that calls it makes inherit it.
enum CallScope {
  @TaskLocal static var deadline: ContinuousClock.Instant?
}
