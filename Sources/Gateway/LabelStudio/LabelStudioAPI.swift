import Foundation
import Hummingbird
import NIOCore
import ShoalImagery
import ShoalProto
import ShoalRPC
import Synchronization

/// A Label Studio ML backend per model: Label Studio's project settings take
/// `http://HOST:PORT/label-studio/MODEL` as the backend's URL (`MODEL` a reference as loaded in
/// inference: `roads`, `roads@production`), and call `health`, `setup`, `predict`, `webhook` and
/// `train` below it.
///
/// - `setup` keeps the project's Label Studio address and token (in memory: Label Studio sends
///   them again before it asks for predictions), with which task images are fetched.
/// - `predict` runs each task's image through inference's post-processing and answers in the
///   project's labelling config (choices, rectanglelabels, polygonlabels, in percent), and keeps
///   the predictions in a feedback set of items (one per project and model version, each task
///   the item `task/ID`, regions in fractions of the image).
/// - `webhook` turns ANNOTATION_CREATED and ANNOTATION_UPDATED into validity in that set: each
///   class valid when the annotation names it and invalid when not, each predicted region valid
///   when an annotated region of its class overlaps it (IoU ≥ 0.5) and invalid when none does.
///   START_TRAINING (and `train`) runs the pipeline that trains the model.
struct LabelStudioAPI: Sendable {
  let gateway: Gateway

  var mesh: GatewayMesh { gateway.mesh }
  var sessions: LabelStudioSessions { gateway.labelStudio }

  /// How much two boxes must overlap for an annotated region to confirm a predicted one.
  static let matchingIoU = 0.5

  func register(in router: Router<GatewayContext>) {
    let api = self
    let base = "label-studio/:model"
    router.get(RouterPath("\(base)/health")) { request, context in
      try await api.health(try api.gateway.caller(request, context), try Self.model(context))
    }
    router.post(RouterPath("\(base)/setup")) { request, context in
      let caller = try api.gateway.caller(request, context)
      return try await api.setup(try await api.gateway.fields(request), caller, try Self.model(context))
    }
    router.post(RouterPath("\(base)/predict")) { request, context in
      let caller = try api.gateway.caller(request, context)
      return try await api.predict(try await api.gateway.fields(request), caller, try Self.model(context))
    }
    router.post(RouterPath("\(base)/webhook")) { request, context in
      let caller = try api.gateway.caller(request, context)
      return try await api.webhook(try await api.gateway.fields(request), caller, try Self.model(context))
    }
    router.post(RouterPath("\(base)/train")) { request, context in
      let caller = try api.gateway.caller(request, context)
      return try await api.train(caller, try Self.model(context))
    }
  }

  static func model(_ context: GatewayContext) throws(GatewayError) -> String {
    guard let model = context.parameters.get("model")?.removingPercentEncoding, !model.isEmpty else {
      throw GatewayError.invalid("the path names no model: use /label-studio/MODEL as the backend's URL")
    }
    return model
  }

  // MARK: Endpoints

  func health(_ caller: GatewayCaller, _ model: String) async throws -> Response {
    // Label Studio waits 1 s for this.
    let metadata = try await metadata(model, caller, timeout: .milliseconds(800))
    return Response.json(
      .object([
        ("status", .string("UP")), ("model_class", .string("Shoal")),
        ("model_version", .string(Self.modelVersion(metadata))),
      ]))
  }

  func setup(_ fields: RequestFields, _ caller: GatewayCaller, _ model: String) async throws -> Response {
    let project = try Self.projectID(try fields.string("project"))
    let config = try LabelConfig(xml: try fields.string("schema"))
    let hostname = try fields.optionalString("hostname") ?? ""
    let token = try fields.optionalString("access_token") ?? ""
    // Label Studio waits 3 s for this.
    let metadata = try await metadata(model, caller, timeout: .milliseconds(2500))
    try Self.check(config, fits: metadata)
    sessions.keep(project: project, session: LabelStudioSessions.Session(hostname: hostname, token: token))
    return Response.json(.object([("model_version", .string(Self.modelVersion(metadata)))]))
  }

