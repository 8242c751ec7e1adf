import Registry
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// Every ModelRegistry call, made by every kind of caller: two organisations, three roles each,
/// the local superuser, no token and a forged one; a private and a public model. Against a real
/// `shoal serve registry` process, on SQLite and on PostgreSQL.
struct AccessMatrixTests {
  private enum Who: String, CaseIterable, Sendable {
    case local, anonymous, forged
    case acmeReader, acmeWriter, acmeAdmin
    case globexReader, globexWriter, globexAdmin
  }

  private typealias Code = RpcV1.StatusCode
  private typealias Client = RegistryV1.ModelRegistry.Client

  /// The calls, each with the code every caller gets (nil: OK).
  private static let calls: [(String, @Sendable (Client, Who) async throws -> Void, [Who: Code])] = {
    let reader: [Who: Code] = [.anonymous: .unauthenticated, .forged: .unauthenticated]
    func denied(_ who: [Who], _ code: Code, plus base: [Who: Code] = reader) -> [Who: Code] {
      base.merging(Dictionary(uniqueKeysWithValues: who.map { ($0, code) })) { $1 }
    }
    let readersOnly: [Who] = [.acmeReader, .globexReader, .globexWriter, .globexAdmin]
    let privateRead = denied([.globexReader, .globexWriter, .globexAdmin], .notFound)
    let writeToAcme = denied(readersOnly, .permissionDenied)
    let writeToAcmePrivate = denied([.globexWriter, .globexAdmin], .notFound, plus: writeToAcme)
    let request = {
      var request = RegistryV1.GetVersionRequest()
      request.organization = "acme"
      request.version = 1
      return request
    }()
    return [
      (
        "CreateOrganization", { client, who in try await client.organization("org-\(who.rawValue.lowercased())") },
        denied(Who.allCases.filter { $0 != .local && $0 != .anonymous && $0 != .forged }, .permissionDenied)
      ),
      ("ListOrganizations", { client, _ in _ = try await client.listOrganizations(.init()) }, reader),
      ("WhoAmI", { client, _ in _ = try await client.whoAmI(.init()) }, reader),
      (
        "CreateToken", { client, _ in _ = try await client.token("acme", "someone", .reader) },
        denied([.acmeReader, .acmeWriter, .globexReader, .globexWriter, .globexAdmin], .permissionDenied)
      ),
      ("CreateModel", { client, who in _ = try await client.create("acme", "new-\(who.rawValue)") }, writeToAcme),
      ("GetModel private", { client, _ in _ = try await client.model("acme", "secret") }, privateRead),
      ("GetModel public", { client, _ in _ = try await client.model("acme", "open") }, reader),
      ("SearchModels", { client, _ in _ = try await client.searchModels(.init()) }, reader),
      (
        "UploadVersion private", { client, _ in _ = try await client.push("acme", "secret", TestOnnx.relu()) },
        writeToAcmePrivate
      ),
      (
        "UploadVersion public", { client, _ in _ = try await client.push("acme", "open", TestOnnx.relu()) }, writeToAcme
      ),
      (
        "GetVersion private",
        { client, _ in
          var r = request
          r.model = "secret"
          _ = try await client.getVersion(r)
        }, privateRead
      ),
      (
        "GetVersion public",
        { client, _ in
          var r = request
          r.model = "open"
          _ = try await client.getVersion(r)
        }, reader
      ),
      (
        "ListVersions private",
        { client, _ in
          var r = RegistryV1.ListVersionsRequest()
          r.organization = "acme"
          r.model = "secret"
          _ = try await client.listVersions(r)
        }, privateRead
      ),
      (
        "DownloadVersion private", { client, _ in _ = try await client.pull("acme", "secret", version: 1) }, privateRead
      ),
      ("DownloadVersion public", { client, _ in _ = try await client.pull("acme", "open", version: 1) }, reader),
      ("SetAlias public", { client, _ in _ = try await client.alias("acme", "open", "staging", 1) }, writeToAcme),
      (
        "SetAlias private", { client, _ in _ = try await client.alias("acme", "secret", "staging", 1) },
        writeToAcmePrivate
      ),
      (
        "DeleteAlias public",
        { client, _ in
          var r = RegistryV1.DeleteAliasRequest()
          r.organization = "acme"
          r.model = "open"
          r.alias = "doomed"
          _ = try await client.deleteAlias(r)
        }, writeToAcme
      ),
      (
        "AliasHistory private",
        { client, _ in
          var r = RegistryV1.AliasHistoryRequest()
          r.organization = "acme"
          r.model = "secret"
          _ = try await client.aliasHistory(r)
        }, privateRead
      ),
      (
        "WatchModel private",
        { client, _ in
          var r = RegistryV1.WatchModelRequest()
          r.organization = "acme"
          r.model = "secret"
          r.afterSequence = 1
          _ = try await client.watchModel(r) { events in
            for try await _ in events { break }
          }
        }, privateRead
      ),
    ]
  }()

  @Test(arguments: Backend.available)
  func everyCallByEveryCaller(_ backend: Backend) async throws {
    try await RegistryHarness.withProcess(backend) { harness in
      let (local, localRPC) = harness.local()
      try await local.organization("acme")
      try await local.organization("globex")
      var tokens: [Who: String?] = [
        .anonymous: nil, .forged: "shoal_0123456789ab_" + String(repeating: "f", count: 48),
      ]
      for (who, organization, role) in [
        (Who.acmeReader, "acme", RegistryV1.Role.reader), (.acmeWriter, "acme", .writer), (.acmeAdmin, "acme", .admin),
        (.globexReader, "globex", .reader), (.globexWriter, "globex", .writer), (.globexAdmin, "globex", .admin),
      ] {
        tokens[who] = try await local.token(organization, who.rawValue, role)
      }
      _ = try await local.create("acme", "open", visibility: .public)
      _ = try await local.create("acme", "secret")
      _ = try await local.push("acme", "open", TestOnnx.relu())
      _ = try await local.push("acme", "secret", TestOnnx.relu())
      _ = try await local.alias("acme", "secret", "production", 1)

      for who in Who.allCases {
        let (client, rpc) = who == .local ? (local, localRPC) : harness.remote(token: tokens[who]!)
        for (name, call, expectations) in Self.calls {
          // DeleteAlias needs something to delete.
          _ = try await local.alias("acme", "open", "doomed", 1)
          let expected = expectations[who]
          do {
            try await call(client, who)
            #expect(expected == nil, "\(who) \(name): OK, expected \(expected?.protoName ?? "")")
          } catch {
            let code = RPCError(from: error).code
            #expect(code == expected, "\(who) \(name): \(error)")
          }
        }
        if who != .local { await rpc.close() }
      }

      // What a search shows depends on who asks.
      for (who, expected) in [
        (Who.globexReader, ["open"]),
        (.acmeReader, ["open", "secret", "new-local", "new-acmeWriter", "new-acmeAdmin"]),
      ] {
        let (client, rpc) = harness.remote(token: tokens[who]!)
        var request = RegistryV1.SearchModelsRequest()
        request.organization = "acme"
        request.query = "e"
        let names = try await client.searchModels(request).models.map(\.name)
        #expect(names == expected, "\(who)")
        await rpc.close()
      }
      await localRPC.close()
    }
  }
}
