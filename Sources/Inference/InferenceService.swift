import Foundation
import ShoalImage
import ShoalModel
public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs

/// `shoal.inference.v1.Inference`: registry models served by reference, with dynamic batching.
///
/// A reference resolves in the registry with the caller's identity: a caller over TCP with a
/// token of one organisation loads and predicts only with models the registry shows that token,
/// and gets the registry's NOT_FOUND for any other. Peers on the Unix socket act as the mesh's
/// administrator.
public struct InferenceService: InferenceV1.Inference.ServiceProtocol {
  /// The role each method needs from a caller over TCP: predicting and reading need reader,
  /// loading and unloading writer.
  public static let requirements: [String: RegistryV1.Role] = [
    "ModelStatus": .reader, "WatchModels": .reader, "ModelMetadata": .reader, "Predict": .reader,
    "PredictStream": .reader, "Annotate": .reader, "LoadModel": .writer, "UnloadModel": .writer, "StartJob": .writer,
    "CancelJob": .writer, "WatchJob": .reader, "ListJobs": .reader, "StartRollout": .writer,
    "RolloutStatus": .reader, "ListRollouts": .reader, "PromoteRollout": .writer, "RollbackRollout": .writer,
    "DriftStatus": .reader,
  ]

  /// The largest request or response the service takes by default: a batch of eight 224 × 224
  /// images as FP32 is 4.8 MB, past gRPC's 4 MiB.
  public static let maxMessageSize = 64 << 20

  private let host: ModelHost
  private let jobs: JobBoard?
  private let rollouts: RolloutBoard?
  private let drift: DriftWatch?

  /// The service over `host`, with AOI jobs on `jobs` (without, the job calls are UNIMPLEMENTED),
  /// rollouts on `rollouts` (likewise) and drift measured by `drift`.
  public init(host: ModelHost, jobs: JobBoard? = nil, rollouts: RolloutBoard? = nil, drift: DriftWatch? = nil) {
    self.host = host
    self.jobs = jobs
    self.rollouts = rollouts
    self.drift = drift
  }

  static func identity(_ context: ServerContext) -> ModelHost.Identity {
    ModelHost.Identity(
      authorization: context.metadata["authorization"],
      organization: CallerOrganization.current)
  }

  public func loadModel(
    _ request: InferenceV1.LoadModelRequest, context: ServerContext
  ) async throws -> InferenceV1.LoadedModel {
    try await host.load(request, as: Self.identity(context))
  }

  public func unloadModel(
    _ request: InferenceV1.UnloadModelRequest, context: ServerContext
  ) async throws -> InferenceV1.LoadedModel {
    try await host.unload(request.model, as: Self.identity(context))
  }

  public func modelStatus(
    _ request: InferenceV1.ModelStatusRequest, context: ServerContext
  ) async throws -> InferenceV1.ModelStatusResponse {
    var response = InferenceV1.ModelStatusResponse()
    response.models = try await host.statuses(request.model, as: Self.identity(context))
    return response
  }

  public func watchModels(
    _ request: InferenceV1.WatchModelsRequest, responses: RPCResponseWriter<InferenceV1.ModelStatusEvent>,
    context: ServerContext
  ) async throws {
    let identity = Self.identity(context)
    let (token, events, current) = await host.watch(as: identity)
    defer { host.endWatch(token) }
    for model in current {
      var event = InferenceV1.ModelStatusEvent()
      event.model = model
      try await responses.send(event)
    }
    for await event in events {
      guard identity.organization == nil || event.model?.organization == identity.organization else { continue }
      try await responses.send(event)
    }
  }

