import CProtobufC

/// A message generated from a `.proto` file: a Swift value that encodes and decodes through
/// protobuf-c and maps to and from proto3 JSON.
///
/// The requirements with a leading underscore are implemented by generated code and used by the
/// runtime; call the methods in the extensions below instead.
public protocol ProtoMessage: _JSONFieldValue {
  /// The message's fully qualified proto name, e.g. `shoal.rpc.v1.Hello`.
  static var protoMessageName: String { get }

  /// A message with every field at its default value.
  init()

  /// The protobuf-c descriptor of the message's C struct.
  static var _protobufC: ProtobufCMessageType { get }

  /// Writes every field into a freshly initialised C struct.
  func _encode(to writer: CMessageWriter)

  /// Reads every field from an unpacked C struct.
  init(_decoding reader: CMessageReader) throws(ProtoError)

  /// Adds every non-default field to a JSON object.
  func _encodeJSON(to writer: inout JSONObjectWriter)

  /// Reads the fields of a JSON object.
  init(_decodingJSON reader: JSONObjectReader) throws(ProtoError)
}

extension ProtoMessage {
  /// The message in the protobuf binary format.
  ///
  /// - Throws: `ProtoError` `.stringWithNUL` for a string field holding a NUL character.
  public func serializedBytes() throws(ProtoError) -> [UInt8] {
    try withSerializedSize { size, pack in
      [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
        pack(UnsafeMutableRawBufferPointer(buffer))
        count = size
      }
    }
  }

  /// Calls `body` with the encoded size and a function that packs exactly that many bytes into a
  /// buffer the caller owns (for example an outgoing frame), building the C tree only once.
  ///
  /// The buffer given to `pack` must hold at least `size` bytes. With `replacingNUL` (for
  /// diagnostic text, such as a status message) a NUL in a string is sent as U+FFFD.
  ///
  /// - Throws: `ProtoError` `.stringWithNUL` naming the field, for a string holding a NUL
  ///   character (protobuf-c would cut it short there); `body` is not called.
  public func withSerializedSize<Result>(
    replacingNUL: Bool = false, _ body: (_ size: Int, _ pack: (UnsafeMutableRawBufferPointer) -> Void) -> Result
  ) throws(ProtoError) -> Result {
    try CMessageEncoder.withPackable(self, replacingNUL: replacingNUL) { message in
      let size = protobuf_c_message_get_packed_size(message)
      return body(size) { buffer in
        precondition(buffer.count >= size, "buffer of \(buffer.count) bytes for a \(size)-byte message")
        _ = protobuf_c_message_pack(message, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self))
      }
    }
  }

  /// Decodes a message from the protobuf binary format.
  ///
  /// - Throws: `ProtoError` with code `.malformedBinary` for truncated or garbage bytes and
  ///   `.invalidUTF8` for a string field that is not UTF-8.
  public init(serializedBytes bytes: UnsafeRawBufferPointer) throws(ProtoError) {
    self = try CMessageDecoder.decode(Self.self, from: bytes)
  }

  /// Decodes a message from the protobuf binary format.
  ///
  /// - Throws: `ProtoError` with code `.malformedBinary` for truncated or garbage bytes and
  ///   `.invalidUTF8` for a string field that is not UTF-8.
  public init(serializedBytes bytes: [UInt8]) throws(ProtoError) {
    let result = bytes.withUnsafeBytes { buffer in
      Result { () throws(ProtoError) -> Self in try CMessageDecoder.decode(Self.self, from: buffer) }
    }
    self = try result.get()
  }

  /// The message as a proto3 JSON value (default-valued fields left out).
  public var jsonValue: JSONValue {
    var writer = JSONObjectWriter()
    _encodeJSON(to: &writer)
    return writer.object
  }

  /// The message as proto3 JSON text.
  ///
  /// - Parameter pretty: indent nested values by two spaces, one field per line.
  public func jsonString(pretty: Bool = false) -> String {
    jsonValue.serialized(pretty: pretty)
  }

  /// Decodes a message from a proto3 JSON value.
  ///
  /// Field names may be the JSON name (`lowerCamelCase`) or the proto name; unknown fields are
  /// an error, as in the reference implementation's default.
  public init(jsonValue: JSONValue) throws(ProtoError) {
    try self.init(_json: jsonValue, path: Self.protoMessageName)
  }

  /// Decodes a message from proto3 JSON text.
  public init(jsonString: String) throws(ProtoError) {
    try self.init(jsonValue: try JSONValue(parsing: jsonString))
  }

  public func _jsonValue() -> JSONValue { jsonValue }

  public var _isDefaultJSONValue: Bool { self == Self() }

  public init(_json value: JSONValue, path: String) throws(ProtoError) {
    switch value {
    case .null:
      self.init()
    case .object(let members):
      try self.init(_decodingJSON: JSONObjectReader(members: members, path: path))
    default:
      throw ProtoError(
        .invalidJSON, "\(path): expected an object for \(Self.protoMessageName), found \(value.kindName)")
    }
  }
}
