import Foundation
public import ShoalImagery
public import ShoalProto
public import ShoalRPC
public import ShoalServiceStubs

/// Runs a pipeline's steps against the mesh: a tracking run for the run, with a child run per
/// step (and per tuned candidate), from the dataset's labels to a decision, a moved alias and a
/// webhook. A step that fails ends the run, says why, and leaves the aliases as they were: the
/// only step that changes what serves is `promote`, after the decision.
public struct PipelineRunner: Sendable {
  let registry: RegistryV1.ModelRegistry.Client
  let tracking: TrackingV1.Tracking.Client
  let audio: AudioV1.AudioClassifier.Client
  let feedback: FeedbackV1.Feedback.Client?
  let inference: InferenceV1.Inference.Client?
  let webhooks: FileDownloader

  static let call = CallOptions(timeout: .seconds(120))
  static let training = CallOptions(timeout: .seconds(6 * 3600))

  public init(
    registry: any RPCChannel, tracking: any RPCChannel, audio: any RPCChannel, feedback: (any RPCChannel)? = nil,
    inference: (any RPCChannel)? = nil, webhooks: FileDownloader = FileDownloader()
  ) {
    self.inference = inference.map { InferenceV1.Inference.Client($0) }
    self.feedback = feedback.map { FeedbackV1.Feedback.Client($0) }
    self.registry = RegistryV1.ModelRegistry.Client(registry)
    self.tracking = TrackingV1.Tracking.Client(tracking)
    self.audio = AudioV1.AudioClassifier.Client(audio)
    self.webhooks = webhooks
  }

  /// A step that could not finish, and why.
  struct StepFailure: Error {
    var message: String
  }

  /// What the steps learn, in order.
  struct State {
    var datasetID = ""
    var testID = ""
    var labels: Int64 = 0
    var candidate: Int64 = 0
    var candidateEvaluation: PipelineV1.Evaluation?
    var production: Int64 = 0
    var productionEvaluation: PipelineV1.Evaluation?
    var decision = ""
    var reasons: [String] = []
    var promotedAlias = ""
    /// A tile source's examples, and the test set's.
    var tiles: TileExamples?
    var testTiles: TileExamples?
  }

  /// Runs `pipeline`, reporting each step to `report`; the run as recorded.
  public func run(
    _ pipeline: PipelineFile, trigger: String, report: (PipelineV1.PipelineProgress) async -> Void
  ) async -> PipelineV1.PipelineRun {
    var run = PipelineV1.PipelineRun()
    run.pipeline = pipeline.name
    run.trigger = trigger
    run.startedAtMs = Self.now()
    run.status = "RUNNING"
    let experiment: String
    do {
      experiment = try await experimentID(pipeline)
      let previous = try await history(pipeline, limit: 1).first
      run.runId = try await startRun(
        experiment, name: "\(pipeline.name) (\(trigger))",
        tags: ["pipeline_run": "true", "pipeline": pipeline.name, "trigger": trigger])
      var state = State()
      for step in pipeline.steps {
        await report(progress(step.kind, "started", ""))
        let stepRun = try await startRun(
          experiment, name: "\(pipeline.name): \(step.kind)",
          tags: ["pipeline_step": step.kind, "mlflow.parentRunId": run.runId])
        do {
          let message = try await perform(step.kind, pipeline, &state, parent: run.runId, stepRun: stepRun, previous)
          try await finish(stepRun, .finished)
          await report(progress(step.kind, "finished", message))
        } catch {
          let message = (error as? StepFailure)?.message ?? (error as? RPCError)?.description ?? "\(error)"
          try? await log(stepRun, tags: ["error": message])
          try? await finish(stepRun, .failed)
          run.failedStep = step.kind
          run.error = message
          await report(progress(step.kind, "failed", message))
          break
        }
      }
      run.decision = state.decision
      run.reasons = state.reasons
      run.candidateVersion = state.candidate
      run.productionVersion = state.production
      if let evaluation = state.candidateEvaluation { run.candidate = evaluation }
      if let evaluation = state.productionEvaluation { run.production = evaluation }
      run.promotedAlias = state.promotedAlias
      // The webhook is told after the run is recorded, so that a slow or failing one never holds
      // the pipeline up; its outcome replaces "sending" in the run's tags.
      let notifying = run.error.isEmpty && pipeline.has("notify")
      if notifying { run.notified = "sending" }
      run.status = run.error.isEmpty ? "FINISHED" : "FAILED"
      run.endedAtMs = Self.now()
      var tags: [String: String] = [
        "decision": run.decision, "reasons": run.reasons.joined(separator: "\n"),
        "candidate_version": "\(run.candidateVersion)", "production_version": "\(run.productionVersion)",
        "promoted_alias": run.promotedAlias, "failed_step": run.failedStep, "error": run.error,
        "notified": run.notified, "labels_at_run": "\(state.labels)",
      ]
      tags = tags.filter { !$0.value.isEmpty }
      var metrics: [String: Double] = [:]
      for (prefix, evaluation) in [
        ("candidate", state.candidateEvaluation), ("production", state.productionEvaluation),
      ] {
        guard let evaluation else { continue }
        metrics["\(prefix)_accuracy"] = evaluation.accuracy
        metrics["\(prefix)_calibration_error"] = evaluation.calibrationError
      }
      try await log(run.runId, metrics: metrics, tags: tags)
      try await finish(run.runId, run.error.isEmpty ? .finished : .failed)
      if notifying {
        let finished = run
        Task {
          let outcome = await notify(pipeline, finished)
          try? await log(finished.runId, tags: ["notified": outcome])
        }
      }
    } catch {
      run.status = "FAILED"
      run.error = run.error.isEmpty ? "recording the run in tracking failed: \(error)" : run.error
      run.endedAtMs = Self.now()
    }
    var last = PipelineV1.PipelineProgress()
    last.run = run
    await report(last)
    return run
  }

