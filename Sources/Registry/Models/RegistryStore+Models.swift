public import ShoalProto
import ShoalRPC
import ShoalStore

extension RegistryStore {
  /// Creates a model in `request.organization`.
  ///
  /// - Throws: ALREADY_EXISTS for a taken name, NOT_FOUND for an unknown organisation.
  public func createModel(_ request: RegistryV1.CreateModelRequest, by caller: Caller) async throws -> RegistryV1.Model
  {
    let now = Self.now()
    do {
      try await database.transaction { connection in
        guard
          try connection.queryFirst("SELECT name FROM organizations WHERE name = $1", .text(request.organization))
            != nil
        else { throw RPCError(.notFound, "organisation '\(request.organization)' not found") }
        let id = try connection.query(
          """
          INSERT INTO models (organization, name, description, task, public, created_by, created_at_ms)
          VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
          """, .text(request.organization), .text(request.name), .text(request.description),
          .integer(Int64(request.task.rawValue)), .bool(request.visibility == .public), .text(caller.qualifiedName),
          .integer(now)
        )[0].int("id")
        try connection.executeBatch(
          "INSERT INTO model_tags (model_id, key, value) VALUES ($1, $2, $3)",
          request.tags.sorted { $0.key < $1.key }.map { [.integer(id), .text($0.key), .text($0.value)] })
      }
    } catch let error as StoreError where error.code == .alreadyExists {
      throw RPCError(
        .alreadyExists, "model '\(request.name)' already exists in organisation '\(request.organization)'")
    }
    return try await model(request.organization, request.name, visibleTo: caller).model
  }

  /// The model, if `caller` may see it.
  ///
  /// - Throws: NOT_FOUND naming the model.
  func model(_ organization: String, _ name: String, visibleTo caller: Caller) async throws -> ModelRow {
    let row = try await database.read { connection -> ModelRow? in
      guard
        let row = try connection.query(
          """
          SELECT m.* FROM models m WHERE m.organization = $1 AND m.name = $2 AND \(Self.visible(caller, parameter: 3))
          """, [.text(organization), .text(name)] + (caller.superuser ? [] : [.text(caller.organization)])
        ).first
      else { return nil }
      return try Self.modelRow(row, connection)
    }
    guard let row else { throw RPCError.modelNotFound(organization, name) }
    return row
  }

  /// The model, if `caller` may change it.
  ///
  /// - Throws: NOT_FOUND when it cannot see it, PERMISSION_DENIED when it can only read it.
  func modelForWriting(_ organization: String, _ name: String, by caller: Caller) async throws -> ModelRow {
    let row = try await model(organization, name, visibleTo: caller)
    guard caller.canWrite(in: row.model.organization) else {
      throw RPCError(
        .permissionDenied,
        "\(caller.qualifiedName) may not change model '\(name)' of organisation '\(organization)' (needs writer there)")
    }
    return row
  }

  /// One page of the models `caller` may see that match `request`, in creation order.
  public func searchModels(
    _ request: RegistryV1.SearchModelsRequest, visibleTo caller: Caller
  ) async throws -> RegistryV1.SearchModelsResponse {
    let pageSize = request.pageSize == 0 ? 100 : Int(request.pageSize)
    guard (1...500).contains(pageSize) else {
      throw RPCError(.invalidArgument, "page_size must be 1–500, given \(request.pageSize)")
    }
    var after: Int64 = 0
    if !request.pageToken.isEmpty {
      guard let value = Int64(request.pageToken), value > 0 else {
        throw RPCError(.invalidArgument, "page_token '\(request.pageToken)' is not one this registry gave out")
      }
      after = value
    }
    var conditions = ["m.id > $1"]
    var parameters: [SQLValue] = [.integer(after)]
    func add(_ condition: (Int) -> String, _ values: SQLValue...) {
      conditions.append(condition(parameters.count + 1))
      parameters += values
    }
    if !caller.superuser { add({ Self.visible(caller, parameter: $0) }, .text(caller.organization)) }
    if !request.query.isEmpty {
      let pattern = "%" + LikePattern.escaped(request.query.lowercased()) + "%"
      add({ "(lower(m.name) LIKE $\($0) ESCAPE '\\' OR lower(m.description) LIKE $\($0) ESCAPE '\\')" }, .text(pattern))
    }
    if !request.organization.isEmpty { add({ "m.organization = $\($0)" }, .text(request.organization)) }
    if request.task != .unspecified { add({ "m.task = $\($0)" }, .integer(Int64(request.task.rawValue))) }
    if request.visibility != .unspecified { add({ "m.public = $\($0)" }, .bool(request.visibility == .public)) }
    for (key, value) in request.tags.sorted(by: { $0.key < $1.key }) {
      add(
        { "EXISTS (SELECT 1 FROM model_tags t WHERE t.model_id = m.id AND t.key = $\($0) AND t.value = $\($0 + 1))" },
        .text(key), .text(value))
    }
    parameters.append(.integer(Int64(pageSize + 1)))
    let sql =
      "SELECT m.* FROM models m WHERE \(conditions.joined(separator: " AND ")) ORDER BY m.id LIMIT $\(parameters.count)"
    let frozen = parameters
    let rows = try await database.read { connection in
      try connection.query(sql, frozen).map { try Self.modelRow($0, connection) }
    }
    var response = RegistryV1.SearchModelsResponse()
    response.models = rows.prefix(pageSize).map(\.model)
    if rows.count > pageSize, let last = rows.prefix(pageSize).last { response.nextPageToken = String(last.id) }
    return response
  }

  /// A model row with its tags, latest version and aliases.
  static func modelRow(_ row: SQLRow, _ connection: any SQLConnection) throws -> ModelRow {
    let id = try row.int("id")
    var model = RegistryV1.Model()
    model.organization = try row.string("organization")
    model.name = try row.string("name")
    model.description = try row.string("description")
    model.task = RegistryV1.ModelTask(rawValue: Int32(try row.int("task")))
    model.visibility = try row.bool("public") ? .public : .private
    model.createdBy = try row.string("created_by")
    model.createdAtMs = try row.int("created_at_ms")
    for tag in try connection.query("SELECT key, value FROM model_tags WHERE model_id = $1", .integer(id)) {
      model.tags[try tag.string("key")] = try tag.string("value")
    }
    model.latestVersion =
      try connection.query("SELECT max(version) AS v FROM model_versions WHERE model_id = $1", .integer(id))[0]
      .optionalInt("v") ?? 0
    for alias in try connection.query("SELECT alias, version FROM model_aliases WHERE model_id = $1", .integer(id)) {
      model.aliases[try alias.string("alias")] = try alias.int("version")
    }
    return ModelRow(id: id, model: model)
  }
}
