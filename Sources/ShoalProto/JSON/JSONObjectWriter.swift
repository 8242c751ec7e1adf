/// Collects the members of a message's JSON object. Generated code calls it once per field,
/// with the field's JSON name; default values are left out unless `always` (oneof members).
public struct JSONObjectWriter {
  private var members: [(String, JSONValue)] = []

  init() {}

  var object: JSONValue { .object(members) }

  /// A singular field of a scalar, enum or message type.
  public mutating func value<V: _JSONFieldValue>(_ name: String, _ value: V, always: Bool = false) {
    if always || !value._isDefaultJSONValue { members.append((name, value._jsonValue())) }
  }

  /// A singular `bytes` field.
  public mutating func bytes(_ name: String, _ value: [UInt8], always: Bool = false) {
    if always || !value.isEmpty { members.append((name, .string(Base64.encode(value)))) }
  }

  /// A repeated field of a scalar, enum or message type.
  public mutating func repeated<V: _JSONFieldValue>(_ name: String, _ values: [V]) {
    if !values.isEmpty { members.append((name, .array(values.map { $0._jsonValue() }))) }
  }

  /// A repeated `bytes` field.
  public mutating func repeatedBytes(_ name: String, _ values: [[UInt8]]) {
    if !values.isEmpty { members.append((name, .array(values.map { .string(Base64.encode($0)) }))) }
  }

  /// A `map` field whose values are scalars, enums or messages.
  public mutating func map<Key: ProtoMapKey, V: _JSONFieldValue>(_ name: String, _ values: [Key: V]) {
    if !values.isEmpty {
      members.append((name, .object(values.sortedForEncoding.map { ($0.key._jsonKey, $0.value._jsonValue()) })))
    }
  }

  /// A `map` field whose values are `bytes`.
  public mutating func mapBytes<Key: ProtoMapKey>(_ name: String, _ values: [Key: [UInt8]]) {
    if !values.isEmpty {
      members.append(
        (name, .object(values.sortedForEncoding.map { ($0.key._jsonKey, .string(Base64.encode($0.value))) })))
    }
  }
}
