/// A value bound to a statement parameter or read from a result column. The same five kinds
/// exist in SQLite and map onto PostgreSQL's BIGINT, DOUBLE PRECISION, TEXT and BYTEA.
public enum SQLValue: Sendable, Hashable {
  case null
  case integer(Int64)
  case real(Double)
  case text(String)
  case blob([UInt8])
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByNilLiteral {
  /// An integer.
  public init(integerLiteral value: Int64) { self = .integer(value) }
  /// A string.
  public init(stringLiteral value: String) { self = .text(value) }
  /// NULL.
  public init(nilLiteral: ()) { self = .null }
}

extension SQLValue {
  /// 1 or 0 (both back ends compare booleans stored this way alike).
  public static func bool(_ value: Bool) -> SQLValue { .integer(value ? 1 : 0) }
}

/// One result row: values by column position, with names for lookup.
public struct SQLRow: Sendable, Hashable {
  /// The column names, in order.
  public let columns: [String]
  /// The values, in column order.
  public let values: [SQLValue]

  /// A row; back ends create these.
  public init(columns: [String], values: [SQLValue]) {
    self.columns = columns
    self.values = values
  }

  /// The value of the column named `name`.
  public subscript(_ name: String) -> SQLValue {
    guard let index = columns.firstIndex(of: name) else { return .null }
    return values[index]
  }

  /// The column `name` as an integer (a real is truncated; a number in text is parsed).
  public func int(_ name: String) throws(StoreError) -> Int64 {
    switch self[name] {
    case .integer(let value): return value
    case .real(let value) where value.isFinite: return Int64(value)
    case .text(let text) where Int64(text) != nil: return Int64(text)!
    case let other: throw StoreError(.internal, "column '\(name)' holds \(other), not an integer")
    }
  }

  /// The column `name` as an integer, or nil when NULL.
  public func optionalInt(_ name: String) throws(StoreError) -> Int64? {
    if case .null = self[name] { return nil }
    return try int(name)
  }

  /// The column `name` as a double.
  public func double(_ name: String) throws(StoreError) -> Double {
    switch self[name] {
    case .real(let value): return value
    case .integer(let value): return Double(value)
    case .text(let text) where Double(text) != nil: return Double(text)!
    case let other: throw StoreError(.internal, "column '\(name)' holds \(other), not a number")
    }
  }

  /// The column `name` as a string.
  public func string(_ name: String) throws(StoreError) -> String {
    switch self[name] {
    case .text(let value): return value
    case .integer(let value): return String(value)
    case let other: throw StoreError(.internal, "column '\(name)' holds \(other), not text")
    }
  }

  /// The column `name` as bytes.
  public func bytes(_ name: String) throws(StoreError) -> [UInt8] {
    switch self[name] {
    case .blob(let value): return value
    case .text(let value): return Array(value.utf8)
    case let other: throw StoreError(.internal, "column '\(name)' holds \(other), not bytes")
    }
  }

  /// The column `name` as a boolean stored as 0/1.
  public func bool(_ name: String) throws(StoreError) -> Bool { try int(name) != 0 }
}
