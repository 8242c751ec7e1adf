import Foundation
import ShoalImage
import ShoalImagery
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore

/// A feedback set's validated tiles as a pipeline's examples: feedback builds a training set of
/// them (their images fetched from the set's imagery), and each tile with exactly one class
/// marked valid is an example of that class. A frozen backbone from the registry, cut at a
/// named output, makes each image an embedding; HeadTrainer trains the head on them, and the
/// backbone and head go to the registry as one ONNX file.
extension PipelineRunner {
  struct TileExamples {
    var tiles: [String] = []
    var images: [[UInt8]] = []
    var labels: [Int] = []
    var classes: [String] = []
    var rejected: [String] = []
    var digest = ""
  }

  /// The validated tiles of feedback set `set`, each with one class; the others rejected with
  /// the reason (an image that cannot be fetched or decoded, a tile valid for two classes or for
  /// none).
  func tileExamples(set: String) async throws -> TileExamples {
    guard let feedback else { throw StepFailure(message: "this pipeline service has no feedback service") }
    var build = FeedbackV1.BuildTrainingSetRequest()
    build.setId = set
    build.name = "pipeline-\(set)"
    var examples = TileExamples()
    let built = try await feedback.buildTrainingSet(build, options: Self.training) {
      responses -> FeedbackV1.TrainingSet? in
      var last: FeedbackV1.TrainingSet?
      var rejected: [String] = []
      for try await progress in responses {
        if let failure = progress.failure {
          rejected.append("tile \(progress.tileId): \(failure.message) (\(failure.url), status \(failure.status))")
        }
        if let set = progress.trainingSet { last = set }
      }
      examples.rejected = rejected
      return last
    }
    guard let built else { throw StepFailure(message: "feedback built no training set of set \(set)") }
    examples.classes = built.classes
    examples.digest = built.digest
    var download = FeedbackV1.DownloadTrainingSetRequest()
    download.trainingSetId = built.trainingSetId
    let tar = try await feedback.downloadTrainingSet(download, options: Self.training) { chunks -> [UInt8] in
      var bytes: [UInt8] = []
      for try await chunk in chunks { bytes += chunk.data }
      return bytes
    }
    let files = try TarReader.files(tar)
    guard let manifest = files["manifest.jsonl"] else {
      throw StepFailure(message: "training set \(built.trainingSetId) has no manifest.jsonl")
    }
    for line in String(decoding: manifest, as: UTF8.self).split(separator: "\n") {
      guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
        let tile = entry["tile"] as? String, let path = entry["image"] as? String
      else {
        examples.rejected.append("a manifest line is malformed: \(line.prefix(120))")
        continue
      }
      let labels = entry["labels"] as? [String: Int] ?? [:]
      let valid = examples.classes.filter { labels[$0] == 1 }
      guard valid.count == 1, let label = examples.classes.firstIndex(of: valid[0]) else {
        examples.rejected.append(
          valid.isEmpty
            ? "tile \(tile): no class is marked valid; dropped"
            : "tile \(tile): marked valid for \(valid.joined(separator: " and ")); dropped")
        continue
      }
      guard let image = files[path] else {
        examples.rejected.append("tile \(tile): its image \(path) is not in the training set")
        continue
      }
      do {
        _ = try Image(decoding: image)
      } catch {
        examples.rejected.append("tile \(tile): its image does not decode: \(error.message)")
        continue
      }
      examples.tiles.append(tile)
      examples.images.append(image)
      examples.labels.append(label)
    }
    return examples
  }

  /// A version's file with its record, from the registry.
  func download(_ reference: String, organization: String) async throws -> (RegistryV1.ModelVersion, [UInt8]) {
    try await registry.versionAndFile(reference, organization: organization, options: Self.training)
  }

  /// Threads for the model core's work (embeddings, heads, evaluations), off Swift's task pool.
  static let computeThreads = WorkerThreads<Void>(count: 2, name: "shoal-pipeline", setUp: {})

  /// The outputs of `model` for `images`, 16 at a time, made into its input with `preprocessing`,
  /// on the compute threads.
  func outputs(
    of model: Model, _ images: [[UInt8]], preprocessing: RegistryV1.Preprocessing?, output: String
  ) async throws -> (values: [Float], width: Int) {
    try await Self.computeThreads.runThrowing { _ in
      try self.blockingOutputs(of: model, images, preprocessing: preprocessing, output: output)
    }
  }

