/// A value that can stand in a field of a message's proto3 JSON form. Implemented by the
/// scalar types, generated messages and generated enums; `bytes` fields use `Base64` instead.
public protocol _JSONFieldValue: Sendable, Hashable {
  /// The value's JSON form.
  func _jsonValue() -> JSONValue
  /// Whether the value is its type's default, which proto3 JSON leaves out.
  var _isDefaultJSONValue: Bool { get }
  /// Reads the value; `path` names the field for error messages.
  init(_json value: JSONValue, path: String) throws(ProtoError)
}

extension String: _JSONFieldValue {
  public func _jsonValue() -> JSONValue { .string(self) }
  public var _isDefaultJSONValue: Bool { isEmpty }
  public init(_json value: JSONValue, path: String) throws(ProtoError) {
    switch value {
    case .null: self = ""
    case .string(let text): self = text
    default: throw ProtoError(.invalidJSON, "\(path): expected a string, found \(value.kindName)")
    }
  }
}

extension Bool: _JSONFieldValue {
  public func _jsonValue() -> JSONValue { .bool(self) }
  public var _isDefaultJSONValue: Bool { !self }
  public init(_json value: JSONValue, path: String) throws(ProtoError) {
    switch value {
    case .null: self = false
    case .bool(let flag): self = flag
    default: throw ProtoError(.invalidJSON, "\(path): expected true or false, found \(value.kindName)")
    }
  }
}

/// Integers: 32-bit ones are JSON numbers, 64-bit ones strings (JavaScript loses precision past
/// 2^53). Both accept a number or a string holding one, including exponent notation of an integer.
protocol JSONInteger: FixedWidthInteger, _JSONFieldValue {
  static var jsonAsString: Bool { get }
}

extension JSONInteger {
  public func _jsonValue() -> JSONValue { Self.jsonAsString ? .string(String(self)) : .number(String(self)) }
  public var _isDefaultJSONValue: Bool { self == 0 }
  public init(_json value: JSONValue, path: String) throws(ProtoError) {
    let text: String
    switch value {
    case .null:
      self = 0
      return
    case .number(let number): text = number
    case .string(let string): text = string
    default: throw ProtoError(.invalidJSON, "\(path): expected an integer, found \(value.kindName)")
    }
    if let exact = Self(text) {
      self = exact
    } else if let real = Double(text), real.isFinite, real.rounded() == real, let exact = Self(exactly: real) {
      self = exact
    } else {
      throw ProtoError(.invalidJSON, "\(path): '\(text)' is not an integer that fits \(Self.self)")
    }
  }
}

extension Int32: JSONInteger { static var jsonAsString: Bool { false } }
extension UInt32: JSONInteger { static var jsonAsString: Bool { false } }
extension Int64: JSONInteger { static var jsonAsString: Bool { true } }
extension UInt64: JSONInteger { static var jsonAsString: Bool { true } }

/// `float` and `double`: numbers, with "NaN", "Infinity" and "-Infinity" as strings.
protocol JSONFloatingPoint: BinaryFloatingPoint, LosslessStringConvertible, _JSONFieldValue {}

extension JSONFloatingPoint {
  public func _jsonValue() -> JSONValue {
    if isNaN { return .string("NaN") }
    if isInfinite { return .string(self < 0 ? "-Infinity" : "Infinity") }
    return .number(description)
  }
  public var _isDefaultJSONValue: Bool { self == 0 && sign == .plus }
  public init(_json value: JSONValue, path: String) throws(ProtoError) {
    let text: String
    switch value {
    case .null:
      self = 0
      return
    case .string("NaN"):
      self = .nan
      return
    case .string("Infinity"):
      self = .infinity
      return
    case .string("-Infinity"):
      self = -.infinity
      return
    case .number(let number): text = number
    case .string(let string): text = string
    default: throw ProtoError(.invalidJSON, "\(path): expected a number, found \(value.kindName)")
    }
    guard let parsed = Self(text), parsed.isFinite else {
      throw ProtoError(.invalidJSON, "\(path): '\(text)' is not a finite \(Self.self)")
    }
    self = parsed
  }
}

extension Float: JSONFloatingPoint {}
extension Double: JSONFloatingPoint {}
