import Foundation
public import ShoalProto
import ShoalRPC
import ShoalStore

extension RegistryStore {
  /// Creates an organisation.
  ///
  /// - Throws: ALREADY_EXISTS when the name is taken.
  public func createOrganization(_ name: String, displayName: String) async throws -> RegistryV1.Organization {
    var organization = RegistryV1.Organization()
    organization.name = name
    organization.displayName = displayName.isEmpty ? name : displayName
    organization.createdAtMs = Self.now()
    let row = organization
    do {
      try await database.transaction { connection in
        try connection.execute(
          "INSERT INTO organizations (name, display_name, created_at_ms) VALUES ($1, $2, $3)", .text(row.name),
          .text(row.displayName), .integer(row.createdAtMs))
      }
    } catch let error as StoreError where error.code == .alreadyExists {
      throw RPCError(.alreadyExists, "organisation '\(name)' already exists")
    }
    return organization
  }

  /// Every organisation (a superuser's view) or the caller's own.
  public func organizations(visibleTo caller: Caller) async throws -> [RegistryV1.Organization] {
    try await database.read { connection in
      let rows =
        caller.superuser
        ? try connection.query("SELECT name, display_name, created_at_ms FROM organizations ORDER BY name")
        : try connection.query(
          "SELECT name, display_name, created_at_ms FROM organizations WHERE name = $1", .text(caller.organization))
      return try rows.map { row in
        var organization = RegistryV1.Organization()
        organization.name = try row.string("name")
        organization.displayName = try row.string("display_name")
        organization.createdAtMs = try row.int("created_at_ms")
        return organization
      }
    }
  }

  /// Creates (or re-roles) `principal` in `organization` and issues it a new token, which stops
  /// working after `lifetime` (nil: never); returns the token, which is not stored (only the
  /// SHA-256 of its secret is).
  public func createToken(
    organization: String, principal name: String, role: RegistryV1.Role, lifetime: Duration? = nil
  ) async throws -> RegistryV1.CreateTokenResponse {
    let tokenID = Self.randomHex(bytes: 6)
    let secret = Self.randomHex(bytes: 24)
    let now = Self.now()
    let expires = lifetime.map {
      now + $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000
    }
    try await database.transaction { connection in
      guard try connection.queryFirst("SELECT name FROM organizations WHERE name = $1", .text(organization)) != nil
      else { throw RPCError(.notFound, "organisation '\(organization)' not found") }
      let existing = try connection.queryFirst(
        "SELECT id FROM principals WHERE organization = $1 AND name = $2", .text(organization), .text(name))
      let principalID: Int64
      if let existing {
        principalID = try existing.int("id")
        try connection.execute(
          "UPDATE principals SET role = $2 WHERE id = $1", .integer(principalID), .integer(Int64(role.rawValue)))
      } else {
        principalID = try connection.query(
          """
          INSERT INTO principals (organization, name, role, created_at_ms) VALUES ($1, $2, $3, $4) RETURNING id
          """, .text(organization), .text(name), .integer(Int64(role.rawValue)), .integer(now)
        )[0].int("id")
      }
      try connection.execute(
        """
        INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at_ms, expires_at_ms)
        VALUES ($1, $2, $3, $4, $5)
        """, .text(tokenID), .integer(principalID), .text(BlobDigest.of(Array(secret.utf8)).hex), .integer(now),
        expires.map { .integer($0) } ?? .null)
    }
    var response = RegistryV1.CreateTokenResponse()
    var caller = Caller(name: name, organization: organization, role: role, superuser: false)
    caller.tokenExpiresAtMs = expires ?? 0
    response.principal = caller.principal
    response.token = "shoal_\(tokenID)_\(secret)"
    response.tokenId = tokenID
    response.expiresAtMs = expires ?? 0
    return response
  }

