import Foundation
import ShoalAudio
import ShoalModel
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore

/// Prediction with a version Train made: the file from the registry, its front end from its
/// metadata, every clip through it and the model core; with `review`, the unlabelled clips'
/// predictions go to feedback as a set of items to review.
extension AudioClassifierService {
  public func predict(_ request: AudioV1.PredictRequest, context: ServerContext) async throws -> AudioV1.PredictResponse
  {
    try await runPrediction(request)
  }

  func runPrediction(_ request: AudioV1.PredictRequest) async throws -> AudioV1.PredictResponse {
    guard let registry else {
      throw RPCError(.unimplemented, "this audio classifier has no registry to take models from")
    }
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let (version, file) = try await downloadVersion(request.model, organization: dataset.organization, registry)
    let front = try FrontEnd(file, name: "\(version.organization)/\(version.model) v\(version.version)")
    let model: Model
    do {
      model = try Model(onnx: file)
    } catch {
      throw RPCError(.failedPrecondition, "\(version.model) v\(version.version) does not load: \(error)")
    }
    guard let input = model.inputs.first?.name, let output = model.outputs.first?.name else {
      throw RPCError(.failedPrecondition, "\(version.model) v\(version.version) has no input or output")
    }

    let embedding = ClipEmbedding(mels: front.mels, pcen: front.pcen, seed: 0)
    var response = AudioV1.PredictResponse()
    response.model = "\(version.organization)/\(version.model)"
    response.version = version.version
    response.positiveClass = front.positive
    var after = ""
    while true {
      let page = try await store.clips(
        of: Int64(dataset.datasetId)!, label: request.all ? nil : "", after: after, limit: 1000)
      for clip in page {
        let bytes = try await blobs.read(try BlobDigest(hex: clip.digest))
        // Decoding and the model run on the training threads, off Swift's task pool.
        let name = clip.name
        let spectrogram: [Float]
        do {
          spectrogram = try await Self.offPool { try embedding.features(bytes, name: name) }
        } catch let error as AudioError {
          throw RPCError(.dataLoss, "stored clip \(clip.digest) (\(clip.name)) no longer decodes: \(error.message)")
        }
        let mels = front.mels
        let probabilities = try await Self.offPool {
          try model.run([input: Tensor(shape: [1, 1, mels, embedding.frames], elements: spectrogram)])[output]!
            .doubles()
        }
        var prediction = Self.prediction(of: clip)
        for (index, name) in front.classes.enumerated() where index < probabilities.count {
          prediction.scores[name] = probabilities[index]
        }
        prediction.predictedValue = prediction.scores[front.positive] ?? 0
        response.predictions.append(prediction)
      }
      guard page.count == 1000, let last = page.last else { break }
      after = last.digest
    }
    if request.review {
      response.reviewSetId = try await sendToReview(response, classes: front.classes, of: dataset)
    }
    return response
  }

  /// A clip's prediction in the Orcasound endpoint's shape, without its scores yet.
  static func prediction(of clip: AudioV1.Clip) -> AudioV1.Prediction {
    var prediction = AudioV1.Prediction()
    prediction.audioUrl = clip.source
    prediction.duration = clip.duration
    prediction.location = clip.location
    prediction.timestamp = clip.timestamp
    prediction.digest = clip.digest
    prediction.label = clip.label
    return prediction
  }

  /// A version of the registry and its file, by a reference (`org/` defaulting to
  /// `organization`).
  func downloadVersion(
    _ text: String, organization: String, _ registry: RegistryV1.ModelRegistry.Client
  ) async throws -> (RegistryV1.ModelVersion, [UInt8]) {
    try await registry.versionAndFile(text, organization: organization, options: Self.call)
  }

  /// Sends the unlabelled clips' predictions to feedback as a new set of items (each clip by its
  /// digest), which becomes the dataset's review set; the one before it is marked COMPLETE.
  private func sendToReview(
    _ response: AudioV1.PredictResponse, classes: [String], of dataset: AudioV1.Dataset
  ) async throws -> String {
    guard let feedback else {
      throw RPCError(
        .failedPrecondition, "review: this audio classifier has no feedback service to send predictions to")
    }
    let options = Self.onBehalf()
    var create = FeedbackV1.CreateSetRequest()
    create.model = response.model
    create.modelVersion = response.version
    create.task = .audio
    create.classes = classes.map { name in
      var label = RegistryV1.ClassLabel()
      label.name = name
      return label
    }
    create.organization = dataset.organization
    create.items = true
    let set = try await feedback.createSet(create, options: options)
    let items = response.predictions.filter { $0.label.isEmpty }.map { prediction in
      var item = FeedbackV1.PredictedTile()
      item.item = prediction.digest
      item.scores = prediction.scores
      return item
    }
    if !items.isEmpty {
      _ = try await feedback.putPredictions(options: options) { sender in
        for start in stride(from: 0, to: items.count, by: 500) {
          var batch = FeedbackV1.PutPredictionsRequest()
          batch.setId = set.setId
          batch.requestId = "clips \(start)"
          batch.tiles = Array(items[start..<min(items.count, start + 500)])
          try await sender.send(batch)
        }
      }
    }
    let id = Int64(dataset.datasetId)!
    let before = try await store.learning(of: id).reviewSet
    try await store.setReview(
      of: id, set: set.setId, model: response.model, version: response.version, positive: response.positiveClass)
    if !before.isEmpty {
      var update = FeedbackV1.UpdateSetRequest()
      update.setId = before
      update.status = .complete
      _ = try? await feedback.updateSet(update, options: options)
    }
    return set.setId
  }

  /// A trained file's front end, from its ONNX metadata.
  struct FrontEnd {
    var mels: Int
    var pcen: Bool
    var classes: [String]
    var positive: String
    /// The embedding's seed (nil in files made before it was recorded).
    var seed: UInt64?

    init(_ file: [UInt8], name: String) throws(RPCError) {
      let metadata: [String: String]
      do {
        let proto = try Onnx.ModelProto(serializedBytes: file)
        metadata = Dictionary(proto.metadataProps.map { ($0.key, $0.value) }) { first, _ in first }
      } catch {
        throw RPCError(.failedPrecondition, "\(name) is not an ONNX file: \(error)")
      }
      guard let mels = metadata["shoal.audio.mels"].flatMap(Int.init), let classes = metadata["shoal.audio.classes"],
        let positive = metadata["shoal.audio.positive_class"]
      else {
        throw RPCError(
          .failedPrecondition,
          "\(name) has no shoal.audio front end in its metadata: predict with a version `shoal audio train` made")
      }
      self.mels = mels
      pcen = metadata["shoal.audio.features"] == "pcen"
      self.classes = classes.split(separator: ",").map(String.init)
      self.positive = positive
      seed = metadata["shoal.audio.embedding_seed"].flatMap { UInt64($0) }
    }
  }
}
