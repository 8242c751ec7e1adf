import Foundation
public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs
public import ShoalStore

/// `shoal.tracking.v1.Tracking`: experiments, runs, params, tags and metrics, with MLflow's
/// semantics and MLflow's limits as the minimum.
///
/// Every experiment belongs to a registry organisation. A caller with an organisation
/// (`CallerOrganization`, a token's over TCP) sees only that organisation's experiments and their
/// runs: any other is NOT_FOUND, exactly like one that does not exist. Peers on the Unix socket
/// see every organisation's.
public struct TrackingService: TrackingV1.Tracking.ServiceProtocol {
  /// MLflow's limits (a batch of 1,000 metrics, 100 params, 100 tags; key and value lengths).
  public enum Limits {
    /// Metrics per LogBatch.
    public static let metrics = 1000
    /// Params per LogBatch.
    public static let params = 100
    /// Tags per LogBatch.
    public static let tags = 100
    /// Characters in a key.
    public static let keyLength = 250
    /// Characters in a param value.
    public static let paramValueLength = 6000
    /// Characters in a tag value.
    public static let tagValueLength = 8000
  }

  private let store: TrackingStore
  private let blobs: BlobStore
  private let hub = EventHub<String, TrackingV1.RunEvent>()
  /// The largest artifact accepted.
  private let maxArtifactSize: Int64
  /// Unreferenced files younger than this are kept by GarbageCollect (an upload may not have
  /// stored its row yet).
  private let blobGracePeriod: Double

  /// The service over `store`, keeping artifacts in `blobs`.
  /// The role each method needs from a caller over TCP (`RegistryAccessInterceptor`): reading
  /// needs reader, logging and changing runs writer; what is not listed (garbage collection)
  /// needs admin.
  public static let requirements: [String: RegistryV1.Role] = {
    let reads = [
      "GetExperiment", "ListExperiments", "GetRun", "GetMetricHistory", "DownloadArtifact", "ListArtifacts", "WatchRun",
      "SearchRuns",
    ]
    let writes = [
      "CreateExperiment", "UpdateExperiment", "DeleteExperiment", "RestoreExperiment", "CreateRun", "UpdateRun",
      "DeleteRun", "RestoreRun",
      "LogBatch", "LogInputs", "UploadArtifact",
    ]
    return Dictionary(uniqueKeysWithValues: reads.map { ($0, .reader) } + writes.map { ($0, .writer) })
  }()

  public init(store: TrackingStore, blobs: BlobStore, maxArtifactSize: Int64 = 8 << 30, blobGracePeriod: Double = 600) {
    self.store = store
    self.blobs = blobs
    self.maxArtifactSize = maxArtifactSize
    self.blobGracePeriod = blobGracePeriod
  }

  public func createExperiment(
    _ request: TrackingV1.CreateExperimentRequest, context: ServerContext
  ) async throws -> TrackingV1.Experiment {
    guard !request.name.isEmpty, request.name.count <= 500 else {
      throw RPCError(.invalidArgument, "name: give an experiment name of 1–500 characters")
    }
    try Self.checkPairs(request.tags.map { ($0.key, $0.value) }, field: "tags", valueLength: Limits.tagValueLength)
    let organization = try CallerOrganization.owner(named: request.organization, of: "experiments")
    return try await store.createExperiment(request, organization: organization)
  }

  public func getExperiment(
    _ request: TrackingV1.GetExperimentRequest, context: ServerContext
  ) async throws -> TrackingV1.Experiment {
    if !request.experimentId.isEmpty { return try await visibleExperiment(request.experimentId) }
    guard !request.name.isEmpty else { throw RPCError(.invalidArgument, "give experiment_id or name") }
    let experiment = try await store.experiment(named: request.name)
    guard Self.sees(experiment) else { throw RPCError(.notFound, "experiment named '\(request.name)' not found") }
    return experiment
  }

  public func listExperiments(
    _ request: TrackingV1.ListExperimentsRequest, context: ServerContext
  ) async throws -> TrackingV1.ListExperimentsResponse {
    guard request.filter.utf8.count <= 16_384 else { throw RPCError(.invalidArgument, "filter: at most 16 KiB") }
    return try await store.experiments(request, organization: CallerOrganization.current)
  }

