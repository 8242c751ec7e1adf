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

  /// Creates (or re-roles) `principal` in `organization` and issues it a new token; returns the
  /// token, which is not stored (only the SHA-256 of its secret is).
  public func createToken(
    organization: String, principal name: String, role: RegistryV1.Role
  ) async throws -> RegistryV1.CreateTokenResponse {
    let tokenID = Self.randomHex(bytes: 6)
    let secret = Self.randomHex(bytes: 24)
    let now = Self.now()
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
        "INSERT INTO tokens (token_id, principal_id, secret_sha256, created_at_ms) VALUES ($1, $2, $3, $4)",
        .text(tokenID), .integer(principalID), .text(BlobDigest.of(Array(secret.utf8)).hex), .integer(now))
    }
    var response = RegistryV1.CreateTokenResponse()
    response.principal = Caller(name: name, organization: organization, role: role, superuser: false).principal
    response.token = "shoal_\(tokenID)_\(secret)"
    response.tokenId = tokenID
    return response
  }

  /// The principal a bearer token belongs to, or nil for a malformed, unknown or wrong token.
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
          SELECT p.name, p.organization, p.role, t.secret_sha256 FROM tokens t
          JOIN principals p ON p.id = t.principal_id WHERE t.token_id = $1
          """, .text(tokenID))
      else { return nil }
      // Compare every byte, so the time taken says nothing about where they differ.
      let stored = Array(try row.string("secret_sha256").utf8)
      let given = Array(presented.utf8)
      guard stored.count == given.count, zip(stored, given).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
      return Caller(
        name: try row.string("name"), organization: try row.string("organization"),
        role: RegistryV1.Role(rawValue: Int32(try row.int("role"))), superuser: false)
    }
  }

  static func randomHex(bytes count: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
  }
}