  func predict(_ fields: RequestFields, _ caller: GatewayCaller, _ model: String) async throws -> Response {
    let project = try Self.projectID(try fields.string("project"))
    let config = try LabelConfig(xml: try fields.string("label_config"))
    let tasks = try fields.objects("tasks")
    let metadata = try await metadata(model, caller, timeout: .seconds(10))
    try Self.check(config, fits: metadata)
    let control = config.controls.first { Self.fits($0, metadata.task) }!
    let session = sessions.session(project: project)
    let version = Self.modelVersion(metadata)
    var predictions: [JSONValue] = []
    var items: [FeedbackV1.PredictedTile] = []
    for (index, task) in tasks.enumerated() {
      let place = "tasks[\(index)]"
      let id = try task.string("id", at: "\(place).")
      guard let data = try task.object("data"), let url = try data.optionalString(control.dataKey) else {
        throw GatewayError.invalid("\(place).data.\(control.dataKey): the task has no image for \(control.toName)")
      }
      var request = InferenceV1.AnnotateRequest()
      request.model = model
      request.image = [UInt8](try await image(url, session: session, task: id))
      let answer = try await answer(mapping: { error in
        error.code == .invalidArgument
          ? GatewayError(.unprocessableContent, "INVALID_PARAMETER_VALUE", "task \(id): \(error.message)") : nil
      }) { try await mesh.inference.annotate(request, options: caller.options(timeout: .seconds(60))) }
      predictions.append(LabelStudioResults.prediction(answer, control: control, modelVersion: version))
      var item = FeedbackV1.PredictedTile()
      item.item = Self.itemKey(id)
      if answer.task == .classification {
        for score in answer.scores { item.scores[score.name] = Double(score.score) }
      } else {
        item.features = answer.objects.map(LabelStudioResults.feature)
        for object in answer.objects {
          item.scores[object.className] = max(item.scores[object.className] ?? 0, object.score)
        }
      }
      items.append(item)
    }
    if !items.isEmpty {
      let set = try await predictionSet(project: project, metadata: metadata, caller)
      _ = try await mesh.feedback.putPredictions(options: caller.options()) { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set
        // The same tasks predicted again by the same version are stored once.
        request.requestId = "label-studio \(version) " + items.map(\.item).joined(separator: ",")
        request.tiles = items
        try await sender.send(request)
      }
    }
    return Response.json(.object([("results", .array(predictions)), ("model_version", .string(version))]))
  }

  func webhook(_ fields: RequestFields, _ caller: GatewayCaller, _ model: String) async throws -> Response {
    let action = try fields.string("action")
    switch action {
    case "ANNOTATION_CREATED", "ANNOTATION_UPDATED":
      return try await annotated(fields, caller, model)
    case "START_TRAINING":
      return try await train(caller, model)
    default:
      return Response.json(.object([("status", .string("ignored")), ("action", .string(action))]))
    }
  }

  /// Runs the pipeline that trains `model`, answering once it has started.
  func train(_ caller: GatewayCaller, _ model: String) async throws -> Response {
    let metadata = try await metadata(model, caller, timeout: .seconds(10))
    let pipelines = try await mesh.pipelines.listPipelines(PipelineV1.ListPipelinesRequest(), options: caller.options())
    guard let pipeline = pipelines.pipelines.first(where: { $0.model == metadata.name }) else {
      throw GatewayError.notFound(
        "no pipeline trains \(metadata.name): add one to mesh/pipelines (see `shoal pipeline check`)")
    }
    var request = PipelineV1.RunPipelineRequest()
    request.name = pipeline.name
    // The answer goes once the run has started (its first step), as Label Studio does not wait
    // for training; the pipeline service goes on with a run whose caller has left.
    let first = try await mesh.pipelines.runPipeline(request, options: caller.options()) {
      stream -> PipelineV1.PipelineProgress? in
      for try await progress in stream { return progress }
      return nil
    }
    guard let first else {
      throw GatewayError(.badGateway, "INTERNAL_ERROR", "pipeline \(pipeline.name) ended before it started")
    }
    var answer: [(String, JSONValue)] = [("pipeline", .string(pipeline.name)), ("status", .string("started"))]
    // The run's id comes with its end; a run that ended at once has it.
    if let run = first.run, !run.runId.isEmpty { answer.append(("job", .string(run.runId))) }
    return Response.json(.object(answer), status: .created)
  }

  // MARK: Annotations

