import Registry
import ShoalProto
import ShoalRPC
import ShoalStore
import ShoalTestSupport
import Testing

/// Tokens that expire and tokens revoked, in a real database of each back end: refused with
/// UNAUTHENTICATED saying which, revocable only within the revoker's organisation, and listed
/// without their secrets.
struct TokenLifetimeTests {
  @Test(arguments: Backend.available)
  func expiredAndRevokedTokensAreRefusedSayingWhy(_ backend: Backend) async throws {
    try await backend.withDatabase { database, _ in
      try await database.migrate(RegistryStore.migrations)
      let store = RegistryStore(database: database)
      _ = try await store.createOrganization("acme", displayName: "")
      let lasting = try await store.createToken(organization: "acme", principal: "ci", role: .writer)
      #expect(lasting.expiresAtMs == 0)
      // A token with a lifetime is known with its expiry until then, and refused after it.
      let month = try await store.createToken(
        organization: "acme", principal: "month", role: .reader, lifetime: .seconds(30 * 86400))
      let known = try #require(try await store.caller(forToken: month.token))
      #expect(known.name == "month" && known.tokenExpiresAtMs == month.expiresAtMs && month.expiresAtMs > 0)
      let brief = try await store.createToken(
        organization: "acme", principal: "brief", role: .reader, lifetime: .milliseconds(1))
      try await Task.sleep(for: .milliseconds(20))
      do {
        _ = try await store.caller(forToken: brief.token)
        Issue.record("an expired token was accepted")
      } catch let error as RPCError {
        #expect(error.code == .unauthenticated && error.message.contains("token \(brief.tokenId) expired at"))
      }

      // Another organisation's admin cannot see the token; its own can revoke it, twice.
      let outsider = Caller(name: "eve", organization: "local", role: .admin, superuser: false)
      do {
        _ = try await store.revokeToken(lasting.tokenId, by: outsider)
        Issue.record("an outsider revoked acme's token")
      } catch let error as RPCError {
        #expect(error.code == .notFound)
      }
      let owner = Caller(name: "boss", organization: "acme", role: .admin, superuser: false)
      let revoked = try await store.revokeToken(lasting.tokenId, by: owner)
      #expect(revoked.revokedAtMs > 0 && revoked.principal?.name == "ci")
      #expect(try await store.revokeToken(lasting.tokenId, by: owner).revokedAtMs == revoked.revokedAtMs)
      do {
        _ = try await store.caller(forToken: lasting.token)
        Issue.record("a revoked token was accepted")
      } catch let error as RPCError {
        #expect(error.code == .unauthenticated && error.message.contains("was revoked at"))
      }
      // A wrong secret for a revoked token's id says nothing about it.
      let forged = "shoal_\(lasting.tokenId)_" + String(repeating: "0", count: 48)
      #expect(try await store.caller(forToken: forged) == nil)

      let listed = try await store.tokens(of: "acme")
      #expect(Set(listed.map(\.tokenId)) == [lasting.tokenId, month.tokenId, brief.tokenId])
      #expect(listed.first { $0.tokenId == lasting.tokenId }?.revokedAtMs == revoked.revokedAtMs)
      #expect(listed.first { $0.tokenId == brief.tokenId }?.expiresAtMs == brief.expiresAtMs)
    }
  }
}
