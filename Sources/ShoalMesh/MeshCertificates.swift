import CCertificates
public import Foundation

/// A mesh's own certificate authority, in a directory: `ca.pem` (the certificate everyone
/// trusts) and `ca-key.pem` (its key, readable by its owner only), and the certificates it
/// issues there as `NAME.pem` and `NAME-key.pem`.
///
/// Keys are ECDSA P-256; a certificate it issues serves TLS servers and clients both, so one
/// file is a service's identity in either direction (mutual TLS).
public struct MeshCertificates: Sendable {
  /// The directory.
  public let directory: URL

  /// The CA certificate's file.
  public var authority: URL { directory.appendingPathComponent("ca.pem") }
  private var authorityKey: URL { directory.appendingPathComponent("ca-key.pem") }

  /// The certificate authority in `directory`, made there (valid for `days`) if it has none.
  public init(directory: URL, days: Int = 3650) throws(MeshFileError) {
    self.directory = directory
    if FileManager.default.fileExists(atPath: authority.path) { return }
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw MeshFileError(file: directory.path, key: nil, "cannot be made: \(error.localizedDescription)")
    }
    let (certificate, key) = try Self.make(name: "Shoal mesh CA", alternativeNames: nil, authority: true, days: days)
    try write(key, to: authorityKey, privately: true)
    try write(certificate, to: authority, privately: false)
  }

  /// Issues a certificate for `name`, valid for each of `hosts` (names or IP addresses), and
  /// returns its certificate and key files. An existing certificate of that name is replaced.
  public func issue(
    name: String, hosts: [String], days: Int = 825
  ) throws(MeshFileError) -> (
    certificate: URL, key: URL
  ) {
    guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
      throw MeshFileError(
        file: directory.path, key: nil, "cannot hold a certificate named '\(name)': use letters, digits, - _ and .",
        kind: "certificate directory")
    }
    let alternativeNames = hosts.map { host in
      host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." })
        ? "IP:\(host)" : "DNS:\(host)"
    }
    let issuer: (certificate: String, key: String)
    do {
      issuer = (
        try String(contentsOf: authority, encoding: .utf8), try String(contentsOf: authorityKey, encoding: .utf8)
      )
    } catch {
      throw MeshFileError(
        file: directory.path, key: nil, "has no readable CA (ca.pem and ca-key.pem): \(error.localizedDescription)",
        kind: "certificate directory")
    }
    let (certificate, key) = try Self.make(
      name: name, alternativeNames: alternativeNames.joined(separator: ","), authority: false, days: days,
      issuer: issuer)
    let certificateFile = directory.appendingPathComponent("\(name).pem")
    let keyFile = directory.appendingPathComponent("\(name)-key.pem")
    try write(key, to: keyFile, privately: true)
    try write(certificate, to: certificateFile, privately: false)
    return (certificateFile, keyFile)
  }

  private func write(_ text: String, to file: URL, privately: Bool) throws(MeshFileError) {
    do {
      try? FileManager.default.removeItem(at: file)
      guard
        FileManager.default.createFile(
          atPath: file.path, contents: Data(text.utf8), attributes: [.posixPermissions: privately ? 0o600 : 0o644])
      else { throw CocoaError(.fileWriteUnknown) }
    } catch {
      throw MeshFileError(
        file: file.path, key: nil, "cannot be written: \(error.localizedDescription)", kind: "certificate file")
    }
  }

  private static func make(
    name: String, alternativeNames: String?, authority: Bool, days: Int,
    issuer: (certificate: String, key: String)? = nil
  ) throws(MeshFileError) -> (certificate: String, key: String) {
    var certificate: UnsafeMutablePointer<CChar>?
    var key: UnsafeMutablePointer<CChar>?
    var error = [CChar](repeating: 0, count: 512)
    let status = shoal_make_certificate(
      name, alternativeNames, authority ? 1 : 0, Int32(clamping: days), issuer?.certificate, issuer?.key,
      &certificate, &key, &error, error.count)
    defer {
      free(certificate)
      free(key)
    }
    guard status == 0, let certificate, let key else {
      let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      throw MeshFileError(file: name, key: nil, "cannot be made: \(reason)", kind: "certificate")
    }
    return (String(cString: certificate), String(cString: key))
  }
}
