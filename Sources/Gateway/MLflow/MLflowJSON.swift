import ShoalProto

/// Shoal's tracking and registry messages in MLflow's JSON: snake_case, ids and versions as
/// strings, enums by name, times in milliseconds as strings (int64), non-finite doubles as strings.
enum MLflowJSON {
  static func int64(_ value: Int64) -> JSONValue { .string(String(value)) }

  /// `[{key, value}]`, sorted by key so answers are stable.
  static func keyValues(_ map: [String: String]) -> JSONValue {
    .array(map.sorted { $0.key < $1.key }.map { .object([("key", .string($0.key)), ("value", .string($0.value))]) })
  }

  /// The artifact root of a run, which the client resolves against the tracking URI and then
  /// reaches under `/api/2.0/mlflow-artifacts/artifacts/`.
  static func artifactURI(experiment: String, run: String) -> String {
    "mlflow-artifacts:/\(experiment)/\(run)/artifacts"
  }

  static func experiment(_ experiment: TrackingV1.Experiment) -> JSONValue {
    .object([
      ("experiment_id", .string(experiment.experimentId)),
      ("name", .string(experiment.name)),
      ("artifact_location", .string("mlflow-artifacts:/\(experiment.experimentId)")),
      ("lifecycle_stage", .string(lifecycle(experiment.lifecycle))),
      ("creation_time", int64(experiment.createdAtMs)),
      ("last_update_time", int64(experiment.updatedAtMs)),
      ("tags", keyValues(experiment.tags)),
    ])
  }

  static func lifecycle(_ lifecycle: TrackingV1.Lifecycle) -> String {
    lifecycle == .deleted ? "deleted" : "active"
  }

  static func status(_ status: TrackingV1.RunStatus) -> String {
    switch status {
    case .unspecified, .unrecognized: "RUNNING"
    default: status.protoName ?? "RUNNING"
    }
  }

  static func runInfo(_ run: TrackingV1.Run) -> JSONValue {
    var members: [(String, JSONValue)] = [
      ("run_id", .string(run.runId)),
      ("run_uuid", .string(run.runId)),
      ("run_name", .string(run.name)),
      ("experiment_id", .string(run.experimentId)),
      ("user_id", .string(run.user)),
      ("status", .string(status(run.status))),
      ("start_time", int64(run.startTimeMs)),
      ("artifact_uri", .string(artifactURI(experiment: run.experimentId, run: run.runId))),
      ("lifecycle_stage", .string(lifecycle(run.lifecycle))),
    ]
    if run.endTimeMs > 0 { members.append(("end_time", int64(run.endTimeMs))) }
    return .object(members)
  }

  static func metric(_ metric: TrackingV1.Metric) -> JSONValue {
    .object([
      ("key", .string(metric.key)), ("value", metric.value._jsonValue()), ("timestamp", int64(metric.timestampMs)),
      ("step", int64(metric.step)),
    ])
  }

  static func run(_ run: TrackingV1.Run) -> JSONValue {
    var tags = run.tags
    // MLflow keeps the run's name and user as tags too, and its UI and client read them there.
    if tags["mlflow.runName"] == nil, !run.name.isEmpty { tags["mlflow.runName"] = run.name }
    if tags["mlflow.user"] == nil, !run.user.isEmpty { tags["mlflow.user"] = run.user }
    let datasets: [JSONValue] = run.inputs.map { input in
      .object([
        (
          "dataset",
          .object([
            ("name", .string(input.name)), ("digest", .string(input.digest)), ("source_type", .string("external")),
            ("source", .string(input.source)),
          ])
        ),
        ("tags", .array([.object([("key", .string("mlflow.data.context")), ("value", .string(input.context))])])),
      ])
    }
    return .object([
      ("info", runInfo(run)),
      (
        "data",
        .object([
          ("metrics", .array(run.metrics.sorted { $0.key < $1.key }.map(metric))),
          ("params", keyValues(run.params)),
          ("tags", keyValues(tags)),
        ])
      ),
      ("inputs", .object([("dataset_inputs", .array(datasets))])),
    ])
  }

  /// A registered model, with its latest version when it has one.
  static func registeredModel(_ model: RegistryV1.Model, latest: JSONValue? = nil) -> JSONValue {
    var members: [(String, JSONValue)] = [
      ("name", .string(model.name)),
      ("creation_timestamp", int64(model.createdAtMs)),
      ("last_updated_timestamp", int64(model.createdAtMs)),
      ("description", .string(model.description)),
      ("tags", keyValues(model.tags)),
      (
        "aliases",
        .array(
          model.aliases.sorted { $0.key < $1.key }.map {
            .object([("alias", .string($0.key)), ("version", .string(String($0.value)))])
          })
      ),
    ]
    if let latest { members.append(("latest_versions", .array([latest]))) }
    return .object(members)
  }

  /// A version; `source` is where the client downloads it from.
  static func modelVersion(_ version: RegistryV1.ModelVersion, source: String) -> JSONValue {
    .object([
      ("name", .string(version.model)),
      ("version", .string(String(version.version))),
      ("creation_timestamp", int64(version.createdAtMs)),
      ("last_updated_timestamp", int64(version.createdAtMs)),
      ("user_id", .string(version.createdBy)),
      ("current_stage", .string("None")),
      ("description", .string(version.tags["mlflow.description"] ?? "")),
      ("source", .string(source)),
      ("run_id", .string(version.sourceRun)),
      // The client polls until READY; a version the registry has is stored, checked and ready.
      ("status", .string(version.status == .failed ? "FAILED_REGISTRATION" : "READY")),
      ("status_message", .string(version.statusMessage)),
      ("tags", keyValues(version.tags.filter { $0.key != "mlflow.description" })),
      ("aliases", .array(version.aliases.map { .string($0) })),
    ])
  }
}
