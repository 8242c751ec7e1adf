/// The members of a message's JSON object, with helpers that decode one field. Generated code
/// walks `members` and matches each name against the field's JSON name and proto name.
public struct JSONObjectReader {
  /// The object's members in document order.
  public let members: [(String, JSONValue)]
  /// The message being decoded, for error messages (`shoal.testing.v1.Sample.origin`).
  public let path: String

  init(members: [(String, JSONValue)], path: String) {
    self.members = members
    self.path = path
  }

  /// The error for a member that names no field.
  public func unknownField(_ name: String) -> ProtoError {
    ProtoError(.invalidJSON, "\(path): no field named '\(name)'")
  }

  /// The error for a second member of a oneof that already has one set.
  public func oneofConflict(_ name: String, oneof: String) -> ProtoError {
    ProtoError(.invalidJSON, "\(path): '\(name)' sets oneof '\(oneof)' a second time")
  }

  /// A singular field of a scalar, enum or message type.
  public func value<V: _JSONFieldValue>(
    _ json: JSONValue, _ name: String, as type: V.Type = V.self
  ) throws(ProtoError) -> V {
    try V(_json: json, path: "\(path).\(name)")
  }

  /// A singular `bytes` field.
  public func bytes(_ json: JSONValue, _ name: String) throws(ProtoError) -> [UInt8] {
    try Self.decodeBytes(json, path: "\(path).\(name)")
  }

  /// A repeated field of a scalar, enum or message type.
  public func repeated<V: _JSONFieldValue>(
    _ json: JSONValue, _ name: String, as type: V.Type = V.self
  ) throws(ProtoError) -> [V] {
    var result: [V] = []
    for (i, element) in try elements(json, name).enumerated() {
      if case .null = element { throw ProtoError(.invalidJSON, "\(path).\(name)[\(i)]: null in a repeated field") }
      result.append(try V(_json: element, path: "\(path).\(name)[\(i)]"))
    }
    return result
  }

  /// A repeated `bytes` field.
  public func repeatedBytes(_ json: JSONValue, _ name: String) throws(ProtoError) -> [[UInt8]] {
    var result: [[UInt8]] = []
    for (i, element) in try elements(json, name).enumerated() {
      result.append(try Self.decodeBytes(element, path: "\(path).\(name)[\(i)]"))
    }
    return result
  }

  /// A `map` field whose values are scalars, enums or messages.
  public func map<Key: ProtoMapKey, V: _JSONFieldValue>(
    _ json: JSONValue, _ name: String, as type: [Key: V].Type = [Key: V].self
  ) throws(ProtoError) -> [Key: V] {
    var result: [Key: V] = [:]
    for (key, value) in try entries(json, name, Key.self) {
      result[key.0] = try V(_json: value, path: "\(path).\(name)[\(key.1)]")
    }
    return result
  }

  /// A `map` field whose values are `bytes`.
  public func mapBytes<Key: ProtoMapKey>(
    _ json: JSONValue, _ name: String, keyType: Key.Type = Key.self
  ) throws(ProtoError) -> [Key: [UInt8]] {
    var result: [Key: [UInt8]] = [:]
    for (key, value) in try entries(json, name, Key.self) {
      result[key.0] = try Self.decodeBytes(value, path: "\(path).\(name)[\(key.1)]")
    }
    return result
  }

  private func elements(_ json: JSONValue, _ name: String) throws(ProtoError) -> [JSONValue] {
    switch json {
    case .null: return []
    case .array(let values): return values
    default: throw ProtoError(.invalidJSON, "\(path).\(name): expected an array, found \(json.kindName)")
    }
  }

  private func entries<Key: ProtoMapKey>(
    _ json: JSONValue, _ name: String, _ keyType: Key.Type
  ) throws(ProtoError) -> [((Key, String), JSONValue)] {
    switch json {
    case .null: return []
    case .object(let members):
      var result: [((Key, String), JSONValue)] = []
      for (text, value) in members {
        guard let key = Key(_jsonKey: text) else {
          throw ProtoError(.invalidJSON, "\(path).\(name): '\(text)' is not a valid \(Key.self) map key")
        }
        result.append(((key, text), value))
      }
      return result
    default: throw ProtoError(.invalidJSON, "\(path).\(name): expected an object, found \(json.kindName)")
    }
  }

  private static func decodeBytes(_ json: JSONValue, path: String) throws(ProtoError) -> [UInt8] {
    switch json {
    case .null: return []
    case .string(let text):
      guard let bytes = Base64.decode(text) else { throw ProtoError(.invalidJSON, "\(path): not valid base64") }
      return bytes
    default: throw ProtoError(.invalidJSON, "\(path): expected a base64 string, found \(json.kindName)")
    }
  }
}
