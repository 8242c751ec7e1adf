import ArgumentParser
import ShoalProto
import ShoalServiceStubs

/// `shoal admin …`: organisations and tokens.
struct AdminCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "admin",
    abstract: "Manage organisations and API tokens of the model registry.",
    subcommands: [Organizations.self, Tokens.self, WhoAmI.self]
  )

  struct Organizations: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "org", abstract: "Organisations.", subcommands: [Create.self, List.self])

    struct Create: AsyncParsableCommand {
      static let configuration = CommandConfiguration(
        abstract: "Create an organisation (the mesh administrator only: the registry's Unix socket).")
      @Argument(help: "Its name: lower-case letters, digits and '-'.") var name: String
      @Option(help: "A name for people.") var displayName = ""
      @Flag(help: "Print JSON.") var json = false
      @OptionGroup var mesh: MeshOptions

      func run() async throws {
        var request = RegistryV1.CreateOrganizationRequest()
        request.name = name
        request.displayName = displayName
        let organization = try await withModelRegistry(mesh, command: "admin org create") {
          try await $0.createOrganization(request)
        }
        if json { emitJSON(organization) } else { emit("created organisation \(organization.name)") }
      }
    }

    struct List: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "List the organisations you can see.")
      @Flag(help: "Print JSON.") var json = false
      @OptionGroup var mesh: MeshOptions

      func run() async throws {
        let response = try await withModelRegistry(mesh, command: "admin org list") {
          try await $0.listOrganizations(RegistryV1.ListOrganizationsRequest())
        }
        if json { return emitJSON(response) }
        var table = TextTable("ORGANISATION", "DISPLAY NAME", "CREATED")
        for organization in response.organizations {
          table.add(organization.name, organization.displayName, formatTime(organization.createdAtMs))
        }
        emit(table.rendered)
      }
    }
  }

  struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "token", abstract: "API tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
      static let configuration = CommandConfiguration(
        abstract: "Create a principal's token (an admin of the organisation); it is shown once.")
      @Option(help: "The organisation (default: yours).") var org = ""
      @Option(help: "reader, writer or admin.") var role: String
      @Option(help: "The principal the token belongs to.") var name = "cli"
      @Flag(help: "Print JSON.") var json = false
      @OptionGroup var mesh: MeshOptions

      func run() async throws {
        var request = RegistryV1.CreateTokenRequest()
        request.organization = org
        request.principal = name
        switch role.lowercased() {
        case "reader": request.role = .reader
        case "writer": request.role = .writer
        case "admin": request.role = .admin
        default: throw ValidationError("--role must be reader, writer or admin, not '\(role)'")
        }
        let response = try await withModelRegistry(mesh, command: "admin token create") {
          try await $0.createToken(request)
        }
        if json { return emitJSON(response) }
        let principal = response.principal ?? RegistryV1.Principal()
        logLine(
          "shoal admin token create",
          "token for \(principal.name)@\(principal.organization) (\(role.lowercased())); it is not shown again:")
        emit(response.token)
      }
    }
  }

  struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Who the registry says you are.")
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let principal = try await withModelRegistry(mesh, command: "admin whoami") {
        try await $0.whoAmI(RegistryV1.WhoAmIRequest())
      }
      if json { return emitJSON(principal) }
      let role = principal.role.protoName?.lowercased() ?? "none"
      emit("\(principal.name)@\(principal.organization) (\(principal.superuser ? "mesh administrator" : role))")
    }
  }
}
