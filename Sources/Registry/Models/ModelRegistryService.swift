public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs
public import ShoalStore

/// `shoal.registry.v1.ModelRegistry`: organisations, tokens, models, versions and their files,
/// aliases. Runs behind `AccessInterceptor`, which sets `Caller.current`.
public struct ModelRegistryService: RegistryV1.ModelRegistry.ServiceProtocol {
  /// Settings.
  public struct Config: Sendable {
    /// The largest model file accepted.
    public var maxModelSize: Int64
    /// The size of the chunks DownloadVersion sends.
    public var chunkSize: Int
    /// How many events may wait for a slow WatchModel caller before it is caught up from the store.
    public var watchBacklog: Int

    /// 4 GiB files, 256 KiB chunks, 4,096 waiting events.
    public static var defaults: Config { Config(maxModelSize: 4 << 30, chunkSize: 256 << 10, watchBacklog: 4096) }
  }

  private let store: RegistryStore
  private let blobs: BlobStore
  private let config: Config
  private let hub = EventHub<Int64, RegistryV1.ModelEvent>()

  /// The service over the registry's database and blob store.
  public init(store: RegistryStore, blobs: BlobStore, config: Config = .defaults) {
    self.store = store
    self.blobs = blobs
    self.config = config
  }

  private var caller: Caller {
    get throws {
      guard let caller = Caller.current else { throw RPCError(.internal, "no caller: access control is missing") }
      return caller
    }
  }

  /// The organisation a request names, or the caller's.
  private func organization(_ requested: String, _ caller: Caller) throws -> String {
    let organization = requested.isEmpty ? caller.organization : requested
    try RegistryNames.checkOrganization(organization)
    return organization
  }

  // MARK: Organisations and tokens

  public func createOrganization(
    _ request: RegistryV1.CreateOrganizationRequest, context: ServerContext
  ) async throws -> RegistryV1.Organization {
    try RegistryNames.checkOrganization(request.name, field: "name")
    return try await store.createOrganization(request.name, displayName: request.displayName)
  }

  public func listOrganizations(
    _ request: RegistryV1.ListOrganizationsRequest, context: ServerContext
  ) async throws -> RegistryV1.ListOrganizationsResponse {
    var response = RegistryV1.ListOrganizationsResponse()
    response.organizations = try await store.organizations(visibleTo: try caller)
    return response
  }

  public func createToken(
    _ request: RegistryV1.CreateTokenRequest, context: ServerContext
  ) async throws -> RegistryV1.CreateTokenResponse {
    let caller = try caller
    let organization = try organization(request.organization, caller)
    guard caller.superuser || caller.organization == organization else {
      throw RPCError(.permissionDenied, "\(caller.qualifiedName) may create tokens only in '\(caller.organization)'")
    }
    try RegistryNames.checkPrincipal(request.principal)
    guard [.reader, .writer, .admin].contains(request.role) else {
      throw RPCError(.invalidArgument, "role must be reader, writer or admin")
    }
    guard request.ttlSeconds >= 0, request.ttlSeconds <= 100 * 365 * 86400 else {
      throw RPCError(
        .invalidArgument, "ttl_seconds must be 0 (no expiry) or up to 100 years, not \(request.ttlSeconds)")
    }
    return try await store.createToken(
      organization: organization, principal: request.principal, role: request.role,
      lifetime: request.ttlSeconds > 0 ? .seconds(request.ttlSeconds) : nil)
  }

  public func revokeToken(
    _ request: RegistryV1.RevokeTokenRequest, context: ServerContext
  ) async throws
    -> RegistryV1.TokenInfo
  {
    guard !request.tokenId.isEmpty else { throw RPCError(.invalidArgument, "token_id is missing") }
    return try await store.revokeToken(request.tokenId, by: try caller)
  }