  public func modelMetadata(
    _ request: InferenceV1.ModelMetadataRequest, context: ServerContext
  ) async throws -> InferenceV1.ModelMetadataResponse {
    let served = try await servedVersion(request.model, context: context)
    var response = InferenceV1.ModelMetadataResponse()
    response.name = served.qualifiedName
    response.version = served.version.version
    response.versions = ["\(served.version.version)"]
    response.platform = "onnx"
    response.inputs = served.model.inputs.map(InferenceV1.TensorMetadata.init)
    response.outputs = served.model.outputs.map(InferenceV1.TensorMetadata.init)
    response.task = served.task
    response.classes = served.version.signature?.classes ?? []
    response.preprocessing = served.version.signature?.preprocessing
    return response
  }

  public func predict(
    _ request: InferenceV1.PredictRequest, context: ServerContext
  ) async throws -> InferenceV1.PredictResponse {
    try await answer(request, context: context)
  }

  public func predictStream(
    _ requests: RPCRequestStream<InferenceV1.PredictRequest>,
    responses: RPCResponseWriter<InferenceV1.PredictStreamResponse>, context: ServerContext
  ) async throws {
    // Requests run concurrently (so that they can share batches); answers go out as they finish.
    try await withThrowingTaskGroup(of: InferenceV1.PredictStreamResponse.self) { group in
      var inFlight = 0
      var iterator = requests.makeAsyncIterator()
      var more = true
      while more || inFlight > 0 {
        if more, inFlight < 256, let request = try await iterator.next() {
          inFlight += 1
          group.addTask {
            var answer = InferenceV1.PredictStreamResponse()
            answer.id = request.id
            do {
              answer.response = try await self.answer(request, context: context)
            } catch {
              let error = RPCError(from: error)
              answer.errorCode = Int32(error.code.rawValue)
              answer.errorMessage = error.message
            }
            return answer
          }
          continue
        }
        more = false
        guard let answer = try await group.next() else { break }
        inFlight -= 1
        try await responses.send(answer)
      }
    }
  }

  public func annotate(
    _ request: InferenceV1.AnnotateRequest, context: ServerContext
  ) async throws -> InferenceV1.AnnotateResponse {
    let started = ContinuousClock.now
    let served = try await servedVersion(request.model, context: context)
    for (name, value) in [("score_threshold", request.scoreThreshold), ("iou_threshold", request.iouThreshold)]
    where !(0...1).contains(value) {
      throw RPCError(.invalidArgument, "\(name) must be within 0–1, not \(value)")
    }
    let plan = try JobPlan(
      served: served, threshold: request.scoreThreshold == 0 ? 0.5 : request.scoreThreshold,
      iou: request.iouThreshold == 0 ? 0.5 : request.iouThreshold)
    let image: Image
    let inputs: [String: Tensor]
    do throws(ImageError) {
      guard !request.image.isEmpty else { throw ImageError("no image given") }
      image = try Image(decoding: [UInt8](request.image)).rgb()
      inputs = try plan.inputs(image)
    } catch {
      throw RPCError(.invalidArgument, "image: \(error.message)")
    }
    do {
      let outputs = try await served.batcher.submit(inputs, deadline: context.deadline)
      var response = InferenceV1.AnnotateResponse()
      response.model = served.qualifiedName
      response.modelVersion = served.version.version
      response.task = served.task
      (response.width, response.height) = (Int32(image.width), Int32(image.height))
      do throws(DetectionOutputError) {
        (response.scores, response.objects) = try plan.annotation(outputs, width: image.width, height: image.height)
      } catch {
        throw RPCError(.internal, "model \(served.qualifiedName): \(error.message)")
      }
      served.metrics.record(.success(()), seconds: DynamicBatcher.seconds(.now - started))
      return response
    } catch {
      served.metrics.record(.failure(RPCError(from: error)), seconds: DynamicBatcher.seconds(.now - started))
      throw error
    }
  }

  // MARK: Predict

  private func servedVersion(_ model: String, context: ServerContext) async throws -> ServedVersion {
    try await servedVersion(key: try key(model, context: context), shown: model, context: context)
  }

  private func key(_ model: String, context: ServerContext) throws(RPCError) -> String {
    try ModelReference(parsing: model).qualified(defaultOrganization: Self.identity(context).defaultOrganization)
      .description
  }