  public func updateExperiment(
    _ request: TrackingV1.UpdateExperimentRequest, context: ServerContext
  ) async throws -> TrackingV1.Experiment {
    guard request.newName.count <= 500 else {
      throw RPCError(.invalidArgument, "new_name: give an experiment name of 1–500 characters")
    }
    try Self.checkTagKeys(request.deleteTags)
    try Self.checkPairs(request.tags.map { ($0.key, $0.value) }, field: "tags", valueLength: Limits.tagValueLength)
    let experiment = try await visibleExperiment(request.experimentId)
    if !request.organization.isEmpty, request.organization != experiment.organization {
      if let own = CallerOrganization.current {
        throw RPCError(
          .permissionDenied,
          "organization: moving an experiment to another organisation is for the mesh administrator (the tracking "
            + "service's Unix socket); a token of '\(own)' cannot")
      }
      try CallerOrganization.checkName(request.organization)
    }
    return try await store.updateExperiment(request)
  }

  public func deleteExperiment(
    _ request: TrackingV1.ExperimentLifecycleRequest, context: ServerContext
  ) async throws -> TrackingV1.Experiment {
    _ = try await visibleExperiment(request.experimentId)
    return try await store.setExperiment(request.experimentId, deleted: true)
  }

  public func restoreExperiment(
    _ request: TrackingV1.ExperimentLifecycleRequest, context: ServerContext
  ) async throws -> TrackingV1.Experiment {
    _ = try await visibleExperiment(request.experimentId)
    return try await store.setExperiment(request.experimentId, deleted: false)
  }

  public func createRun(_ request: TrackingV1.CreateRunRequest, context: ServerContext) async throws -> TrackingV1.Run {
    try Self.checkPairs(request.tags.map { ($0.key, $0.value) }, field: "tags", valueLength: Limits.tagValueLength)
    _ = try await visibleExperiment(request.experimentId)
    return try await store.createRun(request)
  }

  public func getRun(_ request: TrackingV1.GetRunRequest, context: ServerContext) async throws -> TrackingV1.Run {
    try await checkVisible(run: request.runId)
    return try await store.run(request.runId)
  }

  public func updateRun(_ request: TrackingV1.UpdateRunRequest, context: ServerContext) async throws -> TrackingV1.Run {
    if case .unrecognized(let value) = request.status {
      throw RPCError(.invalidArgument, "status: \(value) is not a run status")
    }
    try Self.checkTagKeys(request.deleteTags)
    try await checkVisible(run: request.runId)
    let run = try await store.updateRun(request)
    if request.status != .unspecified {
      var event = TrackingV1.RunEvent()
      event.change = .status(run.status)
      hub.publish(event, to: run.runId)
    }
    return run
  }

  public func watchRun(
    _ request: TrackingV1.WatchRunRequest, responses: RPCResponseWriter<TrackingV1.RunEvent>, context: ServerContext
  ) async throws {
    let terminal: Set<TrackingV1.RunStatus> = [.finished, .failed, .killed]
    try await checkVisible(run: request.runId)
    while !Task.isCancelled {
      // Subscribe first, then read the run, so that nothing falls between the two.
      let (token, live) = hub.subscribe(request.runId, backlog: 1024)
      defer { hub.unsubscribe(request.runId, token: token) }
      let run = try await store.run(request.runId)
      var snapshot = TrackingV1.RunEvent()
      snapshot.change = .run(run)
      try await responses.send(snapshot)
      if terminal.contains(run.status) { return }
      for await event in live {
        try await responses.send(event)
        if case .status(let status) = event.change, terminal.contains(status) { return }
      }
      // The stream ended while the call goes on: this watcher fell behind; start over from a snapshot.
    }
  }

  public func deleteRun(
    _ request: TrackingV1.RunLifecycleRequest, context: ServerContext
  ) async throws
    -> TrackingV1.Run
  {
    try await checkVisible(run: request.runId)
    return try await store.setRun(request.runId, deleted: true)
  }

  public func restoreRun(
    _ request: TrackingV1.RunLifecycleRequest, context: ServerContext
  ) async throws
    -> TrackingV1.Run
  {
    try await checkVisible(run: request.runId)
    return try await store.setRun(request.runId, deleted: false)
  }

