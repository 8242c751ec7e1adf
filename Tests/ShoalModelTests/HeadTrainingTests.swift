import Foundation
import ShoalModel
import ShoalTestSupport
import Testing

@Suite struct HeadTrainingTests {
  /// Three classes on three rings around the origin (radius 1, 2, 3) with noise: not linearly
  /// separable, so it takes the hidden layer.
  static func rings(_ count: Int, seed: UInt64) -> (Tensor, [Int]) {
    var random = SplitMix64(seed: seed)
    var features: [Float] = []
    var labels: [Int] = []
    for index in 0..<count {
      let label = index % 3
      let angle = Float.random(in: 0..<(2 * .pi), using: &random)
      let radius = Float(label + 1) + Float.random(in: -0.25...0.25, using: &random)
      features += [radius * cos(angle), radius * sin(angle)]
      labels.append(label)
    }
    return (Tensor(shape: [count, 2], elements: features), labels)
  }

  /// Three Gaussian blobs in 8 dimensions: linearly separable.
  static func blobs(_ count: Int, seed: UInt64, classes: Int = 3) -> (Tensor, [Int]) {
    var random = SplitMix64(seed: seed)
    var features: [Float] = []
    var labels: [Int] = []
    for index in 0..<count {
      let label = index % classes
      for dimension in 0..<8 {
        let centre: Float = dimension % classes == label ? 2 : 0
        features.append(centre + Float.random(in: -0.8...0.8, using: &random))
      }
      labels.append(label)
    }
    return (Tensor(shape: [count, 8], elements: features), labels)
  }