  private func progress(_ step: String, _ state: String, _ message: String) -> PipelineV1.PipelineProgress {
    var progress = PipelineV1.PipelineProgress()
    progress.step = step
    progress.state = state
    progress.message = message
    return progress
  }

  // MARK: Steps

  private func perform(
    _ kind: String, _ pipeline: PipelineFile, _ state: inout State, parent: String, stepRun: String,
    _ previous: PipelineV1.PipelineRun?
  ) async throws -> String {
    if pipeline.isTiles, ["load", "validate", "train", "evaluate"].contains(kind) {
      return try await performTiles(kind, pipeline, &state, parent: parent, stepRun: stepRun, previous)
    }
    switch kind {
    case "load":
      let dataset = try await dataset(named: pipeline.sourceDataset, pipeline)
      state.datasetID = dataset.datasetId
      var stats = AudioV1.StatsRequest()
      stats.datasetId = dataset.datasetId
      state.labels = try await audio.stats(stats, options: Self.call).labels
      let labelsBefore = previous.map { Int64($0.labelsAtRun) ?? 0 } ?? 0
      let since = state.labels - labelsBefore
      let labelled = dataset.labelCounts.values.reduce(0, +)
      try await log(
        stepRun,
        params: ["dataset": dataset.name, "dataset_id": dataset.datasetId],
        metrics: ["labelled_clips": Double(labelled), "new_labels": Double(max(0, since))])
      if let test = pipeline.testDataset {
        state.testID = try await self.dataset(named: test, pipeline).datasetId
      }
      return "\(labelled) labelled clips in \(dataset.name), \(max(0, since)) new labels since the last run"
    case "validate":
      var check = AudioV1.CheckDatasetRequest()
      check.datasetId = state.datasetID
      let checked = try await audio.checkDataset(check, options: Self.call)
      var tags: [String: String] = [:]
      for (index, failure) in checked.failures.prefix(50).enumerated() {
        tags["rejected_\(index)"] = "\(failure.source): \(failure.message)"
      }
      var metrics = checked.labelCounts.mapValues(Double.init)
        .reduce(into: [String: Double]()) { $0["clips_\(Self.key($1.key))"] = $1.value }
      metrics["rejected"] = Double(checked.failures.count)
      try await log(stepRun, metrics: metrics, tags: tags)
      let counts = checked.labelCounts
      try Self.checkClasses(counts, pipeline, of: "clips that decode")
      if !state.testID.isEmpty {
        let overlap = try await sharedClips(state.datasetID, state.testID)
        guard overlap == 0 else {
          throw StepFailure(message: "\(overlap) clips of the test set are in the training set; it must be held out")
        }
      }
      let rejected = checked.failures.map { "\($0.source): \($0.message)" }
      return "classes \(counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))"
        + (rejected.isEmpty ? "" : "; rejected \(rejected.count): \(rejected.prefix(3).joined(separator: "; "))")
    case "tune":
      return "candidates \(pipeline.hiddenSizes.map(String.init).joined(separator: ", ")), chosen by train"
    case "train":
      let result = try await train(pipeline, state, parent: parent, tune: pipeline.has("tune"))
      state.candidate = result.version
      try await log(
        stepRun, params: ["version": "\(result.version)", "hidden_size": "\(result.hiddenSize)", "run": result.runId],
        metrics: ["model_acc": result.modelAcc, "model_loss": result.modelLoss])
      return String(
        format: "v%lld, hidden %d, validation accuracy %.3f", result.version, result.hiddenSize, result.modelAcc)
    case "evaluate":
      let candidate = try await evaluate("\(pipeline.organization)/\(pipeline.model)/\(state.candidate)", state)
      state.candidateEvaluation = candidate
      var metrics: [String: Double] = [
        "candidate_accuracy": candidate.accuracy, "candidate_ece": candidate.calibrationError,
      ]
      if let production = try await productionVersion(pipeline) {
        state.production = production
        let evaluation = try await evaluate("\(pipeline.organization)/\(pipeline.model)/\(production)", state)
        state.productionEvaluation = evaluation
        metrics["production_accuracy"] = evaluation.accuracy
        metrics["production_ece"] = evaluation.calibrationError
      }
      for (name, value) in candidate.recall { metrics["candidate_recall_\(Self.key(name))"] = value }
      for (name, value) in candidate.precision { metrics["candidate_precision_\(Self.key(name))"] = value }
      try await log(stepRun, metrics: metrics)
      var message = String(format: "candidate v%lld accuracy %.3f", state.candidate, candidate.accuracy)
      if let production = state.productionEvaluation {
        message += String(format: ", production v%lld %.3f", state.production, production.accuracy)
      } else {
        message += ", no production version"
      }
      return message
    case "decide":
      (state.decision, state.reasons) = Self.decide(pipeline, state.candidateEvaluation!, state.productionEvaluation)
      try await log(stepRun, tags: ["decision": state.decision, "reasons": state.reasons.joined(separator: "\n")])
      return "\(state.decision): \(state.reasons.joined(separator: "; "))"
    case "promote":
      guard state.decision == "promote" else { return "production stays v\(state.production)" }
      let alias = pipeline.canary ? "staging" : pipeline.alias
      // The old version is tagged first, so that a failure leaves production as it was.
      if state.production != 0, !pipeline.canary {
        try await setAlias(pipeline, "previous-\(alias)", state.production)
      }
      try await setAlias(pipeline, alias, state.candidate)
      state.promotedAlias = alias
      var canary = ""
      if pipeline.canary { canary = await startCanary(pipeline, version: state.candidate) }
      try await log(stepRun, tags: ["alias": alias, "version": "\(state.candidate)", "canary": canary])
      return "\(alias) → v\(state.candidate)"
        + (state.production != 0 && !pipeline.canary ? " (v\(state.production) is previous-\(alias))" : "")
        + (canary.isEmpty ? "" : "; \(canary)")
    default:
      return ""
    }
  }

