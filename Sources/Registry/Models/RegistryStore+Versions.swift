import ShoalProto
import ShoalRPC
import ShoalStore

extension RegistryStore {
  /// Adds a READY version with the next number; the version body is stored whole.
  func insertVersion(
    _ version: RegistryV1.ModelVersion, of row: ModelRow
  ) async throws -> (version: RegistryV1.ModelVersion, event: RegistryV1.ModelEvent) {
    try await database.transaction { connection in
      var version = version
      version.version =
        (try connection.query("SELECT max(version) AS v FROM model_versions WHERE model_id = $1", .integer(row.id))[0]
          .optionalInt("v") ?? 0) + 1
      try connection.execute(
        "INSERT INTO model_versions (model_id, version, body, artifact, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        .integer(row.id), .integer(version.version), .blob(version.serializedBytes()), .text(version.artifact),
        .integer(version.createdAtMs))
      var event = RegistryV1.ModelEvent()
      event.change = .versionCreated(version)
      event = try Self.appendEvent(event, model: row.id, connection)
      return (version, event)
    }
  }

  /// The version `request` selects (number, alias, or the latest) of a model `caller` may see.
  ///
  /// - Throws: NOT_FOUND naming the model, the version or the alias.
  func version(
    _ request: RegistryV1.GetVersionRequest, organization: String, visibleTo caller: Caller
  ) async throws -> (row: ModelRow, version: RegistryV1.ModelVersion) {
    let row = try await model(organization, request.model, visibleTo: caller)
    var number = request.version
    if number == 0, !request.alias.isEmpty {
      if request.alias == "latest" {
        number = row.model.latestVersion
      } else if let reserved = RegistryNames.versionNumber(inAlias: request.alias) {
        number = reserved
      } else if let aliased = row.model.aliases[request.alias] {
        number = aliased
      } else {
        throw RPCError(
          .notFound,
          "model '\(request.model)' has no version with alias '\(request.alias)'; set one with `shoal models alias`")
      }
    } else if number == 0 {
      number = row.model.latestVersion
      guard number > 0 else {
        throw RPCError(.notFound, "model '\(request.model)' has no versions yet; push one with `shoal models push`")
      }
    }
    let wanted = number
    let body = try await database.read { connection in
      try connection.queryFirst(
        "SELECT body FROM model_versions WHERE model_id = $1 AND version = $2", .integer(row.id), .integer(wanted)
      )?.bytes("body")
    }
    guard let body else { throw RPCError(.notFound, "model '\(request.model)' has no version \(wanted)") }
    var version = try RegistryV1.ModelVersion(serializedBytes: body)
    version.aliases = row.model.aliases.filter { $0.value == wanted }.map(\.key).sorted()
    return (row, version)
  }

  /// One page of a model's versions, newest first.
  func versions(
    _ request: RegistryV1.ListVersionsRequest, organization: String, visibleTo caller: Caller
  ) async throws -> RegistryV1.ListVersionsResponse {
    let row = try await model(organization, request.model, visibleTo: caller)
    let pageSize = request.pageSize == 0 ? 100 : Int(request.pageSize)
    guard (1...500).contains(pageSize) else {
      throw RPCError(.invalidArgument, "page_size must be 1–500, given \(request.pageSize)")
    }
    var before = Int64.max
    if !request.pageToken.isEmpty {
      guard let value = Int64(request.pageToken), value > 0 else {
        throw RPCError(.invalidArgument, "page_token '\(request.pageToken)' is not one this registry gave out")
      }
      before = value
    }
    let limit = before
    let bodies = try await database.read { connection in
      try connection.query(
        "SELECT body FROM model_versions WHERE model_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
        .integer(row.id), .integer(limit), .integer(Int64(pageSize + 1))
      ).map { try $0.bytes("body") }
    }
    var response = RegistryV1.ListVersionsResponse()
    for body in bodies.prefix(pageSize) {
      var version = try RegistryV1.ModelVersion(serializedBytes: body)
      version.aliases = row.model.aliases.filter { $0.value == version.version }.map(\.key).sorted()
      response.versions.append(version)
    }
    if bodies.count > pageSize, let last = response.versions.last { response.nextPageToken = String(last.version) }
    return response
  }

  /// Whether any version still refers to the blob (before deleting it).
  func isReferenced(_ artifact: String) async throws -> Bool {
    try await database.read { connection in
      try connection.queryFirst("SELECT 1 AS one FROM model_versions WHERE artifact = $1 LIMIT 1", .text(artifact))
        != nil
    }
  }

  /// Stores an event and returns it with its sequence number.
  static func appendEvent(
    _ event: RegistryV1.ModelEvent, model id: Int64, _ connection: any SQLConnection
  ) throws -> RegistryV1.ModelEvent {
    var event = event
    event.sequence = try connection.query(
      "INSERT INTO model_events (model_id, event) VALUES ($1, $2) RETURNING sequence", .integer(id),
      .blob(event.serializedBytes())
    )[0].int("sequence")
    return event
  }

  /// The sequence number of a model's last event (0 for none).
  func lastSequence(of row: ModelRow) async throws -> Int64 {
    try await database.read { connection in
      try connection.query("SELECT max(sequence) AS s FROM model_events WHERE model_id = $1", .integer(row.id))[0]
        .optionalInt("s") ?? 0
    }
  }

  /// A model's events after `sequence`, in order.
  func events(of row: ModelRow, after sequence: Int64) async throws -> [RegistryV1.ModelEvent] {
    try await database.read { connection in
      try connection.query(
        "SELECT sequence, event FROM model_events WHERE model_id = $1 AND sequence > $2 ORDER BY sequence",
        .integer(row.id), .integer(sequence)
      ).map { record in
        var event = try RegistryV1.ModelEvent(serializedBytes: try record.bytes("event"))
        event.sequence = try record.int("sequence")
        return event
      }
    }
  }
}
