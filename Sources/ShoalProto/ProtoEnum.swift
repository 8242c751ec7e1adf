/// An enum generated from a `.proto` file. Values the generated code does not know are kept as
/// `unrecognized(_:)` so that they round-trip unchanged.
public protocol ProtoEnum: _JSONFieldValue, RawRepresentable where RawValue == Int32 {
  /// The enum's fully qualified proto name, e.g. `shoal.rpc.v1.StatusCode`.
  static var protoEnumName: String { get }

  /// Every value the generated code knows, in declaration order.
  static var knownValues: [Self] { get }

  /// The value for a number; numbers without a name become `unrecognized(_:)`.
  init(rawValue: Int32)

  /// The value's name in the `.proto` file, or nil for an unrecognized number.
  var protoName: String? { get }
}

extension ProtoEnum {
  /// The value whose `.proto` name is `name`, if there is one.
  public init?(protoName name: String) {
    guard let value = Self.knownValues.first(where: { $0.protoName == name }) else { return nil }
    self = value
  }

  public func _jsonValue() -> JSONValue {
    if let name = protoName { return .string(name) }
    return .number(String(rawValue))
  }

  public var _isDefaultJSONValue: Bool { rawValue == 0 }

  public init(_json value: JSONValue, path: String) throws(ProtoError) {
    switch value {
    case .null:
      self.init(rawValue: 0)
    case .string(let name):
      guard let known = Self(protoName: name) else {
        throw ProtoError(.invalidJSON, "\(path): '\(name)' is not a value of \(Self.protoEnumName)")
      }
      self = known
    case .number:
      self.init(rawValue: try Int32(_json: value, path: path))
    default:
      throw ProtoError(
        .invalidJSON, "\(path): expected a name or number for \(Self.protoEnumName), found \(value.kindName)")
    }
  }
}
