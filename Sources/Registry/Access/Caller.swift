public import ShoalProto

/// The principal a call is made by, as the access interceptor established it; handlers read it
/// through `Caller.current`.
public struct Caller: Sendable, Equatable {
  /// The principal's name.
  public var name: String
  /// Its organisation.
  public var organization: String
  /// Its role there.
  public var role: RegistryV1.Role
  /// The mesh's administrator: every organisation, every role.
  public var superuser: Bool
  /// When the token the caller showed stops working, in ms since 1970 (0: it does not).
  public var tokenExpiresAtMs: Int64 = 0

  /// A principal of `organization` with `role`.
  public init(name: String, organization: String, role: RegistryV1.Role, superuser: Bool) {
    self.name = name
    self.organization = organization
    self.role = role
    self.superuser = superuser
  }

  /// The principal of peers on the registry's Unix socket (trusted by the socket's permissions):
  /// superuser, in the built-in organisation `local`.
  public static let local = Caller(name: "local", organization: "local", role: .admin, superuser: true)

  /// The caller of the call being served.
  @TaskLocal public static var current: Caller?

  /// Whether the role is at least `role` (superusers always are).
  public func has(_ role: RegistryV1.Role) -> Bool {
    superuser || self.role.rawValue >= role.rawValue
  }

  /// Whether the caller may change things in `organization`.
  public func canWrite(in organization: String) -> Bool {
    superuser || (self.organization == organization && has(.writer))
  }

  /// The principal as a message.
  public var principal: RegistryV1.Principal {
    var principal = RegistryV1.Principal()
    principal.name = name
    principal.organization = organization
    principal.role = role
    principal.superuser = superuser
    principal.tokenExpiresAtMs = tokenExpiresAtMs
    return principal
  }

  /// "name@organization", as recorded in created_by and moved_by.
  public var qualifiedName: String { "\(name)@\(organization)" }
}
