public import Foundation
public import ShoalMesh

/// A pipeline as its file says it: what it trains, on what, how it is judged and what happens
/// after, checked when it is loaded with errors that name the field.
///
/// ```json
/// { "model": "orca", "source": { "audio_dataset": "calls" }, "test": { "audio_dataset": "calls-test" },
///   "triggers": { "labels": 20 },
///   "steps": [ { "step": "load" }, { "step": "validate", "min_per_class": 4 },
///     { "step": "tune", "hidden_sizes": [128, 256, 512] }, { "step": "train", "epochs": 100 },
///     { "step": "evaluate" }, { "step": "decide", "margin": 0.01, "max_class_regression": 0.05 },
///     { "step": "promote" }, { "step": "notify", "webhook": "https://hooks.slack.com/…", "format": "slack" } ] }
/// ```
public struct PipelineFile: Sendable, Equatable {
  /// The steps a pipeline may have, in the only order they can run.
  public static let stepKinds = ["load", "validate", "tune", "train", "evaluate", "decide", "promote", "notify"]
  /// What each step needs to have run before it.
  static let needs: [String: [String]] = [
    "validate": ["load"], "tune": ["load"], "train": ["load"], "evaluate": ["train"], "decide": ["evaluate"],
    "promote": ["decide"],
  ]

  public struct Step: Sendable, Equatable {
    public var kind: String
    /// The steps it runs after (by default the one before it in the file).
    public var after: [String]
  }

  public var name = ""
  public var file = ""
  /// The registry model, and the organisation it and the datasets belong to.
  public var model = ""
  public var organization = "local"
  /// The audio classifier's dataset trained on, and the held-out one evaluated on; or, for
  /// tiles, feedback's prediction sets (their validated tiles).
  public var sourceDataset = ""
  public var testDataset: String?
  /// Tiles: the frozen backbone (a registry reference) and its output that feeds the head.
  public var backbone: String?
  public var embeddingOutput: String?
  public var isTiles: Bool { backbone != nil }
  /// Steps in the order they run.
  public var steps: [Step] = []
  public var triggerLabels: Int64 = 0
  public var triggerEverySeconds: Int64 = 0
  // validate
  public var minPerClass: Int64 = 2
  public var maxImbalance: Double = 20
  // tune and train
  public var hiddenSizes: [Int32] = [128, 256, 512]
  public var epochs: Int32 = 100
  public var seed: UInt64 = 42
  public var mels: Int32 = 64
  public var pcen = false
  public var validationSplit = 0.2
  // decide
  public var metric = "accuracy"
  public var margin = 0.01
  public var maxClassRegression = 0.05
  /// With no production version yet, the least accuracy a first version needs.
  public var minAccuracy = 0.0
  // promote
  public var alias = "production"
  /// With a canary, the candidate goes to `staging` first and, when inference serves the alias,
  /// meets a share of its traffic there; it becomes `alias` after `canarySeconds` without a
  /// rollback.
  public var canary = false
  public var canaryPercent = 10.0
  public var canarySeconds: Int32 = 3600
  public var canaryMinRequests: Int32 = 20
  public var canaryMaxErrorRate = 0.05
  public var canaryMaxP99Ms = 0.0
  // notify
  public var webhook: String?
  public var webhookFormat = "json"
  /// The JSON as given.
  public var definition = ""

  public func has(_ kind: String) -> Bool { steps.contains { $0.kind == kind } }

