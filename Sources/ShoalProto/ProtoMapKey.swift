/// A type that can be the key of a proto `map`: strings, integers and booleans.
///
/// Map entries are encoded in key order so that equal maps always encode to equal bytes.
public protocol ProtoMapKey: Hashable, Sendable {
  /// Whether `lhs` is encoded before `rhs`.
  static func _precedes(_ lhs: Self, _ rhs: Self) -> Bool
  /// The key as a JSON object member name.
  var _jsonKey: String { get }
  /// Reads a key from a JSON object member name.
  init?(_jsonKey: String)
}

extension ProtoMapKey where Self: Comparable & LosslessStringConvertible {
  public static func _precedes(_ lhs: Self, _ rhs: Self) -> Bool { lhs < rhs }
  public var _jsonKey: String { description }
  public init?(_jsonKey key: String) { self.init(key) }
}

extension String: ProtoMapKey {}
extension Int32: ProtoMapKey {}
extension Int64: ProtoMapKey {}
extension UInt32: ProtoMapKey {}
extension UInt64: ProtoMapKey {}

extension Bool: ProtoMapKey {
  public static func _precedes(_ lhs: Bool, _ rhs: Bool) -> Bool { !lhs && rhs }
  public var _jsonKey: String { self ? "true" : "false" }
  public init?(_jsonKey key: String) {
    switch key {
    case "true": self = true
    case "false": self = false
    default: return nil
    }
  }
}

extension Dictionary where Key: ProtoMapKey {
  /// The entries in encoding order.
  var sortedForEncoding: [(key: Key, value: Value)] {
    sorted { Key._precedes($0.key, $1.key) }
  }
}
