import ArgumentParser
import Foundation
import Inference
import ShoalClient
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// Runs `body` with a client of the inference service, found through the registry; an RPC
/// failure is printed as `shoal COMMAND: CODE: message` and exits with status 1.
func withInference<T>(
  _ mesh: MeshOptions, command: String, _ body: (InferenceV1.Inference.Client) async throws -> T
) async throws -> T {
  var config = BalancedChannel.Config.defaults
  config.client.connection.maxMessageSize = InferenceService.maxMessageSize
  let shoal = ShoalClient(location: try mesh.location(), config: config)
  return try await reportingRPCErrors(command: command, closing: { await shoal.close() }) {
    try await body(InferenceV1.Inference.Client(shoal.channel(for: "inference")))
  }
}

/// The batching options of `shoal inference load`.
struct BatchingOptions: ParsableArguments {
  @Option(help: "Rows in one execution (1 turns batching off).") var maxBatch: Int32?
  @Option(help: "Microseconds the oldest request waits for a fuller batch.") var maxDelayUs: Int64?
  @Option(name: .customLong("preferred-batch"), help: "A preferred batch size (repeatable).")
  var preferred: [Int32] = []
  @Option(help: "Requests queued at most (0: unbounded).") var maxQueue: Int32?
  @Option(help: "Executions of the model in flight at once.") var instances: Int32?

  /// The knobs given; nil when none was.
  var config: InferenceV1.ModelConfig? {
    var batching = InferenceV1.BatchingConfig()
    if let maxBatch { batching.maxBatch = .maxBatchSize(maxBatch) }
    if let maxDelayUs { batching.maxDelay = .maxQueueDelayUs(maxDelayUs) }
    batching.preferredBatchSizes = preferred
    if let maxQueue { batching.maxQueue = .maxQueueSize(maxQueue) }
    if let instances { batching.maxInstances = .instances(instances) }
    guard batching != InferenceV1.BatchingConfig() else { return nil }
    var config = InferenceV1.ModelConfig()
    config.batching = batching
    return config
  }
}