  /// Revokes the token `tokenID` of an organisation `caller` administers (any, for a superuser);
  /// revoking it again keeps the first time.
  ///
  /// - Throws: NOT_FOUND for a token that does not exist or that the caller may not see.
  public func revokeToken(_ tokenID: String, by caller: Caller) async throws -> RegistryV1.TokenInfo {
    let now = Self.now()
    return try await database.transaction { connection in
      guard let info = try Self.token(tokenID, connection),
        caller.superuser || info.principal?.organization == caller.organization
      else { throw RPCError(.notFound, "token '\(tokenID)' not found in organisation '\(caller.organization)'") }
      try connection.execute(
        "UPDATE tokens SET revoked_at_ms = $2 WHERE token_id = $1 AND revoked_at_ms IS NULL", .text(tokenID),
        .integer(now))
      var revoked = info
      if revoked.revokedAtMs == 0 { revoked.revokedAtMs = now }
      return revoked
    }
  }

  /// The tokens of `organization`, newest first, without their secrets.
  public func tokens(of organization: String) async throws -> [RegistryV1.TokenInfo] {
    try await database.read { connection in
      try connection.query(
        "\(Self.tokenQuery) WHERE p.organization = $1 ORDER BY t.created_at_ms DESC, t.token_id", .text(organization)
      ).map(Self.tokenInfo)
    }
  }

  private static let tokenQuery = """
    SELECT t.token_id, t.created_at_ms, t.expires_at_ms, t.revoked_at_ms, p.name, p.organization, p.role
    FROM tokens t JOIN principals p ON p.id = t.principal_id
    """

  private static func token(_ tokenID: String, _ connection: any SQLConnection) throws -> RegistryV1.TokenInfo? {
    try connection.queryFirst("\(tokenQuery) WHERE t.token_id = $1", .text(tokenID)).map(tokenInfo)
  }

  private static func tokenInfo(_ row: SQLRow) throws -> RegistryV1.TokenInfo {
    var info = RegistryV1.TokenInfo()
    info.tokenId = try row.string("token_id")
    info.createdAtMs = try row.int("created_at_ms")
    info.expiresAtMs = try row.optionalInt("expires_at_ms") ?? 0
    info.revokedAtMs = try row.optionalInt("revoked_at_ms") ?? 0
    var caller = Caller(
      name: try row.string("name"), organization: try row.string("organization"),
      role: RegistryV1.Role(rawValue: Int32(try row.int("role"))), superuser: false)
    caller.tokenExpiresAtMs = info.expiresAtMs
    info.principal = caller.principal
    return info
  }

  /// The principal a bearer token belongs to, or nil for a malformed, unknown or wrong token.
  ///
  /// - Throws: UNAUTHENTICATED, saying so, for a revoked or expired one.
  public func caller(forToken token: String) async throws -> Caller? {
    let parts = token.split(separator: "_", omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0] == "shoal", parts[1].utf8.count == 12, parts[2].utf8.count == 48 else {
      return nil
    }
    let tokenID = String(parts[1])
    let presented = BlobDigest.of(Array(parts[2].utf8)).hex
    return try await database.read { connection -> Caller? in
      guard
        let row = try connection.queryFirst(
          """
          SELECT p.name, p.organization, p.role, t.secret_sha256, t.expires_at_ms, t.revoked_at_ms FROM tokens t
          JOIN principals p ON p.id = t.principal_id WHERE t.token_id = $1
          """, .text(tokenID))
      else { return nil }
      // Compare every byte, so the time taken says nothing about where they differ.
      let stored = Array(try row.string("secret_sha256").utf8)
      let given = Array(presented.utf8)
      guard stored.count == given.count, zip(stored, given).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
      // Only the token's holder learns why it stopped working: the secret matched.
      if let revoked = try row.optionalInt("revoked_at_ms") {
        throw RPCError(
          .unauthenticated, "token \(tokenID) was revoked at \(Self.timestamp(revoked)); ask an admin for a new one")
      }
      let expires = try row.optionalInt("expires_at_ms")
      if let expires, expires <= Self.now() {
        throw RPCError(
          .unauthenticated, "token \(tokenID) expired at \(Self.timestamp(expires)); ask an admin for a new one")
      }
      var caller = Caller(
        name: try row.string("name"), organization: try row.string("organization"),
        role: RegistryV1.Role(rawValue: Int32(try row.int("role"))), superuser: false)
      caller.tokenExpiresAtMs = expires ?? 0
      return caller
    }
  }

  /// A time in milliseconds as ISO 8601 (UTC).
  static func timestamp(_ milliseconds: Int64) -> String {
    ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
  }

  static func randomHex(bytes count: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
  }
}
