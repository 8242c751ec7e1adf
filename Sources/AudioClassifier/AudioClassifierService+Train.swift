import Foundation
import ShoalAudio
import ShoalImagery
import ShoalModel
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore

/// Training: a dataset's labelled clips through the front end and the fixed embedding, a dense
/// head per candidate hidden size, the best pushed to the registry and recorded in tracking.
extension AudioClassifierService {
  public func train(
    _ request: AudioV1.TrainRequest, responses: RPCResponseWriter<AudioV1.TrainProgress>, context: ServerContext
  ) async throws {
    let result = try await runTraining(request, automatic: false) { try await responses.send($0) }
    var last = AudioV1.TrainProgress()
    last.total = result.labeledFiles
    last.done = result.labeledFiles
    last.result = result
    try await responses.send(last)
  }

  /// Trains as `request` says, reporting features and epochs to `progress`, and records the
  /// training with the dataset (its request kept as the dataset's settings for the automatic
  /// retraining).
  func runTraining(
    _ request: AudioV1.TrainRequest, automatic: Bool,
    progress report: (AudioV1.TrainProgress) async throws -> Void
  ) async throws -> AudioV1.TrainResult {
    guard let registry, let tracking else {
      throw RPCError(.unimplemented, "this audio classifier has no registry and tracking to train into")
    }
    guard !request.datasetId.isEmpty else {
      throw RPCError(.invalidArgument, "dataset_id: name the dataset to train on")
    }
    guard request.model.range(of: #"^[A-Za-z0-9_.-]{1,100}$"#, options: .regularExpression) != nil else {
      throw RPCError(
        .invalidArgument,
        request.model.isEmpty
          ? "model: name the registry model to train"
          : "model '\(request.model)': give 1 to 100 of A–Z, a–z, 0–9, '_', '.' and '-'")
    }
    guard (0...10_000).contains(request.epochs) else { throw RPCError(.invalidArgument, "epochs: give 1–10,000") }
    guard (0..<0.9).contains(request.validationSplit) else {
      throw RPCError(.invalidArgument, "validation_split: give a share below 0.9 (0: the default 0.2)")
    }
    var hiddenSizes = request.hiddenSizes.isEmpty ? [128, 256, 512] : request.hiddenSizes.map(Int.init)
    guard hiddenSizes.allSatisfy({ (1...8192).contains($0) }) else {
      throw RPCError(.invalidArgument, "hidden_sizes: each 1–8192")
    }
    var mels = request.mels == 0 ? 64 : Int(request.mels)
    guard (8...256).contains(mels) else { throw RPCError(.invalidArgument, "mels: give 8–256 bands") }
    guard (0...1_000_000).contains(request.retrainAfter) else {
      throw RPCError(.invalidArgument, "retrain_after: give 0 (never) to 1,000,000 labels")
    }
    guard (0...1000).contains(request.validationEvery), request.validationEvery != 1 else {
      throw RPCError(.invalidArgument, "validation_every: give 2–1000 (0: the default 5)")
    }
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let datasetID = Int64(dataset.datasetId)!
    let labelsAtStart = try await store.labelsSubmitted(to: datasetID)
    let labelled = try await labelledClips(of: datasetID)
    let classes = Array(Set(labelled.map(\.label))).sorted()
    guard classes.count >= 2 else {
      throw RPCError(
        .failedPrecondition,
        "dataset \(dataset.name) has \(labelled.count) labelled clips of \(classes.count) class"
          + "\(classes.count == 1 ? "" : "es"); training needs clips of at least 2 classes")
    }
    let counts = Dictionary(grouping: labelled, by: \.label).mapValues(\.count)
    if let (label, count) = counts.first(where: { $0.value < 2 }) {
      throw RPCError(
        .failedPrecondition, "class '\(label)' has \(count) clip; each class needs at least 2 (one may be held out)")
    }
    let positive = request.positiveClass.isEmpty ? Self.positiveClass(classes) : request.positiveClass
    guard classes.contains(positive) else {
      throw RPCError(.invalidArgument, "positive_class '\(positive)' is not one of \(classes.joined(separator: ", "))")
    }

    // A base version: its front end, embedding and head are where training starts.
    var (pcen, seed) = (request.pcen, request.seed)
    var initialHead: DenseHead?
    var base: RegistryV1.ModelVersion?
    if !request.baseModel.isEmpty {
      let (version, file) = try await downloadVersion(request.baseModel, organization: dataset.organization, registry)
      let name = "\(version.organization)/\(version.model) v\(version.version)"
      let front = try FrontEnd(file, name: name)
      guard let baseSeed = front.seed else {
        throw RPCError(
          .failedPrecondition,
          "base_model \(name) does not record its embedding's seed (it was trained before that was kept); "
            + "train without a base")
      }
      guard front.classes == classes else {
        throw RPCError(
          .failedPrecondition,
          "base_model \(name) has classes \(front.classes.joined(separator: ", ")); dataset \(dataset.name) has "
            + classes.joined(separator: ", "))
      }
      let head: DenseHead
      do {
        head = try DenseHead(onnx: file)
      } catch {
        throw RPCError(.failedPrecondition, "base_model \(name): \(error.message)")
      }
      (mels, pcen, seed) = (front.mels, front.pcen, baseSeed)
      hiddenSizes = [head.layers.count > 1 ? head.layers[0].outputs : 0]
      initialHead = head
      base = version
    }

    // Features, and the embedding of every clip through the model core.
    let embedding = ClipEmbedding(mels: mels, pcen: pcen, seed: seed)
    let embeddingFile = try embedding.onnx()
    let embedder = try Model(onnx: embeddingFile)
    let frames = embedding.frames
    var features: [Float] = []
    var labels: [Int] = []
    // The clips trained on: those whose stored file still decodes (the others are reported).
    var kept: [AudioV1.Clip] = []
    var skipped: [AudioV1.ClipFailure] = []
    let total = Int64(labelled.count)
    for (index, clip) in labelled.enumerated() {
      let spectrogram: [Float]
      switch await decoded(clip, embedding) {
      case .values(let values): spectrogram = values
      case .failed(let failure):
        skipped.append(failure)
        continue
      }
      kept.append(clip)
      features += try await Self.offPool { [mels] in
        try embedder.run([ClipEmbedding.input: Tensor(shape: [1, 1, mels, frames], elements: spectrogram)])[
          ClipEmbedding.output]!.elements(as: Float.self)
      }
      labels.append(classes.firstIndex(of: clip.label)!)
      var progress = AudioV1.TrainProgress()
      progress.total = total
      progress.done = Int64(index + 1)
      try await report(progress)
    }
    guard labels.count >= 4 else {
      throw RPCError(
        .failedPrecondition, "dataset \(dataset.name) has \(labels.count) labelled clips; training needs 4 or more")
    }
    guard (0...10).contains(request.augment) else { throw RPCError(.invalidArgument, "augment: give 0–10 copies") }
    // With augmentation the validation split is chosen here, so that no copy of a validation clip
    // is trained on: the copies go to training only.
    var heldOut = Set(kept.indices.filter { kept[$0].validation })
    var weights = kept.map { Self.weight(of: $0.expertise) }
    if request.augment > 0 {
      var random = SeededRandom(seed: seed ^ 0x5eed_a0d1)
      let fraction = request.validationSplit == 0 ? 0.2 : request.validationSplit
      let others = kept.indices.filter { !heldOut.contains($0) }.shuffled(using: &random)
      heldOut.formUnion(others.prefix(max(1, Int(Double(others.count) * fraction))))
      let training = kept.indices.filter { !heldOut.contains($0) }
      let copies = try await augmented(
        training.map { kept[$0] }, copies: Int(request.augment), positive: positive, embedding, &random)
      for (original, values) in copies {
        features += try await Self.offPool { [mels] in
          try embedder.run([ClipEmbedding.input: Tensor(shape: [1, 1, mels, frames], elements: values)])[
            ClipEmbedding.output]!.elements(as: Float.self)
        }
        labels.append(classes.firstIndex(of: kept[training[original]].label)!)
        weights.append(Self.weight(of: kept[training[original]].expertise))
      }
    }
    let featureTensor = Tensor(shape: [labels.count, embedding.embeddingSize], elements: features)

    // One head per hidden size; the best validation accuracy (then the lower loss) is kept.
    var best: (size: Int, result: HeadTrainer.Result)?
    for size in hiddenSizes {
      var config = HeadTrainer.Config.defaults
      config.hiddenSizes = size == 0 ? [] : [size]
      config.initialHead = initialHead
      config.maxEpochs = request.epochs == 0 ? 100 : Int(request.epochs)
      config.validationFraction =
        request.augment > 0 ? 0 : (request.validationSplit == 0 ? 0.2 : Float(request.validationSplit))
      config.seed = seed
      config.heldOut = heldOut
      if request.weightByExpertise { config.exampleWeights = weights }
      // Each epoch is reported as it ends: training runs apart and hands its epochs over.
      let (stream, continuation) = AsyncStream.makeStream(of: AudioV1.EpochMetrics.self)
      let training = Task { [config, featureTensor, labels, classes] in
        defer { continuation.finish() }
        return try await Self.offPool {
          try HeadTrainer(config).train(
            features: featureTensor, labels: .classes(labels), classes: classes.count
          ) { epoch in
            var metrics = AudioV1.EpochMetrics()
            metrics.epoch = Int32(epoch.number)
            metrics.hiddenSize = Int32(size)
            metrics.acc = epoch.trainingAccuracy
            metrics.loss = epoch.trainingLoss
            metrics.valAcc = epoch.validationAccuracy
            metrics.valLoss = epoch.validationLoss
            continuation.yield(metrics)
          }
        }
      }
      for await metrics in stream {
        var progress = AudioV1.TrainProgress()
        progress.total = total
        progress.done = total
        progress.epoch = metrics
        try await report(progress)
      }
      let result = try await training.value
      let loss = result.epochs.first { $0.number == result.bestEpoch }?.validationLoss ?? .infinity
      let bestLoss =
        best.flatMap { best in best.result.epochs.first { $0.number == best.result.bestEpoch } }?
        .validationLoss ?? .infinity
      if best == nil || result.validationAccuracy > best!.result.validationAccuracy
        || (result.validationAccuracy == best!.result.validationAccuracy && loss < bestLoss)
      {
        best = (size, result)
      }
    }
    let (size, chosen) = best!
    let bestEpoch = chosen.epochs.first { $0.number == chosen.bestEpoch }
    let file = try embedding.withMetadata(
      try chosen.head.onnxModel(after: embeddingFile, backboneOutput: ClipEmbedding.output), classes: classes,
      positive: positive)

    // The dataset's digest: its labelled clips and their labels, in digest order.
    let datasetDigest = Self.digest(of: kept)
    let organization = dataset.organization

    // Tracking: a run under the experiment `audio/MODEL`, its parameters, every epoch's metrics
    // of the kept candidate, and the dataset.
    let experiment = try await experimentID(named: "audio/\(request.model)", organization: organization, tracking)
    var create = TrackingV1.CreateRunRequest()
    create.experimentId = experiment
    create.name = "train \(request.model) on \(dataset.name)"
    create.user = CallerPrincipal.name
    create.startTimeMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    if !request.parentRunId.isEmpty { create.tags["mlflow.parentRunId"] = request.parentRunId }
    let run = try await tracking.createRun(create, options: Self.call)
    var batch = TrackingV1.LogBatchRequest()
    batch.runId = run.runId
    let params: [(String, String)] = [
      ("dataset", dataset.name), ("hidden_sizes", hiddenSizes.map(String.init).joined(separator: ",")),
      ("hidden_size", "\(size)"), ("epochs", "\(request.epochs == 0 ? 100 : request.epochs)"),
      ("validation_split", "\(request.validationSplit == 0 ? 0.2 : request.validationSplit)"),
      ("seed", "\(seed)"), ("features", pcen ? "pcen" : "log-mel"), ("mels", "\(mels)"),
      ("base_model", base.map { "\($0.organization)/\($0.model)/\($0.version)" } ?? ""),
      ("embedding", "3 random 3x3 convolutions, mean and max pooled (128), band means and deviations"),
      ("positive_class", positive), ("automatic", "\(automatic)"),
      ("weight_by_expertise", "\(request.weightByExpertise)"),
      ("validation_clips", "\(chosen.confusionMatrix.joined().reduce(0, +))"),
    ]
    batch.params = params.map { key, value in
      var param = TrackingV1.Param()
      (param.key, param.value) = (key, value)
      return param
    }
    let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    for epoch in chosen.epochs {
      for (key, value) in [
        ("acc", epoch.trainingAccuracy), ("loss", epoch.trainingLoss), ("val_acc", epoch.validationAccuracy),
        ("val_loss", epoch.validationLoss),
      ] {
        var metric = TrackingV1.Metric()
        (metric.key, metric.value, metric.step, metric.timestampMs) = (key, value, Int64(epoch.number), now)
        batch.metrics.append(metric)
      }
    }
    for start in stride(from: 0, to: batch.metrics.count, by: 1000) {
      var part = batch
      part.metrics = Array(batch.metrics[start..<min(batch.metrics.count, start + 1000)])
      if start > 0 { part.params = [] }
      _ = try await tracking.logBatch(part, options: Self.call)
    }
    var input = TrackingV1.DatasetInput()
    input.name = dataset.name
    input.digest = datasetDigest
    input.source = "audio-classifier dataset \(dataset.datasetId)"
    input.context = "training"
    var inputs = TrackingV1.LogInputsRequest()
    inputs.runId = run.runId
    inputs.datasets = [input]
    _ = try await tracking.logInputs(inputs, options: Self.call)

    // The registry: the model (made if new), then the version with its classes and metrics.
    var model = RegistryV1.CreateModelRequest()
    model.organization = organization
    model.name = request.model
    model.task = .audio
    model.description = "an audio classifier trained by the audio-classifier service"
    do {
      _ = try await registry.createModel(model, options: Self.call)
    } catch {
      guard error.code == .alreadyExists else { throw error }
    }
    var header = RegistryV1.UploadHeader()
    header.organization = organization
    header.model = request.model
    header.classes = classes.map { name in
      var label = RegistryV1.ClassLabel()
      label.name = name
      return label
    }
    header.metrics = ["val_acc": chosen.validationAccuracy, "val_loss": bestEpoch?.validationLoss ?? .nan]
    header.tags = [
      "positive_class": positive, "dataset": dataset.name, "dataset_digest": datasetDigest,
      "features": pcen ? "pcen" : "log-mel", "mels": "\(mels)",
    ]
    header.sourceRun = run.runId
    let version = try await registry.uploadVersion(options: Self.call) { sender in
      var first = RegistryV1.UploadVersionRequest()
      first.part = .header(header)
      try await sender.send(first)
      for start in stride(from: 0, to: file.count, by: 1 << 20) {
        var piece = RegistryV1.UploadVersionRequest()
        piece.part = .chunk(Array(file[start..<min(file.count, start + (1 << 20))]))
        try await sender.send(piece)
      }
    }
    var finish = TrackingV1.UpdateRunRequest()
    finish.runId = run.runId
    finish.status = .finished
    finish.endTimeMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    _ = try await tracking.updateRun(finish, options: Self.call)

    var result = AudioV1.TrainResult()
    result.acc = chosen.epochs.map(\.trainingAccuracy)
    result.loss = chosen.epochs.map(\.trainingLoss)
    result.valAcc = chosen.epochs.map(\.validationAccuracy)
    result.valLoss = chosen.epochs.map(\.validationLoss)
    // With the positive class second, a two-class matrix reads [tn, fp, fn, tp].
    let order =
      classes.count == 2
      ? [classes.firstIndex { $0 != positive }!, classes.firstIndex(of: positive)!] : Array(classes.indices)
    result.cm = order.flatMap { row in order.map { column in Int64(chosen.confusionMatrix[row][column]) } }
    result.classes = order.map { classes[$0] }
    result.labeledFiles = Int64(kept.count)
    result.modelAcc = chosen.validationAccuracy
    result.modelLoss = bestEpoch?.validationLoss ?? .nan
    result.hiddenSize = Int32(size)
    result.model = "\(version.organization)/\(version.model)"
    result.version = version.version
    result.runId = run.runId
    result.datasetDigest = datasetDigest
    result.positiveClass = positive
    result.validationFiles = Int64(chosen.confusionMatrix.joined().reduce(0, +))
    result.skipped = skipped
    if let base {
      result.baseModel = "\(base.organization)/\(base.model)"
      result.baseVersion = base.version
    }

    var round = AudioV1.TrainingRound()
    round.model = result.model
    round.version = result.version
    round.labeledFiles = result.labeledFiles
    round.validationFiles = result.validationFiles
    round.modelAcc = result.modelAcc
    round.modelLoss = result.modelLoss
    round.automatic = automatic
    round.runId = result.runId
    round.trainedAtMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    try await store.recordTraining(
      of: datasetID, config: request, labelsAtStart: labelsAtStart, round: round, cm: result.cm,
      classes: result.classes)
    return result
  }

