import Foundation
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs

/// Active learning: the clips people should label next (from the dataset's review set in
/// feedback, locked to them), their labels (recorded with their expertise, every k-th to the
/// validation split, the review items marked), the automatic retraining after N labels with a
/// new prediction round on what is still unlabelled, and accuracy against labels per version.
extension AudioClassifierService {
  public func nextToLabel(
    _ request: AudioV1.NextToLabelRequest, context: ServerContext
  ) async throws -> AudioV1.NextToLabelResponse {
    let feedback = try requireFeedback()
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let id = Int64(dataset.datasetId)!
    let learning = try await store.learning(of: id)
    guard !learning.reviewSet.isEmpty else {
      throw RPCError(
        .failedPrecondition,
        "dataset \(dataset.name) has no predictions to review yet: predict it with review (shoal audio predict "
          + "MODEL --dataset \(dataset.datasetId) --review)")
    }
    var next = FeedbackV1.NextForReviewRequest()
    next.setId = learning.reviewSet
    next.strategy = request.strategy
    next.n = request.n
    next.lockSeconds = request.lockSeconds
    let items = try await feedback.nextForReview(next, options: Self.onBehalf()).items
    let clips = try await store.clips(of: id, digests: items.compactMap { $0.tile?.item })
    var response = AudioV1.NextToLabelResponse()
    response.model = learning.reviewModel
    response.version = learning.reviewVersion
    response.reviewSetId = learning.reviewSet
    for item in items {
      guard let tile = item.tile, let clip = clips[tile.item] else { continue }
      var candidate = AudioV1.LabelCandidate()
      candidate.clip = clip
      var prediction = Self.prediction(of: clip)
      prediction.scores = tile.scores
      prediction.predictedValue = tile.scores[learning.reviewPositive] ?? 0
      candidate.prediction = prediction
      candidate.uncertainty = item.uncertainty
      candidate.lockedUntilMs = item.lockedUntilMs
      response.candidates.append(candidate)
    }
    return response
  }

  public func submitLabels(
    _ request: AudioV1.SubmitLabelsRequest, context: ServerContext
  ) async throws -> AudioV1.SubmitLabelsResponse {
    guard !request.labels.isEmpty, request.labels.count <= 1000 else {
      throw RPCError(.invalidArgument, "labels: give 1 to 1,000 labels")
    }
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let id = Int64(dataset.datasetId)!
    let before = try await store.learning(of: id)
    let known = try await store.trainings(of: id).classes
    var labels: [AudioStore.SubmittedLabel] = []
    for (index, label) in request.labels.enumerated() {
      guard !label.digest.isEmpty else { throw RPCError(.invalidArgument, "labels[\(index)].digest: name the clip") }
      guard !label.label.isEmpty else {
        throw RPCError(.invalidArgument, "labels[\(index)].label: give the clip's class")
      }
      if !known.isEmpty, !known.contains(label.label) {
        throw RPCError(
          .invalidArgument,
          "labels[\(index)].label '\(label.label)' is not one of the model's classes (\(known.joined(separator: ", ")))"
        )
      }
      if case .unrecognized(let value) = label.expertise {
        throw RPCError(.invalidArgument, "labels[\(index)].expertise \(value) is not an expertise level")
      }
      labels.append(.init(digest: label.digest, label: label.label, expertise: label.expertise))
    }
    let (validation, after) = try await store.submit(labels, to: id, by: CallerPrincipal.name)

    // The review items: the label's class valid and the others invalid, and their locks given back.
    if let feedback, !before.reviewSet.isEmpty {
      try await mark(labels, in: before.reviewSet, classes: known, feedback)
    }

    var response = AudioV1.SubmitLabelsResponse()
    response.accepted = Int32(labels.count)
    response.validation = Int32(validation)
    response.labelsSinceTraining = after.sinceTraining
    response.retrainAfter = after.config?.retrainAfter ?? 0
    if try await store.claimRetraining(of: id) {
      response.retraining = true
      let service = self
      Task { await service.retrain(datasetID: id) }
    }
    return response
  }

