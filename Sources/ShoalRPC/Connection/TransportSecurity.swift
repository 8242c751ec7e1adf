import NIOConcurrencyHelpers
public import NIOSSL

#if canImport(Glibc)
  import Glibc
#endif

/// How a process protects its TCP connections: the certificates of `tls://` addresses, and
/// whether tokens may cross plaintext `tcp://` ones.
///
/// One process has one identity: its certificate is the one its servers show and the one its
/// clients show to servers that ask for one (mutual TLS), and its CA file is what it trusts in
/// both directions. `shoal admin cert` makes a CA and such certificates for a mesh.
///
/// A bearer token over plaintext TCP could be read by anyone on the path, so neither side lets
/// one cross a plaintext connection that leaves the machine: the client does not send it and the
/// server refuses the call, unless `allowsPlaintextTokens` says the network is trusted (a
/// private link, or a sidecar proxy that encrypts).
public struct TransportSecurity: Sendable, Hashable {
  /// Whether a server asks its TLS clients for a certificate.
  public enum ClientCertificates: String, Sendable, Hashable, CaseIterable {
    /// It does not ask.
    case none
    /// It asks, and checks one that is shown, but accepts clients without one.
    case optional
    /// Mutual TLS: a client without a certificate that the CA signed is refused.
    case require
  }

  /// The PEM file of the certificates to trust (the mesh's CA); nil: the system's roots.
  public var trustRoots: String?
  /// The PEM file of this process's certificate (chain), for its `tls://` listeners and for
  /// servers that ask for a client certificate.
  public var certificate: String?
  /// The PEM file of the certificate's private key.
  public var privateKey: String?
  /// Whether this process's TLS servers ask clients for a certificate.
  public var clientCertificates: ClientCertificates
  /// Whether tokens may cross plaintext TCP that is not loopback.
  public var allowsPlaintextTokens: Bool
  /// Whether a client checks that the server's certificate names the host it dialled. Off only
  /// where addresses are not known in advance (pods), so that any server with a certificate of
  /// the CA is accepted: then give the mesh a CA of its own.
  public var verifiesHostname: Bool

  public init(
    trustRoots: String? = nil, certificate: String? = nil, privateKey: String? = nil,
    clientCertificates: ClientCertificates = .none, allowsPlaintextTokens: Bool = false, verifiesHostname: Bool = true
  ) {
    self.trustRoots = trustRoots
    self.certificate = certificate
    self.privateKey = privateKey
    self.clientCertificates = clientCertificates
    self.allowsPlaintextTokens = allowsPlaintextTokens
    self.verifiesHostname = verifiesHostname
  }

  private static let current = NIOLockedValueBox<TransportSecurity>(fromEnvironment())

  /// The process's settings, which `ConnectionConfig.defaults` carries: from `SHOAL_TLS_CA`,
  /// `SHOAL_TLS_CERT`, `SHOAL_TLS_KEY`, `SHOAL_TLS_CLIENT_CERTS` (`none`, `optional`,
  /// `require`), `SHOAL_TLS_VERIFY_HOSTNAME=0` and `SHOAL_PLAINTEXT_TOKENS=1` at start, until a
  /// `shoal serve` sets its own.
  public static var process: TransportSecurity {
    get { current.withLockedValue { $0 } }
    set { current.withLockedValue { $0 = newValue } }
  }

  /// The settings the process's environment gives.
  public static func fromEnvironment() -> TransportSecurity {
    fromEnvironment { getenv($0).map { String(cString: $0) } }
  }

  /// The settings an environment gives (`variable` reads one).
  public static func fromEnvironment(_ variable: (String) -> String?) -> TransportSecurity {
    func nonEmpty(_ key: String) -> String? { variable(key).flatMap { $0.isEmpty ? nil : $0 } }
    return TransportSecurity(
      trustRoots: nonEmpty("SHOAL_TLS_CA"), certificate: nonEmpty("SHOAL_TLS_CERT"),
      privateKey: nonEmpty("SHOAL_TLS_KEY"),
      clientCertificates: nonEmpty("SHOAL_TLS_CLIENT_CERTS").flatMap(ClientCertificates.init(rawValue:)) ?? .none,
      allowsPlaintextTokens: ["1", "true", "yes"].contains(variable("SHOAL_PLAINTEXT_TOKENS")?.lowercased()),
      verifiesHostname: !["0", "false", "no"].contains(variable("SHOAL_TLS_VERIFY_HOSTNAME")?.lowercased()))
  }

  // MARK: TLS contexts

  private static let contexts = NIOLockedValueBox<[ContextKey: NIOSSLContext]>([:])

  private struct ContextKey: Hashable {
    var security: TransportSecurity
    var server: Bool
  }

