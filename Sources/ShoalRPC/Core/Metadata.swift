import ShoalProto

/// Call metadata: ASCII keys `[0-9a-z_.-]`, text values, and bytes for keys ending in `-bin`.
/// Keys may repeat; order is kept.
public struct Metadata: Sendable, Hashable, ExpressibleByArrayLiteral, Sequence {
  /// One value.
  public enum Value: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
  }

  private(set) var pairs: [(key: String, value: Value)] = []

  /// Empty metadata.
  public init() {}

  /// Text entries, in order.
  public init(arrayLiteral elements: (String, String)...) {
    for (key, value) in elements { add(key, value) }
  }

  /// Reads the entries of a CALL header or STATUS, validating their keys.
  init(entries: [RpcV1.MetadataEntry]) throws(RPCError) {
    for entry in entries {
      try Self.validate(entry.key)
      switch entry.value {
      case .text(let text)?: pairs.append((entry.key, .text(text)))
      case .binary(let bytes)?: pairs.append((entry.key, .binary(bytes)))
      case nil: pairs.append((entry.key, .text("")))
      }
    }
  }

  /// Whether `key` is a valid metadata key.
  public static func isValidKey(_ key: String) -> Bool {
    !key.isEmpty
      && key.utf8.allSatisfy {
        ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
          || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
      }
  }

  static func validate(_ key: String) throws(RPCError) {
    guard isValidKey(key) else {
      throw RPCError(.invalidArgument, "metadata key '\(key)' is not lower-case ASCII [0-9a-z_.-]")
    }
  }

  /// Adds a text value; keys are lower-cased.
  public mutating func add(_ key: String, _ value: String) {
    pairs.append((key.lowercased(), .text(value)))
  }

  /// Adds a binary value; the key should end in `-bin`.
  public mutating func add(_ key: String, binary value: [UInt8]) {
    pairs.append((key.lowercased(), .binary(value)))
  }

  /// The first text value for `key`.
  public subscript(key: String) -> String? {
    for pair in pairs where pair.key == key {
      if case .text(let text) = pair.value { return text }
    }
    return nil
  }

  /// Whether there are no entries.
  public var isEmpty: Bool { pairs.isEmpty }

  public func makeIterator() -> some IteratorProtocol<(key: String, value: Value)> { pairs.makeIterator() }

  /// The entries as sent on the wire.
  var entries: [RpcV1.MetadataEntry] {
    pairs.map { pair in
      var entry = RpcV1.MetadataEntry()
      entry.key = pair.key
      switch pair.value {
      case .text(let text): entry.value = .text(text)
      case .binary(let bytes): entry.value = .binary(bytes)
      }
      return entry
    }
  }

  public static func == (lhs: Metadata, rhs: Metadata) -> Bool {
    lhs.pairs.count == rhs.pairs.count
      && zip(lhs.pairs, rhs.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
  }

  public func hash(into hasher: inout Hasher) {
    for pair in pairs {
      hasher.combine(pair.key)
      hasher.combine(pair.value)
    }
  }
}