  private func servedVersion(key: String, shown model: String, context: ServerContext) async throws -> ServedVersion {
    let identity = Self.identity(context)
    guard let served = host.serving(key) else {
      if let unavailable = host.unavailability(key),
        identity.organization == nil || key.hasPrefix("\(identity.organization!)/")
      {
        throw unavailable
      }
      throw RPCError(.notFound, "model \(key) is not loaded here; load it with `shoal inference load \(model)`")
    }
    try await host.checkVisible(served, to: identity)
    return served
  }

  private func answer(
    _ request: InferenceV1.PredictRequest, context: ServerContext
  ) async throws -> InferenceV1.PredictResponse {
    let started = ContinuousClock.now
    let key = try key(request.model, context: context)
    // A canary rollout on this alias may send the request to its candidate.
    let candidate = rollouts?.route(key, requestID: request.id)
    let served = try await servedVersion(key: candidate ?? key, shown: request.model, context: context)
    let arm: RolloutBoard.Arm = candidate == nil ? .production : .candidate
    do {
      let (response, outputs, inputs) = try await run(request, on: served, deadline: context.deadline)
      let seconds = DynamicBatcher.seconds(.now - started)
      drift?.observe(served, inputs: inputs, outputs: outputs)
      served.metrics.record(.success(()), seconds: seconds)
      rollouts?.record(key, arm, ok: true, seconds: seconds)
      if let rollouts, let shadow = rollouts.shadow(key), let copy = host.serving(shadow) {
        Task { await self.shadowed(request, on: copy, key: key, against: outputs, rollouts) }
      }
      return response
    } catch {
      let seconds = DynamicBatcher.seconds(.now - started)
      served.metrics.record(.failure(RPCError(from: error)), seconds: seconds)
      // A caller's mistake is not the version's; the rest counts against it.
      let code = RPCError(from: error).code
      if code != .invalidArgument || arm == .candidate { rollouts?.record(key, arm, ok: false, seconds: seconds) }
      throw error
    }
  }

  /// A shadow rollout's copy of a request on the candidate: its outcome, its latency, and
  /// whether its top class agreed with production's on every row.
  private func shadowed(
    _ request: InferenceV1.PredictRequest, on candidate: ServedVersion, key: String,
    against production: [String: Tensor], _ rollouts: RolloutBoard
  ) async {
    let started = ContinuousClock.now
    do {
      let (_, outputs, _) = try await run(request, on: candidate, deadline: nil)
      rollouts.record(
        key, .candidate, ok: true, seconds: DynamicBatcher.seconds(.now - started),
        agreed: Self.agree(production, outputs))
    } catch {
      rollouts.record(key, .candidate, ok: false, seconds: DynamicBatcher.seconds(.now - started), agreed: false)
    }
  }

  /// Whether two answers' first float output has the same largest element in every row.
  static func agree(_ a: [String: Tensor], _ b: [String: Tensor]) -> Bool {
    guard let name = a.keys.sorted().first, let left = a[name], let right = b[name] ?? b.values.first,
      left.shape == right.shape, left.dataType == .float32, right.dataType == .float32, let rows = left.shape.first,
      rows > 0
    else { return false }
    let (x, y) = (left.elements(as: Float.self), right.elements(as: Float.self))
    let width = x.count / rows
    guard width > 0 else { return x == y }
    for row in 0..<rows {
      let slice = row * width..<(row + 1) * width
      let best = { (values: ArraySlice<Float>) in values.indices.max { values[$0] < values[$1] } }
      if best(x[slice]) != best(y[slice]) { return false }
    }
    return true
  }