  private func blockingOutputs(
    of model: Model, _ images: [[UInt8]], preprocessing: RegistryV1.Preprocessing?, output: String
  ) throws -> (values: [Float], width: Int) {
    guard let spec = model.inputs.first else { throw StepFailure(message: "the model has no input") }
    var values: [Float] = []
    var width = 0
    for start in stride(from: 0, to: images.count, by: 16) {
      let batch = Array(images[start..<min(images.count, start + 16)])
      let input = try Self.imageTensor(batch, for: spec, preprocessing: preprocessing)
      guard let result = try model.run([spec.name: input])[output] else {
        throw StepFailure(message: "the model has no output '\(output)'")
      }
      width = result.count / batch.count
      values += result.dataType == .float32 ? result.elements(as: Float.self) : []
    }
    return (values, width)
  }

  /// Trains a head on the backbone's embeddings of `examples` for each hidden size and pushes the
  /// best (on the validation split) with the backbone as the model's next version.
  func trainTiles(
    _ pipeline: PipelineFile, _ examples: TileExamples, parent: String, stepRun: String
  ) async throws -> (version: Int64, hiddenSize: Int, accuracy: Double) {
    let (backbone, file) = try await download(pipeline.backbone!, organization: pipeline.organization)
    let output = pipeline.embeddingOutput!
    let model = try Model(onnx: file)
    guard model.outputs.contains(where: { $0.name == output }) else {
      throw StepFailure(
        message: "the backbone \(pipeline.backbone!) has no output '\(output)' (its outputs: "
          + "\(model.outputs.map(\.name).joined(separator: ", ")))")
    }
    let preprocessing = backbone.signature?.preprocessing
    let (values, width) = try await outputs(
      of: model, examples.images, preprocessing: preprocessing, output: output)
    let features = Tensor(shape: [examples.labels.count, width], elements: values)
    var best: (size: Int, result: HeadTrainer.Result)?
    let experiment = try await experimentID(pipeline)
    for size in pipeline.hiddenSizes.map(Int.init) {
      var config = HeadTrainer.Config.defaults
      config.hiddenSizes = [size]
      config.maxEpochs = Int(pipeline.epochs)
      config.validationFraction = Float(pipeline.validationSplit)
      config.seed = pipeline.seed
      let (labels, count) = (examples.labels, examples.classes.count)
      let result = try await Self.computeThreads.runThrowing { [config] _ in
        try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: count)
      }
      if pipeline.has("tune") {
        let run = try await startRun(
          experiment, name: "\(pipeline.name): tune hidden \(size)",
          tags: ["pipeline_step": "tune", "mlflow.parentRunId": parent, "hidden_size": "\(size)"])
        try await log(run, metrics: ["val_acc": result.validationAccuracy])
        try await finish(run, .finished)
      }
      if best.map({ result.validationAccuracy > $0.result.validationAccuracy }) ?? true { best = (size, result) }
    }
    guard let (size, chosen) = best else { throw StepFailure(message: "no hidden size to train") }
    let onnx = try chosen.head.onnxModel(after: file, backboneOutput: output)