  @Test func anMLPHeadLearnsThreeRings() async throws {
    let (features, labels) = Self.rings(900, seed: 3)
    var config = HeadTrainer.Config.defaults
    config.hiddenSizes = [32, 16]
    config.learningRate = 1e-2
    let (result, seen) = try await onOwnThread { [config] in
      var seen: [HeadTrainer.Epoch] = []
      let result = try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3) {
        seen.append($0)
      }
      return (result, seen)
    }
    #expect(result.validationAccuracy >= 0.95, "validation accuracy \(result.validationAccuracy)")
    #expect(seen == result.epochs)
    // Training stops `patience` epochs after the best one, or at the last epoch.
    #expect(result.epochs.count == config.maxEpochs || result.epochs.count - result.bestEpoch == config.patience)
    #expect(result.epochs[result.bestEpoch - 1].validationLoss == result.epochs.map(\.validationLoss).min())
    #expect(result.confusionMatrix.count == 3)
    #expect(result.confusionMatrix.joined().reduce(0, +) == 180, "the 20% validation split")
    let diagonal = (0..<3).map { result.confusionMatrix[$0][$0] }.reduce(0, +)
    #expect(Double(diagonal) / 180 == result.validationAccuracy)
    // A linear head cannot separate rings.
    let linear = try await onOwnThread {
      try HeadTrainer().train(features: features, labels: .classes(labels), classes: 3)
    }
    #expect(linear.validationAccuracy < 0.8)
  }

  @Test func trainingIsDeterministicForASeed() throws {
    let (features, labels) = Self.blobs(300, seed: 1)
    var config = HeadTrainer.Config.defaults
    config.hiddenSizes = [8]
    config.maxEpochs = 5
    let a = try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3)
    let b = try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3)
    #expect(a.head.layers.map(\.weights) == b.head.layers.map(\.weights))
    #expect(a.epochs == b.epochs)
    config.seed = 43
    let c = try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3)
    #expect(a.head.layers.map(\.weights) != c.head.layers.map(\.weights))
  }

  @Test func classWeightsFavourTheRareClass() async throws {
    // 90% class 0, 10% class 1, overlapping: weighting class 1 by 9 must raise its recall.
    var random = SplitMix64(seed: 5)
    var features: [Float] = []
    var labels: [Int] = []
    for index in 0..<1000 {
      let label = index % 10 == 0 ? 1 : 0
      features.append(Float(label) * 1.0 + Float.random(in: -1...1, using: &random))
      labels.append(label)
    }
    let x = Tensor(shape: [1000, 1], elements: features)
    var config = HeadTrainer.Config.defaults
    config.learningRate = 1e-2
    let plain = try await onOwnThread { [config, labels] in
      try HeadTrainer(config).train(features: x, labels: .classes(labels), classes: 2)
    }
    config.classWeights = [1, 9]
    let weighted = try await onOwnThread { [config, labels] in
      try HeadTrainer(config).train(features: x, labels: .classes(labels), classes: 2)
    }
    func recall(_ matrix: [[Int]]) -> Double { Double(matrix[1][1]) / Double(max(1, matrix[1][0] + matrix[1][1])) }
    #expect(recall(weighted.confusionMatrix) > recall(plain.confusionMatrix))
  }

  @Test func exampleWeightsAndHeldOutExamples() async throws {
    // The first 200 examples are a clean held-out set (the only validation, with no random
    // share); 200 more are labelled right, and 200 by someone who calls most positives negative.
    // Weighing that labeller down must bring back the positives.
    var random = SplitMix64(seed: 11)
    var features: [Float] = []
    var labels: [Int] = []
    for index in 0..<600 {
      let x = Float.random(in: -2...2, using: &random)
      features.append(x)
      labels.append(x > 0 && !(index >= 400 && x < 1.5) ? 1 : 0)
    }
    let x = Tensor(shape: [600, 1], elements: features)
    var config = HeadTrainer.Config.defaults
    config.learningRate = 1e-2
    config.validationFraction = 0
    config.heldOut = Set(0..<200)
    let plain = try await onOwnThread { [config, labels] in
      try HeadTrainer(config).train(features: x, labels: .classes(labels), classes: 2)
    }
    config.exampleWeights = (0..<600).map { $0 >= 400 ? 0.02 : 1.5 }
    let weighted = try await onOwnThread { [config, labels] in
      try HeadTrainer(config).train(features: x, labels: .classes(labels), classes: 2)
    }
    #expect(plain.confusionMatrix.joined().reduce(0, +) == 200 && weighted.confusionMatrix.joined().reduce(0, +) == 200)
    #expect(
      weighted.validationAccuracy >= 0.95 && weighted.validationAccuracy > plain.validationAccuracy + 0.05,
      "weighted \(weighted.validationAccuracy), plain \(plain.validationAccuracy)")
    config.exampleWeights = [1, 2]
    #expect(throws: ModelError.self) {
      try HeadTrainer(config).train(features: x, labels: .classes(labels), classes: 2)
    }
  }

  @Test func sigmoidHeadsLearnSeveralLabelsPerExample() async throws {
    let (features, labels) = Self.blobs(600, seed: 9)
    // Label 0 and 1 from the blob, label 2 whenever the first feature is large.
    var targets: [Float] = []
    let x = features.elements(as: Float.self)
    for (row, label) in labels.enumerated() {
      targets += [label == 0 ? 1 : 0, label == 1 ? 1 : 0, x[row * 8] > 1 ? 1 : 0]
    }
    var config = HeadTrainer.Config.defaults
    config.output = .sigmoid
    config.hiddenSizes = [16]
    config.learningRate = 1e-2
    let result = try await onOwnThread { [config, targets] in
      try HeadTrainer(config).train(
        features: features, labels: .multiHot(Tensor(shape: [600, 3], elements: targets)), classes: 3)
    }
    #expect(result.validationAccuracy >= 0.9, "all three labels right for \(result.validationAccuracy)")
  }

  @Test func badTrainingInputIsRefused() {
    let (features, labels) = Self.blobs(30, seed: 1)
    #expect(throws: ModelError.self) {
      try HeadTrainer().train(features: features, labels: .classes(labels), classes: 2)
    }
    #expect(throws: ModelError.self) {
      try HeadTrainer().train(features: features, labels: .classes(Array(labels.prefix(10))), classes: 3)
    }
    var config = HeadTrainer.Config.defaults
    config.classWeights = [1, 2]
    #expect(throws: ModelError.self) {
      try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3)
    }
  }

  /// Runs `model` on `input` with onnxruntime and returns its first output.
  static func onnxruntime(_ model: [UInt8], _ input: Tensor, name: String) async throws -> Tensor {
    let directory = try TemporaryDirectory()
    try Data(model).write(to: URL(fileURLWithPath: directory.path("model.onnx")))
    try input.writeNpy(to: directory.path("input.npy"))
    let script = """
      import sys, numpy as np, onnxruntime as ort
      session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
      np.save(sys.argv[3], session.run(None, {sys.argv[4]: np.load(sys.argv[2])})[0])
      """
    let result = try await Subprocess.run(
      try TestEnvironment.python(),
      ["-c", script, directory.path("model.onnx"), directory.path("input.npy"), directory.path("output.npy"), name])
    guard result.status == 0 else { throw TestEnvironmentError("onnxruntime failed: \(result.stderrText)") }
    return try Tensor(npyFile: directory.path("output.npy"))
  }

  static func close(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-5) -> Bool {
    a.shape == b.shape
      && zip(a.elements(as: Float.self), b.elements(as: Float.self)).allSatisfy { abs($0 - $1) <= tolerance }
  }

  @Test func theExportedHeadRunsAlikeInShoalAndOnnxruntime() async throws {
    let (features, labels) = Self.rings(600, seed: 11)
    var config = HeadTrainer.Config.defaults
    config.hiddenSizes = [16]
    config.learningRate = 1e-2
    config.maxEpochs = 30
    let head = try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3).head
    let bytes = try head.onnxModel()
    let model = try Model(onnx: bytes)
    #expect(model.inputs.map(\.name) == ["features"])
    let shoal = try model.run(["features": features])["probabilities"]!
    #expect(Self.close(shoal, try head.predict(features)))
    let reference = try await Self.onnxruntime(bytes, features, name: "features")
    #expect(Self.close(shoal, reference), "Shoal and onnxruntime differ by more than 1e-5")

    // Read back from the file, the head predicts the same, and training goes on from it.
    let read = try DenseHead(onnx: bytes)
    #expect(
      read.layers.map(\.weights) == head.layers.map(\.weights) && read.layers.map(\.bias) == head.layers.map(\.bias))
    config.initialHead = read
    config.maxEpochs = 1
    let onward = try HeadTrainer(config).train(features: features, labels: .classes(labels), classes: 3)
    #expect(onward.epochs[0].validationAccuracy >= 0.8, "one epoch on from a trained head: \(onward.epochs[0])")
    var plain = OnnxGraphBuilder(name: "no-head", opset: 13)
    plain.input("x", .float32, [.fixed(2)])
    plain.node("Relu", ["x"], ["y"], name: "relu")
    plain.output("y", .float32, [.fixed(2)])
    let headless = try plain.bytes()
    #expect(throws: ModelError.self) { try DenseHead(onnx: headless) }
  }

  @Test func aHeadAfterAFrozenBackboneRunsAlikeInShoalAndOnnxruntime() async throws {
    // Backbone: Conv(1→4, 3×3) → Relu → GlobalAveragePool: [batch, 4, 1, 1] features.
    var random = SplitMix64(seed: 21)
    var backbone = OnnxGraphBuilder(name: "backbone", opset: 13)
    backbone.input("image", .float32, [.symbolic("batch"), .fixed(1), .fixed(6), .fixed(6)])
    backbone.initializer(
      "W", Tensor(shape: [4, 1, 3, 3], elements: (0..<36).map { _ in Float.random(in: -1...1, using: &random) }))
    backbone.node("Conv", ["image", "W"], ["conv"])
    backbone.node("Relu", ["conv"], ["relu"])
    backbone.node("GlobalAveragePool", ["relu"], ["pooled"])
    backbone.output("pooled", .float32, [.symbolic("batch"), .fixed(4), .fixed(1), .fixed(1)])
    let backboneModel = try Model(onnx: backbone.bytes())

    let images = Tensor(
      shape: [90, 1, 6, 6], elements: (0..<(90 * 36)).map { _ in Float.random(in: 0...1, using: &random) })
    let pooled = try backboneModel.run(["image": images])["pooled"]!.reshaped([90, 4])
    let labels = pooled.elements(as: Float.self).chunks(4).map { row in row.indices.max { row[$0] < row[$1] }! % 3 }
    var config = HeadTrainer.Config.defaults
    config.maxEpochs = 20
    let head = try HeadTrainer(config).train(features: pooled, labels: .classes(labels), classes: 3).head

    let combined = try head.onnxModel(after: backbone.bytes())
    let model = try Model(onnx: combined)
    #expect(model.outputs.map(\.name) == ["probabilities"])
    let shoal = try model.run(["image": images])["probabilities"]!
    #expect(Self.close(shoal, try head.predict(pooled)))
    let reference = try await Self.onnxruntime(combined, images, name: "image")
    #expect(Self.close(shoal, reference), "Shoal and onnxruntime differ by more than 1e-5")
    #expect(throws: ModelError.self) { try head.onnxModel(after: backbone.bytes(), backboneOutput: "nope") }
  }
}

extension Array {
  fileprivate func chunks(_ size: Int) -> [[Element]] {
    stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
  }
}
