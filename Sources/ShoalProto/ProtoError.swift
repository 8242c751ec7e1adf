/// Why a message could not be encoded or decoded.
public struct ProtoError: Error, Hashable, CustomStringConvertible {
  /// What kind of input was wrong.
  public enum Code: Hashable, Sendable {
    /// The bytes are not a valid encoding of the message (truncated, garbage, wrong type).
    case malformedBinary
    /// A string field holds bytes that are not UTF-8.
    case invalidUTF8
    /// A string field holds a NUL character, which protobuf-c (the codec) cannot carry: it keeps
    /// strings NUL-terminated, so the string would be cut short there.
    case stringWithNUL
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
