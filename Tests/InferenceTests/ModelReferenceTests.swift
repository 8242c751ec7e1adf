import ShoalRPC
import ShoalService
import Testing

struct ModelReferenceTests {
  @Test func parsesEveryForm() throws {
    let alias = try ModelReference(parsing: "roads@production")
    #expect(alias.organization == nil && alias.model == "roads" && alias.selector == .alias("production"))
    let version = try ModelReference(parsing: "acme/roads/3")
    #expect(version.organization == "acme" && version.model == "roads" && version.selector == .version(3))
    let latest = try ModelReference(parsing: "roads")
    #expect(latest.selector == .latest && !latest.description.contains("@"))
    #expect(try ModelReference(parsing: "roads/7").selector == .version(7))
    #expect(try ModelReference(parsing: "acme/roads").organization == "acme")
    #expect(try ModelReference(parsing: "roads@latest").selector == .latest)
    #expect(
      try ModelReference(parsing: "roads@production").qualified(defaultOrganization: "local").description
        == "local/roads@production")
    #expect(!version.follows && alias.follows && latest.follows)
  }

  @Test(arguments: ["", "roads@", "@prod", "a/b/c/d", "roads/0", "roads/3@prod", "a//b", "roads@a/b"])
  func refusesMalformed(_ text: String) {
    #expect(throws: RPCError.self) { try ModelReference(parsing: text) }
    do {
      _ = try ModelReference(parsing: text)
    } catch {
      #expect(error.code == .invalidArgument)
    }
  }
}
