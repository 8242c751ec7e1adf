/// Every message and enum of a descriptor set, by fully qualified name, with the Swift and C
/// names the generator gives them and which fields need a box to break a cycle.
struct TypeTable {
  struct MessageInfo {
    var message: ProtoMessageType
    var file: String
    /// Fully qualified Swift name: `TestingV1.Sample.Point`.
    var swiftName: String
  }

  struct EnumInfo {
    var enumType: ProtoEnumType
    var swiftName: String
  }

  private(set) var messages: [String: MessageInfo] = [:]
  private(set) var enums: [String: EnumInfo] = [:]

  init(files: [ProtoFile]) {
    for file in files {
      let namespace = Naming.namespace(forPackage: file.package)
      for message in file.messages { addMessage(message, file: file.name, swiftPrefix: namespace) }
      for enumType in file.enums {
        enums[enumType.fullName] = EnumInfo(
          enumType: enumType, swiftName: "\(namespace).\(Naming.typeName(enumType.name))")
      }
    }
  }

  private mutating func addMessage(_ message: ProtoMessageType, file: String, swiftPrefix: String) {
    let swiftName = "\(swiftPrefix).\(Naming.typeName(message.name))"
    messages[message.fullName] = MessageInfo(message: message, file: file, swiftName: swiftName)
    for nested in message.nestedMessages { addMessage(nested, file: file, swiftPrefix: swiftName) }
    for enumType in message.nestedEnums {
      enums[enumType.fullName] = EnumInfo(
        enumType: enumType, swiftName: "\(swiftName).\(Naming.typeName(enumType.name))")
    }
  }

  /// The map entry message of a `map` field, if the field is one.
  func mapEntry(of field: ProtoField) -> ProtoMessageType? {
    guard field.label == .repeated, field.kind == .message, let entry = messages[field.typeName]?.message,
      entry.isMapEntry
    else { return nil }
    return entry
  }

  /// Whether a singular field of message type `fieldType` inside `owner` makes the struct
  /// contain itself: `fieldType` is `owner` or reaches it through singular message fields.
  func isRecursive(fieldType: String, owner: String) -> Bool {
    var seen: Set<String> = []
    var stack = [fieldType]
    while let name = stack.popLast() {
      if name == owner { return true }
      guard seen.insert(name).inserted, let message = messages[name]?.message else { continue }
      for field in message.fields where field.kind == .message && field.label != .repeated {
        stack.append(field.typeName)
      }
    }
    return false
  }
}