  private func run(
    _ request: InferenceV1.PredictRequest, on served: ServedVersion, deadline: ContinuousClock.Instant?
  ) async throws -> (InferenceV1.PredictResponse, [String: Tensor], inputs: [String: Tensor]) {
    var inputs: [String: Tensor] = [:]
    for input in request.inputs {
      guard let spec = served.inputs[input.name] else {
        throw RPCError(
          .invalidArgument,
          "input '\(input.name)' is not an input of \(served.qualifiedName) (its inputs: "
            + "\(served.model.inputs.map(\.name).joined(separator: ", ")))")
      }
      guard inputs[input.name] == nil else { throw RPCError(.invalidArgument, "input '\(input.name)' is given twice") }
      inputs[input.name] =
        input.isImage(for: spec)
        ? try input.imageTensor(for: spec, preprocessing: served.version.signature?.preprocessing)
        : try input.tensor(for: spec)
    }
    if let missing = served.model.inputs.first(where: { inputs[$0.name] == nil }) {
      throw RPCError(
        .invalidArgument,
        "input '\(missing.name)' is missing (\(InferDatatype.name(onnxCode: missing.elementType)) "
          + "\(missing.dimensions.map(InferenceV1.TensorMetadata.shape(of:)) ?? []))")
    }
    let outputNames = served.model.outputs.map(\.name)
    for wanted in request.outputs where !outputNames.contains(wanted.name) {
      throw RPCError(
        .invalidArgument,
        "output '\(wanted.name)' is not an output of \(served.qualifiedName) (its outputs: "
          + "\(outputNames.joined(separator: ", ")))")
    }
    guard (0...1000).contains(request.topK) else { throw RPCError(.invalidArgument, "top_k must be 0–1000") }
    let outputs = try await served.batcher.submit(inputs, deadline: deadline)

    var response = InferenceV1.PredictResponse()
    response.model = served.qualifiedName
    response.modelVersion = "\(served.version.version)"
    response.id = request.id
    let wanted = request.outputs.isEmpty ? outputNames : request.outputs.map(\.name)
    response.outputs = wanted.compactMap { name in outputs[name].map { InferenceV1.InferTensor(name: name, tensor: $0) }
    }
    if request.topK > 0 {
      response.topClasses = try TopClasses.rows(
        of: outputs, outputNames: outputNames, classes: served.version.signature?.classes ?? [], k: Int(request.topK))
    }
    return (response, outputs, inputs)
  }

  // MARK: Drift

  public func driftStatus(
    _ request: InferenceV1.DriftRequest, context: ServerContext
  ) async throws
    -> InferenceV1.DriftReport
  {
    guard let drift else { throw RPCError(.unimplemented, "this inference service measures no drift") }
    return drift.report(try await servedVersion(request.model, context: context))
  }

  // MARK: Rollouts

  private func rolloutBoard() throws(RPCError) -> RolloutBoard {
    guard let rollouts else { throw RPCError(.unimplemented, "this inference service runs no rollouts") }
    return rollouts
  }

  /// The key of an alias reference of the caller's, refused when it is another organisation's.
  private func rolloutKey(_ model: String, context: ServerContext) throws(RPCError) -> String {
    let reference = try ModelReference(parsing: model).qualified(
      defaultOrganization: Self.identity(context).defaultOrganization)
    guard case .alias = reference.selector else {
      throw RPCError(.invalidArgument, "model: roll out on an alias (name@production), not \(model)")
    }
    if let organization = CallerOrganization.current, reference.organization != organization {
      throw RPCError(.notFound, "\(reference) has no rollout")
    }
    return reference.description
  }

