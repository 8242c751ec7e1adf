extension JSONValue {
  /// The value as JSON text.
  ///
  /// - Parameter pretty: indent nested values by two spaces, one member per line.
  public func serialized(pretty: Bool = false) -> String {
    var out = ""
    write(to: &out, pretty: pretty, indent: 0)
    return out
  }

  private func write(to out: inout String, pretty: Bool, indent: Int) {
    switch self {
    case .null: out += "null"
    case .bool(let value): out += value ? "true" : "false"
    case .number(let text): out += text
    case .string(let text): Self.writeString(text, to: &out)
    case .array(let values):
      writeContainer(values, open: "[", close: "]", to: &out, pretty: pretty, indent: indent) { value, out in
        value.write(to: &out, pretty: pretty, indent: indent + 1)
      }
    case .object(let members):
      writeContainer(members, open: "{", close: "}", to: &out, pretty: pretty, indent: indent) { member, out in
        Self.writeString(member.0, to: &out)
        out += pretty ? ": " : ":"
        member.1.write(to: &out, pretty: pretty, indent: indent + 1)
      }
    }
  }

  private func writeContainer<Element>(
    _ elements: [Element], open: String, close: String, to out: inout String, pretty: Bool, indent: Int,
    _ writeElement: (Element, inout String) -> Void
  ) {
    out += open
    guard !elements.isEmpty else { return out += close }
    for (i, element) in elements.enumerated() {
      if i > 0 { out += "," }
      if pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
      writeElement(element, &out)
    }
    if pretty { out += "\n" + String(repeating: "  ", count: indent) }
    out += close
  }

  private static func writeString(_ text: String, to out: inout String) {
    out += "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case "\u{08}": out += "\\b"
      case "\u{0C}": out += "\\f"
      case _ where scalar.value < 0x20 || scalar.value == 0x7F:
        let hex = String(scalar.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    out += "\""
  }
}