  /// `copies` augmented spectrograms of each of `clips` (by its index there): its samples shifted
  /// by a random offset and mixed with a random clip of another class than the positive one (the
  /// dataset's own background) at 0 to 6 dB below it. A clip whose file no longer decodes gives
  /// none.
  func augmented(
    _ clips: [AudioV1.Clip], copies: Int, positive: String, _ embedding: ClipEmbedding, _ random: inout SeededRandom
  ) async throws -> [(Int, [Float])] {
    var samples: [[Float]?] = []
    for clip in clips {
      let bytes = try await blobs.read(try BlobDigest(hex: clip.digest))
      let name = clip.name
      samples.append(try? await Self.offPool { try embedding.samples(bytes, name: name) })
    }
    let background = clips.indices.filter { clips[$0].label != positive && samples[$0] != nil }
    func rms(_ values: [Float]) -> Float {
      (values.reduce(0) { $0 + $1 * $1 } / Float(max(1, values.count))).squareRoot()
    }
    var result: [(Int, [Float])] = []
    for (index, clip) in samples.enumerated() {
      guard let clip, !clip.isEmpty else { continue }
      for _ in 0..<copies {
        let offset = Int.random(in: 0..<clip.count, using: &random)
        var mixed = Array(clip[offset...] + clip[..<offset])
        if let other = background.filter({ $0 != index }).randomElement(using: &random), let noise = samples[other] {
          let level = rms(noise)
          if level > 0 {
            let gain = rms(clip) / level * Float.pow(10, -Float.random(in: 0...6, using: &random) / 20)
            for position in mixed.indices { mixed[position] += gain * noise[position % noise.count] }
          }
        }
        let copy = mixed
        result.append((index, try await Self.offPool { embedding.features(samples: copy) }))
      }
    }
    return result
  }