  public func startRollout(
    _ request: InferenceV1.StartRolloutRequest, context: ServerContext
  ) async throws -> InferenceV1.Rollout {
    let board = try rolloutBoard()
    let key = try rolloutKey(request.model, context: context)
    guard !request.candidate.isEmpty else {
      throw RPCError(.invalidArgument, "candidate: name the version to roll out")
    }
    let production = try await servedVersion(key: key, shown: request.model, context: context)
    var load = InferenceV1.LoadModelRequest()
    load.model = request.candidate
    _ = try await host.load(load, as: Self.identity(context))
    let candidateKey = try self.key(request.candidate, context: context)
    let candidate = try await servedVersion(key: candidateKey, shown: request.candidate, context: context)
    guard candidate.version.organization == production.version.organization,
      candidate.version.model == production.version.model
    else {
      throw RPCError(.invalidArgument, "candidate: \(candidateKey) is not a version of \(production.qualifiedName)")
    }
    guard candidate.version.version != production.version.version else {
      throw RPCError(
        .failedPrecondition, "candidate: \(candidateKey) is v\(candidate.version.version), which \(key) serves already")
    }
    return try board.start(
      request, key: key, candidateKey: candidateKey, productionVersion: production.version.version,
      candidateVersion: candidate.version.version, by: CallerPrincipal.name)
  }

  public func rolloutStatus(
    _ request: InferenceV1.RolloutRequest, context: ServerContext
  ) async throws
    -> InferenceV1.Rollout
  {
    try rolloutBoard().status(try rolloutKey(request.model, context: context))
  }

  public func listRollouts(
    _ request: InferenceV1.ListRolloutsRequest, context: ServerContext
  ) async throws -> InferenceV1.ListRolloutsResponse {
    var response = InferenceV1.ListRolloutsResponse()
    response.rollouts = try rolloutBoard().list(organization: CallerOrganization.current)
    return response
  }

  public func promoteRollout(
    _ request: InferenceV1.RolloutRequest, context: ServerContext
  ) async throws
    -> InferenceV1.Rollout
  {
    let board = try rolloutBoard()
    let key = try rolloutKey(request.model, context: context)
    let rollout = try board.status(key)
    guard let candidate = host.serving(rollout.candidate) else {
      throw RPCError(.failedPrecondition, "the candidate \(rollout.candidate) is no longer loaded here")
    }
    return try await board.promote(key, version: candidate.version.version, reason: "asked by \(CallerPrincipal.name)")
  }

  public func rollbackRollout(
    _ request: InferenceV1.RolloutRequest, context: ServerContext
  ) async throws
    -> InferenceV1.Rollout
  {
    try rolloutBoard().rollback(
      try rolloutKey(request.model, context: context), reason: "asked by \(CallerPrincipal.name)")
  }

  // MARK: AOI jobs

  private func jobBoard() throws(RPCError) -> JobBoard {
    guard let jobs else {
      throw RPCError(.unimplemented, "this inference service runs no AOI jobs (it has no feedback service to write to)")
    }
    return jobs
  }

  public func startJob(_ request: InferenceV1.StartJobRequest, context: ServerContext) async throws -> InferenceV1.Job {
    try await jobBoard().start(request, as: Self.identity(context))
  }

  public func watchJob(
    _ request: InferenceV1.WatchJobRequest, responses: RPCResponseWriter<InferenceV1.Job>, context: ServerContext
  ) async throws {
    let board = try jobBoard()
    var (job, events, token) = try await board.watch(request.jobId, organization: CallerOrganization.current)
    try await responses.send(job)
    while let stream = events {
      defer { board.endWatch(request.jobId, token: token) }
      for await event in stream {
        job = event
        try await responses.send(event)
      }
      // The stream ends with the job, or when this watcher fell behind: then catch up.
      guard job.state == .queued || job.state == .running else { return }
      (job, events, token) = try await board.watch(request.jobId, organization: CallerOrganization.current)
      try await responses.send(job)
    }
  }

  public func cancelJob(_ request: InferenceV1.CancelJobRequest, context: ServerContext) async throws -> InferenceV1.Job
  {
    try await jobBoard().cancel(request.jobId, organization: CallerOrganization.current)
  }

  public func listJobs(
    _ request: InferenceV1.ListJobsRequest, context: ServerContext
  ) async throws -> InferenceV1.ListJobsResponse {
    var response = InferenceV1.ListJobsResponse()
    response.jobs = try await jobBoard().list(request, organization: CallerOrganization.current)
    return response
  }
}
