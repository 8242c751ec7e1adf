public import Foundation

/// A mesh file: which services run, where they listen and where they keep their data.
///
/// ```json
/// {
///   "store": "sqlite",
///   "lease_ttl_seconds": 10,
///   "services": [
///     { "name": "registry", "listen": ["unix:registry.sock"] },
///     { "name": "bench", "listen": ["unix:bench.sock"] }
///   ]
/// }
/// ```
/// Unix socket paths are relative to the data directory. `registry` must be listed; it starts
/// first and the others find it at its first address.
public struct MeshFile: Sendable, Equatable {
  /// One service of the mesh.
  public struct Service: Sendable, Equatable {
    /// The service's name (`shoal serve NAME`).
    public var name: String
    /// Addresses to listen on; default `unix:<name>.sock`.
    public var listen: [String]
    /// This service's store, overriding the mesh's.
    public var store: String?
    /// False keeps the service listed but not started.
    public var enabled: Bool
    /// Where it serves GET /metrics (`HOST:PORT`, or `off`); nil: loopback, a port the OS chooses.
    public var metrics: String? = nil
    /// inference: the models loaded at start, as `REF[,key=value…]` (`shoal serve --load`).
    public var models: [String] = []
    /// inference: the default batching, as `key=value,…` (`shoal serve --batching`).
    public var batching: String? = nil
    /// inference: the most bytes of model files cached (`shoal serve --cache-size`).
    public var cacheSize: Int64? = nil
    /// inference: where drift alerts are posted.
    public var driftWebhook: String? = nil
    /// gateway: where it serves HTTP (`HOST:PORT`; port 0: one the OS chooses).
    public var http: String? = nil

    /// The settings of `shoal serve` that this entry gives beyond its addresses and store.
    public var serveArguments: [String] {
      var arguments: [String] = []
      if let metrics { arguments += ["--metrics", metrics] }
      if let batching { arguments += ["--batching", batching] }
      if let cacheSize { arguments += ["--cache-size", "\(cacheSize)"] }
      if let driftWebhook { arguments += ["--drift-webhook", driftWebhook] }
      if let http { arguments += ["--http", http] }
      for model in models { arguments += ["--load", model] }
      return arguments
    }
  }

  /// How the services protect TCP: their certificates, and whether tokens may cross plaintext.
  /// Paths are relative to the data directory.
  ///
  /// ```json
  /// "tls": { "ca": "tls/ca.pem", "certificate": "tls/host-a.pem", "key": "tls/host-a-key.pem",
  ///          "client_certificates": "require" }
  /// ```
  public struct TLS: Sendable, Equatable {
    /// The CA the services trust (`shoal admin cert` makes one).
    public var ca: String?
    /// The services' certificate, shown by their `tls://` listeners and to servers that ask.
    public var certificate: String?
    /// Its key.
    public var key: String?
    /// `none`, `optional` or `require` (mutual TLS).
    public var clientCertificates: String = "none"
    /// Whether tokens may cross plaintext TCP that is not loopback (a network you trust).
    public var plaintextTokens = false
    /// Whether clients check that a server's certificate names the host dialled (off for pods,
    /// whose addresses no certificate can know in advance).
    public var verifyHostname = true
  }

  /// The batching settings a mesh file may give (`batching` and each of `models`).
  static let batchingKeys: Set<String> = [
    "max_batch_size", "max_queue_delay_us", "preferred_batch_sizes", "max_queue_size", "instances",
  ]

  /// The store URL every service uses unless it names its own: `sqlite` or `postgres://…`.
  public var store: String
  /// The lease TTL services register with.
  public var leaseTTLSeconds: Double
  /// The services, in start order after the registry.
  public var services: [Service]
  /// TLS and token transport, for every service.
  public var tls: TLS?
  /// How long a service trusts the registry's word on a token (expiry and revocation take
  /// effect within it); nil: 30 s.
  public var tokenCacheSeconds: Double?

  /// The settings of `shoal serve` that the mesh gives every service.
  public var securityArguments: [String] {
    var arguments: [String] = []
    if let tls {
      if let ca = tls.ca { arguments += ["--tls-ca", ca] }
      if let certificate = tls.certificate { arguments += ["--tls-cert", certificate] }
      if let key = tls.key { arguments += ["--tls-key", key] }
      arguments += ["--tls-client-certs", tls.clientCertificates]
      if tls.plaintextTokens { arguments.append("--plaintext-tokens") }
      if !tls.verifyHostname { arguments.append("--tls-no-hostname-check") }
    }
    if let tokenCacheSeconds { arguments += ["--token-cache", "\(tokenCacheSeconds)"] }
    return arguments
  }

  /// The registry's entry.
  public var registry: Service { services.first { $0.name == "registry" }! }

