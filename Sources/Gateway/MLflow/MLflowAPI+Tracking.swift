import Hummingbird
import ShoalProto
import ShoalRPC

/// Experiments, runs, params, tags and metrics.
extension MLflowAPI {
  func registerTracking(in router: Router<GatewayContext>) {
    let tracking = self.tracking

    // Experiments.
    endpoint(router, "experiments/create", [.post]) { fields, caller in
      var request = TrackingV1.CreateExperimentRequest()
      request.name = try fields.string("name")
      request.tags = try Self.tags(fields)
      let experiment = try await tracking.createExperiment(request, options: caller.options())
      return .object([("experiment_id", .string(experiment.experimentId))])
    }
    endpoint(router, "experiments/get", [.get]) { fields, caller in
      var request = TrackingV1.GetExperimentRequest()
      request.experimentId = try fields.string("experiment_id")
      return .object([
        ("experiment", MLflowJSON.experiment(try await tracking.getExperiment(request, options: caller.options())))
      ])
    }
    endpoint(router, "experiments/get-by-name", [.get]) { fields, caller in
      var request = TrackingV1.GetExperimentRequest()
      request.name = try fields.string("experiment_name")
      return .object([
        ("experiment", MLflowJSON.experiment(try await tracking.getExperiment(request, options: caller.options())))
      ])
    }
    endpoint(router, "experiments/search", [.post, .get]) { fields, caller in
      var request = TrackingV1.ListExperimentsRequest()
      request.view = try Self.viewType(fields, "view_type")
      request.pageSize = try Self.pageSize(fields, default: 1000, limit: 1000)
      request.pageToken = try fields.optionalString("page_token") ?? ""
      request.filter = try fields.optionalString("filter") ?? ""
      let response = try await tracking.listExperiments(request, options: caller.options())
      var members: [(String, JSONValue)] = [("experiments", .array(response.experiments.map(MLflowJSON.experiment)))]
      if !response.nextPageToken.isEmpty { members.append(("next_page_token", .string(response.nextPageToken))) }
      return .object(members)
    }
    endpoint(router, "experiments/update", [.post]) { fields, caller in
      var request = TrackingV1.UpdateExperimentRequest()
      request.experimentId = try fields.string("experiment_id")
      request.newName = try fields.string("new_name")
      _ = try await tracking.updateExperiment(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "experiments/set-experiment-tag", [.post]) { fields, caller in
      var request = TrackingV1.UpdateExperimentRequest()
      request.experimentId = try fields.string("experiment_id")
      request.tags = [try fields.string("key"): try fields.optionalString("value") ?? ""]
      _ = try await tracking.updateExperiment(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "experiments/delete-experiment-tag", [.post, .delete]) { fields, caller in
      var request = TrackingV1.UpdateExperimentRequest()
      request.experimentId = try fields.string("experiment_id")
      request.deleteTags = [try fields.string("key")]
      _ = try await tracking.updateExperiment(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "experiments/delete", [.post]) { fields, caller in
      var request = TrackingV1.ExperimentLifecycleRequest()
      request.experimentId = try fields.string("experiment_id")
      _ = try await tracking.deleteExperiment(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "experiments/restore", [.post]) { fields, caller in
      var request = TrackingV1.ExperimentLifecycleRequest()
      request.experimentId = try fields.string("experiment_id")
      _ = try await tracking.restoreExperiment(request, options: caller.options())
      return .object([])
    }

    // Runs.
    endpoint(router, "runs/create", [.post]) { fields, caller in
      var request = TrackingV1.CreateRunRequest()
      request.experimentId = try await Self.experimentId(try fields.optionalString("experiment_id"), tracking, caller)
      request.name = try fields.optionalString("run_name") ?? ""
      request.user = try fields.optionalString("user_id") ?? ""
      request.startTimeMs = try fields.optionalInt64("start_time") ?? 0
      request.tags = try Self.tags(fields)
      if request.name.isEmpty, let name = request.tags["mlflow.runName"] { request.name = name }
      return .object([("run", MLflowJSON.run(try await tracking.createRun(request, options: caller.options())))])
    }
    endpoint(router, "runs/get", [.get]) { fields, caller in
      var request = TrackingV1.GetRunRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      return .object([("run", MLflowJSON.run(try await tracking.getRun(request, options: caller.options())))])
    }
    endpoint(router, "runs/update", [.post]) { fields, caller in
      var request = TrackingV1.UpdateRunRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      if let status = try fields.optionalString("status") {
        guard let parsed = TrackingV1.RunStatus(protoName: status), parsed != .unspecified else {
          throw GatewayError.invalid("status: '\(status)' is not RUNNING, SCHEDULED, FINISHED, FAILED or KILLED")
        }
        request.status = parsed
      }
      request.endTimeMs = try fields.optionalInt64("end_time") ?? 0
      request.name = try fields.optionalString("run_name") ?? ""
      let run = try await tracking.updateRun(request, options: caller.options())
      return .object([("run_info", MLflowJSON.runInfo(run))])
    }
    endpoint(router, "runs/delete", [.post]) { fields, caller in
      var request = TrackingV1.RunLifecycleRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      _ = try await tracking.deleteRun(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/restore", [.post]) { fields, caller in
      var request = TrackingV1.RunLifecycleRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      _ = try await tracking.restoreRun(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/log-metric", [.post]) { fields, caller in
      var request = TrackingV1.LogBatchRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      request.metrics = [try Self.metric(fields, at: "")]
      _ = try await tracking.logBatch(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/log-parameter", [.post]) { fields, caller in
      var request = TrackingV1.LogBatchRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      var param = TrackingV1.Param()
      param.key = try fields.string("key")
      param.value = try fields.optionalString("value") ?? ""
      request.params = [param]
      _ = try await tracking.logBatch(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/set-tag", [.post]) { fields, caller in
      var request = TrackingV1.LogBatchRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      var tag = TrackingV1.Tag()
      tag.key = try fields.string("key")
      tag.value = try fields.optionalString("value") ?? ""
      request.tags = [tag]
      _ = try await tracking.logBatch(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/delete-tag", [.post]) { fields, caller in
      var request = TrackingV1.UpdateRunRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      request.deleteTags = [try fields.string("key")]
      _ = try await tracking.updateRun(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/log-batch", [.post]) { fields, caller in
      var request = TrackingV1.LogBatchRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      request.metrics = try fields.objects("metrics").enumerated().map { index, metric throws(GatewayError) in
        try Self.metric(metric, at: "metrics[\(index)].")
      }
      request.params = try fields.objects("params").enumerated().map { index, param throws(GatewayError) in
        var value = TrackingV1.Param()
        value.key = try param.string("key", at: "params[\(index)].")
        value.value = try param.optionalString("value") ?? ""
        return value
      }
      request.tags = try fields.objects("tags").enumerated().map { index, tag throws(GatewayError) in
        var value = TrackingV1.Tag()
        value.key = try tag.string("key", at: "tags[\(index)].")
        value.value = try tag.optionalString("value") ?? ""
        return value
      }
      guard !request.metrics.isEmpty || !request.params.isEmpty || !request.tags.isEmpty else { return .object([]) }
      _ = try await tracking.logBatch(request, options: caller.options())
      return .object([])
    }
    endpoint(router, "runs/log-inputs", [.post]) { fields, caller in
      var request = TrackingV1.LogInputsRequest()
      request.runId = try fields.string(anyOf: ["run_id", "run_uuid"])
      request.datasets = try fields.objects("datasets").enumerated().map { index, input throws(GatewayError) in
        guard let dataset = try input.object("dataset") else {
          throw GatewayError.invalid("datasets[\(index)].dataset: missing")
        }
        var value = TrackingV1.DatasetInput()
        value.name = try dataset.string("name", at: "datasets[\(index)].dataset.")
        value.digest = try dataset.optionalString("digest") ?? ""
        value.source = try dataset.optionalString("source") ?? ""
        for tag in try input.objects("tags") where try tag.optionalString("key") == "mlflow.data.context" {
          value.context = try tag.optionalString("value") ?? ""
        }
        return value
      }
      if !request.datasets.isEmpty { _ = try await tracking.logInputs(request, options: caller.options()) }
      return .object([])
    }
    endpoint(router, "runs/search", [.post]) { fields, caller in
      var request = TrackingV1.SearchRunsRequest()
      request.experimentIds = try fields.strings("experiment_ids")
      request.filter = try fields.optionalString("filter") ?? ""
      request.view = try Self.viewType(fields, "run_view_type")
      request.pageSize = try Self.pageSize(fields, default: 1000, limit: 1000)
      request.orderBy = try fields.strings("order_by")
      request.pageToken = try fields.optionalString("page_token") ?? ""
      let response = try await tracking.searchRuns(request, options: caller.options())
      var members: [(String, JSONValue)] = [("runs", .array(response.runs.map(MLflowJSON.run)))]
      if !response.nextPageToken.isEmpty { members.append(("next_page_token", .string(response.nextPageToken))) }
      return .object(members)
    }
    endpoint(router, "metrics/get-history", [.get]) { fields, caller in
      var request = TrackingV1.GetMetricHistoryRequest()
      request.runIds = [try fields.string(anyOf: ["run_id", "run_uuid"])]
      request.key = try fields.string("metric_key")
      request.pageSize = try Self.pageSize(fields, default: 25_000, limit: 25_000)
      request.pageToken = try fields.optionalString("page_token") ?? ""
      let response = try await tracking.getMetricHistory(request, options: caller.options())
      var members: [(String, JSONValue)] = [
        ("metrics", .array((response.series.first?.points ?? []).map(MLflowJSON.metric)))
      ]
      if !response.nextPageToken.isEmpty { members.append(("next_page_token", .string(response.nextPageToken))) }
      return .object(members)
    }
  }

  /// MLflow's experiment "0" is the default one; Shoal keeps it as an experiment named "Default",
  /// made on first use.
  static func experimentId(
    _ given: String?, _ tracking: TrackingV1.Tracking.Client, _ caller: GatewayCaller
  ) async throws -> String {
    guard let given, !given.isEmpty, given != "0" else {
      var lookup = TrackingV1.GetExperimentRequest()
      lookup.name = "Default"
      let found = try await answer(unless: .notFound) {
        try await tracking.getExperiment(lookup, options: caller.options())
      }
      if let found { return found.experimentId }
      var create = TrackingV1.CreateExperimentRequest()
      create.name = "Default"
      return try await tracking.createExperiment(create, options: caller.options()).experimentId
    }
    return given
  }

  /// `tags: [{key, value}]` as a map.
  static func tags(_ fields: RequestFields) throws(GatewayError) -> [String: String] {
    var tags: [String: String] = [:]
    for (index, tag) in try fields.objects("tags").enumerated() {
      tags[try tag.string("key", at: "tags[\(index)].")] = try tag.optionalString("value") ?? ""
    }
    return tags
  }

  static func metric(_ fields: RequestFields, at place: String) throws(GatewayError) -> TrackingV1.Metric {
    var metric = TrackingV1.Metric()
    metric.key = try fields.string("key", at: place)
    guard let value = fields["value"] else {
      throw GatewayError.invalid("missing value for required parameter '\(place)value'")
    }
    metric.value = try RequestFields.double(value, "\(place)value")
    guard let timestamp = try fields.optionalInt64("timestamp") else {
      throw GatewayError.invalid("missing value for required parameter '\(place)timestamp'")
    }
    metric.timestampMs = timestamp
    metric.step = try fields.optionalInt64("step") ?? 0
    return metric
  }

  static func viewType(_ fields: RequestFields, _ name: String) throws(GatewayError) -> TrackingV1.ViewType {
    guard let text = try fields.optionalString(name) else { return .activeOnly }
    switch text {
    case "ACTIVE_ONLY", "1": return .activeOnly
    case "DELETED_ONLY", "2": return .deletedOnly
    case "ALL", "3": return .all
    default: throw GatewayError.invalid("\(name): '\(text)' is not ACTIVE_ONLY, DELETED_ONLY or ALL")
    }
  }

  /// `max_results`: at least 1; past what the service answers in one page, that page and a
  /// `next_page_token` (the client pages on).
  static func pageSize(_ fields: RequestFields, default fallback: Int32, limit: Int64) throws(GatewayError) -> Int32 {
    guard let size = try fields.optionalInt64("max_results") else { return fallback }
    guard size >= 1 else { throw GatewayError.invalid("max_results: \(size) must be at least 1") }
    return Int32(min(size, limit))
  }
}
