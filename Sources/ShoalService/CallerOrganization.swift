public import ShoalRPC

/// The registry organisation whose rows a call may see, set for the call's handler by
/// `RegistryAccessInterceptor`: the organisation of the token's principal. Nil for a peer on the
/// service's Unix socket and for a superuser, who see every organisation's rows.
public enum CallerOrganization {
  /// The calling principal's organisation, or nil for a caller who sees every organisation's.
  @TaskLocal public static var current: String?

  /// Refuses a name that is not an organisation's: 2–40 lower-case letters, digits and '-',
  /// starting with a letter (the registry's rule, for every service that names one).
  public static func checkName(_ name: String, field: String = "organization") throws(RPCError) {
    let bytes = Array(name.utf8)
    guard (2...40).contains(bytes.count), (97...122).contains(bytes[0]),
      bytes.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 45 })
    else {
      throw RPCError(
        .invalidArgument, "\(field) '\(name)' must be 2–40 lower-case letters, digits and '-', starting with a letter")
    }
  }
}

extension CallerOrganization {
  /// The organisation a new row (`things`: "experiments", "sets") belongs to: the caller's, or for a
  /// caller who sees every organisation's, the one it names (`local` by default), checked.
  ///
  /// - Throws: PERMISSION_DENIED when a caller of one organisation names another; INVALID_ARGUMENT
  ///   for a malformed name.
  public static func owner(named: String, of things: String) throws(RPCError) -> String {
    let organization: String
    switch (current, named) {
    case (nil, ""): organization = "local"
    case (nil, let named): organization = named
    case (let own?, let named) where named.isEmpty || named == own: organization = own
    case (let own?, let named):
      throw RPCError(
        .permissionDenied, "organization: a token of organisation '\(own)' creates \(things) there, not in '\(named)'")
    }
    try checkName(organization)
    return organization
  }
}

/// Who makes the call, as `name@organization`, set for the call's handler by
/// `RegistryAccessInterceptor` from the token's principal; nil for a peer on the service's Unix
/// socket, who acts as the mesh's administrator (`local@local`).
public enum CallerPrincipal {
  @TaskLocal public static var current: String?

  /// The caller's name for records of who did what.
  public static var name: String { current ?? "local@local" }
}