  /// Reads and validates the mesh file at `path`.
  ///
  /// - Throws: `MeshFileError` naming the file and the key that is wrong.
  public init(contentsOf path: String) throws(MeshFileError) {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw MeshFileError(file: path, key: nil, "cannot be read: \(error.localizedDescription)")
    }
    try self.init(json: data, file: path)
  }

  /// Parses mesh JSON; `file` names it in errors.
  public init(json data: Data, file: String) throws(MeshFileError) {
    let root: Any
    do {
      root = try JSONSerialization.jsonObject(with: data)
    } catch {
      throw MeshFileError(file: file, key: nil, "is not valid JSON: \((error as NSError).localizedDescription)")
    }
    guard let object = root as? [String: Any] else {
      throw MeshFileError(file: file, key: nil, "must be a JSON object")
    }
    let reader = FieldReader(file: file)
    try reader.allowOnly(
      ["store", "lease_ttl_seconds", "services", "tls", "token_cache_seconds"], in: object, at: nil)
    store = try reader.string(object["store"], at: "store") ?? "sqlite"
    leaseTTLSeconds = try reader.number(object["lease_ttl_seconds"], at: "lease_ttl_seconds") ?? 10
    guard leaseTTLSeconds >= 1, leaseTTLSeconds <= 300 else {
      throw MeshFileError(file: file, key: "lease_ttl_seconds", "must be between 1 and 300 seconds")
    }
    if let cache = try reader.number(object["token_cache_seconds"], at: "token_cache_seconds") {
      guard cache >= 0, cache <= 3600 else {
        throw MeshFileError(file: file, key: "token_cache_seconds", "must be between 0 and 3600 seconds")
      }
      tokenCacheSeconds = cache
    }
    if let section = object["tls"] {
      guard let section = section as? [String: Any] else {
        throw MeshFileError(
          file: file, key: "tls", "must be an object (ca, certificate, key, client_certificates, plaintext_tokens)")
      }
      try reader.allowOnly(
        ["ca", "certificate", "key", "client_certificates", "plaintext_tokens"], in: section, at: "tls")
      var tls = TLS()
      tls.ca = try reader.string(section["ca"], at: "tls.ca")
      tls.certificate = try reader.string(section["certificate"], at: "tls.certificate")
      tls.key = try reader.string(section["key"], at: "tls.key")
      guard (tls.certificate == nil) == (tls.key == nil) else {
        throw MeshFileError(
          file: file, key: tls.key == nil ? "tls.key" : "tls.certificate", "is missing; give both certificate and key")
      }
      tls.clientCertificates =
        try reader.string(section["client_certificates"], at: "tls.client_certificates") ?? "none"
      guard ["none", "optional", "require"].contains(tls.clientCertificates) else {
        throw MeshFileError(
          file: file, key: "tls.client_certificates", "is '\(tls.clientCertificates)'; use none, optional or require")
      }
      if tls.clientCertificates != "none" && tls.ca == nil {
        throw MeshFileError(file: file, key: "tls.ca", "is missing; client certificates are checked against it")
      }
      tls.plaintextTokens = try reader.bool(section["plaintext_tokens"], at: "tls.plaintext_tokens") ?? false
      tls.verifyHostname = try reader.bool(section["verify_hostname"], at: "tls.verify_hostname") ?? true
      self.tls = tls
    }
    guard let list = object["services"] else {
      throw MeshFileError(file: file, key: "services", "is missing; list the services to run")
    }
    guard let entries = list as? [Any] else {
      throw MeshFileError(file: file, key: "services", "must be an array of {\"name\": …} objects")
    }
    var services: [Service] = []
    for (index, entry) in entries.enumerated() {
      let at = "services[\(index)]"
      guard let entry = entry as? [String: Any] else {
        throw MeshFileError(file: file, key: at, "must be an object with a \"name\"")
      }
      try reader.allowOnly(
        ["name", "listen", "store", "enabled", "metrics", "models", "batching", "cache_size", "drift_webhook", "http"],
        in: entry,
        at: at)
      guard let name = try reader.string(entry["name"], at: "\(at).name"), !name.isEmpty else {
        throw MeshFileError(file: file, key: "\(at).name", "is missing")
      }
      guard !services.contains(where: { $0.name == name }) else {
        throw MeshFileError(file: file, key: "\(at).name", "'\(name)' is listed twice")
      }
      let listen = try reader.strings(entry["listen"], at: "\(at).listen") ?? ["unix:\(name).sock"]
      guard !listen.isEmpty else {
        throw MeshFileError(file: file, key: "\(at).listen", "must hold at least one address")
      }
      for (position, address) in listen.enumerated()
      where !(address.hasPrefix("unix:") || address.hasPrefix("tcp://") || address.hasPrefix("tls://")) {
        throw MeshFileError(
          file: file, key: "\(at).listen[\(position)]",
          "'\(address)' is not an address (unix:relative/path, unix:///abs/path, tcp://host:port or tls://host:port)")
      }
      var service = Service(
        name: name, listen: listen, store: try reader.string(entry["store"], at: "\(at).store"),
        enabled: try reader.bool(entry["enabled"], at: "\(at).enabled") ?? true)
      service.metrics = try reader.string(entry["metrics"], at: "\(at).metrics")
      service.driftWebhook = try reader.string(entry["drift_webhook"], at: "\(at).drift_webhook")
      service.http = try reader.string(entry["http"], at: "\(at).http")
      if let size = try reader.number(entry["cache_size"], at: "\(at).cache_size") {
        guard size >= 0, size == size.rounded() else {
          throw MeshFileError(file: file, key: "\(at).cache_size", "must be a whole number of bytes")
        }
        service.cacheSize = Int64(size)
      }
      if let batching = entry["batching"] {
        service.batching = try reader.batching(batching, at: "\(at).batching", allowing: [])
      }
      if let models = entry["models"] {
        guard let list = models as? [Any] else {
          throw MeshFileError(
            file: file, key: "\(at).models", "must be an array of references or {\"model\": …} objects")
        }
        for (position, model) in list.enumerated() {
          let key = "\(at).models[\(position)]"
          if let reference = model as? String, !reference.isEmpty {
            service.models.append(reference)
          } else if let object = model as? [String: Any] {
            guard let reference = try reader.string(object["model"], at: "\(key).model"), !reference.isEmpty else {
              throw MeshFileError(file: file, key: "\(key).model", "is missing")
            }
            let settings = try reader.batching(object, at: key, allowing: ["model"])
            service.models.append(settings.isEmpty ? reference : "\(reference),\(settings)")
          } else {
            throw MeshFileError(file: file, key: key, "must be a model reference or an object with \"model\"")
          }
        }
      }
      services.append(service)
    }
    guard services.contains(where: { $0.name == "registry" && $0.enabled }) else {
      throw MeshFileError(
        file: file, key: "services", "must list an enabled \"registry\"; every other service needs it")
    }
    self.services = services
  }
}

