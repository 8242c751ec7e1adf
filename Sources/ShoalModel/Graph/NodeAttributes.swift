import ShoalProto

/// A node's attributes, read by the operator that builds the node's kernel. Every attribute the
/// operator does not read is reported as unsupported, so nothing a model says is silently ignored.
final class NodeAttributes {
  let opType: String
  private let attributes: [String: Onnx.AttributeProto]
  private var read: Set<String> = []

  init(opType: String, attributes: [Onnx.AttributeProto]) {
    self.opType = opType
    self.attributes = Dictionary(attributes.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
  }

  /// The attributes no operator code read, sorted.
  var unread: [String] { attributes.keys.filter { !read.contains($0) }.sorted() }

  /// Whether the node sets `name`.
  func has(_ name: String) -> Bool { attributes[name] != nil }

  /// Marks attributes that do not change inference (training momentum, legacy flags).
  func ignore(_ names: String...) { read.formUnion(names) }

  private func attribute(_ name: String) -> Onnx.AttributeProto? {
    read.insert(name)
    return attributes[name]
  }

  func int(_ name: String) -> Int? { attribute(name).map { Int($0.i) } }
  func int(_ name: String, default value: Int) -> Int { int(name) ?? value }

  func ints(_ name: String) -> [Int]? { attribute(name).map { $0.ints.map { Int($0) } } }

  func float(_ name: String) -> Float? { attribute(name).map(\.f) }
  func float(_ name: String, default value: Float) -> Float { float(name) ?? value }

  func floats(_ name: String) -> [Float]? { attribute(name).map(\.floats) }

  func string(_ name: String) -> String? { attribute(name).map { String(decoding: $0.s, as: UTF8.self) } }
  func string(_ name: String, default value: String) -> String { string(name) ?? value }

  func tensor(_ name: String) throws(ModelError) -> Tensor? {
    guard let proto = attribute(name)?.t else { return nil }
    return try Tensor(onnx: proto)
  }

  /// Fails unless the attribute, when present, is one of `allowed`.
  func string(_ name: String, default value: String, oneOf allowed: [String]) throws(ModelError) -> String {
    let given = string(name, default: value)
    guard allowed.contains(given) else {
      throw ModelError(
        .unsupported, "\(opType): \(name) '\(given)' is not supported (\(allowed.joined(separator: ", ")) are)")
    }
    return given
  }
}