  /// A canary rollout of `version` on the alias in inference, which promotes it after the canary
  /// period or rolls it back by itself; what happened, never an error (a mesh without inference,
  /// or an alias inference does not serve, leaves the candidate on staging).
  private func startCanary(_ pipeline: PipelineFile, version: Int64) async -> String {
    guard let inference else { return "no inference service to canary in; v\(version) stays on staging" }
    var request = InferenceV1.StartRolloutRequest()
    request.model = "\(pipeline.organization)/\(pipeline.model)@\(pipeline.alias)"
    request.candidate = "\(pipeline.organization)/\(pipeline.model)/\(version)"
    request.mode = .canary
    request.canaryPercent = pipeline.canaryPercent
    request.promoteAfterSeconds = pipeline.canarySeconds
    request.minRequests = pipeline.canaryMinRequests
    request.maxErrorRate = pipeline.canaryMaxErrorRate
    request.maxP99Ms = pipeline.canaryMaxP99Ms
    request.webhook = pipeline.webhook ?? ""
    do {
      let rollout = try await inference.startRollout(request, options: Self.call)
      return String(
        format: "canary: %.2f%% of %@ to v%lld, promoted after %d s without a rollback", rollout.canaryPercent,
        rollout.model, version, pipeline.canarySeconds)
    } catch {
      return "no canary (\(error.message)); v\(version) stays on staging"
    }
  }