/// A mesh file that cannot be used, naming the file and the key.
public struct MeshFileError: Error, Sendable, CustomStringConvertible {
  /// The file.
  public var file: String
  /// The key path (`services[2].listen`), or nil for the whole file.
  public var key: String?
  /// What is wrong.
  public var message: String
  /// What kind of file: "mesh file", "pipeline file".
  public var kind: String

  public init(file: String, key: String?, _ message: String, kind: String = "mesh file") {
    self.file = file
    self.key = key
    self.message = message
    self.kind = kind
  }

  /// "mesh file F: key K: message".
  public var description: String {
    if let key { return "\(kind) \(file): key '\(key)' \(message)" }
    return "\(kind) \(file) \(message)"
  }
}

/// Typed reads of JSON values with errors that name the key (and the file, of `kind`).
public struct FieldReader: Sendable {
  public let file: String
  public var kind = "mesh file"

  public init(file: String, kind: String = "mesh file") {
    self.file = file
    self.kind = kind
  }

  /// An error naming `key`.
  public func error(_ key: String?, _ message: String) -> MeshFileError {
    MeshFileError(file: file, key: key, message, kind: kind)
  }

  public func allowOnly(_ keys: Set<String>, in object: [String: Any], at path: String?) throws(MeshFileError) {
    for key in object.keys.sorted() where !keys.contains(key) {
      throw error(
        path.map { "\($0).\(key)" } ?? key,
        "is not known (expected one of: \(keys.sorted().joined(separator: ", ")))")
    }
  }

  public func string(_ value: Any?, at key: String) throws(MeshFileError) -> String? {
    guard let value, !(value is NSNull) else { return nil }
    guard let string = value as? String else { throw error(key, "must be a string") }
    return string
  }

  public func strings(_ value: Any?, at key: String) throws(MeshFileError) -> [String]? {
    guard let value, !(value is NSNull) else { return nil }
    guard let strings = value as? [String] else {
      throw error(key, "must be an array of strings")
    }
    return strings
  }

  public func number(_ value: Any?, at key: String) throws(MeshFileError) -> Double? {
    guard let value, !(value is NSNull) else { return nil }
    guard let number = value as? NSNumber else {
      throw error(key, "must be a number")
    }
    return number.doubleValue
  }

  /// Batching settings as `key=value,…` (sizes of `preferred_batch_sizes` joined by `/`).
  public func batching(_ value: Any, at path: String, allowing extra: Set<String>) throws(MeshFileError) -> String {
    guard let object = value as? [String: Any] else {
      throw error(path, "must be an object of batching settings")
    }
    try allowOnly(MeshFile.batchingKeys.union(extra), in: object, at: path)
    var pairs: [String] = []
    for key in object.keys.sorted() where MeshFile.batchingKeys.contains(key) {
      if key == "preferred_batch_sizes" {
        guard let sizes = object[key] as? [NSNumber] else {
          throw error("\(path).\(key)", "must be an array of whole numbers")
        }
        pairs.append("\(key)=\(sizes.map { "\($0.intValue)" }.joined(separator: "/"))")
      } else {
        guard let number = object[key] as? NSNumber, !(object[key] is Bool),
          number.doubleValue == number.doubleValue.rounded()
        else {
          throw error("\(path).\(key)", "must be a whole number")
        }
        pairs.append("\(key)=\(number.int64Value)")
      }
    }
    return pairs.joined(separator: ",")
  }

  public func bool(_ value: Any?, at key: String) throws(MeshFileError) -> Bool? {
    guard let value, !(value is NSNull) else { return nil }
    guard let bool = value as? Bool else { throw error(key, "must be true or false") }
    return bool
  }
}
