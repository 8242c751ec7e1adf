/// What a Label Studio project's labelling config asks a backend for: its control tags of the
/// kinds Shoal predicts (`Choices`, `RectangleLabels`, `PolygonLabels`), each with its labels and
/// the task data field of the `Image` it labels.
///
/// The config is XML; this reads its tags and attributes only (comments, processing
/// instructions and text are skipped), which is all Label Studio's own parser keeps of it.
struct LabelConfig: Sendable, Equatable {
  enum Kind: String, Sendable {
    case choices, rectanglelabels, polygonlabels
  }

  struct Control: Sendable, Equatable {
    var kind: Kind
    /// `from_name` in results.
    var name: String
    /// `to_name` in results: the `Image` tag's name.
    var toName: String
    /// The labels (`<Choice value>` or `<Label value>`), in order.
    var labels: [String]
    /// The task data field holding the image's URL (`$image` → `image`).
    var dataKey: String
  }

  let controls: [Control]

  /// The controls of `xml` that label an image.
  ///
  /// - Throws: 400 naming what is wrong: not XML, no control Shoal predicts for, or a control
  ///   whose `toName` names no `Image`.
  init(xml: String) throws(GatewayError) {
    var images: [String: String] = [:]
    var found: [Control] = []
    var open: Int?
    for tag in try Self.tags(xml) {
      let name = tag.name.lowercased()
      if tag.closing {
        if let index = open, found[index].kind.rawValue == name { open = nil }
        continue
      }
      if let kind = Kind(rawValue: name) {
        guard let controlName = tag.attributes["name"], let toName = tag.attributes["toName"] else {
          throw GatewayError.invalid("label_config: <\(tag.name)> needs name and toName")
        }
        found.append(Control(kind: kind, name: controlName, toName: toName, labels: [], dataKey: ""))
        open = tag.selfClosing ? nil : found.count - 1
      } else if name == "choice" || name == "label", let index = open, let value = tag.attributes["value"] {
        found[index].labels.append(value)
      } else if name == "image", let imageName = tag.attributes["name"], let value = tag.attributes["value"] {
        images[imageName] = value.hasPrefix("$") ? String(value.dropFirst()) : value
      }
    }
    guard !found.isEmpty else {
      throw GatewayError.invalid(
        "label_config: it has no Choices, RectangleLabels or PolygonLabels control for Shoal to predict")
    }
    for index in found.indices {
      guard let key = images[found[index].toName] else {
        throw GatewayError.invalid(
          "label_config: <\(found[index].kind.rawValue)> \(found[index].name) labels '\(found[index].toName)', "
            + "which is not an <Image>")
      }
      found[index].dataKey = key
    }
    controls = found
  }

  /// The control label that stands for a model's class: the same name, else the same name in
  /// another case; nil when the control has labels and none is the class.
  static func label(for className: String, in control: Control) -> String? {
    if control.labels.isEmpty || control.labels.contains(className) { return className }
    return control.labels.first { $0.lowercased() == className.lowercased() }
  }

  // MARK: Tags

  struct Tag {
    var name: String
    var attributes: [String: String]
    var closing: Bool
    var selfClosing: Bool
  }

  /// The element tags of `xml`, in order.
  static func tags(_ xml: String) throws(GatewayError) -> [Tag] {
    let text = Array(xml.unicodeScalars)
    var tags: [Tag] = []
    var index = 0
    func fail(_ what: String) -> GatewayError { GatewayError.invalid("label_config: \(what)") }
    func skip(past end: String) throws(GatewayError) {
      let target = Array(end.unicodeScalars)
      while index + target.count <= text.count {
        if Array(text[index..<(index + target.count)]) == target {
          index += target.count
          return
        }
        index += 1
      }
      throw fail("'\(end)' is missing")
    }
    func starts(with prefix: String) -> Bool {
      let scalars = Array(prefix.unicodeScalars)
      return index + scalars.count <= text.count && Array(text[index..<(index + scalars.count)]) == scalars
    }
    func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
      scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_:.".unicodeScalars.contains(scalar)
    }
    func readName() -> String {
      var name = ""
      while index < text.count, isNameScalar(text[index]) {
        name.unicodeScalars.append(text[index])
        index += 1
      }
      return name
    }
    func skipSpace() {
      while index < text.count, text[index].properties.isWhitespace { index += 1 }
    }
    while index < text.count {
      guard text[index] == "<" else {
        index += 1
        continue
      }
      if starts(with: "<!--") {
        try skip(past: "-->")
        continue
      }
      if starts(with: "<![CDATA[") {
        try skip(past: "]]>")
        continue
      }
      if starts(with: "<?") || starts(with: "<!") {
        try skip(past: ">")
        continue
      }
      index += 1
      var tag = Tag(name: "", attributes: [:], closing: false, selfClosing: false)
      if index < text.count, text[index] == "/" {
        tag.closing = true
        index += 1
      }
      tag.name = readName()
      guard !tag.name.isEmpty else { throw fail("a '<' at character \(index) starts no tag") }
      while true {
        skipSpace()
        guard index < text.count else { throw fail("<\(tag.name)> is not closed") }
        if text[index] == ">" {
          index += 1
          break
        }
        if text[index] == "/", index + 1 < text.count, text[index + 1] == ">" {
          tag.selfClosing = true
          index += 2
          break
        }
        let attribute = readName()
        guard !attribute.isEmpty else { throw fail("<\(tag.name)> has a stray '\(text[index])'") }
        skipSpace()
        guard index < text.count, text[index] == "=" else { throw fail("<\(tag.name)> \(attribute) has no value") }
        index += 1
        skipSpace()
        guard index < text.count, text[index] == "\"" || text[index] == "'" else {
          throw fail("<\(tag.name)> \(attribute): the value must be quoted")
        }
        let quote = text[index]
        index += 1
        var value = ""
        while index < text.count, text[index] != quote {
          value.unicodeScalars.append(text[index])
          index += 1
        }
        guard index < text.count else { throw fail("<\(tag.name)> \(attribute): the value is not closed") }
        index += 1
        tag.attributes[attribute] = Self.unescaped(value)
      }
      tags.append(tag)
    }
    return tags
  }

  /// `text` with XML's entity and character references replaced.
  static func unescaped(_ text: String) -> String {
    guard text.contains("&") else { return text }
    var result = ""
    var rest = Substring(text)
    while let ampersand = rest.firstIndex(of: "&") {
      result += rest[..<ampersand]
      guard let semicolon = rest[ampersand...].firstIndex(of: ";") else { break }
      let entity = rest[rest.index(after: ampersand)..<semicolon]
      let named = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
      if let replacement = named[String(entity)] {
        result += replacement
      } else if entity.hasPrefix("#"),
        let code = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : UInt32(entity.dropFirst()),
        let scalar = Unicode.Scalar(code)
      {
        result.unicodeScalars.append(scalar)
      } else {
        result += rest[ampersand...semicolon]
      }
      rest = rest[rest.index(after: semicolon)...]
    }
    return result + rest
  }
}