    var create = RegistryV1.CreateModelRequest()
    create.organization = pipeline.organization
    create.name = pipeline.model
    create.task = .classification
    create.description = "a tile classifier trained by the pipeline service on a frozen \(backbone.model)"
    // Made unless it exists.
    _ = try await Self.value(unless: .alreadyExists) { try await registry.createModel(create, options: Self.call) }
    var header = RegistryV1.UploadHeader()
    header.organization = pipeline.organization
    header.model = pipeline.model
    header.sha256 = BlobDigest.of(onnx).hex
    header.preprocessing = preprocessing
    header.classes = examples.classes.map { name in
      var label = RegistryV1.ClassLabel()
      label.name = name
      return label
    }
    header.metrics = ["val_acc": chosen.validationAccuracy]
    header.tags = [
      "pipeline": pipeline.name, "backbone": "\(backbone.organization)/\(backbone.model)/\(backbone.version)",
      "embedding_output": output, "dataset_digest": examples.digest,
    ]
    header.sourceRun = stepRun
    let sample = Array(examples.images.prefix(200))
    if let reference = try await Self.computeThreads.runThrowing({ _ in
      try self.driftReference(onnx, sample[...], preprocessing: preprocessing)
    }) {
      header.tags[DriftReference.tag] = reference
    }
    let version = try await registry.uploadVersion(options: Self.training) { sender in
      var first = RegistryV1.UploadVersionRequest()
      first.part = .header(header)
      try await sender.send(first)
      for start in stride(from: 0, to: onnx.count, by: 1 << 20) {
        var piece = RegistryV1.UploadVersionRequest()
        piece.part = .chunk(Array(onnx[start..<min(onnx.count, start + (1 << 20))]))
        try await sender.send(piece)
      }
    }
    return (version.version, size, chosen.validationAccuracy)
  }

  /// The drift reference of the trained file on (up to 200 of) its training images, as the tag's
  /// JSON; nil when it would not fit the tag.
  func driftReference(
    _ file: [UInt8], _ images: ArraySlice<[UInt8]>, preprocessing: RegistryV1.Preprocessing?
  ) throws -> String? {
    let model = try Model(onnx: file)
    guard let spec = model.inputs.first, let first = model.outputs.first?.name, !images.isEmpty else { return nil }
    let input = try Self.imageTensor(Array(images), for: spec, preprocessing: preprocessing)
    let reference = DriftReference.of(
      inputs: [spec.name: input], outputs: try model.run([spec.name: input]), firstOutput: first)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let text = String(decoding: try encoder.encode(reference), as: UTF8.self)
    return text.utf8.count <= 16 << 10 ? text : nil
  }

  /// Encoded images as the input `spec` of a version with `preprocessing`, as inference makes it.
  static func imageTensor(
    _ images: [[UInt8]], for spec: Model.ValueSpec, preprocessing: RegistryV1.Preprocessing?
  ) throws -> Tensor {
    let format = try ImageTensorFormat(
      input: spec, tileSize: Int(preprocessing?.tileSize ?? 0), channelOrder: preprocessing?.channelOrder ?? "RGB",
      mean: preprocessing?.mean ?? [], std: preprocessing?.std ?? [])
    return try format.tensor(encoded: images.map { $0[...] })
  }

  /// A version's predictions of the test tiles, scored.
  func evaluateTiles(
    _ reference: String, _ test: TileExamples, _ pipeline: PipelineFile
  ) async throws
    -> PipelineV1.Evaluation
  {
    let (version, file) = try await download(reference, organization: pipeline.organization)
    let model = try Model(onnx: file)
    guard let output = model.outputs.first?.name else { throw StepFailure(message: "\(reference) has no output") }
    let (values, width) = try await outputs(
      of: model, test.images, preprocessing: version.signature?.preprocessing, output: output)
    let classes = version.signature?.classes.map(\.name) ?? test.classes
    let examples = test.labels.enumerated().map { row, label in
      let scores = Dictionary(
        uniqueKeysWithValues: classes.enumerated().prefix(width).map { ($1, Double(values[row * width + $0])) })
      return (label: test.classes[label], scores: scores)
    }
    var evaluation = Self.score(examples)
    evaluation.version = version.version
    return evaluation
  }
}

/// The files of a POSIX ustar archive, by name.
enum TarReader {
  static func files(_ bytes: [UInt8]) throws -> [String: [UInt8]] {
    var files: [String: [UInt8]] = [:]
    var offset = 0
    while offset + 512 <= bytes.count {
      let header = bytes[offset..<offset + 512]
      if header.allSatisfy({ $0 == 0 }) { break }
      func text(_ start: Int, _ length: Int) -> String {
        let field = header[(offset + start)..<(offset + start + length)]
        return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
      }
      let prefix = text(345, 155)
      let name = prefix.isEmpty ? text(0, 100) : "\(prefix)/\(text(0, 100))"
      guard let size = Int(text(124, 12).trimmingCharacters(in: .whitespaces), radix: 8) else {
        throw PipelineRunner.StepFailure(message: "the training set's archive is corrupt at byte \(offset)")
      }
      let start = offset + 512
      guard start + size <= bytes.count else {
        throw PipelineRunner.StepFailure(message: "the training set's archive ends inside \(name)")
      }
      if header[offset + 156] == UInt8(ascii: "0") || header[offset + 156] == 0 {
        files[name] = Array(bytes[start..<start + size])
      }
      offset = start + (size + 511) / 512 * 512
    }
    return files
  }
}
