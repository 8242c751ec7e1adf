import Foundation
public import ShoalProto
import ShoalRPC
public import ShoalStore
import Synchronization

/// The tracking service's tables and queries. Metric points are stored a batch and key to a row
/// (`metric_chunks`, see `MetricChunk`), their values bit for bit; the latest value per key is
/// kept beside them as a double with a NaN flag (SQLite turns a NaN into NULL). Rows in the
/// one-point-per-row `metrics` table of earlier versions are still read.
public struct TrackingStore: Sendable {
  /// The tracking service's migrations.
  public static let migrations = [
    Migration(
      1, "experiments, runs, params, tags, metrics",
      """
      CREATE TABLE experiments (
        id {id}, name TEXT NOT NULL UNIQUE, deleted BIGINT NOT NULL, created_at_ms BIGINT NOT NULL,
        updated_at_ms BIGINT NOT NULL);
      CREATE TABLE experiment_tags (
        experiment_id BIGINT NOT NULL REFERENCES experiments (id), key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (experiment_id, key));
      CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, experiment_id BIGINT NOT NULL REFERENCES experiments (id), name TEXT NOT NULL,
        user_name TEXT NOT NULL, status BIGINT NOT NULL, start_time_ms BIGINT NOT NULL, end_time_ms BIGINT NOT NULL,
        deleted BIGINT NOT NULL, deleted_at_ms BIGINT NOT NULL);
      CREATE INDEX runs_experiment ON runs (experiment_id);
      CREATE TABLE params (
        run_id TEXT NOT NULL REFERENCES runs (run_id), key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (run_id, key));
      CREATE TABLE run_tags (
        run_id TEXT NOT NULL REFERENCES runs (run_id), key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (run_id, key));
      CREATE TABLE metrics (
        id {id}, run_id TEXT NOT NULL REFERENCES runs (run_id), key TEXT NOT NULL, step BIGINT NOT NULL,
        timestamp_ms BIGINT NOT NULL, value {real}, is_nan BIGINT NOT NULL);
      CREATE INDEX metrics_series ON metrics (run_id, key, step, timestamp_ms);
      CREATE TABLE latest_metrics (
        run_id TEXT NOT NULL REFERENCES runs (run_id), key TEXT NOT NULL, step BIGINT NOT NULL,
        timestamp_ms BIGINT NOT NULL, value {real}, is_nan BIGINT NOT NULL, PRIMARY KEY (run_id, key));
      CREATE TABLE batch_requests (
        run_id TEXT NOT NULL REFERENCES runs (run_id), request_id TEXT NOT NULL, PRIMARY KEY (run_id, request_id));
      """),
    Migration(
      2, "dataset inputs",
      """
      CREATE TABLE run_inputs (
        run_id TEXT NOT NULL REFERENCES runs (run_id), name TEXT NOT NULL, digest TEXT NOT NULL, source TEXT NOT NULL,
        context TEXT NOT NULL, PRIMARY KEY (run_id, name, digest, context));
      """),
    Migration(
      3, "artifacts",
      """
      CREATE TABLE artifacts (
        run_id TEXT NOT NULL REFERENCES runs (run_id), path TEXT NOT NULL, size BIGINT NOT NULL,
        digest TEXT NOT NULL, created_at_ms BIGINT NOT NULL, PRIMARY KEY (run_id, path));
      """),
    Migration(
      4, "metric points a batch and key to a row",
      """
      CREATE TABLE metric_chunks (
        id {id}, run_id TEXT NOT NULL REFERENCES runs (run_id), key TEXT NOT NULL, count BIGINT NOT NULL,
        first_step BIGINT NOT NULL, first_timestamp_ms BIGINT NOT NULL, last_step BIGINT NOT NULL,
        last_timestamp_ms BIGINT NOT NULL, points {blob} NOT NULL);
      CREATE INDEX metric_chunks_series ON metric_chunks (
        run_id, key, id, count, first_step, first_timestamp_ms, last_step, last_timestamp_ms);
      """),
    Migration(
      5, "experiments owned by an organisation",
      """
      ALTER TABLE experiments ADD COLUMN organization TEXT NOT NULL DEFAULT 'local';
      """),
  ]

  /// The organisation of experiments created by a caller who names none and has none (a peer on
  /// the Unix socket): the registry's built-in one.
  public static let defaultOrganization = "local"

  /// The database.
  public let database: Database

  /// Metric batches, committed a group at a time.
  let batches: GroupCommit<TrackingV1.LogBatchRequest, TrackingV1.LogBatchResponse>
  /// The organisation of each run asked about (a run never moves to another experiment).
  private let runOrganizations = RunOrganizations()

  /// A store over `database` (migrated with `migrations`).
  public init(database: Database) {
    self.database = database
    // SQLite has one writer, so its groups go one at a time, and a lone batch is written on the
    // caller's thread; PostgreSQL commits two groups at once.
    let sqlite = database.dialect == .sqlite
    batches = GroupCommit(
      database: database, maxConcurrentGroups: sqlite ? 1 : 2, commitsIdleOnCaller: sqlite,
      apply: { connection, request in try Self.write(request, on: connection) },
      applyGroup: { connection, requests in try Self.write(requests, on: connection) })
  }