  public func logBatch(
    _ request: TrackingV1.LogBatchRequest, context: ServerContext
  ) async throws -> TrackingV1.LogBatchResponse {
    guard request.metrics.count <= Limits.metrics else {
      throw RPCError(.invalidArgument, "metrics: at most \(Limits.metrics) per batch, given \(request.metrics.count)")
    }
    guard request.params.count <= Limits.params else {
      throw RPCError(.invalidArgument, "params: at most \(Limits.params) per batch, given \(request.params.count)")
    }
    guard request.tags.count <= Limits.tags else {
      throw RPCError(.invalidArgument, "tags: at most \(Limits.tags) per batch, given \(request.tags.count)")
    }
    for (index, metric) in request.metrics.enumerated() {
      guard !metric.key.isEmpty, metric.key.count <= Limits.keyLength else {
        throw RPCError(.invalidArgument, "metrics[\(index)].key must be 1–\(Limits.keyLength) characters")
      }
    }
    try Self.checkPairs(
      request.params.map { ($0.key, $0.value) }, field: "params", valueLength: Limits.paramValueLength)
    try Self.checkPairs(request.tags.map { ($0.key, $0.value) }, field: "tags", valueLength: Limits.tagValueLength)
    guard request.requestId.count <= 128 else {
      throw RPCError(.invalidArgument, "request_id: at most 128 characters")
    }
    try await checkVisible(run: request.runId)
    let response = try await store.logBatch(request)
    if !response.duplicate, !request.metrics.isEmpty {
      var batch = TrackingV1.MetricBatch()
      batch.metrics = request.metrics
      var event = TrackingV1.RunEvent()
      event.change = .metrics(batch)
      hub.publish(event, to: request.runId)
    }
    return response
  }

  public func logInputs(
    _ request: TrackingV1.LogInputsRequest, context: ServerContext
  ) async throws -> TrackingV1.LogInputsResponse {
    guard request.datasets.count <= 100 else {
      throw RPCError(.invalidArgument, "datasets: at most 100 per call, given \(request.datasets.count)")
    }
    for (index, input) in request.datasets.enumerated() {
      guard !input.name.isEmpty, input.name.count <= 500 else {
        throw RPCError(.invalidArgument, "datasets[\(index)].name must be 1–500 characters")
      }
      guard input.digest.count <= 256, input.source.count <= 8000, input.context.count <= 256 else {
        throw RPCError(.invalidArgument, "datasets[\(index)]: digest, source or context is too long")
      }
    }
    try await checkVisible(run: request.runId)
    try await store.logInputs(request)
    return TrackingV1.LogInputsResponse()
  }

  public func getMetricHistory(
    _ request: TrackingV1.GetMetricHistoryRequest, context: ServerContext
  ) async throws -> TrackingV1.GetMetricHistoryResponse {
    for runID in request.runIds { try await checkVisible(run: runID) }
    return try await store.metricHistory(request)
  }

  public func uploadArtifact(
    _ requests: RPCRequestStream<TrackingV1.UploadArtifactRequest>, context: ServerContext
  ) async throws -> TrackingV1.Artifact {
    var messages = requests.makeAsyncIterator()
    guard let first = try await messages.next(), case .header(let header) = first.part else {
      throw RPCError(
        .invalidArgument, "an upload starts with its header (ArtifactUploadHeader), then the file's chunks")
    }
    try TrackingStore.checkArtifactPath(header.path)
    let expected = try BlobDigest(uploadHeader: header.sha256)
    try await checkVisible(run: header.runId)
    let run = try await store.run(header.runId)
    guard run.lifecycle == .active else {
      throw RPCError(.failedPrecondition, "run '\(run.runId)' is deleted; restore it before adding artifacts")
    }
    let (digest, size) = try await blobs.receive(rest: &messages, limit: maxArtifactSize, expected: expected) {
      if case .chunk(let bytes) = $0.part { return bytes }
      return nil
    }
    return try await store.putArtifact(runID: run.runId, path: header.path, digest: digest, size: size)
  }