  public func listTokens(
    _ request: RegistryV1.ListTokensRequest, context: ServerContext
  ) async throws
    -> RegistryV1.ListTokensResponse
  {
    let caller = try caller
    let organization = try organization(request.organization, caller)
    guard caller.superuser || caller.organization == organization else {
      throw RPCError(.permissionDenied, "\(caller.qualifiedName) may list tokens only in '\(caller.organization)'")
    }
    var response = RegistryV1.ListTokensResponse()
    response.tokens = try await store.tokens(of: organization)
    return response
  }

  public func whoAmI(_ request: RegistryV1.WhoAmIRequest, context: ServerContext) async throws -> RegistryV1.Principal {
    try caller.principal
  }

  // MARK: Models

  public func createModel(
    _ request: RegistryV1.CreateModelRequest, context: ServerContext
  ) async throws
    -> RegistryV1.Model
  {
    let caller = try caller
    var request = request
    request.organization = try organization(request.organization, caller)
    try RegistryNames.checkModel(request.name)
    try RegistryNames.checkTags(request.tags)
    guard request.description.utf8.count <= 4096 else {
      throw RPCError(.invalidArgument, "description: at most 4096 bytes, given \(request.description.utf8.count)")
    }
    guard caller.canWrite(in: request.organization) else {
      throw RPCError(
        .permissionDenied, "\(caller.qualifiedName) may not create models in organisation '\(request.organization)'")
    }
    return try await store.createModel(request, by: caller)
  }

  public func getModel(_ request: RegistryV1.GetModelRequest, context: ServerContext) async throws -> RegistryV1.Model {
    let caller = try caller
    return try await store.model(try organization(request.organization, caller), request.name, visibleTo: caller).model
  }

  public func searchModels(
    _ request: RegistryV1.SearchModelsRequest, context: ServerContext
  ) async throws -> RegistryV1.SearchModelsResponse {
    try await store.searchModels(request, visibleTo: try caller)
  }

  // MARK: Versions

  public func uploadVersion(
    _ requests: RPCRequestStream<RegistryV1.UploadVersionRequest>, context: ServerContext
  ) async throws -> RegistryV1.ModelVersion {
    let caller = try caller
    var messages = requests.makeAsyncIterator()
    guard let first = try await messages.next(), case .header(let header) = first.part else {
      throw RPCError(.invalidArgument, "an upload starts with its header (UploadHeader), then the file's chunks")
    }
    let organization = try organization(header.organization, caller)
    try RegistryNames.checkSemver(header.semver)
    try RegistryNames.checkTags(header.tags)
    let expected = try BlobDigest(uploadHeader: header.sha256)
    let row = try await store.modelForWriting(organization, header.model, by: caller)

    let (digest, size) = try await blobs.receive(rest: &messages, limit: config.maxModelSize, expected: expected) {
      if case .chunk(let bytes) = $0.part { return bytes }
      return nil
    }

    var version = RegistryV1.ModelVersion()
    do {
      guard size > 0 else { throw RPCError(.invalidArgument, "the file is empty") }
      let (inputs, outputs) = try OnnxSignature.read(try await blobs.read(digest))
      var signature = RegistryV1.Signature()
      signature.inputs = inputs
      signature.outputs = outputs
      signature.preprocessing = header.preprocessing
      signature.classes = header.classes
      version.signature = signature
    } catch {
      if !(try await store.isReferenced(digest.reference)) { _ = try? await blobs.delete(digest) }
      throw error
    }
    version.organization = organization
    version.model = row.model.name
    version.semver = header.semver
    version.sourceRun = header.sourceRun
    version.sourcePath = header.sourcePath
    version.artifact = digest.reference
    version.size = size
    version.format = "onnx"
    version.metrics = header.metrics
    version.tags = header.tags
    version.status = .ready
    version.createdBy = caller.qualifiedName
    version.createdAtMs = RegistryStore.now()
    let (created, event) = try await store.insertVersion(version, of: row)
    hub.publish(event, to: row.id)
    return created
  }