  /// The steps that differ for a source of feedback's tiles.
  private func performTiles(
    _ kind: String, _ pipeline: PipelineFile, _ state: inout State, parent: String, stepRun: String,
    _ previous: PipelineV1.PipelineRun?
  ) async throws -> String {
    switch kind {
    case "load":
      let examples = try await tileExamples(set: pipeline.sourceDataset)
      state.tiles = examples
      state.labels = try await validatedTiles(pipeline.sourceDataset)
      let labelsBefore = previous.map { Int64($0.labelsAtRun) ?? 0 } ?? 0
      if let test = pipeline.testDataset { state.testTiles = try await tileExamples(set: test) }
      try await log(
        stepRun, params: ["feedback_set": pipeline.sourceDataset, "dataset_digest": examples.digest],
        metrics: ["examples": Double(examples.labels.count), "new_labels": Double(max(0, state.labels - labelsBefore))])
      return "\(examples.labels.count) validated tiles of set \(pipeline.sourceDataset), "
        + "\(max(0, state.labels - labelsBefore)) new since the last run"
    case "validate":
      let examples = state.tiles!
      var counts: [String: Int64] = [:]
      for label in examples.labels { counts[examples.classes[label], default: 0] += 1 }
      var tags: [String: String] = [:]
      for (index, reason) in examples.rejected.prefix(50).enumerated() { tags["rejected_\(index)"] = reason }
      var metrics = counts.reduce(into: [String: Double]()) { $0["tiles_\(Self.key($1.key))"] = Double($1.value) }
      metrics["rejected"] = Double(examples.rejected.count)
      try await log(stepRun, metrics: metrics, tags: tags)
      try Self.checkClasses(counts, pipeline, of: "validated tiles")
      if let test = state.testTiles {
        let overlap = Set(examples.tiles).intersection(test.tiles).count
        guard overlap == 0 else {
          throw StepFailure(message: "\(overlap) tiles of the test set are in the training set; it must be held out")
        }
      }
      return "classes \(counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))"
        + (examples.rejected.isEmpty
          ? "" : "; rejected \(examples.rejected.count): \(examples.rejected.prefix(3).joined(separator: "; "))")
    case "train":
      let trained = try await trainTiles(pipeline, state.tiles!, parent: parent, stepRun: stepRun)
      state.candidate = trained.version
      try await log(
        stepRun, params: ["version": "\(trained.version)", "hidden_size": "\(trained.hiddenSize)"],
        metrics: ["model_acc": trained.accuracy])
      return String(
        format: "v%lld, hidden %d, validation accuracy %.3f", trained.version, trained.hiddenSize, trained.accuracy)
    default:
      let test = state.testTiles!
      let candidate = try await evaluateTiles(
        "\(pipeline.organization)/\(pipeline.model)/\(state.candidate)", test, pipeline)
      state.candidateEvaluation = candidate
      var metrics: [String: Double] = [
        "candidate_accuracy": candidate.accuracy, "candidate_ece": candidate.calibrationError,
      ]
      var message = String(format: "candidate v%lld accuracy %.3f", state.candidate, candidate.accuracy)
      if let production = try await productionVersion(pipeline) {
        state.production = production
        let evaluation = try await evaluateTiles(
          "\(pipeline.organization)/\(pipeline.model)/\(production)", test, pipeline)
        state.productionEvaluation = evaluation
        metrics["production_accuracy"] = evaluation.accuracy
        message += String(format: ", production v%lld %.3f", production, evaluation.accuracy)
      } else {
        message += ", no production version"
      }
      try await log(stepRun, metrics: metrics)
      return message
    }
  }

