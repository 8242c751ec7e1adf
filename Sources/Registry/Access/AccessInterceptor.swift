import ShoalProto
public import ShoalRPC

/// The registry's access control, in one place: every call to `ModelRegistry` is made by a
/// principal — the one an `authorization: Bearer <token>` header names, or the local superuser for
/// a peer on the registry's Unix socket — and each method needs a role. Which rows a caller sees
/// is decided in the queries (`RegistryStore`); writes to another organisation's model are refused
/// there too. Tokens are never logged or echoed.
///
/// The directory's writes (RegisterInstance, KeepAlive, Deregister) decide where clients send
/// their calls and their tokens, so over TCP they need an admin of the mesh's own organisation
/// (`local`); peers on the Unix socket are trusted, with or without a token. Resolve and Watch
/// stay open: they tell only the addresses that clients connect to anyway.
public struct AccessInterceptor: ServerInterceptor {
  /// What a method needs.
  enum Requirement: Sendable {
    case role(RegistryV1.Role)
    case superuser
  }

  static let requirements: [String: Requirement] = [
    "CreateOrganization": .superuser,
    "ListOrganizations": .role(.reader),
    "CreateToken": .role(.admin),
    "WhoAmI": .role(.reader),
    "CreateModel": .role(.writer),
    "GetModel": .role(.reader),
    "SearchModels": .role(.reader),
    "UploadVersion": .role(.writer),
    "GetVersion": .role(.reader),
    "ListVersions": .role(.reader),
    "DownloadVersion": .role(.reader),
    "SetAlias": .role(.writer),
    "DeleteAlias": .role(.writer),
    "AliasHistory": .role(.reader),
    "WatchModel": .role(.reader),
  ]

  private let store: RegistryStore

  /// Access control backed by the principals and tokens in `store`.
  public init(store: RegistryStore) { self.store = store }

  /// The directory's methods that change it.
  static let directoryWrites: Set<String> = ["RegisterInstance", "KeepAlive", "Deregister"]

  public func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws {
    if context.method.service == RegistryV1.Directory.fullName {
      if Self.directoryWrites.contains(context.method.name), !context.isUnixSocketPeer {
        try await checkMeshAdministrator(context)
      }
      return try await next()
    }
    guard context.method.service == RegistryV1.ModelRegistry.fullName else { return try await next() }
    let caller = try await authenticate(context)
    switch Self.requirements[context.method.name] ?? .superuser {
    case .superuser where !caller.superuser:
      throw RPCError(
        .permissionDenied, "\(context.method.name) is for the mesh administrator (the registry's Unix socket)")
    case .role(let role) where !caller.has(role):
      throw RPCError(
        .permissionDenied,
        "\(context.method.name) needs role \(Self.name(role)) in organisation '\(caller.organization)'; "
          + "\(caller.qualifiedName) is \(Self.name(caller.role))")
    default:
      try await Caller.$current.withValue(caller) { try await next() }
    }
  }

  /// Refuses a directory write over TCP unless its token is an admin's of organisation `local`.
  private func checkMeshAdministrator(_ context: ServerContext) async throws {
    let caller = try await authenticate(context)
    let mesh = Caller.local.organization
    if caller.superuser || (caller.organization == mesh && caller.has(.admin)) { return }
    throw RPCError(
      .permissionDenied,
      "\(context.method.name) over TCP needs an admin token of organisation '\(mesh)' (the mesh's own); "
        + "\(caller.qualifiedName) is \(Self.name(caller.role)). Create one on the registry's Unix socket with "
        + "`shoal admin token create --org \(mesh) --role admin --name SERVICE` and start the service with SHOAL_TOKEN")
  }

  private func authenticate(_ context: ServerContext) async throws -> Caller {
    guard let header = context.metadata["authorization"] else {
      if context.isUnixSocketPeer { return .local }
      throw RPCError(
        .unauthenticated,
        "calls over TCP need a token: set SHOAL_TOKEN (an admin creates one with `shoal admin token create`)")
    }
    guard header.hasPrefix("Bearer "), let caller = try await store.caller(forToken: String(header.dropFirst(7)))
    else {
      throw RPCError(
        .unauthenticated, "the token is not valid (malformed, unknown or replaced); ask an admin for a new one")
    }
    return caller
  }

  static func name(_ role: RegistryV1.Role) -> String { role.protoName?.lowercased() ?? "none" }
}