  /// Reads `data`, the file `file`.
  ///
  /// - Throws: `MeshFileError` (a "pipeline file") naming the field that is wrong.
  public init(json data: Data, file: String) throws(MeshFileError) {
    let reader = FieldReader(file: file, kind: "pipeline file")
    let parsed: Any
    do {
      parsed = try JSONSerialization.jsonObject(with: data)
    } catch {
      throw reader.error(nil, "is not valid JSON: \((error as NSError).localizedDescription)")
    }
    guard let object = parsed as? [String: Any] else { throw reader.error(nil, "must be a JSON object") }
    try reader.allowOnly(["name", "model", "organization", "source", "test", "triggers", "steps"], in: object, at: nil)
    self.file = file
    definition = String(decoding: data, as: UTF8.self)
    let base = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
    name = try reader.string(object["name"], at: "name") ?? base
    guard name.range(of: #"^[A-Za-z0-9_.-]{1,100}$"#, options: .regularExpression) != nil else {
      throw reader.error("name", "'\(name)' must be 1 to 100 of A–Z, a–z, 0–9, '_', '.' and '-'")
    }
    guard let model = try reader.string(object["model"], at: "model"), !model.isEmpty else {
      throw reader.error("model", "is missing; name the registry model the pipeline trains")
    }
    self.model = model
    organization = try reader.string(object["organization"], at: "organization") ?? "local"
    guard let source = object["source"] as? [String: Any] else {
      throw reader.error(
        "source", "is missing; give {\"audio_dataset\": NAME} or {\"feedback_set\": ID, \"backbone\": REF, …}")
    }
    try reader.allowOnly(["audio_dataset", "feedback_set", "backbone", "embedding_output"], in: source, at: "source")
    let kind = source["feedback_set"] != nil ? "feedback_set" : "audio_dataset"
    guard let dataset = try reader.string(source[kind], at: "source.\(kind)"), !dataset.isEmpty else {
      throw reader.error(
        "source.audio_dataset", "is missing; name the audio classifier's dataset (or a feedback_set) to train on")
    }
    sourceDataset = dataset
    if kind == "feedback_set" {
      guard let backbone = try reader.string(source["backbone"], at: "source.backbone"), !backbone.isEmpty else {
        throw reader.error("source.backbone", "is missing; name the frozen backbone (a registry reference)")
      }
      guard let output = try reader.string(source["embedding_output"], at: "source.embedding_output"), !output.isEmpty
      else { throw reader.error("source.embedding_output", "is missing; name the backbone's output the head takes") }
      (self.backbone, embeddingOutput) = (backbone, output)
    } else if source["backbone"] != nil || source["embedding_output"] != nil {
      throw reader.error("source.backbone", "is for a feedback_set source; an audio dataset has its own front end")
    }
    if let test = object["test"] {
      guard let test = test as? [String: Any] else { throw reader.error("test", "must be {\"\(kind)\": …}") }
      try reader.allowOnly([kind], in: test, at: "test")
      testDataset = try reader.string(test[kind], at: "test.\(kind)")
      if testDataset == sourceDataset {
        throw reader.error("test.\(kind)", "is the training set; a held-out test set never enters training")
      }
    }
    if let triggers = object["triggers"] {
      guard let triggers = triggers as? [String: Any] else {
        throw reader.error("triggers", "must be {\"labels\": N, \"every_seconds\": S}")
      }
      try reader.allowOnly(["labels", "every_seconds"], in: triggers, at: "triggers")
      triggerLabels = try Self.whole(reader, triggers["labels"], at: "triggers.labels", in: 1...1_000_000) ?? 0
      triggerEverySeconds =
        try Self.whole(reader, triggers["every_seconds"], at: "triggers.every_seconds", in: 10...31_536_000) ?? 0
    }

    guard let list = object["steps"] as? [Any], !list.isEmpty else {
      throw reader.error("steps", "is missing; list the steps ({\"step\": \"load\"}, …)")
    }
    var declared: [Step] = []
    for (index, entry) in list.enumerated() {
      let at = "steps[\(index)]"
      guard let step = entry as? [String: Any] else { throw reader.error(at, "must be an object with a \"step\"") }
      guard let kind = try reader.string(step["step"], at: "\(at).step") else {
        throw reader.error("\(at).step", "is missing")
      }
      guard Self.stepKinds.contains(kind) else {
        throw reader.error(
          "\(at).step", "'\(kind)' is not a step (the steps: \(Self.stepKinds.joined(separator: ", ")))")
      }
      guard !declared.contains(where: { $0.kind == kind }) else {
        throw reader.error("\(at).step", "'\(kind)' is listed twice")
      }
      let after =
        try reader.strings(step["after"], at: "\(at).after") ?? (declared.last.map { [$0.kind] } ?? [])
      try read(step, kind: kind, at: at, reader)
      declared.append(Step(kind: kind, after: after))
    }
    steps = try Self.ordered(declared, reader)
    for (index, step) in steps.enumerated() {
      for need in Self.needs[step.kind] ?? [] where !steps[..<index].contains(where: { $0.kind == need }) {
        throw reader.error("steps", "'\(step.kind)' needs a '\(need)' step before it")
      }
    }
    if has("evaluate"), testDataset?.isEmpty ?? true {
      throw reader.error("test.\(kind)", "is missing; evaluate needs a held-out test set")
    }
    if has("notify"), webhook == nil {
      throw reader.error("steps", "'notify' needs a webhook")
    }
  }

