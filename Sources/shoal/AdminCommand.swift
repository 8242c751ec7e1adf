import ArgumentParser
import Foundation
import ShoalMesh
import ShoalProto
import ShoalServiceStubs

/// `shoal admin …`: organisations, tokens and the mesh's certificates.
struct AdminCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "admin",
    abstract: "Manage organisations and API tokens of the model registry, and the mesh's TLS certificates.",
    subcommands: [Organizations.self, Tokens.self, WhoAmI.self, Certificate.self]
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
      commandName: "token", abstract: "API tokens.", subcommands: [Create.self, Revoke.self, List.self])

    struct Create: AsyncParsableCommand {
      static let configuration = CommandConfiguration(
        abstract: "Create a principal's token (an admin of the organisation); it is shown once.")
      @Option(help: "The organisation (default: yours).") var org = ""
      @Option(help: "reader, writer or admin.") var role: String
      @Option(help: "The principal the token belongs to.") var name = "cli"
      @Option(help: "When the token stops working: 90s, 30m, 12h or 30d (default: never).") var expires: String?
      @Flag(help: "Print JSON.") var json = false
      @OptionGroup var mesh: MeshOptions

      func run() async throws {
        var request = RegistryV1.CreateTokenRequest()
        request.organization = org
        request.principal = name
        if let expires { request.ttlSeconds = try Self.seconds(expires) }
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

      /// `90s`, `30m`, `12h`, `30d` (or plain seconds) in seconds.
      static func seconds(_ text: String) throws -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        let unit = text.last.flatMap { units[$0] }
        guard let count = Int64(unit == nil ? text : String(text.dropLast())), count > 0 else {
          throw ValidationError("--expires: '\(text)' is not a duration such as 90s, 30m, 12h or 30d")
        }
        return count * (unit ?? 1)
      }
    }

    struct Revoke: AsyncParsableCommand {
      static let configuration = CommandConfiguration(
        abstract: "Revoke a token by its id (an admin of its organisation).",
        discussion: """
          The registry refuses it at once; the other services, once their cache of the registry's answer \
          lapses (`--token-cache`, 30 s by default).
          """)
      @Argument(help: "The token's id (shoal_ID_SECRET), or the whole token.") var token: String
      @Flag(help: "Print JSON.") var json = false
      @OptionGroup var mesh: MeshOptions

      func run() async throws {
        var request = RegistryV1.RevokeTokenRequest()
        let parts = token.split(separator: "_")
        request.tokenId = parts.count == 3 && parts[0] == "shoal" ? String(parts[1]) : token
        let info = try await withModelRegistry(mesh, command: "admin token revoke") {
          try await $0.revokeToken(request)
        }
        if json { return emitJSON(info) }
        let principal = info.principal ?? RegistryV1.Principal()
        emit(
          "revoked token \(info.tokenId) of \(principal.name)@\(principal.organization) at \(formatTime(info.revokedAtMs))"
        )
      }
    }

    struct List: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "List an organisation's tokens (an admin of it).")
      @Option(help: "The organisation (default: yours).") var org = ""
      @Flag(help: "Print JSON.") var json = false
      @OptionGroup var mesh: MeshOptions

      func run() async throws {
        var request = RegistryV1.ListTokensRequest()
        request.organization = org
        let response = try await withModelRegistry(mesh, command: "admin token list") {
          try await $0.listTokens(request)
        }
        if json { return emitJSON(response) }
        var table = TextTable("TOKEN ID", "PRINCIPAL", "ROLE", "CREATED", "EXPIRES", "REVOKED")
        for info in response.tokens {
          let principal = info.principal ?? RegistryV1.Principal()
          table.add(
            info.tokenId, "\(principal.name)@\(principal.organization)",
            principal.role.protoName?.lowercased() ?? "none",
            formatTime(info.createdAtMs), info.expiresAtMs > 0 ? formatTime(info.expiresAtMs) : "never",
            info.revokedAtMs > 0 ? formatTime(info.revokedAtMs) : "")
        }
        emit(table.rendered)
      }
    }
  }

  struct Certificate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "cert",
      abstract: "Make the mesh's certificate authority and certificates for its hosts (TLS).",
      discussion: """
        The first run makes a CA in the directory (ca.pem, and ca-key.pem, readable by you only). Each \
        --name makes NAME.pem and NAME-key.pem, signed by it, for TLS servers and clients both, valid for \
        each --host (a name or an IP address). Give the mesh file's "tls" section ca.pem and a host's \
        certificate and key; copy ca-key.pem nowhere.
        """)
    @Option(help: "The directory of the CA and certificates (default: DATA/tls).") var out: String?
    @Option(help: "The certificate to issue (a file name: NAME.pem).") var name: String?
    @Option(help: "A host name or IP address the certificate is valid for (repeatable).") var host: [String] = []
    @Option(help: "Days the certificate is valid.") var days = 825
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      let directory = URL(fileURLWithPath: try out ?? "\(mesh.location().dataDirectory)/tls")
      let existed = FileManager.default.fileExists(atPath: directory.appendingPathComponent("ca.pem").path)
      let authority = try MeshCertificates(directory: directory)
      emit(existed ? "CA: \(authority.authority.path)" : "made a CA: \(authority.authority.path)")
      guard let name else {
        guard host.isEmpty else { throw ValidationError("--host needs --name: the certificate's file name") }
        return
      }
      guard days > 0 else { throw ValidationError("--days must be positive") }
      let hosts = host.isEmpty ? ["localhost", "127.0.0.1", "::1"] : host
      let issued = try authority.issue(name: name, hosts: hosts, days: days)
      emit("certificate for \(hosts.joined(separator: ", ")): \(issued.certificate.path)")
      emit("key: \(issued.key.path)")
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
