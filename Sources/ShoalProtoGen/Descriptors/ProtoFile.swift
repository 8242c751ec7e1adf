/// A `.proto` file as read from a descriptor set: the parts the generator maps.
struct ProtoFile: Sendable {
  var name: String
  var package: String
  var syntax: String
  var dependencies: [String]
  var messages: [ProtoMessageType]
  var enums: [ProtoEnumType]
  var services: [ProtoService]
  var hasExtensions: Bool
  /// Leading comments by source path (`[4, 0, 2, 1]` is field 1 of message 0).
  var comments: [[Int32]: String]
}

/// A message type, with its nested types.
struct ProtoMessageType: Sendable {
  var name: String
  /// Fully qualified, without the leading dot: `shoal.testing.v1.Sample.Point`.
  var fullName: String
  var fields: [ProtoField]
  var oneofs: [String]
  var nestedMessages: [ProtoMessageType]
  var nestedEnums: [ProtoEnumType]
  var isMapEntry: Bool
  var hasExtensionRanges: Bool
  /// The path of this message in the file's source info.
  var sourcePath: [Int32]
}

/// A field of a message.
struct ProtoField: Sendable {
  enum Label: Sendable { case optional, required, repeated }
  enum Kind: Int32, Sendable {
    case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes, uint32, `enum`,
      sfixed32,
      sfixed64, sint32, sint64
  }

  var name: String
  var number: Int32
  var label: Label
  var kind: Kind
  /// For message and enum fields: the type's fully qualified name, without the leading dot.
  var typeName: String
  var jsonName: String
  var oneofIndex: Int?
  var isProto3Optional: Bool
  var hasDefaultValue: Bool
  var sourcePath: [Int32]
}

/// An enum type.
struct ProtoEnumType: Sendable {
  var name: String
  var fullName: String
  var values: [(name: String, number: Int32)]
  var sourcePath: [Int32]
}

/// A service with its methods.
struct ProtoService: Sendable {
  var name: String
  var fullName: String
  var methods: [ProtoMethod]
  var sourcePath: [Int32]
}

/// A method of a service.
struct ProtoMethod: Sendable {
  var name: String
  var inputType: String
  var outputType: String
  var clientStreaming: Bool
  var serverStreaming: Bool
  /// `idempotency_level` is IDEMPOTENT or NO_SIDE_EFFECTS.
  var idempotent: Bool
  var sourcePath: [Int32]
}
