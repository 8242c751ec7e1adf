import Foundation

/// A tile's class scores as the JSON object stored in its row, written and read without
/// Foundation's JSONSerialization, which cost most of the time of ingest and of large queries.
/// Keys are sorted; anything this reader does not expect (escapes, nesting) goes to
/// JSONSerialization instead.
enum ScoresJSON {
  static func encode(_ scores: [String: Double]) -> String {
    var text = "{"
    for (index, key) in scores.keys.sorted().enumerated() {
      if index > 0 { text += "," }
      text += "\""
      for scalar in key.unicodeScalars {
        switch scalar {
        case "\"": text += "\\\""
        case "\\": text += "\\\\"
        case _ where scalar.value < 0x20: text += String(format: "\\u%04x", scalar.value)
        default: text.unicodeScalars.append(scalar)
        }
      }
      text += "\":"
      text += "\(scores[key]!)"
    }
    return text + "}"
  }

  static func decode(_ text: String) -> [String: Double] {
    if let fast = decodeFlat(text) { return fast }
    return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Double] ?? [:]
  }

  /// `{"key":number,…}` with no escapes in keys; nil for anything else.
  private static func decodeFlat(_ text: String) -> [String: Double]? {
    var utf8 = text.utf8[...]
    guard utf8.popFirst() == UInt8(ascii: "{"), utf8.popLast() == UInt8(ascii: "}") else { return nil }
    var scores: [String: Double] = [:]
    while !utf8.isEmpty {
      guard utf8.popFirst() == UInt8(ascii: "\""), let close = utf8.firstIndex(of: UInt8(ascii: "\"")) else {
        return nil
      }
      let key = utf8[..<close]
      guard !key.contains(UInt8(ascii: "\\")) else { return nil }
      utf8 = utf8[utf8.index(after: close)...]
      guard utf8.popFirst() == UInt8(ascii: ":") else { return nil }
      let end = utf8.firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
      guard let value = Double(Substring(utf8[..<end])) else { return nil }
      scores[String(Substring(key))] = value
      utf8 = end == utf8.endIndex ? utf8[end...] : utf8[utf8.index(after: end)...]
    }
    return scores
  }
}
