import CCrypto

/// An incremental SHA-256 (OpenSSL's libcrypto, which uses the CPU's SHA extensions where present).
package struct SHA256: ~Copyable {
  private let context: OpaquePointer

  /// A fresh digest.
  package init() {
    context = EVP_MD_CTX_new()
    EVP_DigestInit_ex(context, EVP_sha256(), nil)
  }

  deinit { EVP_MD_CTX_free(context) }

  /// Adds `bytes`.
  package mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress else { return }
    EVP_DigestUpdate(context, base, bytes.count)
  }

  /// Adds `bytes`.
  package mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// The digest as 64 lower-case hex digits; the hash starts over afterwards.
  package mutating func finish() -> String {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    EVP_DigestFinal_ex(context, &digest, &length)
    EVP_DigestInit_ex(context, EVP_sha256(), nil)
    return BlobDigest.hex(digest)
  }

  /// The digest of `bytes`.
  package static func hex(of bytes: [UInt8]) -> String {
    var hash = SHA256()
    hash.update(bytes)
    return hash.finish()
  }
}
