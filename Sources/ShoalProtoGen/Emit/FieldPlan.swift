/// How one field is stored, encoded and decoded in the generated Swift.
struct FieldPlan {
  enum Shape {
    case singular
    /// A singular message field: `T?`.
    case optionalMessage(boxed: Bool)
    case repeated
    case map(key: ValueKind, value: ValueKind)
    /// A member of the oneof at this index in the message's oneofs.
    case oneofMember(Int)
  }

  /// How a single value of the field's type is handled.
  struct ValueKind {
    enum Family { case scalar, bool, string, bytes, enumeration, message }
    var family: Family
    /// The Swift type: `Int64`, `[UInt8]`, `TestingV1.Colour`.
    var swiftType: String
    /// The Swift default value expression.
    var defaultValue: String
  }

  var field: ProtoField
  /// Index of the field in protoc-c's descriptor (fields sorted by number).
  var index: Int
  var property: String
  var shape: Shape
  var value: ValueKind

  /// The stored or computed property's type.
  var swiftType: String {
    switch shape {
    case .singular: value.swiftType
    case .optionalMessage: "\(value.swiftType)?"
    case .repeated: "[\(value.swiftType)]"
    case .map(let key, let value): "[\(key.swiftType): \(value.swiftType)]"
    case .oneofMember: value.swiftType
    }
  }

  /// The JSON member names the decoder accepts: the JSON name, then the proto name.
  var jsonNames: [String] {
    field.jsonName == field.name || field.jsonName.isEmpty ? [field.name] : [field.jsonName, field.name]
  }

  var jsonName: String { field.jsonName.isEmpty ? field.name : field.jsonName }
}
