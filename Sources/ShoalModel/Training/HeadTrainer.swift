import RealModule

/// Trains a dense classification head (linear, or an MLP with ReLU hidden layers) on feature
/// vectors with minibatch Adam, GEMMs on OpenBLAS: a validation split, early stopping on the
/// validation loss, optional class weights, deterministic for a seed.
public struct HeadTrainer: Sendable {
  /// How the head turns logits into outputs.
  public enum OutputKind: String, Sendable {
    /// One class per example: softmax and cross-entropy.
    case softmax
    /// Any number of classes per example: independent sigmoids and binary cross-entropy.
    case sigmoid
  }

  /// What to train and how.
  public struct Config: Sendable {
    /// Hidden layer sizes; empty for a linear head.
    public var hiddenSizes: [Int] = []
    public var output: OutputKind = .softmax
    /// Per-class loss weights (for imbalanced classes); nil weighs every class 1.
    public var classWeights: [Float]? = nil
    public var learningRate: Float = 1e-3
    public var batchSize = 32
    /// At most this many passes over the training examples.
    public var maxEpochs = 200
    /// Stop after this many epochs without a better validation loss (the best head is kept).
    public var patience = 10
    /// The share of examples held out for validation (of those not in `heldOut`).
    public var validationFraction: Float = 0.2
    /// Examples always in the validation split, never trained on.
    public var heldOut: Set<Int> = []
    /// Each example's weight in the training loss (with its class's); nil weighs each 1.
    public var exampleWeights: [Float]? = nil
    /// A head to go on training from (a version trained before), instead of new random weights;
    /// `hiddenSizes` and `output` are then its own.
    public var initialHead: DenseHead? = nil
    /// Decoupled weight decay (AdamW); 0 for none.
    public var weightDecay: Float = 0
    public var seed: UInt64 = 42

    /// The defaults: linear softmax head, Adam at 1e-3, batches of 32, up to 200 epochs,
    /// patience 10, 20% validation, seed 42.
    public static var defaults: Config { Config() }
  }

  /// Figures of one epoch.
  public struct Epoch: Sendable, Hashable {
    public var number: Int
    public var trainingLoss: Double
    public var trainingAccuracy: Double
    public var validationLoss: Double
    public var validationAccuracy: Double
  }

  /// The trained head with its history.
  public struct Result: Sendable {
    public var head: DenseHead
    public var epochs: [Epoch]
    /// The epoch whose weights were kept (the lowest validation loss).
    public var bestEpoch: Int
    /// On the validation examples, with the kept weights: `confusion[true][predicted]` counts
    /// (for sigmoid heads, an example counts under its highest-scoring class).
    public var confusionMatrix: [[Int]]
    /// Validation accuracy of the kept weights.
    public var validationAccuracy: Double
  }

  public var config: Config

  public init(_ config: Config = .defaults) { self.config = config }