/// `shoal inference …`.
struct InferenceCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inference", abstract: "Load, unload and list the models the inference service serves.",
    subcommands: [Load.self, Unload.self, Status.self])

  struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Load a model (name@alias, name/version or name, with an optional org/ prefix).",
      discussion: "Answers once the model is AVAILABLE. A reference with an alias follows it: when the alias moves, "
        + "the new version is loaded and swapped in without dropping calls.")
    @Argument(help: "The model reference.") var reference: String
    @OptionGroup var batching: BatchingOptions
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print the result as JSON.") var json = false

    func run() async throws {
      var request = InferenceV1.LoadModelRequest()
      request.model = reference
      request.config = batching.config
      let loaded = try await withInference(mesh, command: "inference load") { client in
        var options = CallOptions(timeout: .seconds(600))
        options.retries = .none
        return try await client.loadModel(request, options: options)
      }
      if json { return emitJSON(loaded) }
      emit(
        "\(loaded.reference): v\(loaded.version) \(loaded.state.protoName ?? "") "
          + "(\(formatBytes(loaded.memoryBytes)), loaded in \(String(format: "%.2f", Double(loaded.loadTimeUs) / 1e6)) s)"
      )
    }
  }

  struct Unload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Stop serving a model; its queued and running requests finish first.")
    @Argument(help: "The model reference it was loaded by.") var reference: String
    @OptionGroup var mesh: MeshOptions

    func run() async throws {
      var request = InferenceV1.UnloadModelRequest()
      request.model = reference
      let unloaded = try await withInference(mesh, command: "inference unload") { try await $0.unloadModel(request) }
      emit("\(unloaded.reference): unloaded (was v\(unloaded.version))")
    }
  }

  struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The loaded models: version, state, batching, memory; --watch follows every change.")
    @Argument(help: "One model reference (default: every model).") var reference = ""
    @Flag(help: "Print every change until interrupted.") var watch = false
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      if watch {
        try await withInference(mesh, command: "inference status") { client in
          var options = CallOptions()
          options.timeout = nil
          try await client.watchModels(InferenceV1.WatchModelsRequest(), options: options) { events in
            for try await event in events {
              guard let model = event.model else { continue }
              if json {
                emit(event.jsonString())
              } else {
                let state = event.removed ? "REMOVED" : model.state.protoName ?? ""
                let pending = model.pendingVersion > 0 ? " (loading v\(model.pendingVersion))" : ""
                emit(
                  "\(formatTime(Int64(Date().timeIntervalSince1970 * 1000))) \(model.reference) v\(model.version) "
                    + "\(state)\(pending)\(model.reason.isEmpty ? "" : ": \(model.reason)")")
              }
            }
          }
        }
        return
      }
      var request = InferenceV1.ModelStatusRequest()
      request.model = reference
      let response = try await withInference(mesh, command: "inference status") { try await $0.modelStatus(request) }
      if json { return emitJSON(response) }
      var table = TextTable(
        "REFERENCE", "VERSION", "STATE", "MAX BATCH", "DELAY US", "INSTANCES", "MEMORY", "LOADED", "REASON")
      for model in response.models {
        let batching = model.config?.batching
        var maxBatch = "-"
        if case .maxBatchSize(let size)? = batching?.maxBatch { maxBatch = "\(size)" }
        var delay = "-"
        if case .maxQueueDelayUs(let value)? = batching?.maxDelay { delay = "\(value)" }
        var instances = "-"
        if case .instances(let value)? = batching?.maxInstances { instances = "\(value)" }
        let version = model.version > 0 ? "v\(model.version)" : "-"
        let pending = model.pendingVersion > 0 ? " → v\(model.pendingVersion)" : ""
        table.add(
          model.reference, version + pending, model.state.protoName ?? "", maxBatch, delay, instances,
          formatBytes(model.memoryBytes), formatTime(model.loadedAtMs), model.reason)
      }
      emit(table.rendered)
    }
  }
}

/// `shoal predict REF --input name=x.npy …`.
struct PredictCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict", abstract: "Run one prediction on a served model.",
    discussion: """
      Inputs are .npy files (--input NAME=FILE, repeatable). Prints each output's shape and first values, the top \
      classes with --top, writes each output as NAME.npy with --out DIR, or prints the response as JSON with --json.
      """)

  @Argument(help: "The model reference.") var reference: String
  @Option(name: .customLong("input"), help: "An input NAME=FILE.npy (repeatable).") var inputs: [String] = []
  @Option(
    name: .customLong("image"),
    help: "A PNG or JPEG for the model's image input, or NAME=FILE (repeatable: a batch of images).")
  var images: [String] = []
  @Option(help: "The k best classes of each row, for a classification model.") var top: Int32 = 0
  @Option(help: "A directory to write each output to as NAME.npy.") var out: String?
  @Option(help: "Only these outputs (repeatable).") var output: [String] = []
  @Option(help: "Seconds to wait.") var timeout: Double = 60
  @Flag(help: "Print the response as JSON.") var json = false
  @OptionGroup var mesh: MeshOptions

  func validate() throws {
    guard !inputs.isEmpty || !images.isEmpty else {
      throw ValidationError("give at least one --input NAME=FILE.npy or --image FILE")
    }
  }

  func run() async throws {
    var request = InferenceV1.PredictRequest()
    request.model = reference
    request.id = UUID().uuidString
    request.topK = top
    request.outputs = output.map { name in
      var wanted = InferenceV1.RequestedOutput()
      wanted.name = name
      return wanted
    }
    request.inputs = try npyInputs(inputs)
    let images = images
    let response = try await withInference(mesh, command: "predict") { client in
      request.inputs += try await imageInputs(images, model: request.model, client: client)
      return try await client.predict(request, options: CallOptions(timeout: .milliseconds(Int64(timeout * 1000))))
    }
    if json { return emitJSON(response) }
    emit("\(response.model) v\(response.modelVersion)")
    for output in response.outputs {
      let tensor = try output.decodedTensor()
      let values = tensor.doubles()
      let shown = values.prefix(8).map { String(format: "%.6g", $0) }.joined(separator: ", ")
      emit("  \(output.name) \(output.datatype) \(output.shape): [\(shown)\(values.count > 8 ? ", …" : "")]")
      if let out {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try tensor.writeNpy(to: "\(out)/\(output.name).npy")
      }
    }
    for (row, classes) in response.topClasses.enumerated() {
      let line = classes.classes.map { "\($0.name) \(String(format: "%.4f", $0.score))" }.joined(separator: ", ")
      emit("  row \(row): \(line)")
    }
  }
}