  /// The TLS context for this process's `tls://` listeners (made once per settings).
  ///
  /// - Throws: `RPCError` `FAILED_PRECONDITION` when the certificate or key is not given, or
  ///   `INVALID_ARGUMENT` naming the file that cannot be read.
  func serverContext() throws(RPCError) -> NIOSSLContext {
    try context(server: true) { () throws(RPCError) in
      guard let certificate, let privateKey else {
        throw RPCError(
          .failedPrecondition,
          "a tls:// listener needs a certificate and its key (`--tls-cert` and `--tls-key`, or the mesh file's "
            + "\"tls\" section); `shoal admin cert` makes them")
      }
      var configuration = TLSConfiguration.makeServerConfiguration(
        certificateChain: try Self.certificates(certificate).map { .certificate($0) },
        privateKey: .privateKey(try Self.key(privateKey)))
      configuration.minimumTLSVersion = .tlsv12
      switch clientCertificates {
      case .none: configuration.certificateVerification = .none
      case .optional: configuration.certificateVerification = .optionalVerification
      case .require: configuration.certificateVerification = .noHostnameVerification
      }
      if let trustRoots { configuration.trustRoots = .certificates(try Self.certificates(trustRoots)) }
      return configuration
    }
  }

  /// The TLS context for this process's connections to `tls://` addresses.
  func clientContext() throws(RPCError) -> NIOSSLContext {
    try context(server: false) { () throws(RPCError) in
      var configuration = TLSConfiguration.makeClientConfiguration()
      configuration.minimumTLSVersion = .tlsv12
      if !verifiesHostname { configuration.certificateVerification = .noHostnameVerification }
      if let trustRoots { configuration.trustRoots = .certificates(try Self.certificates(trustRoots)) }
      if let certificate, let privateKey {
        configuration.certificateChain = try Self.certificates(certificate).map { .certificate($0) }
        configuration.privateKey = .privateKey(try Self.key(privateKey))
      }
      return configuration
    }
  }

  private func context(
    server: Bool, _ configuration: () throws(RPCError) -> TLSConfiguration
  ) throws(RPCError) -> NIOSSLContext {
    let key = ContextKey(security: self, server: server)
    if let known = Self.contexts.withLockedValue({ $0[key] }) { return known }
    let made: NIOSSLContext
    do {
      made = try NIOSSLContext(configuration: try configuration())
    } catch let error as RPCError {
      throw error
    } catch {
      throw RPCError(.invalidArgument, "the TLS settings cannot be used: \(error)", cause: error)
    }
    Self.contexts.withLockedValue { $0[key] = made }
    return made
  }

  private static func certificates(_ path: String) throws(RPCError) -> [NIOSSLCertificate] {
    do {
      let chain = try NIOSSLCertificate.fromPEMFile(path)
      guard !chain.isEmpty else { throw RPCError(.invalidArgument, "\(path) holds no PEM certificate") }
      return chain
    } catch let error as RPCError {
      throw error
    } catch {
      throw RPCError(.invalidArgument, "cannot read the certificates in \(path): \(error)", cause: error)
    }
  }

  private static func key(_ path: String) throws(RPCError) -> NIOSSLPrivateKey {
    do {
      return try NIOSSLPrivateKey(file: path, format: .pem)
    } catch {
      throw RPCError(.invalidArgument, "cannot read the private key in \(path): \(error)", cause: error)
    }
  }
}

extension TransportSecurity {
  /// What a TLS failure with `address` means, for people: BoringSSL's reason and what to check.
  static func explain(_ error: any Error, address: RPCAddress) -> String {
    let text = "\(error)"
    let hints: [(reason: String, hint: String)] = [
      (
        "CERTIFICATE_VERIFY_FAILED",
        "the server's certificate is not signed by the CA this side trusts (SHOAL_TLS_CA), is not valid for \(address.hostAndPort?.host ?? "the host"), or has expired"
      ),
      ("CERTIFICATE_REQUIRED", "the server requires a client certificate (SHOAL_TLS_CERT and SHOAL_TLS_KEY)"),
      ("UNKNOWN_CA", "the server does not trust this side's certificate: it was signed by another CA"),
      ("BAD_CERTIFICATE", "the server refused this side's certificate"),
      ("CERTIFICATE_EXPIRED", "a certificate has expired"),
      ("WRONG_VERSION_NUMBER", "the server does not speak TLS there (a tcp:// address?)"),
    ]
    for (reason, hint) in hints where text.contains(reason) {
      return "TLS with \(address) failed: \(reason): \(hint)"
    }
    return "TLS with \(address) failed: \(text)"
  }
}

extension RPCError {
  /// The refusal of a token that would cross plaintext TCP to or from `address`.
  static func plaintextToken(_ what: String) -> RPCError {
    RPCError(
      .unauthenticated,
      "\(what): a token must not cross plaintext TCP off this machine. Use tls:// addresses (`shoal admin cert` "
        + "makes the certificates), or, on a network you trust, \"plaintext_tokens\": true in the mesh file's "
        + "\"tls\" section (SHOAL_PLAINTEXT_TOKENS=1 for a client)")
  }
}
