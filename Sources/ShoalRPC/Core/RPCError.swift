public import ShoalProto

/// The status a call ended with when it did not succeed: a gRPC status code, a message that
/// says what was wrong, and trailing metadata.
public struct RPCError: Error, CustomStringConvertible, Sendable {
  /// gRPC's status code.
  public var code: RpcV1.StatusCode
  /// What was wrong and, where it helps, what to do about it.
  public var message: String
  /// Trailing metadata sent with the status.
  public var trailers: Metadata
  /// The underlying error, when there is one.
  public var cause: (any Error)?

  /// An error with a code and a message.
  public init(_ code: RpcV1.StatusCode, _ message: String, trailers: Metadata = [], cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.trailers = trailers
    self.cause = cause
  }

  /// The error a handler's thrown error becomes on the wire: itself if it is an `RPCError`, the
  /// status it names if it is `RPCErrorConvertible`, otherwise UNKNOWN with its description.
  public init(from error: any Error) {
    if let error = error as? RPCError {
      self = error
    } else if let error = error as? any RPCErrorConvertible {
      self = error.rpcError
    } else if error is CancellationError {
      self.init(.cancelled, "the call was cancelled")
    } else {
      self.init(.unknown, String(describing: error), cause: error)
    }
  }

  /// The status's name, e.g. `NOT_FOUND`.
  public var codeName: String { code.protoName ?? "CODE_\(code.rawValue)" }

  public var description: String { "\(codeName): \(message)" }

  /// The status as sent in a STATUS frame.
  var status: RpcV1.Status {
    var status = RpcV1.Status()
    status.code = code
    status.message = message
    status.trailers = trailers.entries
    return status
  }
}

/// An error that knows which status it is (a store's "database locked" is UNAVAILABLE), so that a
/// handler can let it propagate and the server reports the right code.
public protocol RPCErrorConvertible: Error {
  /// The status this error is reported with.
  var rpcError: RPCError { get }
}
