/// How proto names become Swift and C names.
enum Naming {
  static let swiftKeywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init", "inout",
    "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public", "rethrows", "static",
    "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue", "default", "defer", "do", "else",
    "fallthrough", "for", "guard", "if", "in", "repeat", "return", "throw", "switch", "where", "while", "Any", "as",
    "await", "false", "is", "nil", "self", "Self", "super", "throws", "true", "try", "some", "any", "Type", "Protocol",
  ]

  /// Standard-library type names that a generated type must not shadow inside its scope.
  static let reservedTypeNames: Set<String> = [
    "Optional", "Sequence", "Collection", "Array", "Dictionary", "Set", "String", "Character", "Bool", "Int", "Int8",
    "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64", "Float", "Double", "Error", "Result",
    "Never", "Any", "AnyObject", "Type", "Protocol", "Self", "Hashable", "Equatable", "Sendable", "ProtoMessage",
    "ProtoEnum", "ProtoBox", "JSONValue",
  ]

  /// Members of the generated types' protocols, which a property must not hide.
  static let reservedMemberNames: Set<String> = [
    "protoMessageName", "jsonValue", "serializedBytes", "jsonString", "hashValue", "protoEnumName", "knownValues",
    "rawValue", "protoName",
  ]

  /// The namespace enum for a proto package: `shoal.rpc.v1` → `RpcV1`, `onnx` → `Onnx`.
  static func namespace(forPackage package: String) -> String {
    var parts = package.split(separator: ".").map(String.init)
    if parts.count > 1 && parts.first == "shoal" { parts.removeFirst() }
    return parts.map { upperFirst(camel($0)) }.joined()
  }

  /// A message or enum type's Swift name.
  static func typeName(_ protoName: String) -> String {
    reservedTypeNames.contains(protoName) ? protoName + "Message" : protoName
  }

  /// `f_double` → `fDouble`, escaped if it is a keyword.
  static func propertyName(_ protoName: String) -> String {
    var name = lowerFirst(camel(protoName))
    if name.first?.isNumber == true { name = "_" + name }
    if reservedMemberNames.contains(name) { name += "Field" }
    return name
  }

  /// A name as it can stand in declarations and member access.
  static func escaped(_ name: String) -> String {
    swiftKeywords.contains(name) ? "`\(name)`" : name
  }

  /// `COLOUR_RED` in enum `Colour` → `red`; `NOT_SERVING` → `notServing`.
  static func enumCaseName(_ value: String, enumName: String) -> String {
    let prefix = upperSnake(enumName) + "_"
    var base = value
    if value.hasPrefix(prefix), value.count > prefix.count,
      let first = value.dropFirst(prefix.count).first, !first.isNumber
    {
      base = String(value.dropFirst(prefix.count))
    }
    let parts = base.split(separator: "_").map { $0.lowercased() }
    var name = parts.enumerated().map { $0.offset == 0 ? $0.element : upperFirst($0.element) }.joined()
    if name.first?.isNumber == true || name.isEmpty { name = "_" + name }
    return name
  }

  /// `snake_case_name` → `snakeCaseName` (the first letter kept as is).
  static func camel(_ name: String) -> String {
    let parts = name.split(separator: "_")
    return parts.enumerated().map { $0.offset == 0 ? String($0.element) : upperFirst(String($0.element)) }.joined()
  }

  /// `GoAwayCode` → `GO_AWAY_CODE`.
  static func upperSnake(_ name: String) -> String {
    var result = ""
    var previousWasLower = false
    for character in name {
      if character.isUppercase && previousWasLower { result += "_" }
      result += character.uppercased()
      previousWasLower = character.isLowercase || character.isNumber
    }
    return result
  }

  /// protoc-c's lower-case form of a name: `HealthCheckRequest` → `health_check_request`,
  /// `UserID` → `user_id` (an underscore before a capital that follows a non-capital).
  static func cLower(_ name: String) -> String {
    var result = ""
    var previousWasUpper = true
    for character in name {
      if character.isASCII && character.isUppercase {
        if !previousWasUpper { result += "_" }
        result += character.lowercased()
        previousWasUpper = true
      } else {
        result.append(character)
        previousWasUpper = false
      }
    }
    return result
  }

  /// protoc-c's symbol stem for a fully qualified name: `shoal.rpc.v1.Hello` → `shoal__rpc__v1__hello`.
  static func cSymbol(_ fullName: String) -> String {
    fullName.split(separator: ".").map { cLower(String($0)) }.joined(separator: "__")
  }

  static func upperFirst(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }
  static func lowerFirst(_ text: String) -> String { text.prefix(1).lowercased() + text.dropFirst() }
}
