import ArgumentParser
import Foundation
import ShoalModel

/// `shoal onnx …`: the model core on local files, no service involved.
struct OnnxCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "onnx",
    abstract: "Inspect and run ONNX models locally with Shoal's model core.",
    subcommands: [Info.self, Run.self, TrainHead.self, Conformance.self]
  )

  struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Show a model's inputs, outputs, opsets, operator counts and a FLOPs estimate.")

    @Argument(help: "The .onnx file.")
    var file: String

    @Option(
      name: .customLong("shape"),
      help: "An input shape for the estimate, e.g. images=8,3,224,224 (symbolic dimensions default to 1).")
    var shapes: [String] = []

    func run() throws {
      let model = try Model(contentsOf: file)
      print("\(file)\(model.producer.isEmpty ? "" : " (\(model.producer))")")
      let opsets = model.opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }
      print("opsets: \(opsets.joined(separator: ", "))\n")
      var table = TextTable("", "NAME", "TYPE", "SHAPE")
      for input in model.inputs { table.add("input", input.name, Self.typeName(input), Self.shape(input)) }
      for output in model.outputs { table.add("output", output.name, Self.typeName(output), Self.shape(output)) }
      print(table.rendered)
      let summary = try model.summary(inputShapes: try Self.parseShapes(shapes))
      print("\noperators:")
      var operators = TextTable("OPERATOR", "NODES", "GFLOP")
      let fused = summary.flopsByOperator
      for (name, count) in model.operatorCounts.sorted(by: {
        $0.value > $1.value || $0.value == $1.value && $0.key < $1.key
      }) {
        let flops = fused.filter { $0.key == name || $0.key.hasPrefix(name + "+") }.values.reduce(0, +)
        operators.add(name, "\(count)", flops > 0 ? String(format: "%.3f", Double(flops) / 1e9) : "")
      }
      print(operators.rendered)
      print(
        String(
          format: "\nper run: %.3f GFLOP, %d kernels after fusion and folding, %.1f MiB of intermediate memory",
          Double(summary.flops) / 1e9, summary.steps, Double(summary.arenaBytes) / 1_048_576))
    }

    static func typeName(_ spec: Model.ValueSpec) -> String { DataType.onnxName(spec.elementType).lowercased() }

    static func shape(_ spec: Model.ValueSpec) -> String {
      spec.dimensions.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "?"
    }

    static func parseShapes(_ values: [String]) throws -> [String: [Int]] {
      var shapes: [String: [Int]] = [:]
      for value in values {
        let parts = value.split(separator: "=", maxSplits: 1)
        guard parts.count == 2 else { throw ValidationError("--shape takes NAME=D1,D2,…; got '\(value)'") }
        shapes[String(parts[0])] = try positiveIntegers(String(parts[1]), "--shape")
      }
      return shapes
    }
  }

  struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run a model on .npy inputs and write one .npy per output.",
      discussion: "With --repeat N, runs N more times after one warm-up run and prints the median and p90 latency.")

    @Argument(help: "The .onnx file.")
    var file: String

    @Option(name: .customLong("input"), help: "An input as NAME=FILE.npy; repeat for each input.")
    var inputs: [String] = []

    @Option(help: "The directory for the outputs (created if missing).")
    var out: String

    @Option(help: "Time this many runs after a warm-up run.")
    var `repeat`: Int = 0

    @Flag(help: "With --repeat, also time each operator.")
    var profile = false

    @Flag(help: "With --repeat, also time each planned step (the median of the repeated runs), in the order they run.")
    var profileSteps = false

    func run() throws {
      let model = try Model(contentsOf: file)
      var tensors: [String: Tensor] = [:]
      for input in inputs {
        let parts = input.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw ValidationError("--input takes NAME=FILE.npy; got '\(input)'") }
        tensors[parts[0]] = try Tensor(npyFile: parts[1])
      }
      if tensors.isEmpty, model.inputs.count == 1 {
        throw ValidationError("give the input with --input \(model.inputs[0].name)=FILE.npy")
      }
      let outputs = try model.run(tensors)
      try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
      for spec in model.outputs {
        guard let tensor = outputs[spec.name] else { continue }
        let name = String(
          spec.name.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." ? $0 : "_" })
        let path = "\(out)/\(name).npy"
        try tensor.writeNpy(to: path)
        print("\(spec.name): \(tensor.dataType) \(tensor.shape) → \(path)")
      }
      guard `repeat` > 0 else { return }
      var latencies: [Double] = []
      for _ in 0..<`repeat` {
        let start = ContinuousClock.now
        _ = try model.run(tensors)
        let elapsed = ContinuousClock.now - start
        latencies.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
      }
      latencies.sort()
      let median = latencies[latencies.count / 2]
      let p90 = latencies[min(latencies.count - 1, Int((Double(latencies.count) * 0.9).rounded(.up)) - 1)]
      let gigaflops = Double(try model.summary(inputShapes: tensors.mapValues(\.shape)).flops) / 1e9
      if profile { try printProfile(model, tensors) }
      if profileSteps { try printStepProfile(model, tensors) }
      print(
        String(
          format: "runs=%d median_ms=%.3f p90_ms=%.3f gflop=%.3f gflops=%.1f openblas=%@", latencies.count, median, p90,
          gigaflops, gigaflops / median * 1e3, Parallel.blasCore))
    }

    private func printStepProfile(_ model: Model, _ tensors: [String: Tensor]) throws {
      var runs: [[StepProfile]] = []
      for _ in 0..<`repeat` { runs.append(try model.profileSteps(tensors).steps) }
      var table = TextTable("STEP", "NODE", "OPERATOR", "OUTPUT", "MEDIAN MS", "GFLOP/S")
      var total = 0.0
      for (index, step) in runs[0].enumerated() {
        let seconds = runs.map { $0[index].seconds }.sorted()[runs.count / 2]
        total += seconds
        table.add(
          "\(index)", step.node, step.opType, step.outputShape.map(String.init).joined(separator: "×"),
          String(format: "%.3f", seconds * 1e3),
          step.flops > 0 && seconds > 0 ? String(format: "%.1f", Double(step.flops) / seconds / 1e9) : "")
      }
      print(table.rendered)
      print(String(format: "steps=%d sum_of_medians_ms=%.3f", runs[0].count, total * 1e3))
    }

    private func printProfile(_ model: Model, _ tensors: [String: Tensor]) throws {
      var totals: [String: OperatorProfile] = [:]
      for _ in 0..<`repeat` {
        for profile in try model.profile(tensors).operators {
          totals[profile.name, default: OperatorProfile(name: profile.name)].merge(profile)
        }
      }
      let all = totals.values.map(\.seconds).reduce(0, +)
      var table = TextTable("OPERATOR", "STEPS", "MS/RUN", "SHARE", "GFLOP/S")
      for profile in totals.values.sorted(by: { $0.seconds > $1.seconds }) {
        table.add(
          profile.name, "\(profile.steps / `repeat`)", String(format: "%.3f", profile.seconds / Double(`repeat`) * 1e3),
          String(format: "%.1f%%", profile.seconds / all * 100),
          profile.flops > 0 ? String(format: "%.1f", profile.gigaflopsPerSecond) : "")
      }
      print(table.rendered)
    }
  }

  struct TrainHead: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "train-head",
      abstract: "Train a dense classification head on feature vectors and write it as ONNX.",
      discussion: """
        Minibatch Adam on OpenBLAS with a validation split and early stopping, deterministic for a
        seed. Labels: an integer .npy of class indices [examples] (softmax), or a float .npy of 0/1
        [examples, classes] with --sigmoid. With --backbone, the written model is the backbone's
        graph followed by the head.
        """)

    @Option(help: "Features, a float .npy of [examples, inputs].")
    var features: String

    @Option(help: "Labels, a .npy (see above).")
    var labels: String

    @Option(help: "The number of classes (default: the largest label + 1).")
    var classes: Int?

    @Option(help: "Hidden layer sizes, comma-separated (default: none, a linear head).")
    var hidden: String = ""

    @Flag(help: "Independent sigmoid outputs (multi-label) instead of softmax.")
    var sigmoid = false

    @Option(help: "Per-class loss weights, comma-separated.")
    var classWeights: String?

    @Option(help: "Adam's learning rate.")
    var learningRate: Float = 1e-3

    @Option(help: "At most this many epochs.")
    var epochs: Int = 200

    @Option(help: "Stop after this many epochs without a better validation loss.")
    var patience: Int = 10

    @Option(help: "Examples per minibatch.")
    var batchSize: Int = 32

    @Option(help: "The random seed (shuffling, split, initial weights).")
    var seed: UInt64 = 42

    @Option(help: "A frozen backbone .onnx whose output feeds the head.")
    var backbone: String?

    @Option(help: "Where to write the .onnx model.")
    var out: String

    func run() throws {
      let x = try Tensor(npyFile: features)
      let y = try Tensor(npyFile: labels)
      var config = HeadTrainer.Config.defaults
      config.hiddenSizes = try positiveIntegers(hidden, "--hidden")
      config.output = sigmoid ? .sigmoid : .softmax
      config.classWeights = try classWeights.map { text in
        try text.split(separator: ",").map { part in
          guard let weight = Float(part) else { throw ValidationError("--class-weights takes numbers; got '\(part)'") }
          return weight
        }
      }
      config.learningRate = learningRate
      config.maxEpochs = epochs
      config.patience = patience
      config.batchSize = batchSize
      config.seed = seed
      let targets: TrainingLabels
      let classCount: Int
      if sigmoid {
        guard y.rank == 2 else { throw ValidationError("--sigmoid labels must be [examples, classes]") }
        targets = .multiHot(
          y.dataType == .float32 ? y : Tensor(shape: y.shape, elements: y.doubles().map { Float($0) }))
        classCount = classes ?? y.shape[1]
      } else {
        let indices = y.doubles().map { Int($0) }
        targets = .classes(indices)
        classCount = classes ?? ((indices.max() ?? 0) + 1)
      }
      let result = try HeadTrainer(config).train(features: x, labels: targets, classes: classCount) { epoch in
        print(
          String(
            format: "epoch %3d  loss %.4f  accuracy %.3f  validation loss %.4f  accuracy %.3f", epoch.number,
            epoch.trainingLoss, epoch.trainingAccuracy, epoch.validationLoss, epoch.validationAccuracy))
      }
      print(String(format: "kept epoch %d: validation accuracy %.4f", result.bestEpoch, result.validationAccuracy))
      var table = TextTable(header: ["TRUE \\ PREDICTED"] + (0..<classCount).map(String.init))
      for (truth, row) in result.confusionMatrix.enumerated() { table.rows.append(["\(truth)"] + row.map(String.init)) }
      print(table.rendered)
      let bytes =
        try backbone.map { try result.head.onnxModel(after: [UInt8](Data(contentsOf: URL(fileURLWithPath: $0)))) }
        ?? result.head.onnxModel()
      try Data(bytes).write(to: URL(fileURLWithPath: out))
      print("wrote \(out)")
    }

  }

  struct Conformance: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run ONNX backend test cases (model.onnx + test_data_set_*) and compare with their expected outputs.",
      discussion: "Ends with 'N passed, N failed, N skipped'; skipped cases name what is unsupported.")

    @Argument(help: "Directories holding test cases (searched recursively).")
    var directories: [String]

    @Flag(help: "Print passing cases too.")
    var verbose = false

    func run() throws {
      var (passed, failed, skipped) = (0, 0, 0)
      var unsupported: [String: Int] = [:]
      for directory in directories {
        for testCase in ConformanceCase.cases(under: directory) {
          switch testCase.run() {
          case .passed:
            passed += 1
            if verbose { print("PASS \(testCase.name)") }
          case .failed(let reason):
            failed += 1
            print("FAIL \(testCase.name): \(reason)")
          case .skipped(let reason):
            skipped += 1
            let first = reason.split(separator: "\n").dropFirst().first.map(String.init) ?? reason
            print("SKIP \(testCase.name): \(first.trimmingCharacters(in: .whitespaces))")
            for line in reason.split(separator: "\n") {
              if let range = line.range(of: "operator "), let end = line.range(of: " is not supported") {
                unsupported[String(line[range.upperBound..<end.lowerBound]), default: 0] += 1
              }
            }
          }
        }
      }
      if !unsupported.isEmpty {
        print(
          "unsupported operators: "
            + unsupported.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))
      }
      print("\(passed) passed, \(failed) failed, \(skipped) skipped")
      if failed > 0 { throw ExitCode(1) }
    }
  }
}

/// A comma-separated list of positive integers (`--shape`, `--hidden`); empty for an empty list.
private func positiveIntegers(_ text: String, _ option: String) throws -> [Int] {
  try text.split(separator: ",").map { part in
    guard let value = Int(part), value > 0 else {
      throw ValidationError("\(option) takes positive integers; got '\(part)'")
    }
    return value
  }
}
