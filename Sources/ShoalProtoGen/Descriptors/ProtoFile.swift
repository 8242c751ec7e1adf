/// A `.proto` file as read from a descriptor set: the parts the generator maps.
public struct ProtoFile: Sendable {
  public var name: String
  public var package: String
  public var syntax: String
  public var dependencies: [String]
  public var messages: [ProtoMessageType]
  public var enums: [ProtoEnumType]
  public var services: [ProtoService]
  public var hasExtensions: Bool
  /// Leading comments by source path (`[4, 0, 2, 1]` is field 1 of message 0).
  public var comments: [[Int32]: String]
}

/// A message type, with its nested types.
public struct ProtoMessageType: Sendable {
  public var name: String
  /// Fully qualified, without the leading dot: `shoal.testing.v1.Sample.Point`.
  public var fullName: String
  public var fields: [ProtoField]
  public var oneofs: [String]
  public var nestedMessages: [ProtoMessageType]
  public var nestedEnums: [ProtoEnumType]
  public var isMapEntry: Bool
  public var hasExtensionRanges: Bool
  /// The path of this message in the file's source info.
  public var sourcePath: [Int32]
}

/// A field of a message.
public struct ProtoField: Sendable {
  public enum Label: Sendable { case optional, required, repeated }
  public enum Kind: Int32, Sendable {
    case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes, uint32, `enum`,
      sfixed32,
      sfixed64, sint32, sint64
  }

  public var name: String
  public var number: Int32
  public var label: Label
  public var kind: Kind
  /// For message and enum fields: the type's fully qualified name, without the leading dot.
  public var typeName: String
  public var jsonName: String
  public var oneofIndex: Int?
  public var isProto3Optional: Bool
  public var hasDefaultValue: Bool
  public var sourcePath: [Int32]
}

/// An enum type.
public struct ProtoEnumType: Sendable {
  public var name: String
  public var fullName: String
  public var values: [(name: String, number: Int32)]
  public var sourcePath: [Int32]
}

/// A service with its methods.
public struct ProtoService: Sendable {
  public var name: String
  public var fullName: String
  public var methods: [ProtoMethod]
  public var sourcePath: [Int32]
}

/// A method of a service.
public struct ProtoMethod: Sendable {
  public var name: String
  public var inputType: String
  public var outputType: String
  public var clientStreaming: Bool
  public var serverStreaming: Bool
  /// `idempotency_level` is IDEMPOTENT or NO_SIDE_EFFECTS.
  public var idempotent: Bool
  public var sourcePath: [Int32]
}