  /// Trains on `features` ([examples, inputs]) and `labels`: a class index per example for
  /// softmax, or a multi-hot [examples, classes] tensor of 0/1 for sigmoid. `progress` is called
  /// after every epoch.
  public func train(
    features: Tensor, labels: TrainingLabels, classes: Int, progress: (Epoch) -> Void = { _ in }
  ) throws(ModelError) -> Result {
    guard features.dataType == .float32, features.rank == 2, features.shape[0] >= 2 else {
      throw ModelError(.invalidInput, "features must be a float [examples, inputs] tensor of at least 2 examples")
    }
    let (count, inputs) = (features.shape[0], features.shape[1])
    let targets = try labels.targets(examples: count, classes: classes, output: config.output)
    if let weights = config.classWeights, weights.count != classes || weights.contains(where: { $0 < 0 }) {
      throw ModelError(.invalidInput, "class weights: give \(classes) non-negative weights")
    }
    guard config.batchSize > 0, config.maxEpochs > 0, config.learningRate > 0,
      config.validationFraction >= 0, config.validationFraction < 1, config.hiddenSizes.allSatisfy({ $0 > 0 })
    else { throw ModelError(.invalidInput, "batch size, epochs, learning rate and hidden sizes must be positive") }

    if let weights = config.exampleWeights, weights.count != count || weights.contains(where: { !($0 >= 0) }) {
      throw ModelError(.invalidInput, "example weights: give \(count) non-negative weights")
    }
    guard config.heldOut.allSatisfy({ (0..<count).contains($0) }) else {
      throw ModelError(.invalidInput, "held-out examples must be 0..<\(count)")
    }
    var random = SeededRandom(seed: config.seed)
    let order = Array(0..<count).shuffled(using: &random).filter { !config.heldOut.contains($0) }
    let held = config.validationFraction > 0 ? max(1, Int(Float(order.count) * config.validationFraction)) : 0
    let validation = config.heldOut.sorted() + order.prefix(held)
    var training = Array(order.dropFirst(held))
    guard !training.isEmpty else { throw ModelError(.invalidInput, "no examples left for training") }

    let x = features.elements(as: Float.self)
    if let head = config.initialHead, head.inputs != inputs || head.classes != classes || head.output != config.output {
      throw ModelError(
        .invalidInput,
        "the initial head takes \(head.inputs) features to \(head.classes) classes; these are \(inputs) to \(classes)")
    }
    var network =
      config.initialHead
      ?? DenseHead(
        inputs: inputs, hiddenSizes: config.hiddenSizes, classes: classes, output: config.output, random: &random)
    var optimizer = AdamOptimizer(network, learningRate: config.learningRate, weightDecay: config.weightDecay)
    let weights = config.classWeights ?? [Float](repeating: 1, count: classes)
    let evaluationSet = validation.isEmpty ? training : validation

    var epochs: [Epoch] = []
    var best = (loss: Double.infinity, epoch: 0, head: network)
    for number in 1...config.maxEpochs {
      training.shuffle(using: &random)
      var (lossSum, correct) = (0.0, 0)
      var start = 0
      while start < training.count {
        let batch = Array(training[start..<min(start + config.batchSize, training.count)])
        let (batchX, batchT) = Self.gather(batch, x, inputs, targets, classes)
        let pass = network.forward(batchX, rows: batch.count)
        let (loss, gradient, hits) = Self.loss(
          pass.probabilities, batchT, rows: batch.count, classes, weights, config.output,
          rowWeights: config.exampleWeights.map { all in batch.map { all[$0] } })
        lossSum += loss * Double(batch.count)
        correct += hits
        let gradients = network.backward(pass, outputGradient: gradient, rows: batch.count)
        optimizer.step(&network, gradients)
        start += batch.count
      }
      let (validationLoss, validationCorrect, _) = evaluate(
        network, evaluationSet, x, inputs, targets, classes, weights)
      let epoch = Epoch(
        number: number, trainingLoss: lossSum / Double(training.count),
        trainingAccuracy: Double(correct) / Double(training.count), validationLoss: validationLoss,
        validationAccuracy: Double(validationCorrect) / Double(evaluationSet.count))
      epochs.append(epoch)
      progress(epoch)
      if validationLoss < best.loss - 1e-7 {
        best = (validationLoss, number, network)
      } else if number - best.epoch >= config.patience {
        break
      }
    }
    let (_, hits, confusion) = evaluate(best.head, evaluationSet, x, inputs, targets, classes, weights)
    return Result(
      head: best.head, epochs: epochs, bestEpoch: best.epoch, confusionMatrix: confusion,
      validationAccuracy: Double(hits) / Double(evaluationSet.count))
  }

  private func evaluate(
    _ network: DenseHead, _ examples: [Int], _ x: [Float], _ inputs: Int, _ targets: [Float], _ classes: Int,
    _ weights: [Float]
  ) -> (loss: Double, correct: Int, confusion: [[Int]]) {
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    let (batchX, batchT) = Self.gather(examples, x, inputs, targets, classes)
    let pass = network.forward(batchX, rows: examples.count)
    let (loss, _, correct) = Self.loss(
      pass.probabilities, batchT, rows: examples.count, classes, weights, config.output)
    for row in 0..<examples.count {
      let truth = Self.argmax(batchT, row: row, classes)
      confusion[truth][Self.argmax(pass.probabilities, row: row, classes)] += 1
    }
    return (loss, correct, confusion)
  }