  /// The options of one step.
  private mutating func read(
    _ step: [String: Any], kind: String, at: String, _ reader: FieldReader
  )
    throws(MeshFileError)
  {
    let allowed: [String: Set<String>] = [
      "load": [], "validate": ["min_per_class", "max_imbalance"], "tune": ["hidden_sizes"],
      "train": ["epochs", "seed", "mels", "pcen", "validation_split", "hidden_sizes"], "evaluate": [],
      "decide": ["metric", "margin", "max_class_regression", "min_accuracy"],
      "promote": [
        "alias", "canary", "canary_percent", "canary_seconds", "canary_min_requests", "canary_max_error_rate",
        "canary_max_p99_ms",
      ],
      "notify": ["webhook", "format"],
    ]
    try reader.allowOnly(allowed[kind]!.union(["step", "after"]), in: step, at: at)
    switch kind {
    case "validate":
      minPerClass = try Self.whole(reader, step["min_per_class"], at: "\(at).min_per_class", in: 1...1_000_000) ?? 2
      if let ratio = try reader.number(step["max_imbalance"], at: "\(at).max_imbalance") {
        guard ratio >= 1 else { throw reader.error("\(at).max_imbalance", "must be at least 1") }
        maxImbalance = ratio
      }
    case "tune", "train":
      if let sizes = step["hidden_sizes"] {
        guard let numbers = sizes as? [NSNumber], !numbers.isEmpty,
          numbers.allSatisfy({ (1...8192).contains($0.intValue) && $0.doubleValue == Double($0.intValue) })
        else { throw reader.error("\(at).hidden_sizes", "must be an array of sizes 1–8192") }
        hiddenSizes = numbers.map { Int32($0.intValue) }
      }
      if kind == "train" {
        epochs = Int32(try Self.whole(reader, step["epochs"], at: "\(at).epochs", in: 1...10_000) ?? 100)
        seed = UInt64(try Self.whole(reader, step["seed"], at: "\(at).seed", in: 0...Int64.max) ?? 42)
        mels = Int32(try Self.whole(reader, step["mels"], at: "\(at).mels", in: 8...256) ?? 64)
        pcen = try reader.bool(step["pcen"], at: "\(at).pcen") ?? false
        if let split = try reader.number(step["validation_split"], at: "\(at).validation_split") {
          guard split > 0, split < 0.9 else {
            throw reader.error("\(at).validation_split", "must be above 0, below 0.9")
          }
          validationSplit = split
        }
      }
    case "decide":
      metric = try reader.string(step["metric"], at: "\(at).metric") ?? "accuracy"
      guard ["accuracy", "calibration_error"].contains(metric) else {
        throw reader.error("\(at).metric", "'\(metric)' is not a metric (accuracy or calibration_error)")
      }
      margin = try reader.number(step["margin"], at: "\(at).margin") ?? 0.01
      maxClassRegression = try reader.number(step["max_class_regression"], at: "\(at).max_class_regression") ?? 0.05
      minAccuracy = try reader.number(step["min_accuracy"], at: "\(at).min_accuracy") ?? 0
      guard (0...1).contains(margin), (0...1).contains(maxClassRegression), (0...1).contains(minAccuracy) else {
        throw reader.error(at, "margin, max_class_regression and min_accuracy must be between 0 and 1")
      }
    case "promote":
      alias = try reader.string(step["alias"], at: "\(at).alias") ?? "production"
      guard alias.range(of: #"^[a-z][a-z0-9_-]{0,62}$"#, options: .regularExpression) != nil else {
        throw reader.error("\(at).alias", "'\(alias)' is not an alias name")
      }
      canary = try reader.bool(step["canary"], at: "\(at).canary") ?? false
      canaryPercent = try reader.number(step["canary_percent"], at: "\(at).canary_percent") ?? 10
      guard (0.01...100).contains(canaryPercent) else { throw reader.error("\(at).canary_percent", "must be 0.01–100") }
      canarySeconds = Int32(
        try Self.whole(reader, step["canary_seconds"], at: "\(at).canary_seconds", in: 1...2_592_000) ?? 3600)
      canaryMinRequests = Int32(
        try Self.whole(reader, step["canary_min_requests"], at: "\(at).canary_min_requests", in: 1...1_000_000) ?? 20)
      canaryMaxErrorRate = try reader.number(step["canary_max_error_rate"], at: "\(at).canary_max_error_rate") ?? 0.05
      canaryMaxP99Ms = try reader.number(step["canary_max_p99_ms"], at: "\(at).canary_max_p99_ms") ?? 0
      guard (0...1).contains(canaryMaxErrorRate), canaryMaxP99Ms >= 0 else {
        throw reader.error("\(at).canary_max_error_rate", "and canary_max_p99_ms must be 0–1 and ≥ 0")
      }
    case "notify":
      guard let url = try reader.string(step["webhook"], at: "\(at).webhook"),
        url.hasPrefix("http://") || url.hasPrefix("https://")
      else { throw reader.error("\(at).webhook", "is missing; give the http(s) URL of an incoming webhook") }
      webhook = url
      webhookFormat = try reader.string(step["format"], at: "\(at).format") ?? "json"
      guard ["json", "slack", "discord"].contains(webhookFormat) else {
        throw reader.error("\(at).format", "'\(webhookFormat)' is not a format (json, slack or discord)")
      }
    default:
      break
    }
  }

