/// Accumulates generated source text with indentation.
struct CodeWriter {
  private(set) var text = ""
  private var indentLevel = 0

  /// Appends one line at the current indentation (an empty string appends a blank line).
  mutating func line(_ content: String = "") {
    if content.isEmpty {
      text += "\n"
    } else {
      text += String(repeating: "  ", count: indentLevel) + content + "\n"
    }
  }

  /// Appends `opening`, indents what `body` writes, then appends `closing`.
  mutating func block(
    _ opening: String, closing: String = "}", _ body: (inout CodeWriter) throws(GenerationError) -> Void
  ) throws(GenerationError) {
    line(opening)
    indentLevel += 1
    try body(&self)
    indentLevel -= 1
    line(closing)
  }

  /// Appends a comment as `///` documentation lines.
  mutating func doc(_ comment: String) {
    var lines = comment.split(separator: "\n", omittingEmptySubsequences: false).map {
      $0.hasPrefix(" ") ? String($0.dropFirst()) : String($0)
    }
    while lines.last?.trimmingSpaces.isEmpty == true { lines.removeLast() }
    while lines.first?.trimmingSpaces.isEmpty == true { lines.removeFirst() }
    for docLine in lines { line(docLine.trimmingSpaces.isEmpty ? "///" : "/// \(docLine)") }
  }
}

extension String {
  var trimmingSpaces: String {
    var result = Substring(self)
    while result.first == " " || result.first == "\t" { result.removeFirst() }
    while result.last == " " || result.last == "\t" { result.removeLast() }
    return String(result)
  }
}