  private static func gather(
    _ rows: [Int], _ x: [Float], _ inputs: Int, _ targets: [Float], _ classes: Int
  ) -> ([Float], [Float]) {
    var batchX = [Float](repeating: 0, count: rows.count * inputs)
    var batchT = [Float](repeating: 0, count: rows.count * classes)
    for (position, row) in rows.enumerated() {
      for i in 0..<inputs { batchX[position * inputs + i] = x[row * inputs + i] }
      for c in 0..<classes { batchT[position * classes + c] = targets[row * classes + c] }
    }
    return (batchX, batchT)
  }

  static func argmax(_ values: [Float], row: Int, _ classes: Int) -> Int {
    var best = 0
    for c in 1..<max(classes, 1) where values[row * classes + c] > values[row * classes + best] { best = c }
    return best
  }

  /// The weighted loss of a batch, its gradient with respect to the logits, and how many rows
  /// were right (softmax: the top class; sigmoid: every class on the right side of 0.5).
  private static func loss(
    _ probabilities: [Float], _ targets: [Float], rows: Int, _ classes: Int, _ weights: [Float], _ output: OutputKind,
    rowWeights: [Float]? = nil
  ) -> (Double, [Float], Int) {
    let rowWeight = { (row: Int) -> Float in rowWeights?[row] ?? 1 }
    var gradient = [Float](repeating: 0, count: rows * classes)
    var loss = 0.0
    var correct = 0
    switch output {
    case .softmax:
      var total: Float = 0
      for row in 0..<rows { total += weights[argmax(targets, row: row, classes)] * rowWeight(row) }
      total = max(total, 1e-12)
      for row in 0..<rows {
        let truth = argmax(targets, row: row, classes)
        let weight = weights[truth] * rowWeight(row)
        loss -= Double(weight) * Double(max(probabilities[row * classes + truth], 1e-12)).logarithm
        for c in 0..<classes {
          gradient[row * classes + c] = weight * (probabilities[row * classes + c] - targets[row * classes + c]) / total
        }
        if argmax(probabilities, row: row, classes) == truth { correct += 1 }
      }
      loss /= Double(total)
    case .sigmoid:
      let scale = 1 / Float(rows * classes)
      for row in 0..<rows {
        var allRight = true
        for c in 0..<classes {
          let p = Double(min(max(probabilities[row * classes + c], 1e-7), 1 - 1e-7))
          let t = Double(targets[row * classes + c])
          loss -= Double(weights[c] * rowWeight(row)) * (t * p.logarithm + (1 - t) * (1 - p).logarithm)
          gradient[row * classes + c] =
            weights[c] * rowWeight(row) * (probabilities[row * classes + c] - targets[row * classes + c]) * scale
          if (p >= 0.5) != (t >= 0.5) { allRight = false }
        }
        if allRight { correct += 1 }
      }
      loss /= Double(rows * classes)
    }
    return (loss, gradient, correct)
  }
}

/// Training labels: a class per example, or several.
public enum TrainingLabels: Sendable {
  /// One class index per example (softmax heads).
  case classes([Int])
  /// A multi-hot [examples, classes] float tensor of 0 and 1 (sigmoid heads).
  case multiHot(Tensor)

  /// One row of `classes` target values per example.
  func targets(examples: Int, classes: Int, output: HeadTrainer.OutputKind) throws(ModelError) -> [Float] {
    guard classes >= 2 || (output == .sigmoid && classes >= 1) else {
      throw ModelError(.invalidInput, "a head needs at least 2 classes (1 for sigmoid)")
    }
    switch self {
    case .classes(let labels):
      guard labels.count == examples else {
        throw ModelError(.invalidInput, "\(labels.count) labels for \(examples) examples")
      }
      var targets = [Float](repeating: 0, count: examples * classes)
      for (row, label) in labels.enumerated() {
        guard label >= 0, label < classes else {
          throw ModelError(.invalidInput, "label \(label) of example \(row) is not a class index below \(classes)")
        }
        targets[row * classes + label] = 1
      }
      return targets
    case .multiHot(let tensor):
      guard tensor.dataType == .float32, tensor.shape == [examples, classes] else {
        throw ModelError(.invalidInput, "multi-hot labels must be a float [\(examples), \(classes)] tensor")
      }
      return tensor.elements(as: Float.self)
    }
  }
}

extension Double {
  fileprivate var logarithm: Double { Double.log(self) }
}