  /// The steps in an order that keeps every `after`: a cycle or an unknown name is refused.
  private static func ordered(_ steps: [Step], _ reader: FieldReader) throws(MeshFileError) -> [Step] {
    let names = Set(steps.map(\.kind))
    for (index, step) in steps.enumerated() {
      if let unknown = step.after.first(where: { !names.contains($0) }) {
        throw reader.error("steps[\(index)].after", "names '\(unknown)', which is not a step of this pipeline")
      }
    }
    var done: [Step] = []
    var left = steps
    while !left.isEmpty {
      let ready = { (step: Step) in step.after.allSatisfy { name in done.contains { $0.kind == name } } }
      guard let index = left.firstIndex(where: ready) else {
        let waiting = left.map { "\($0.kind) after \($0.after.joined(separator: ", "))" }
        throw reader.error("steps", "have a cycle: \(waiting.joined(separator: "; "))")
      }
      done.append(left.remove(at: index))
    }
    return done
  }

  private static func whole(
    _ reader: FieldReader, _ value: Any?, at key: String, in range: ClosedRange<Int64>
  )
    throws(MeshFileError) -> Int64?
  {
    guard let number = try reader.number(value, at: key) else { return nil }
    guard number == number.rounded(), let whole = Int64(exactly: number), range.contains(whole) else {
      throw reader.error(key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
    }
    return whole
  }
}
