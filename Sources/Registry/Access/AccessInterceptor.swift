import Foundation
import ShoalProto
public import ShoalRPC
import ShoalStore
import Synchronization

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
    "RevokeToken": .role(.admin),
    "ListTokens": .role(.admin),
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
  private let verified = VerifiedTokens()

  /// How long a token the store vouched for is still accepted while the store cannot be reached
  /// (PostgreSQL restarting): the services' leases and calls carry on through the outage. A
  /// revocation or expiry written to the store takes effect as soon as it answers again.
  static let outageGrace: Duration = .seconds(600)

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
    guard header.hasPrefix("Bearer "), let caller = try await caller(forToken: String(header.dropFirst(7)))
    else {
      throw RPCError(
        .unauthenticated, "the token is not valid (malformed, unknown or replaced); ask an admin for a new one")
    }
    return caller
  }

  /// The store's answer for `token`; while the store is unavailable, its last answer if that is
  /// recent (`outageGrace`) and the token has not expired since.
  private func caller(forToken token: String) async throws -> Caller? {
    do {
      let caller = try await store.caller(forToken: token)
      verified.remember(token, caller)
      return caller
    } catch let error as StoreError where error.code == .unavailable {
      if let known = verified.recent(token, within: Self.outageGrace) { return known }
      throw error
    } catch {
      verified.remember(token, nil)
      throw error
    }
  }

  static func name(_ role: RegistryV1.Role) -> String { role.protoName?.lowercased() ?? "none" }
}

/// The tokens the store last vouched for, and when.
private final class VerifiedTokens: Sendable {
  private let entries = Mutex<[String: (caller: Caller, at: ContinuousClock.Instant)]>([:])

  /// Records the store's answer (nil: not valid, forgotten).
  func remember(_ token: String, _ caller: Caller?) {
    let now = ContinuousClock.now
    entries.withLock { entries in
      guard let caller else { return _ = entries.removeValue(forKey: token) }
      // Old answers go when the table grows, so that it holds only tokens in use.
      if entries.count >= 4096 { entries = entries.filter { now - $0.value.at < AccessInterceptor.outageGrace } }
      entries[token] = (caller, now)
    }
  }

  /// The caller last vouched for within `grace`, unless its token has expired since.
  func recent(_ token: String, within grace: Duration) -> Caller? {
    guard let entry = entries.withLock({ $0[token] }), ContinuousClock.now - entry.at < grace else { return nil }
    let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
    return entry.caller.tokenExpiresAtMs == 0 || entry.caller.tokenExpiresAtMs > nowMs ? entry.caller : nil
  }
}
