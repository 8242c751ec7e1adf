import ShoalRPC
import ShoalService

/// The rules for names users choose, with errors that name the field.
enum RegistryNames {
  /// Organisations: [a-z0-9-], 2 to 40 characters, starting with a letter.
  static func checkOrganization(_ name: String, field: String = "organization") throws(RPCError) {
    try CallerOrganization.checkName(name, field: field)
  }

  /// Principals: [A-Za-z0-9_.-], 1 to 64 characters.
  static func checkPrincipal(_ name: String) throws(RPCError) {
    guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy(isNameByte) else {
      throw RPCError(.invalidArgument, "principal '\(name)' must be 1–64 letters, digits, '_', '.' and '-'")
    }
  }

  /// Models: [A-Za-z0-9_.-], 1 to 100 characters.
  static func checkModel(_ name: String) throws(RPCError) {
    guard (1...100).contains(name.utf8.count), name.utf8.allSatisfy(isNameByte) else {
      throw RPCError(.invalidArgument, "name '\(name)' must be 1–100 letters, digits, '_', '.' and '-'")
    }
  }

  /// Aliases: [A-Za-z0-9_-], 1 to 64 characters; `latest` and `v<N>` are reserved.
  static func checkAlias(_ alias: String) throws(RPCError) {
    guard (1...64).contains(alias.utf8.count),
      alias.utf8.allSatisfy({ isNameByte($0) && $0 != 46 })
    else {
      throw RPCError(.invalidArgument, "alias '\(alias)' must be 1–64 letters, digits, '_' and '-'")
    }
    if alias == "latest" || versionNumber(inAlias: alias) != nil {
      throw RPCError(.invalidArgument, "alias '\(alias)' is reserved ('latest' and 'v<N>' always mean what they say)")
    }
  }

  /// N for the reserved alias `v<N>`.
  static func versionNumber(inAlias alias: String) -> Int64? {
    guard alias.hasPrefix("v"), alias.count > 1 else { return nil }
    return Int64(alias.dropFirst())
  }

  /// Semantic versions: MAJOR.MINOR.PATCH with optional -pre-release and +build (semver.org).
  static func checkSemver(_ text: String) throws(RPCError) {
    guard !text.isEmpty else { return }
    var core = Substring(text)
    if let plus = core.firstIndex(of: "+") { core = core[..<plus] }
    if let dash = core.firstIndex(of: "-") { core = core[..<dash] }
    let parts = core.split(separator: ".", omittingEmptySubsequences: false)
    let valid =
      parts.count == 3
      && parts.allSatisfy { part in
        !part.isEmpty && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && (part == "0" || part.first != "0")
      }
    guard valid, text.utf8.count <= 64 else {
      throw RPCError(.invalidArgument, "semver '\(text)' is not MAJOR.MINOR.PATCH[-pre][+build] (for example 1.4.0)")
    }
  }

  /// Tags the mesh itself reads, which may be longer: a version's drift reference (JSON).
  static let longTags: Set<String> = ["shoal.drift"]

  /// Tags: at most 50, keys 1–64 characters, values at most 256 (16 KiB for `longTags`).
  static func checkTags(_ tags: [String: String], field: String = "tags") throws(RPCError) {
    guard tags.count <= 50 else { throw RPCError(.invalidArgument, "\(field): at most 50 tags, given \(tags.count)") }
    for (key, value) in tags {
      guard (1...64).contains(key.utf8.count) else {
        throw RPCError(.invalidArgument, "\(field): key '\(key.prefix(80))' must be 1–64 bytes")
      }
      let limit = longTags.contains(key) ? 16 << 10 : 256
      guard value.utf8.count <= limit else {
        throw RPCError(
          .invalidArgument, "\(field): the value of '\(key)' is \(value.utf8.count) bytes; at most \(limit)")
      }
    }
  }

  private static func isNameByte(_ byte: UInt8) -> Bool {
    (65...90).contains(byte) || (97...122).contains(byte) || (48...57).contains(byte) || byte == 95 || byte == 46
      || byte == 45
  }
}