/// `--input NAME=FILE.npy` options as tensors.
func npyInputs(_ options: [String]) throws -> [InferenceV1.InferTensor] {
  try parsePairs(options, option: "--input").sorted(by: { $0.key < $1.key }).map { name, file in
    do {
      return InferenceV1.InferTensor(name: name, tensor: try Tensor(npyFile: file))
    } catch {
      throw ValidationError("--input \(name)=\(file): \(error)")
    }
  }
}

/// `--image FILE` or `--image NAME=FILE` options as BYTES tensors, one per input, the files of an
/// input in order. Without a name, the image goes to the model's image input (its first rank-4
/// FP32 input), asked of the service.
func imageInputs(
  _ options: [String], model: String, client: InferenceV1.Inference.Client
) async throws -> [InferenceV1.InferTensor] {
  guard !options.isEmpty else { return [] }
  var byName: [(String, [[UInt8]])] = []
  var defaultName: String?
  for option in options {
    var name: String
    var file = option
    if let equals = option.firstIndex(of: "="), !FileManager.default.fileExists(atPath: option) {
      name = String(option[..<equals])
      file = String(option[option.index(after: equals)...])
    } else {
      if defaultName == nil {
        var request = InferenceV1.ModelMetadataRequest()
        request.model = model
        let metadata = try await client.modelMetadata(request)
        guard let input = metadata.inputs.first(where: { $0.datatype == "FP32" && $0.shape.count == 4 }) else {
          throw ValidationError("\(model) has no image input (FP32 of rank 4); name one with --image NAME=FILE")
        }
        defaultName = input.name
      }
      name = defaultName!
    }
    guard let bytes = FileManager.default.contents(atPath: file) else {
      throw ValidationError("--image \(option): cannot read \(file)")
    }
    if let index = byName.firstIndex(where: { $0.0 == name }) {
      byName[index].1.append([UInt8](bytes))
    } else {
      byName.append((name, [[UInt8](bytes)]))
    }
  }
  return byName.map { InferenceV1.InferTensor(name: $0.0, files: $0.1) }
}

extension InferenceV1.InferTensor {
  /// The tensor an answer carries (a type the model core has).
  func decodedTensor() throws -> Tensor {
    guard let type = InferDatatype.type(named: datatype) else {
      throw ValidationError("output '\(name)' is \(datatype), which this command cannot show")
    }
    let shape = self.shape.map { Int($0) }
    guard shape.reduce(1, *) * type.byteSize == rawContents.count else {
      throw ValidationError("output '\(name)': \(rawContents.count) bytes do not fill \(shape) of \(datatype)")
    }
    return rawContents.withUnsafeBytes { Tensor(dataType: type, shape: shape, copying: $0) }
  }
}

/// Bytes in KiB, MiB or GiB.
func formatBytes(_ bytes: Int64) -> String {
  for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes >= Int64(1) << shift {
    return String(format: "%.1f %@", Double(bytes) / Double(Int64(1) << shift), unit)
  }
  return "\(bytes) B"
}