  static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

  // MARK: Experiments

  /// Creates an experiment owned by `organization`.
  ///
  /// - Throws: ALREADY_EXISTS when the name is taken (also by a deleted experiment); names are
  ///   unique across organisations, as in MLflow.
  public func createExperiment(
    _ request: TrackingV1.CreateExperimentRequest, organization: String = TrackingStore.defaultOrganization
  ) async throws -> TrackingV1.Experiment {
    let now = Self.now()
    let id: Int64
    do {
      id = try await database.transaction { connection in
        let id = try connection.query(
          """
          INSERT INTO experiments (name, organization, deleted, created_at_ms, updated_at_ms)
          VALUES ($1, $2, 0, $3, $3) RETURNING id
          """, .text(request.name), .text(organization), .integer(now)
        )[0].int("id")
        try connection.executeBatch(
          "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)",
          request.tags.sorted { $0.key < $1.key }.map { [.integer(id), .text($0.key), .text($0.value)] })
        return id
      }
    } catch let error as StoreError where error.code == .alreadyExists {
      let owner = try? await experiment(named: request.name).organization
      guard owner == nil || owner == organization else {
        throw RPCError(
          .alreadyExists,
          "the name '\(request.name)' is taken by another organisation's experiment (names are unique in the mesh)")
      }
      throw RPCError(.alreadyExists, "experiment '\(request.name)' already exists (perhaps deleted: restore it)")
    }
    return try await experiment(id: String(id))
  }

  /// The experiment with `id`.
  ///
  /// - Throws: NOT_FOUND naming it.
  public func experiment(id: String) async throws -> TrackingV1.Experiment {
    guard let number = Int64(id) else { throw RPCError(.notFound, "experiment '\(id)' not found") }
    let found = try await database.read { connection in
      try connection.queryFirst("SELECT * FROM experiments WHERE id = $1", .integer(number)).map {
        try Self.experiment($0, connection)
      }
    }
    guard let found else { throw RPCError(.notFound, "experiment '\(id)' not found") }
    return found
  }

  /// The experiment named `name`.
  public func experiment(named name: String) async throws -> TrackingV1.Experiment {
    let found = try await database.read { connection in
      try connection.queryFirst("SELECT * FROM experiments WHERE name = $1", .text(name)).map {
        try Self.experiment($0, connection)
      }
    }
    guard let found else { throw RPCError(.notFound, "experiment named '\(name)' not found") }
    return found
  }

  /// One page of experiments, oldest first, that match `request.filter` (MLflow's
  /// search_experiments): those of `organization`, or every organisation's when it is nil.
  ///
  /// - Throws: INVALID_ARGUMENT for a malformed filter, with the position of the error.
  public func experiments(
    _ request: TrackingV1.ListExperimentsRequest, organization: String? = nil
  ) async throws
    -> TrackingV1.ListExperimentsResponse
  {
    let pageSize = try Self.pageSize(request.pageSize, default: 100, limit: 1000)
    let after = try Self.pageToken(request.pageToken)
    var builder = RunQueryBuilder()
    builder.overExperiments = true
    var conditions = [
      "e.id > \(builder.bind(.integer(after)))", Self.lifecycleFilter(request.view, column: "e.deleted"),
    ]
    if let organization { conditions.append("e.organization = \(builder.bind(.text(organization)))") }
    do {
      if let filter = try RunFilterParser.parse(request.filter, experiments: true) {
        conditions.append(try builder.condition(filter))
      }
    } catch {
      throw RPCError(.invalidArgument, "filter: \(error)")
    }
    let sql =
      "SELECT e.* FROM experiments e WHERE \(conditions.joined(separator: " AND ")) ORDER BY e.id LIMIT "
      + builder.bind(.integer(Int64(pageSize + 1)))
    let parameters = builder.parameters
    let rows = try await database.read { connection in
      try connection.query(sql, parameters).map { (try $0.int("id"), try Self.experiment($0, connection)) }
    }
    var response = TrackingV1.ListExperimentsResponse()
    response.experiments = rows.prefix(pageSize).map(\.1)
    if rows.count > pageSize, let last = rows.prefix(pageSize).last { response.nextPageToken = String(last.0) }
    return response
  }