  /// Refuses examples of fewer than 2 classes, a class under `min_per_class`, or classes more
  /// imbalanced than `max_imbalance`.
  static func checkClasses(_ counts: [String: Int64], _ pipeline: PipelineFile, of what: String) throws {
    guard counts.count >= 2 else {
      throw StepFailure(message: "there are \(what) of \(counts.count) class; training needs 2 or more")
    }
    if let (label, count) = counts.first(where: { $0.value < pipeline.minPerClass }) {
      throw StepFailure(message: "class '\(label)' has \(count) \(what); the pipeline needs \(pipeline.minPerClass)")
    }
    let ratio = Double(counts.values.max()!) / Double(max(1, counts.values.min()!))
    guard ratio <= pipeline.maxImbalance else {
      throw StepFailure(
        message: String(
          format: "the classes are imbalanced %.1f to 1; the pipeline allows %.1f", ratio, pipeline.maxImbalance))
    }
  }

  /// How many tiles of a feedback set reviewers validated (the label trigger's count for tiles).
  func validatedTiles(_ set: String) async throws -> Int64 {
    guard let feedback else { throw StepFailure(message: "this pipeline service has no feedback service") }
    var stats = FeedbackV1.StatsRequest()
    stats.setId = set
    return try await feedback.stats(stats, options: Self.call).validatedTiles
  }

  private func train(
    _ pipeline: PipelineFile, _ state: State, parent: String, tune: Bool
  ) async throws -> AudioV1.TrainResult {
    var request = AudioV1.TrainRequest()
    request.datasetId = state.datasetID
    request.model = pipeline.model
    request.epochs = pipeline.epochs
    request.hiddenSizes = pipeline.hiddenSizes
    request.seed = pipeline.seed
    request.mels = pipeline.mels
    request.pcen = pipeline.pcen
    request.validationSplit = pipeline.validationSplit
    request.parentRunId = parent
    let (result, epochs) = try await audio.train(request, options: Self.training) {
      responses -> (AudioV1.TrainResult?, [AudioV1.EpochMetrics]) in
      var epochs: [AudioV1.EpochMetrics] = []
      for try await progress in responses {
        if let result = progress.result { return (result, epochs) }
        if let epoch = progress.epoch { epochs.append(epoch) }
      }
      return (nil, epochs)
    }
    if tune { try await recordCandidates(epochs, pipeline, parent: parent) }
    guard let result else { throw StepFailure(message: "training ended without a result") }
    return result
  }

  /// Each tuned candidate as a tracking run of its epochs, under the pipeline's run.
  private func recordCandidates(_ epochs: [AudioV1.EpochMetrics], _ pipeline: PipelineFile, parent: String) async throws
  {
    let experiment = try await experimentID(pipeline)
    var sizes: [Int32] = []
    for epoch in epochs where !sizes.contains(epoch.hiddenSize) { sizes.append(epoch.hiddenSize) }
    for size in sizes {
      let run = try await startRun(
        experiment, name: "\(pipeline.name): tune hidden \(size)",
        tags: ["pipeline_step": "tune", "mlflow.parentRunId": parent, "hidden_size": "\(size)"])
      let now = Self.now()
      let metrics = epochs.filter { $0.hiddenSize == size }.flatMap { epoch in
        [("acc", epoch.acc), ("loss", epoch.loss), ("val_acc", epoch.valAcc), ("val_loss", epoch.valLoss)].map {
          key, value in
          var metric = TrackingV1.Metric()
          (metric.key, metric.value, metric.step, metric.timestampMs) = (key, value, Int64(epoch.epoch), now)
          return metric
        }
      }
      for start in stride(from: 0, to: metrics.count, by: 1000) {
        var batch = TrackingV1.LogBatchRequest()
        batch.runId = run
        batch.metrics = Array(metrics[start..<min(metrics.count, start + 1000)])
        _ = try await tracking.logBatch(batch, options: Self.call)
      }
      try await finish(run, .finished)
    }
  }

  /// A version's predictions of the test set's labelled clips, scored.
  private func evaluate(_ reference: String, _ state: State) async throws -> PipelineV1.Evaluation {
    var request = AudioV1.PredictRequest()
    request.model = reference
    request.datasetId = state.testID
    request.all = true
    let response = try await audio.predict(request, options: Self.call)
    let labelled = response.predictions.filter { !$0.label.isEmpty }
    guard !labelled.isEmpty else { throw StepFailure(message: "the test dataset has no labelled clips") }
    var evaluation = Self.score(labelled.map { ($0.label, $0.scores) })
    evaluation.version = response.version
    return evaluation
  }

