public import ShoalProto

/// A violation of the stream rules, by this side's code or by the peer; it carries the status
/// code the stream ends with.
public struct StreamError: Error, Hashable, CustomStringConvertible {
  /// The status the stream is closed with.
  public var code: RpcV1.StatusCode
  /// What was wrong.
  public var message: String

  /// An error that ends the stream with `code`.
  public init(_ code: RpcV1.StatusCode, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.protoName ?? "\(code.rawValue)"): \(message)" }
}