  public func downloadArtifact(
    _ request: TrackingV1.DownloadArtifactRequest, responses: RPCResponseWriter<TrackingV1.DownloadArtifactResponse>,
    context: ServerContext
  ) async throws {
    try TrackingStore.checkArtifactPath(request.path)
    try await checkVisible(run: request.runId)
    let artifact = try await store.artifact(runID: request.runId, path: request.path)
    var header = TrackingV1.DownloadArtifactResponse()
    header.part = .artifact(artifact)
    try await blobs.send(
      try BlobDigest(reference: artifact.digest), named: "artifact '\(artifact.path)'", first: header, to: responses
    ) { bytes in
      var message = TrackingV1.DownloadArtifactResponse()
      message.part = .chunk(bytes)
      return message
    }
  }

  public func listArtifacts(
    _ request: TrackingV1.ListArtifactsRequest, context: ServerContext
  ) async throws -> TrackingV1.ListArtifactsResponse {
    if !request.prefix.isEmpty { try TrackingStore.checkArtifactPath(request.prefix, field: "prefix") }
    try await checkVisible(run: request.runId)
    var response = TrackingV1.ListArtifactsResponse()
    response.artifacts = try await store.artifacts(runID: request.runId, prefix: request.prefix)
    return response
  }

  public func garbageCollect(
    _ request: TrackingV1.GarbageCollectRequest, context: ServerContext
  ) async throws -> TrackingV1.GarbageCollectResponse {
    guard request.olderThanMs >= 0 else { throw RPCError(.invalidArgument, "older_than_ms must not be negative") }
    var response = TrackingV1.GarbageCollectResponse()
    let cutoff = TrackingStore.now() - request.olderThanMs
    (response.runsRemoved, response.experimentsRemoved) = try await store.collectDeleted(
      deletedBefore: cutoff, organization: CallerOrganization.current)
    let (removed, freed) = try await blobs.removeUnreferenced(
      keeping: try await store.referencedBlobs(), olderThan: .now.addingTimeInterval(-blobGracePeriod))
    response.blobsRemoved = Int64(removed)
    response.bytesFreed = freed
    return response
  }

  public func searchRuns(
    _ request: TrackingV1.SearchRunsRequest, context: ServerContext
  ) async throws -> TrackingV1.SearchRunsResponse {
    guard request.filter.utf8.count <= 16_384 else {
      throw RPCError(.invalidArgument, "filter: at most 16 KiB")
    }
    return try await store.searchRuns(request, organization: CallerOrganization.current)
  }

  // MARK: Organisations

  /// Whether the caller's organisation may see `experiment`.
  private static func sees(_ experiment: TrackingV1.Experiment) -> Bool {
    CallerOrganization.current.map { $0 == experiment.organization } ?? true
  }

  /// The experiment `id`, if the caller may see it; NOT_FOUND otherwise, as for one that does not
  /// exist.
  private func visibleExperiment(_ id: String) async throws -> TrackingV1.Experiment {
    let experiment = try await store.experiment(id: id)
    guard Self.sees(experiment) else { throw RPCError(.notFound, "experiment '\(id)' not found") }
    return experiment
  }

  /// Refuses a run of another organisation's experiment as NOT_FOUND, as one that does not exist.
  private func checkVisible(run runID: String) async throws {
    guard let own = CallerOrganization.current else { return }
    guard try await store.organization(ofRun: runID) == own else {
      throw RPCError(.notFound, "run '\(runID)' not found")
    }
  }

  /// Tags to remove: at most MLflow's 100 a call, each a key of 1–250 characters.
  private static func checkTagKeys(_ keys: [String]) throws(RPCError) {
    guard keys.count <= Limits.tags else {
      throw RPCError(.invalidArgument, "delete_tags: at most \(Limits.tags) per call, given \(keys.count)")
    }
    for key in keys where key.isEmpty || key.count > Limits.keyLength {
      throw RPCError(.invalidArgument, "delete_tags: key '\(key.prefix(40))' must be 1–\(Limits.keyLength) characters")
    }
  }

  private static func checkPairs(_ pairs: [(String, String)], field: String, valueLength: Int) throws(RPCError) {
    for (key, value) in pairs {
      guard !key.isEmpty, key.count <= Limits.keyLength else {
        throw RPCError(.invalidArgument, "\(field): key '\(key.prefix(40))' must be 1–\(Limits.keyLength) characters")
      }
      guard value.count <= valueLength else {
        throw RPCError(.invalidArgument, "\(field): the value of '\(key)' is longer than \(valueLength) characters")
      }
    }
  }
}