  /// Renames an experiment, removes and sets tags on it (overwriting, keeping the others) and
  /// moves it to another organisation, each when asked; all of it or, on an error, nothing.
  ///
  /// - Throws: NOT_FOUND for an unknown experiment or a tag to remove that it does not have;
  ///   ALREADY_EXISTS when the new name is taken.
  public func updateExperiment(_ request: TrackingV1.UpdateExperimentRequest) async throws -> TrackingV1.Experiment {
    let current = try await experiment(id: request.experimentId)
    let id = Int64(request.experimentId)!
    let now = Self.now()
    do {
      try await database.transaction { connection in
        if !request.newName.isEmpty {
          try connection.execute("UPDATE experiments SET name = $2 WHERE id = $1", .integer(id), .text(request.newName))
        }
        if !request.organization.isEmpty {
          try connection.execute(
            "UPDATE experiments SET organization = $2 WHERE id = $1", .integer(id), .text(request.organization))
        }
        for key in request.deleteTags {
          let removed = try connection.execute(
            "DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2", .integer(id), .text(key))
          guard removed > 0 else { throw RPCError(.notFound, "experiment '\(current.name)' has no tag '\(key)'") }
        }
        try connection.executeBatch(
          """
          INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)
          ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value
          """, request.tags.sorted { $0.key < $1.key }.map { [.integer(id), .text($0.key), .text($0.value)] })
        try connection.execute("UPDATE experiments SET updated_at_ms = $2 WHERE id = $1", .integer(id), .integer(now))
      }
    } catch let error as StoreError where error.code == .alreadyExists {
      throw RPCError(.alreadyExists, "an experiment named '\(request.newName)' already exists (perhaps deleted)")
    }
    if !request.organization.isEmpty { runOrganizations.forgetAll() }
    return try await experiment(id: request.experimentId)
  }

  /// Marks an experiment (and, in MLflow's way, its runs) deleted or active again.
  public func setExperiment(_ id: String, deleted: Bool) async throws -> TrackingV1.Experiment {
    // An unknown experiment is NOT_FOUND before anything changes.
    _ = try await experiment(id: id)
    let now = Self.now()
    try await database.transaction { connection in
      try connection.execute(
        "UPDATE experiments SET deleted = $2, updated_at_ms = $3 WHERE id = $1", .integer(Int64(id)!), .bool(deleted),
        .integer(now))
      try connection.execute(
        "UPDATE runs SET deleted = $2, deleted_at_ms = $3 WHERE experiment_id = $1", .integer(Int64(id)!),
        .bool(deleted), .integer(deleted ? now : 0))
    }
    return try await experiment(id: id)
  }

  static func experiment(_ row: SQLRow, _ connection: any SQLConnection) throws -> TrackingV1.Experiment {
    var experiment = TrackingV1.Experiment()
    let id = try row.int("id")
    experiment.experimentId = String(id)
    experiment.name = try row.string("name")
    experiment.organization = try row.string("organization")
    experiment.lifecycle = try row.bool("deleted") ? .deleted : .active
    experiment.createdAtMs = try row.int("created_at_ms")
    experiment.updatedAtMs = try row.int("updated_at_ms")
    for tag in try connection.query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1", .integer(id)) {
      experiment.tags[try tag.string("key")] = try tag.string("value")
    }
    return experiment
  }

  // MARK: Organisations

  /// The organisation owning run `runID` (through its experiment); nil when there is no such run.
  public func organization(ofRun runID: String) async throws -> String? {
    let (known, generation) = runOrganizations.organization(of: runID)
    if let known { return known }
    let found = try await database.read { connection in
      try connection.queryFirst(
        "SELECT e.organization FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE r.run_id = $1",
        .text(runID)
      ).map { try $0.string("organization") }
    }
    if let found { runOrganizations.remember(found, of: runID, readIn: generation) }
    return found
  }

  // MARK: Paging helpers

  static func pageSize(_ requested: Int32, default value: Int, limit: Int) throws(RPCError) -> Int {
    let size = requested == 0 ? value : Int(requested)
    guard (1...limit).contains(size) else {
      throw RPCError(.invalidArgument, "page_size must be 1–\(limit), given \(requested)")
    }
    return size
  }

  static func pageToken(_ token: String) throws(RPCError) -> Int64 {
    guard !token.isEmpty else { return 0 }
    guard let value = Int64(token), value > 0 else {
      throw RPCError(.invalidArgument, "page_token '\(token)' is not one this service gave out")
    }
    return value
  }

  static func lifecycleFilter(_ view: TrackingV1.ViewType, column: String) -> String {
    switch view {
    case .deletedOnly: "\(column) = 1"
    case .all: "1 = 1"
    default: "\(column) = 0"
    }
  }
}

/// Which organisation each run belongs to, as far as asked: a run never changes experiment, and an
/// experiment changes organisation only when the mesh administrator moves it, which forgets every
/// answer (a run removed for good is NOT_FOUND anyway). An answer read before a move and
/// remembered after it is dropped (`generation`), so a moved run is never seen with its old
/// organisation. Bounded: forgotten all at once past 65,536 runs.
private final class RunOrganizations: Sendable {
  private struct State {
    var known: [String: String] = [:]
    var generation = 0
  }

  private let state = Mutex(State())

  /// The remembered organisation of `runID`, and the generation to remember a fresh answer with.
  func organization(of runID: String) -> (organization: String?, generation: Int) {
    state.withLock { ($0.known[runID], $0.generation) }
  }

  func forgetAll() {
    state.withLock { state in
      state.known.removeAll()
      state.generation += 1
    }
  }

  /// Remembers an answer read in `generation`, unless everything was forgotten since.
  func remember(_ organization: String, of runID: String, readIn generation: Int) {
    state.withLock { state in
      guard state.generation == generation else { return }
      if state.known.count >= 1 << 16 { state.known.removeAll(keepingCapacity: true) }
      state.known[runID] = organization
    }
  }
}