  /// Threads for training's blocking work (decoding, spectrograms, the embedding, the head), off
  /// Swift's task pool: a long training must not hold the threads the service answers calls and
  /// keepalive pings with.
  static let trainingThreads = WorkerThreads<Void>(count: 2, name: "shoal-audio-train", setUp: {})

  /// `body` on a training thread.
  static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await trainingThreads.runThrowing { _ in try body() }
  }

  /// A dataset's digest: its labelled clips and their labels, in digest order.
  static func digest(of clips: [AudioV1.Clip]) -> String {
    BlobDigest.of(Array(clips.map { "\($0.digest) \($0.label)\n" }.joined().utf8)).hex
  }

  /// A stored clip's standardised spectrogram, or why its file no longer gives one.
  enum Decoded {
    case values([Float])
    case failed(AudioV1.ClipFailure)
  }

  func decoded(_ clip: AudioV1.Clip, _ embedding: ClipEmbedding) async -> Decoded {
    var failure = AudioV1.ClipFailure()
    failure.source = clip.source.isEmpty ? clip.digest : clip.source
    do {
      let bytes = try await blobs.read(try BlobDigest(hex: clip.digest))
      let name = clip.name
      return .values(try await Self.offPool { try embedding.features(bytes, name: name) })
    } catch let error as AudioError {
      failure.message = "stored clip \(clip.digest) (\(clip.name)) no longer decodes: \(error.message)"
    } catch {
      failure.message = "stored clip \(clip.digest) (\(clip.name)) cannot be read: \(error)"
    }
    return .failed(failure)
  }

  public func checkDataset(
    _ request: AudioV1.CheckDatasetRequest, context: ServerContext
  ) async throws -> AudioV1.CheckDatasetResponse {
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let embedding = ClipEmbedding(mels: 64, pcen: false, seed: 0)
    var response = AudioV1.CheckDatasetResponse()
    var kept: [AudioV1.Clip] = []
    for clip in try await labelledClips(of: Int64(dataset.datasetId)!) {
      switch await decoded(clip, embedding) {
      case .values:
        kept.append(clip)
        response.labelCounts[clip.label, default: 0] += 1
      case .failed(let failure): response.failures.append(failure)
      }
    }
    response.unlabelled = dataset.unlabelled
    response.datasetDigest = Self.digest(of: kept)
    return response
  }

  /// A label's weight in training by its labeller's expertise (an imported label weighs 1).
  static func weight(of expertise: AudioV1.Expertise) -> Float {
    switch expertise {
    case .beginner: 0.5
    case .competent: 0.75
    case .expert: 1.5
    default: 1
    }
  }

  static let call = CallOptions(timeout: .seconds(60))

  /// The first class in name order that is not a name for "nothing here".
  static func positiveClass(_ classes: [String]) -> String {
    classes.first { !["noise", "background", "negative", "none", "no_call"].contains($0.lowercased()) } ?? classes[1]
  }

  /// Every labelled clip of a dataset.
  func labelledClips(of id: Int64) async throws -> [AudioV1.Clip] {
    var clips: [AudioV1.Clip] = []
    var after = ""
    while true {
      let page = try await store.clips(of: id, label: nil, after: after, limit: 10_000)
      clips += page.filter { !$0.label.isEmpty }
      guard page.count == 10_000, let last = page.last else { return clips }
      after = last.digest
    }
  }

  private func experimentID(
    named name: String, organization: String, _ tracking: TrackingV1.Tracking.Client
  ) async throws -> String {
    var get = TrackingV1.GetExperimentRequest()
    get.name = name
    do {
      return try await tracking.getExperiment(get, options: Self.call).experimentId
    } catch {
      guard error.code == .notFound else { throw error }
    }
    var create = TrackingV1.CreateExperimentRequest()
    create.name = name
    create.organization = organization
    return try await tracking.createExperiment(create, options: Self.call).experimentId
  }
}