  public func stats(_ request: AudioV1.StatsRequest, context: ServerContext) async throws -> AudioV1.StatsResponse {
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let id = Int64(dataset.datasetId)!
    let learning = try await store.learning(of: id)
    let trainings = try await store.trainings(of: id)
    var response = AudioV1.StatsResponse()
    response.rounds = trainings.rounds
    response.cm = trainings.cm
    response.classes = trainings.classes
    for (level, count) in try await store.submittedLabels(of: id) {
      response.labelsByExpertise[AudioV1.Expertise(rawValue: level).protoName?.lowercased() ?? "\(level)"] = count
    }
    response.labels = learning.labels
    response.labelsSinceTraining = learning.sinceTraining
    response.retrainAfter = learning.config?.retrainAfter ?? 0
    response.retraining = learning.retraining
    response.lastError = learning.lastError
    response.reviewSetId = learning.reviewSet
    response.unlabelled = dataset.unlabelled
    return response
  }

  /// Marks labelled clips in the review set and releases their locks. Clips the set does not
  /// hold (labelled before it was predicted) are left out.
  private func mark(
    _ labels: [AudioStore.SubmittedLabel], in set: String, classes: [String], _ feedback: FeedbackV1.Feedback.Client
  ) async throws {
    let options = Self.onBehalf()
    let changes = { (label: AudioStore.SubmittedLabel) in
      (classes.isEmpty ? [label.label] : classes).map { name in
        var change = FeedbackV1.ValidityChange()
        change.target = .tileId(label.digest)
        change.className = name
        change.validity = name == label.label ? .valid : .invalid
        return change
      }
    }
    var request = FeedbackV1.SetValidityRequest()
    request.setId = set
    request.changes = labels.flatMap(changes)
    // All or nothing: one clip the set lacks refuses the batch, and then each goes alone.
    if try await !Self.applied(request, feedback, options) {
      for label in labels {
        request.changes = changes(label)
        _ = try await Self.applied(request, feedback, options)
      }
    }
    var release = FeedbackV1.ReleaseLocksRequest()
    release.setId = set
    release.tileIds = labels.map(\.digest)
    _ = try? await feedback.releaseLocks(release, options: options)
  }

  /// Applies `request`; false when feedback has no such item (NOT_FOUND).
  private static func applied(
    _ request: FeedbackV1.SetValidityRequest, _ feedback: FeedbackV1.Feedback.Client, _ options: CallOptions
  ) async throws -> Bool {
    let result: Result<FeedbackV1.SetValidityResponse, RPCError>
    do {
      result = .success(try await feedback.setValidity(request, options: options))
    } catch {
      result = .failure(error)
    }
    switch result {
    case .success: return true
    case .failure(let error) where error.code == .notFound: return false
    case .failure(let error): throw error
    }
  }

  /// The automatic retraining: the dataset's last Train request again, then its unlabelled clips
  /// predicted by the new version (not the one before it) into a new review set.
  func retrain(datasetID id: Int64) async {
    var failure = ""
    do {
      guard let config = try await store.learning(of: id).config else { throw RPCError(.internal, "no settings") }
      let result = try await runTraining(config, automatic: true) { _ in }
      var predict = AudioV1.PredictRequest()
      predict.model = "\(result.model)/\(result.version)"
      predict.datasetId = "\(id)"
      predict.review = true
      _ = try await runPrediction(predict)
    } catch {
      failure = "\(error)"
    }
    try? await store.endRetraining(of: id, error: failure)
  }

  func requireFeedback() throws(RPCError) -> FeedbackV1.Feedback.Client {
    guard let feedback else {
      throw RPCError(.failedPrecondition, "this audio classifier has no feedback service for review queues")
    }
    return feedback
  }

  /// Options for calls to the mesh made for the caller: locks, marks and records are theirs.
  static func onBehalf() -> CallOptions {
    var options = call
    options.metadata.add(RegistryAccessInterceptor.actingFor, CallerPrincipal.name)
    return options
  }
}
