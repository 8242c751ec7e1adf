/// Why a message could not be encoded or decoded.
public struct ProtoError: Error, Hashable, CustomStringConvertible {
  /// What kind of input was wrong.
  public enum Code: Hashable, Sendable {
    /// The bytes are not a valid encoding of the message (truncated, garbage, wrong type).
    case malformedBinary
    /// A string field holds bytes that are not UTF-8.
    case invalidUTF8
    /// The text is not JSON.
    case malformedJSON
    /// The JSON is well-formed but does not fit the message (unknown field, wrong type, bad value).
    case invalidJSON
  }

  /// What kind of input was wrong.
  public var code: Code
  /// What was wrong, naming the message and field.
  public var message: String

  /// An error with a code and a message that names what was wrong.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