  private func annotated(_ fields: RequestFields, _ caller: GatewayCaller, _ model: String) async throws -> Response {
    guard let project = try fields.object("project"), let annotation = try fields.object("annotation") else {
      throw GatewayError.invalid("project and annotation: the webhook's payload has no project or annotation")
    }
    let projectID = try project.string("id", at: "project.")
    let taskID =
      try fields.object("task")?.string("id", at: "task.") ?? (try annotation.string("task", at: "annotation."))
    let metadata = try await metadata(model, caller, timeout: .seconds(10))
    let classes = metadata.classes.map(\.name)
    let said = try LabelStudioResults.annotation(try annotation.objects("result"), classes: classes)
    let set = try await predictionSet(project: projectID, metadata: metadata, caller)
    let key = Self.itemKey(taskID)
    var query = FeedbackV1.QueryTilesRequest()
    query.setId = set
    query.items = [key]
    var stored = try await mesh.feedback.queryTiles(query, options: caller.options()).tiles.first
    if stored == nil {
      // A task the model never predicted: its item holds no prediction, only what people said.
      var item = FeedbackV1.PredictedTile()
      item.item = key
      _ = try await mesh.feedback.putPredictions(options: caller.options()) { sender in
        var request = FeedbackV1.PutPredictionsRequest()
        request.setId = set
        request.requestId = "label-studio annotated \(key)"
        request.tiles = [item]
        try await sender.send(request)
      }
      stored = try await mesh.feedback.queryTiles(query, options: caller.options()).tiles.first
    }
    var changes: [FeedbackV1.ValidityChange] = classes.map { name in
      var change = FeedbackV1.ValidityChange()
      change.target = .tileId(key)
      change.className = name
      change.validity = said.classes.contains(name) ? .valid : .invalid
      return change
    }
    var confirmed = 0
    var matched = Set<Int>()
    for feature in stored?.features ?? [] {
      guard let predicted = LabelStudioResults.region(ofGeometry: feature.geometry, className: feature.className) else {
        continue
      }
      let best = said.regions.indices.filter { said.regions[$0].className == feature.className }
        .max { said.regions[$0].iou(predicted) < said.regions[$1].iou(predicted) }
      var change = FeedbackV1.ValidityChange()
      change.target = .featureId(feature.featureId)
      change.className = feature.className
      if let best, said.regions[best].iou(predicted) >= Self.matchingIoU {
        change.validity = .valid
        matched.insert(best)
        confirmed += 1
      } else {
        change.validity = .invalid
      }
      changes.append(change)
    }
    var request = FeedbackV1.SetValidityRequest()
    request.setId = set
    request.changes = changes
    let applied = try await mesh.feedback.setValidity(request, options: caller.options())
    return Response.json(
      .object([
        ("status", .string("recorded")), ("set_id", .string(set)), ("item", .string(key)),
        ("applied", .number(String(applied.applied))), ("confirmed_regions", .number(String(confirmed))),
        // Regions people drew that the model did not predict: counted, not kept as features.
        ("unmatched_regions", .number(String(said.regions.count - matched.count))),
      ]),
      status: .created)
  }

  // MARK: Mesh

  private func metadata(
    _ model: String, _ caller: GatewayCaller, timeout: Duration
  ) async throws -> InferenceV1.ModelMetadataResponse {
    var request = InferenceV1.ModelMetadataRequest()
    request.model = model
    return try await mesh.inference.modelMetadata(request, options: caller.options(timeout: timeout))
  }

  /// The feedback set of `project`'s predictions by this version, created the first time.
  private func predictionSet(
    project: String, metadata: InferenceV1.ModelMetadataResponse, _ caller: GatewayCaller
  ) async throws -> String {
    let origin = Self.origin(project)
    let feedback = mesh.feedback
    return try await sessions.set(key: "\(origin) \(metadata.name)/\(metadata.version)") {
      var list = FeedbackV1.ListSetsRequest()
      list.model = metadata.name
      list.pageSize = 500
      while true {
        let page = try await feedback.listSets(list, options: caller.options())
        if let found = page.sets.first(where: { $0.jobId == origin && $0.modelVersion == metadata.version }) {
          return found.setId
        }
        guard !page.nextPageToken.isEmpty else { break }
        list.pageToken = page.nextPageToken
      }
      var create = FeedbackV1.CreateSetRequest()
      create.model = metadata.name
      create.modelVersion = metadata.version
      create.task = metadata.task
      create.classes = metadata.classes
      create.items = true
      create.jobId = origin
      return try await feedback.createSet(create, options: caller.options()).setId
    }
  }

