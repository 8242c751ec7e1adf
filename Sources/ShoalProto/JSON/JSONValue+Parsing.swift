extension JSONValue {
  /// Parses JSON text (RFC 8259).
  ///
  /// - Throws: `ProtoError` with code `.malformedJSON` naming the offset of the first error.
  public init(parsing text: String) throws(ProtoError) {
    var parser = JSONParser(Array(text.utf8))
    self = try parser.parseDocument()
  }
}

/// A recursive-descent JSON parser over UTF-8 bytes.
private struct JSONParser {
  private static let maxDepth = 100

  private let bytes: [UInt8]
  private var position = 0
  private var depth = 0

  init(_ bytes: [UInt8]) { self.bytes = bytes }

  mutating func parseDocument() throws(ProtoError) -> JSONValue {
    let value = try parseValue()
    skipWhitespace()
    guard position == bytes.count else { throw error("unexpected text after the JSON value") }
    return value
  }

  private func error(_ message: String) -> ProtoError {
    ProtoError(.malformedJSON, "JSON at offset \(position): \(message)")
  }

  private mutating func skipWhitespace() {
    while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
  }

  private mutating func expect(_ literal: String, _ value: JSONValue) throws(ProtoError) -> JSONValue {
    let utf8 = Array(literal.utf8)
    guard bytes.count - position >= utf8.count, Array(bytes[position..<position + utf8.count]) == utf8 else {
      throw error("expected '\(literal)'")
    }
    position += utf8.count
    return value
  }

  private mutating func parseValue() throws(ProtoError) -> JSONValue {
    skipWhitespace()
    guard position < bytes.count else { throw error("unexpected end of input") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try parseObject()
    case UInt8(ascii: "["): return try parseArray()
    case UInt8(ascii: "\""): return .string(try parseString())
    case UInt8(ascii: "t"): return try expect("true", .bool(true))
    case UInt8(ascii: "f"): return try expect("false", .bool(false))
    case UInt8(ascii: "n"): return try expect("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
    default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[position])))'")
    }
  }

  private mutating func enter() throws(ProtoError) {
    depth += 1
    if depth > Self.maxDepth { throw error("nested deeper than \(Self.maxDepth) levels") }
  }

  private mutating func parseObject() throws(ProtoError) -> JSONValue {
    try enter()
    defer { depth -= 1 }
    position += 1
    var members: [(String, JSONValue)] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
      position += 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a member name") }
      let key = try parseString()
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
      position += 1
      members.append((key, try parseValue()))
      skipWhitespace()
      guard position < bytes.count else { throw error("unterminated object") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "}") {
        position += 1
        return .object(members)
      } else {
        throw error("expected ',' or '}'")
      }
    }
  }

  private mutating func parseArray() throws(ProtoError) -> JSONValue {
    try enter()
    defer { depth -= 1 }
    position += 1
    var values: [JSONValue] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
      position += 1
      return .array(values)
    }
    while true {
      values.append(try parseValue())
      skipWhitespace()
      guard position < bytes.count else { throw error("unterminated array") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
      } else if bytes[position] == UInt8(ascii: "]") {
        position += 1
        return .array(values)
      } else {
        throw error("expected ',' or ']'")
      }
    }
  }

  private mutating func parseNumber() throws(ProtoError) -> JSONValue {
    let start = position
    func digits(_ p: inout Int, _ bytes: [UInt8]) -> Int {
      let begin = p
      while p < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[p]) { p += 1 }
      return p - begin
    }
    if bytes[position] == UInt8(ascii: "-") { position += 1 }
    let integerStart = position
    let integerDigits = digits(&position, bytes)
    guard integerDigits > 0 else { throw error("expected digits") }
    if integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0") { throw error("leading zero in a number") }
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      position += 1
      guard digits(&position, bytes) > 0 else { throw error("expected digits after '.'") }
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
        position += 1
      }
      guard digits(&position, bytes) > 0 else { throw error("expected digits in the exponent") }
    }
    return .number(String(decoding: bytes[start..<position], as: UTF8.self))
  }

  private mutating func parseHex4() throws(ProtoError) -> UInt32 {
    guard bytes.count - position >= 4 else { throw error("truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[position]
      let digit: UInt32
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
      default: throw error("bad hex digit in \\u escape")
      }
      value = value * 16 + digit
      position += 1
    }
    return value
  }

  private mutating func parseString() throws(ProtoError) -> String {
    position += 1
    var utf8: [UInt8] = []
    while true {
      guard position < bytes.count else { throw error("unterminated string") }
      let byte = bytes[position]
      position += 1
      switch byte {
      case UInt8(ascii: "\""):
        guard let string = String(validating: utf8, as: UTF8.self) else { throw error("string is not valid UTF-8") }
        return string
      case UInt8(ascii: "\\"):
        guard position < bytes.count else { throw error("unterminated escape") }
        let escape = bytes[position]
        position += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
          var code = try parseHex4()
          if (0xD800..<0xDC00).contains(code) {
            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"),
              bytes[position + 1] == UInt8(ascii: "u")
            else {
              throw error("unpaired surrogate in \\u escape")
            }
            position += 2
            let low = try parseHex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let scalar = Unicode.Scalar(code) else { throw error("\\u escape is not a Unicode scalar") }
          utf8.append(contentsOf: Array(String(Character(scalar)).utf8))
        default: throw error("unknown escape '\\\(Character(Unicode.Scalar(escape)))'")
        }
      case 0x00..<0x20:
        throw error("control character in a string")
      default:
        utf8.append(byte)
      }
    }
  }
}
