import Foundation
public import ShoalProto
public import ShoalRPC
import ShoalServiceStubs
import Synchronization

/// Access control for a service other than the registry, by the registry's tokens.
///
/// A peer on the service's Unix socket is trusted: the socket file's permissions decide who can be
/// one. A Unix peer that shows a token (the HTTP gateway, calling for the person whose token it
/// is) is that token's principal, as a TCP caller is, and the registry treats it the same way.
/// A call over TCP must carry `authorization: Bearer <token>`; the registry vouches for the
/// token (WhoAmI, asked with that token), and the principal's role must cover what the method
/// needs (a method not listed needs admin). The handler then runs with the principal's
/// organisation as `CallerOrganization.current`. The registry's answer is kept for `cacheFor`
/// and never past the token's expiry, so a token revoked in the registry stops working here
/// within that time; while the registry cannot be reached, an answer up to `outageGrace` old is
/// used. Tokens are never logged.
public final class RegistryAccessInterceptor: ServerInterceptor, Sendable {
  private let service: String
  private let requirements: [String: RegistryV1.Role]
  private let registry: RegistryV1.ModelRegistry.Client
  private let cacheFor: Duration
  private let known = Mutex<
    [String: (principal: RegistryV1.Principal, until: ContinuousClock.Instant, at: ContinuousClock.Instant)]
  >([:])

  /// How long a token the registry vouched for is still accepted while the registry cannot be
  /// reached (restarting, or its store is): calls carry on through the outage.
  public static let outageGrace: Duration = .seconds(600)

  /// Access to the methods of `service` (its full name), each needing the role `requirements`
  /// gives, checked against the registry `registry` reaches.
  public init(
    service: String, requirements: [String: RegistryV1.Role], registry: any RPCChannel,
    cacheFor: Duration = .seconds(30)
  ) {
    self.service = service
    self.requirements = requirements
    self.registry = RegistryV1.ModelRegistry.Client(registry)
    self.cacheFor = cacheFor
  }

  /// The metadata by which a mesh service on the Unix socket names the user it calls for
  /// (`name@organization`), so that what is recorded of who did what (and who holds a review
  /// lock) is that user, not the service.
  public static let actingFor = "shoal-acting-for"

  public func intercept(_ context: ServerContext, next: @Sendable () async throws -> Void) async throws {
    guard context.method.service == service else { return try await next() }
    guard !context.isUnixSocketPeer || context.metadata["authorization"] != nil else {
      guard let user = context.metadata[Self.actingFor], !user.isEmpty else { return try await next() }
      return try await CallerPrincipal.$current.withValue(user) { try await next() }
    }
    guard let header = context.metadata["authorization"], header.hasPrefix("Bearer ") else {
      throw RPCError(
        .unauthenticated,
        "calls over TCP need a token: set SHOAL_TOKEN (an admin creates one with `shoal admin token create`)")
    }
    let principal = try await principal(forToken: String(header.dropFirst(7)))
    let needed = requirements[context.method.name] ?? .admin
    guard principal.superuser || principal.role.rawValue >= needed.rawValue else {
      let name = { (role: RegistryV1.Role) in role.protoName?.lowercased() ?? "none" }
      throw RPCError(
        .permissionDenied,
        "\(context.method.name) needs role \(name(needed)); \(principal.name)@\(principal.organization) is "
          + name(principal.role))
    }
    try await CallerOrganization.$current.withValue(principal.superuser ? nil : principal.organization) {
      try await CallerPrincipal.$current.withValue("\(principal.name)@\(principal.organization)") {
        try await next()
      }
    }
  }

  /// Who the registry says `token` belongs to (from the cache while that answer is fresh).
  private func principal(forToken token: String) async throws -> RegistryV1.Principal {
    let now = ContinuousClock.now
    let entry = known.withLock { $0[token] }
    if let entry, entry.until > now { return entry.principal }
    var options = CallOptions(timeout: .seconds(5))
    options.metadata.add("authorization", "Bearer \(token)")
    let principal: RegistryV1.Principal
    do {
      principal = try await registry.whoAmI(RegistryV1.WhoAmIRequest(), options: options)
    } catch  where error.code == .unauthenticated {
      // The registry's reason: unknown, revoked or expired.
      throw RPCError(.unauthenticated, error.message)
    } catch {
      // The registry's last word, if recent and the token has not expired since.
      if let entry, now - entry.at < Self.outageGrace,
        entry.principal.tokenExpiresAtMs == 0
          || Double(entry.principal.tokenExpiresAtMs) / 1000 > Date().timeIntervalSince1970
      {
        return entry.principal
      }
      throw RPCError(.unavailable, "cannot check the token with the registry: \(error.message)")
    }
    // Kept for the cache time, and never past the token's own expiry.
    var until = now + cacheFor
    if principal.tokenExpiresAtMs > 0 {
      let left = Double(principal.tokenExpiresAtMs) / 1000 - Date().timeIntervalSince1970
      until = min(until, now + .milliseconds(Int64(max(0, left) * 1000)))
    }
    known.withLock { entries in
      // Expired answers go when the cache grows, so that it holds only tokens in use.
      if entries.count >= 1024 { entries = entries.filter { now - $0.value.at < Self.outageGrace } }
      entries[token] = (principal, until, now)
    }
    return principal
  }
}
