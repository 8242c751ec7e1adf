/// The name of a blob: the SHA-256 of its bytes, referred to as `blob:sha256:<64 hex digits>`.
public struct BlobDigest: Sendable, Hashable, CustomStringConvertible {
  /// 64 lower-case hex digits.
  public let hex: String

  /// A digest from its hex form.
  ///
  /// - Throws: `StoreError.invalid` unless `hex` is 64 hex digits.
  public init(hex: String) throws(StoreError) {
    let lower = hex.lowercased()
    guard lower.utf8.count == 64, lower.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
      throw StoreError(.invalid, "'\(hex)' is not a SHA-256 digest (64 hex digits)")
    }
    self.hex = lower
  }

  /// A digest from a reference `blob:sha256:<hex>` (or `sha256:<hex>`).
  ///
  /// - Throws: `StoreError.invalid` naming the expected form.
  public init(reference: String) throws(StoreError) {
    var text = Substring(reference)
    if text.hasPrefix("blob:") { text = text.dropFirst(5) }
    guard text.hasPrefix("sha256:") else {
      throw StoreError(.invalid, "'\(reference)' is not a blob reference (blob:sha256:<64 hex digits>)")
    }
    try self.init(hex: String(text.dropFirst(7)))
  }

  /// `blob:sha256:<hex>`.
  public var reference: String { "blob:sha256:\(hex)" }
  /// The same as `reference`.
  public var description: String { reference }

  /// The digest of `bytes`.
  public static func of(_ bytes: [UInt8]) -> BlobDigest {
    BlobDigest(verifiedHex: SHA256.hex(of: bytes))
  }

  init(verifiedHex: String) { hex = verifiedHex }

  static func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text = [UInt8]()
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 15)])
    }
    return String(decoding: text, as: UTF8.self)
  }
}
