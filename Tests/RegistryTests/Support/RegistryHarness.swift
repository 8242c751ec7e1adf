import Foundation
import Registry
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport

/// A registry (directory + model registry behind access control) on a real Unix socket and a
/// real loopback TCP port, over a fresh database of the given back end.
struct RegistryHarness {
  let unix: RPCAddress
  let tcp: RPCAddress
  let blobs: BlobStore

  static func with(
    _ backend: Backend, config: ModelRegistryService.Config = .defaults, _ body: (RegistryHarness) async throws -> Void
  ) async throws {
    try await backend.withDatabase { database, directory in
      try await database.migrate(RegistryStore.migrations)
      let store = RegistryStore(database: database)
      let blobs = try BlobStore(root: directory.path("blobs"))
      var router = ServiceRouter()
      ModelRegistryService(store: store, blobs: blobs, config: config).register(in: &router)
      let server = RPCServer(router: router, interceptors: [AccessInterceptor(store: store)])
      let unix = try await server.bind(to: .unix(path: directory.path("registry.sock")))
      let tcp = try await server.bind(to: .tcp(host: "127.0.0.1", port: 0))
      let harness = RegistryHarness(unix: unix, tcp: tcp, blobs: blobs)
      do {
        try await body(harness)
      } catch {
        await server.shutdown()
        throw error
      }
      await server.shutdown()
    }
  }

  /// The same over a real `shoal serve registry` process: a fresh SQLite file, or a fresh
  /// PostgreSQL database made for the test.
  static func withProcess(_ backend: Backend, _ body: (RegistryHarness) async throws -> Void) async throws {
    let directory = try TemporaryDirectory()
    var store = "sqlite"
    if backend == .postgres, let url = ProcessInfo.processInfo.environment["SHOAL_TEST_POSTGRES"] {
      let name = "t_\(UInt32.random(in: 0...UInt32.max))"
      let server = try await Database.open(
        try StoreURL(parsing: url), service: "tests", dataDirectory: directory.url.path)
      try await server.read { try $0.executeScript("CREATE DATABASE \(name)") }
      await server.close()
      guard let slash = url.lastIndex(of: "/") else { throw TestEnvironmentError("unexpected URL \(url)") }
      store = url[..<slash] + "/" + name
    }
    let registry = try ServerProcess(
      try TestEnvironment.product("shoal"),
      [
        "serve", "registry", "--data", directory.url.path, "--store", store, "--no-register",
        "--listen", "unix:registry.sock", "--listen", "tcp://127.0.0.1:0",
      ])
    let lines = try await registry.waitForLines(containing: "listening on", count: 2)
    let addresses = try lines.map { try RPCAddress(parsing: String($0.split(separator: " ").last!)) }
    let harness = RegistryHarness(
      unix: addresses[0], tcp: addresses[1], blobs: try BlobStore(root: directory.path("registry-blobs")))
    do {
      try await body(harness)
    } catch {
      _ = try? await registry.stop()
      throw error
    }
    let status = try await registry.stop()
    if status != 0 { throw TestEnvironmentError("the registry exited with \(status): \(registry.text)") }
  }

  /// A client on the Unix socket: the local superuser.
  func local() -> (RegistryV1.ModelRegistry.Client, RPCClient) {
    let rpc = RPCClient(address: unix)
    return (RegistryV1.ModelRegistry.Client(rpc), rpc)
  }

  /// A client on TCP sending `token` (none: no authorization header).
  func remote(token: String?) -> (RegistryV1.ModelRegistry.Client, RPCClient) {
    var config = RPCClient.Config.defaults
    if let token { config.interceptors = [BearerTokenInterceptor(token: token)] }
    let rpc = RPCClient(address: tcp, config: config)
    return (RegistryV1.ModelRegistry.Client(rpc), rpc)
  }
}

extension RegistryV1.ModelRegistry.Client {
  /// Uploads `file` as a new version of `organization/model`, in chunks of `chunk` bytes.
  func push(
    _ organization: String, _ model: String, _ file: [UInt8], chunk: Int = 1000, sha256: String = "",
    semver: String = ""
  ) async throws -> RegistryV1.ModelVersion {
    try await uploadVersion { sender in
      var header = RegistryV1.UploadHeader()
      header.organization = organization
      header.model = model
      header.sha256 = sha256
      header.semver = semver
      var first = RegistryV1.UploadVersionRequest()
      first.part = .header(header)
      try await sender.send(first)
      var offset = 0
      while offset < file.count {
        var message = RegistryV1.UploadVersionRequest()
        message.part = .chunk(Array(file[offset..<min(offset + chunk, file.count)]))
        try await sender.send(message)
        offset += chunk
      }
    }
  }

  /// Downloads a version: the header and the file.
  func pull(
    _ organization: String, _ model: String, alias: String = "", version: Int64 = 0
  ) async throws -> (
    RegistryV1.ModelVersion, [UInt8]
  ) {
    var request = RegistryV1.GetVersionRequest()
    request.organization = organization
    request.model = model
    request.alias = alias
    request.version = version
    return try await downloadVersion(request) { responses in
      var header: RegistryV1.ModelVersion?
      var bytes: [UInt8] = []
      for try await response in responses {
        switch response.part {
        case .version(let version): header = version
        case .chunk(let chunk): bytes += chunk
        case nil: break
        }
      }
      return (header!, bytes)
    }
  }

  func model(_ organization: String, _ name: String) async throws(RPCError) -> RegistryV1.Model {
    var request = RegistryV1.GetModelRequest()
    request.organization = organization
    request.name = name
    return try await getModel(request)
  }

  func create(
    _ organization: String, _ name: String, visibility: RegistryV1.Visibility = .private, tags: [String: String] = [:],
    task: RegistryV1.ModelTask = .classification
  ) async throws(RPCError) -> RegistryV1.Model {
    var request = RegistryV1.CreateModelRequest()
    request.organization = organization
    request.name = name
    request.visibility = visibility
    request.tags = tags
    request.task = task
    return try await createModel(request)
  }

  func alias(
    _ organization: String, _ model: String, _ alias: String, _ version: Int64
  ) async throws(RPCError)
    -> RegistryV1.AliasMove
  {
    var request = RegistryV1.SetAliasRequest()
    request.organization = organization
    request.model = model
    request.alias = alias
    request.version = version
    return try await setAlias(request)
  }

  func token(_ organization: String, _ principal: String, _ role: RegistryV1.Role) async throws(RPCError) -> String {
    var request = RegistryV1.CreateTokenRequest()
    request.organization = organization
    request.principal = principal
    request.role = role
    return try await createToken(request).token
  }

  func organization(_ name: String) async throws(RPCError) {
    var request = RegistryV1.CreateOrganizationRequest()
    request.name = name
    _ = try await createOrganization(request)
  }
}