  /// The image at `url` (a task's data field): relative URLs are Label Studio's own, fetched from
  /// its address with the project's token, as are absolute ones on that address.
  private func image(_ url: String, session: LabelStudioSessions.Session?, task: String) async throws -> Data {
    var address = url
    var headers: [String] = []
    let hostname = session?.hostname.trimmingCharacters(in: CharacterSet(charactersIn: "/")) ?? ""
    if url.hasPrefix("/") {
      guard !hostname.isEmpty else {
        throw GatewayError(
          .unprocessableContent, "INVALID_PARAMETER_VALUE",
          "task \(task): its image \(url) is on Label Studio, whose address this backend has not been given: "
            + "Label Studio sends it in /setup")
      }
      address = hostname + url
    }
    guard address.hasPrefix("http://") || address.hasPrefix("https://") else {
      throw GatewayError(
        .unprocessableContent, "INVALID_PARAMETER_VALUE",
        "task \(task): its image '\(url)' is not an http(s) URL nor a Label Studio path")
    }
    if let session, !session.token.isEmpty, !hostname.isEmpty, address.hasPrefix(hostname + "/") {
      headers.append("Authorization: Token \(session.token)")
    }
    switch await gateway.downloader.download(address, headers: headers) {
    case .success(let data): return data
    case .failure(let failure):
      throw GatewayError(
        .unprocessableContent, "INVALID_PARAMETER_VALUE", "task \(task): cannot fetch its image: \(failure)")
    }
  }

  // MARK: Names

  /// A project's number from Label Studio's `ID.CREATED` project key (or the number itself).
  static func projectID(_ key: String) throws(GatewayError) -> String {
    let id = String(key.split(separator: ".", omittingEmptySubsequences: false).first ?? "")
    guard !id.isEmpty, id.allSatisfy(\.isNumber) else {
      throw GatewayError.invalid("project: '\(key)' is not a Label Studio project key (ID.TIMESTAMP)")
    }
    return id
  }

  /// What a feedback set made for a project records as its origin (`job_id`).
  static func origin(_ project: String) -> String { "label-studio:project/\(project)" }

  static func itemKey(_ task: String) -> String { "task/\(task)" }

  /// The model version Label Studio shows and keeps with each prediction: the reference of the
  /// version that answered (`org/name/3`).
  static func modelVersion(_ metadata: InferenceV1.ModelMetadataResponse) -> String {
    "\(metadata.name)/\(metadata.version)"
  }

  static func fits(_ control: LabelConfig.Control, _ task: RegistryV1.ModelTask) -> Bool {
    switch (control.kind, task) {
    case (.choices, .classification), (.rectanglelabels, .detection), (.polygonlabels, .segmentation),
      (.polygonlabels, .detection), (.rectanglelabels, .segmentation):
      true
    default: false
    }
  }

  /// Refuses a config with no control for the model's task, or a model without class names.
  static func check(_ config: LabelConfig, fits metadata: InferenceV1.ModelMetadataResponse) throws(GatewayError) {
    guard !metadata.classes.isEmpty else {
      throw GatewayError.invalid("model \(metadata.name) names no classes, so its predictions cannot be labels")
    }
    guard config.controls.contains(where: { fits($0, metadata.task) }) else {
      let wanted =
        switch metadata.task {
        case .classification: "Choices"
        case .detection: "RectangleLabels or PolygonLabels"
        case .segmentation: "PolygonLabels or RectangleLabels"
        default: "nothing: Label Studio labels images for classification, detection and segmentation models"
        }
      throw GatewayError.invalid(
        "label_config: model \(metadata.name) is a \(metadata.task) model, which needs \(wanted); the config has "
          + config.controls.map { "\($0.kind.rawValue) \($0.name)" }.joined(separator: ", "))
    }
  }
}

/// What `setup` told the backend of each Label Studio project, and the feedback set of each
/// project and model version, found or made once.
final class LabelStudioSessions: Sendable {
  struct Session: Sendable {
    var hostname: String
    var token: String
  }

  private let state = Mutex(State())

  private struct State {
    var sessions: [String: Session] = [:]
    var sets: [String: Task<String, any Error>] = [:]
  }

  func keep(project: String, session: Session) {
    state.withLock { $0.sessions[project] = session }
  }

  func session(project: String) -> Session? {
    state.withLock { $0.sessions[project] }
  }

  /// The set under `key`, from `find` the first time (callers at the same time wait for one).
  func set(key: String, _ find: @escaping @Sendable () async throws -> String) async throws -> String {
    let task = state.withLock { state in
      if let known = state.sets[key] { return known }
      let task = Task { try await find() }
      state.sets[key] = task
      return task
    }
    do {
      return try await task.value
    } catch {
      state.withLock { _ = $0.sets.removeValue(forKey: key) }
      throw error
    }
  }
}