  /// Accuracy, per-class precision and recall, and the expected calibration error (10 bins of
  /// the top class's probability) of `(label, scores)` pairs.
  static func score(_ examples: [(label: String, scores: [String: Double])]) -> PipelineV1.Evaluation {
    var evaluation = PipelineV1.Evaluation()
    var correct = 0
    var truePositives: [String: Int] = [:]
    var predictedCount: [String: Int] = [:]
    var actualCount: [String: Int] = [:]
    var bins = [(count: Int, correct: Int, confidence: Double)](repeating: (0, 0, 0), count: 10)
    for (label, scores) in examples {
      let (predicted, confidence) =
        scores.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }
        .map { ($0.key, $0.value) } ?? ("", 0)
      let right = predicted == label
      if right {
        correct += 1
        truePositives[label, default: 0] += 1
      }
      predictedCount[predicted, default: 0] += 1
      actualCount[label, default: 0] += 1
      let bin = min(9, max(0, Int(confidence * 10)))
      bins[bin].count += 1
      bins[bin].correct += right ? 1 : 0
      bins[bin].confidence += confidence
    }
    let total = Double(examples.count)
    evaluation.clips = Int64(examples.count)
    evaluation.accuracy = Double(correct) / total
    for label in Set(actualCount.keys).union(predictedCount.keys) where !label.isEmpty {
      let hits = Double(truePositives[label] ?? 0)
      evaluation.precision[label] = predictedCount[label].map { hits / Double($0) } ?? 0
      evaluation.recall[label] = actualCount[label].map { hits / Double($0) } ?? 0
    }
    evaluation.calibrationError = bins.filter { $0.count > 0 }.reduce(0) { sum, bin in
      sum + abs(Double(bin.correct) / Double(bin.count) - bin.confidence / Double(bin.count)) * Double(bin.count)
        / total
    }
    return evaluation
  }

  /// Promote when the candidate beats production by the margin on the metric and no class's
  /// recall falls past the limit; with no production, when it reaches the least accuracy.
  static func decide(
    _ pipeline: PipelineFile, _ candidate: PipelineV1.Evaluation, _ production: PipelineV1.Evaluation?
  ) -> (String, [String]) {
    guard let production else {
      let enough = candidate.accuracy >= pipeline.minAccuracy
      return (
        enough ? "promote" : "reject",
        [
          String(
            format: "no %@ version yet; accuracy %.3f %@ the least %.3f", pipeline.alias, candidate.accuracy,
            enough ? "reaches" : "is below", pipeline.minAccuracy)
        ]
      )
    }
    var reasons: [String] = []
    var promote = true
    let lowerIsBetter = pipeline.metric == "calibration_error"
    let (mine, theirs) =
      lowerIsBetter
      ? (candidate.calibrationError, production.calibrationError) : (candidate.accuracy, production.accuracy)
    let gain = lowerIsBetter ? theirs - mine : mine - theirs
    if gain >= pipeline.margin {
      reasons.append(
        String(
          format: "%@ %.3f against v%lld's %.3f (%+.3f, margin %.3f)", pipeline.metric, mine, production.version,
          theirs,
          gain, pipeline.margin))
    } else {
      promote = false
      reasons.append(
        String(
          format: "%@ %.3f against v%lld's %.3f (%+.3f) does not beat it by the margin %.3f", pipeline.metric, mine,
          production.version, theirs, gain, pipeline.margin))
    }
    for (label, before) in production.recall.sorted(by: { $0.key < $1.key }) {
      let after = candidate.recall[label] ?? 0
      if before - after > pipeline.maxClassRegression {
        promote = false
        reasons.append(
          String(
            format: "class %@ recall falls %.3f → %.3f (the limit is %.3f)", label, before, after,
            pipeline.maxClassRegression))
      }
    }
    return (promote ? "promote" : "reject", reasons)
  }

  // MARK: Notify

  /// Posts the run's outcome to the webhook in the shape its format takes (Slack's `text`,
  /// Discord's `content`, or the whole JSON); what happened, never an error.
  func notify(_ pipeline: PipelineFile, _ run: PipelineV1.PipelineRun) async -> String {
    guard let url = pipeline.webhook else { return "" }
    let summary =
      "Shoal pipeline \(pipeline.name): \(run.decision.isEmpty ? "no decision" : run.decision) "
      + "\(pipeline.organization)/\(pipeline.model) v\(run.candidateVersion)"
      + (run.productionVersion != 0 ? " (production v\(run.productionVersion))" : "")
      + (run.reasons.isEmpty ? "" : " — " + run.reasons.joined(separator: "; "))
    var body: [String: Any]
    switch pipeline.webhookFormat {
    case "slack": body = ["text": summary]
    case "discord": body = ["content": summary]
    default:
      body = [
        "pipeline": pipeline.name, "model": "\(pipeline.organization)/\(pipeline.model)",
        "candidate_version": run.candidateVersion, "production_version": run.productionVersion,
        "decision": run.decision, "reasons": run.reasons, "promoted_alias": run.promotedAlias, "run_id": run.runId,
        "metrics": [
          "candidate_accuracy": run.candidate?.accuracy ?? 0, "production_accuracy": run.production?.accuracy ?? 0,
          "candidate_calibration_error": run.candidate?.calibrationError ?? 0,
        ],
      ]
    }
    let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
    let (result, attempts) = await webhooks.post(url, body: data, headers: ["Content-Type: application/json"])
    switch result {
    case .success(let status): return "sent (HTTP \(status), \(attempts) attempt\(attempts == 1 ? "" : "s"))"
    case .failure(let failure): return "failed after \(attempts) attempts: \(failure.message)"
    }
  }

  // MARK: The mesh

  private func dataset(named name: String, _ pipeline: PipelineFile) async throws -> AudioV1.Dataset {
    var get = AudioV1.GetDatasetRequest()
    get.name = name
    get.organization = pipeline.organization
    guard let dataset = try await Self.value(unless: .notFound, { try await audio.getDataset(get, options: Self.call) })
    else {
      throw StepFailure(message: "the audio classifier has no dataset '\(name)' in \(pipeline.organization)")
    }
    return dataset
  }

  private func sharedClips(_ training: String, _ test: String) async throws -> Int {
    func digests(_ id: String) async throws -> Set<String> {
      var request = AudioV1.ListClipsRequest()
      request.datasetId = id
      request.pageSize = 10_000
      var all = Set<String>()
      repeat {
        let page = try await audio.listClips(request, options: Self.call)
        all.formUnion(page.clips.map(\.digest))
        request.pageToken = page.nextPageToken
      } while !request.pageToken.isEmpty
      return all
    }
    return try await digests(training).intersection(try await digests(test)).count
  }

  private func productionVersion(_ pipeline: PipelineFile) async throws -> Int64? {
    var get = RegistryV1.GetVersionRequest()
    get.organization = pipeline.organization
    get.model = pipeline.model
    get.alias = pipeline.alias
    return try await Self.value(unless: .notFound) { try await registry.getVersion(get, options: Self.call).version }
  }

  private func setAlias(_ pipeline: PipelineFile, _ alias: String, _ version: Int64) async throws {
    var request = RegistryV1.SetAliasRequest()
    request.organization = pipeline.organization
    request.model = pipeline.model
    request.alias = alias
    request.version = version
    _ = try await registry.setAlias(request, options: Self.call)
  }

  // MARK: Tracking

  func experimentID(_ pipeline: PipelineFile) async throws -> String {
    var get = TrackingV1.GetExperimentRequest()
    get.name = "pipeline/\(pipeline.name)"
    if let found = try await Self.value(
      unless: .notFound, { try await tracking.getExperiment(get, options: Self.call) })
    {
      return found.experimentId
    }
    var create = TrackingV1.CreateExperimentRequest()
    create.name = get.name
    create.organization = pipeline.organization
    if let made = try await Self.value(
      unless: .alreadyExists, { try await tracking.createExperiment(create, options: Self.call) })
    {
      return made.experimentId
    }
    return try await tracking.getExperiment(get, options: Self.call).experimentId
  }

  func startRun(_ experiment: String, name: String, tags: [String: String]) async throws -> String {
    var create = TrackingV1.CreateRunRequest()
    create.experimentId = experiment
    create.name = name
    create.user = "pipeline"
    create.startTimeMs = Self.now()
    create.tags = tags
    return try await tracking.createRun(create, options: Self.call).runId
  }

  func log(
    _ run: String, params: [String: String] = [:], metrics: [String: Double] = [:], tags: [String: String] = [:]
  ) async throws {
    var batch = TrackingV1.LogBatchRequest()
    batch.runId = run
    batch.params = params.sorted { $0.key < $1.key }.map { key, value in
      var param = TrackingV1.Param()
      (param.key, param.value) = (key, value)
      return param
    }
    let now = Self.now()
    batch.metrics = metrics.sorted { $0.key < $1.key }.filter { $0.value.isFinite }.map { key, value in
      var metric = TrackingV1.Metric()
      (metric.key, metric.value, metric.timestampMs) = (key, value, now)
      return metric
    }
    batch.tags = tags.sorted { $0.key < $1.key }.map { key, value in
      var tag = TrackingV1.Tag()
      (tag.key, tag.value) = (key, String(value.prefix(5000)))
      return tag
    }
    _ = try await tracking.logBatch(batch, options: Self.call)
  }

  func finish(_ run: String, _ status: TrackingV1.RunStatus) async throws {
    var update = TrackingV1.UpdateRunRequest()
    update.runId = run
    update.status = status
    update.endTimeMs = Self.now()
    _ = try await tracking.updateRun(update, options: Self.call)
  }

  /// The pipeline's runs, newest first.
  public func history(_ pipeline: PipelineFile, limit: Int) async throws -> [PipelineV1.PipelineRun] {
    let experiment = try await experimentID(pipeline)
    var search = TrackingV1.SearchRunsRequest()
    search.experimentIds = [experiment]
    search.filter = "tags.pipeline_run = 'true'"
    search.pageSize = Int32(limit)
    search.orderBy = ["attributes.start_time DESC"]
    return try await tracking.searchRuns(search, options: Self.call).runs.map(Self.pipelineRun)
  }

  static func pipelineRun(_ run: TrackingV1.Run) -> PipelineV1.PipelineRun {
    var answer = PipelineV1.PipelineRun()
    answer.runId = run.runId
    answer.pipeline = run.tags["pipeline"] ?? ""
    answer.status = run.status.protoName ?? ""
    answer.decision = run.tags["decision"] ?? ""
    answer.reasons = (run.tags["reasons"] ?? "").split(separator: "\n").map(String.init)
    answer.candidateVersion = Int64(run.tags["candidate_version"] ?? "") ?? 0
    answer.productionVersion = Int64(run.tags["production_version"] ?? "") ?? 0
    answer.trigger = run.tags["trigger"] ?? ""
    answer.failedStep = run.tags["failed_step"] ?? ""
    answer.error = run.tags["error"] ?? ""
    answer.promotedAlias = run.tags["promoted_alias"] ?? ""
    answer.notified = run.tags["notified"] ?? ""
    answer.labelsAtRun = run.tags["labels_at_run"] ?? ""
    answer.startedAtMs = run.startTimeMs
    answer.endedAtMs = run.endTimeMs
    let metrics = Dictionary(run.metrics.map { ($0.key, $0.value) }) { first, _ in first }
    for prefix in ["candidate", "production"] {
      guard let accuracy = metrics["\(prefix)_accuracy"] else { continue }
      var evaluation = PipelineV1.Evaluation()
      evaluation.accuracy = accuracy
      evaluation.calibrationError = metrics["\(prefix)_calibration_error"] ?? 0
      evaluation.version = prefix == "candidate" ? answer.candidateVersion : answer.productionVersion
      if prefix == "candidate" { answer.candidate = evaluation } else { answer.production = evaluation }
    }
    return answer
  }

  /// What `body` gives, or nil when it fails with `code`.
  static func value<T>(unless code: RpcV1.StatusCode, _ body: () async throws -> T) async throws -> T? {
    do {
      return try await body()
    } catch let error as RPCError where error.code == code {
      return nil
    }
  }

  static func key(_ name: String) -> String {
    String(name.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
  }

  static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