  public func getVersion(
    _ request: RegistryV1.GetVersionRequest, context: ServerContext
  ) async throws
    -> RegistryV1.ModelVersion
  {
    let caller = try caller
    return try await store.version(
      request, organization: try organization(request.organization, caller), visibleTo: caller
    )
    .version
  }

  public func listVersions(
    _ request: RegistryV1.ListVersionsRequest, context: ServerContext
  ) async throws -> RegistryV1.ListVersionsResponse {
    let caller = try caller
    return try await store.versions(
      request, organization: try organization(request.organization, caller), visibleTo: caller)
  }

  public func downloadVersion(
    _ request: RegistryV1.GetVersionRequest, responses: RPCResponseWriter<RegistryV1.DownloadVersionResponse>,
    context: ServerContext
  ) async throws {
    let caller = try caller
    let (_, version) = try await store.version(
      request, organization: try organization(request.organization, caller), visibleTo: caller)
    var header = RegistryV1.DownloadVersionResponse()
    header.part = .version(version)
    try await blobs.send(
      try BlobDigest(reference: version.artifact), named: "the file of version \(version.version)", first: header,
      chunkSize: config.chunkSize, to: responses
    ) { bytes in
      var message = RegistryV1.DownloadVersionResponse()
      message.part = .chunk(bytes)
      return message
    }
  }

  // MARK: Aliases and events

  public func setAlias(
    _ request: RegistryV1.SetAliasRequest, context: ServerContext
  ) async throws
    -> RegistryV1.AliasMove
  {
    let caller = try caller
    try RegistryNames.checkAlias(request.alias)
    guard request.version > 0 else { throw RPCError(.invalidArgument, "version must be 1 or more") }
    let row = try await store.modelForWriting(try organization(request.organization, caller), request.model, by: caller)
    let (move, event) = try await store.moveAlias(request.alias, to: request.version, of: row, by: caller)
    if let event { hub.publish(event, to: row.id) }
    return move
  }

  public func deleteAlias(
    _ request: RegistryV1.DeleteAliasRequest, context: ServerContext
  ) async throws
    -> RegistryV1.AliasMove
  {
    let caller = try caller
    try RegistryNames.checkAlias(request.alias)
    let row = try await store.modelForWriting(try organization(request.organization, caller), request.model, by: caller)
    let (move, event) = try await store.moveAlias(request.alias, to: 0, of: row, by: caller)
    if let event { hub.publish(event, to: row.id) }
    return move
  }

  public func aliasHistory(
    _ request: RegistryV1.AliasHistoryRequest, context: ServerContext
  ) async throws -> RegistryV1.AliasHistoryResponse {
    let caller = try caller
    let row = try await store.model(try organization(request.organization, caller), request.model, visibleTo: caller)
    var response = RegistryV1.AliasHistoryResponse()
    response.moves = try await store.aliasHistory(of: row, alias: request.alias)
    return response
  }

  public func watchModel(
    _ request: RegistryV1.WatchModelRequest, responses: RPCResponseWriter<RegistryV1.ModelEvent>,
    context: ServerContext
  ) async throws {
    let caller = try caller
    let row = try await store.model(try organization(request.organization, caller), request.model, visibleTo: caller)
    // Subscribe before reading the stored events, so nothing falls between the two. A live stream
    // that ends while the call goes on (this watcher fell behind) is replaced, and the gap is
    // filled from the stored events.
    var last = request.afterSequence
    var replay = request.afterSequence > 0
    while !Task.isCancelled {
      let (token, live) = hub.subscribe(row.id, backlog: config.watchBacklog)
      defer { hub.unsubscribe(row.id, token: token) }
      // "From now on" starts at the last stored event, so a later catch-up knows where to begin.
      if !replay, last == 0 { last = try await store.lastSequence(of: row) }
      if replay {
        for event in try await store.events(of: row, after: last) {
          try await responses.send(event)
          last = event.sequence
        }
      }
      for await event in live where event.sequence > last {
        try await responses.send(event)
        last = event.sequence
      }
      replay = true
    }
  }
}
