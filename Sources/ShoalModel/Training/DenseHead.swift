import RealModule

/// A dense classification head: `hidden` ReLU layers, then a linear layer to the classes, then
/// softmax or sigmoid. Weights are row-major [inputs, outputs] per layer.
public struct DenseHead: Sendable {
  /// One fully connected layer.
  public struct Layer: Sendable {
    public var inputs: Int
    public var outputs: Int
    /// [inputs, outputs], row-major.
    public var weights: [Float]
    public var bias: [Float]
  }

  public var layers: [Layer]
  public var output: HeadTrainer.OutputKind

  /// The number of input features.
  public var inputs: Int { layers[0].inputs }
  /// The number of classes.
  public var classes: Int { layers[layers.count - 1].outputs }

  /// A head with He-uniform initial weights (Glorot for the last layer) drawn from `random`.
  init(inputs: Int, hiddenSizes: [Int], classes: Int, output: HeadTrainer.OutputKind, random: inout SeededRandom) {
    let sizes = [inputs] + hiddenSizes + [classes]
    layers = (0..<(sizes.count - 1)).map { index in
      let (fanIn, fanOut) = (sizes[index], sizes[index + 1])
      let last = index == sizes.count - 2
      let limit = last ? (6 / Float(fanIn + fanOut)).squareRoot() : (6 / Float(fanIn)).squareRoot()
      return Layer(
        inputs: fanIn, outputs: fanOut,
        weights: (0..<(fanIn * fanOut)).map { _ in Float.random(in: -limit...limit, using: &random) },
        bias: [Float](repeating: 0, count: fanOut))
    }
    self.output = output
  }

  /// What a forward pass keeps for the backward pass.
  struct Pass {
    /// The input of each layer (the batch, then each hidden activation).
    var activations: [[Float]]
    var probabilities: [Float]
  }

  /// Runs `x` ([rows, inputs]) through the head.
  func forward(_ x: [Float], rows: Int) -> Pass {
    var activations = [x]
    var current = x
    for (index, layer) in layers.enumerated() {
      var next = [Float](repeating: 0, count: rows * layer.outputs)
      for row in 0..<rows { for j in 0..<layer.outputs { next[row * layer.outputs + j] = layer.bias[j] } }
      Self.multiply(current, layer.weights, m: rows, n: layer.outputs, k: layer.inputs, into: &next, adding: true)
      if index < layers.count - 1 {
        for i in next.indices where next[i] < 0 { next[i] = 0 }
        activations.append(next)
      }
      current = next
    }
    return Pass(
      activations: activations, probabilities: Self.probabilities(current, rows: rows, classes: classes, output))
  }

  /// Softmax over each row, or a sigmoid of each logit.
  static func probabilities(_ logits: [Float], rows: Int, classes: Int, _ output: HeadTrainer.OutputKind) -> [Float] {
    var result = logits
    switch output {
    case .sigmoid:
      for i in result.indices { result[i] = 1 / (1 + Float.exp(-logits[i])) }
    case .softmax:
      for row in 0..<rows {
        let slice = row * classes..<(row + 1) * classes
        let maximum = logits[slice].max() ?? 0
        var sum: Float = 0
        for i in slice {
          result[i] = Float.exp(logits[i] - maximum)
          sum += result[i]
        }
        for i in slice { result[i] /= sum }
      }
    }
    return result
  }

  /// The gradients of each layer's weights and bias, given the loss's gradient with respect to
  /// the logits.
  func backward(_ pass: Pass, outputGradient: [Float], rows: Int) -> [(weights: [Float], bias: [Float])] {
    var gradients: [(weights: [Float], bias: [Float])] = []
    var delta = outputGradient
    for index in stride(from: layers.count - 1, through: 0, by: -1) {
      let layer = layers[index]
      let input = pass.activations[index]
      var weights = [Float](repeating: 0, count: layer.inputs * layer.outputs)
      var bias = [Float](repeating: 0, count: layer.outputs)
      for row in 0..<rows { for j in 0..<layer.outputs { bias[j] += delta[row * layer.outputs + j] } }
      // dW = inputᵀ · delta
      Self.multiply(input, transposingA: true, delta, m: layer.inputs, n: layer.outputs, k: rows, into: &weights)
      gradients.append((weights, bias))
      guard index > 0 else { break }
      // delta of the layer below = (delta · Wᵀ) ⊙ relu'(its output)
      var below = [Float](repeating: 0, count: rows * layer.inputs)
      Self.multiply(delta, layer.weights, transposingB: true, m: rows, n: layer.inputs, k: layer.outputs, into: &below)
      for i in below.indices where input[i] <= 0 { below[i] = 0 }
      delta = below
    }
    return gradients.reversed()
  }

  /// `c = op(a) · op(b)` (plus `c` when `adding`) for row-major matrices, `op(a)` m×k and `op(b)` k×n.
  private static func multiply(
    _ a: [Float], transposingA transA: Bool = false, _ b: [Float], transposingB transB: Bool = false, m: Int, n: Int,
    k: Int, into c: inout [Float], adding: Bool = false
  ) {
    a.withUnsafeBufferPointer { a in
      b.withUnsafeBufferPointer { b in
        c.withUnsafeMutableBufferPointer { c in
          Blas.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a.baseAddress!, lda: transA ? m : k,
            b.baseAddress!, ldb: transB ? k : n, beta: adding ? 1 : 0, c.baseAddress!, ldc: n)
        }
      }
    }
  }

  /// Class probabilities for `features` ([rows, inputs]), computed as the exported ONNX graph does.
  public func predict(_ features: Tensor) throws(ModelError) -> Tensor {
    guard features.dataType == .float32, features.rank == 2, features.shape[1] == inputs else {
      throw ModelError(.invalidInput, "features must be a float [rows, \(inputs)] tensor, not \(features)")
    }
    let pass = forward(features.elements(as: Float.self), rows: features.shape[0])
    return Tensor(shape: [features.shape[0], classes], elements: pass.probabilities)
  }
}

/// Adam (with optional decoupled weight decay) over a head's weights and biases.
struct AdamOptimizer {
  let learningRate: Float
  let weightDecay: Float
  let beta1: Float = 0.9
  let beta2: Float = 0.999
  let epsilon: Float = 1e-8
  private var step = 0
  // First and second moments per layer.
  private var mWeights: [[Float]]
  private var vWeights: [[Float]]
  private var mBias: [[Float]]
  private var vBias: [[Float]]

  init(_ head: DenseHead, learningRate: Float, weightDecay: Float) {
    self.learningRate = learningRate
    self.weightDecay = weightDecay
    mWeights = head.layers.map { [Float](repeating: 0, count: $0.weights.count) }
    vWeights = mWeights
    mBias = head.layers.map { [Float](repeating: 0, count: $0.bias.count) }
    vBias = mBias
  }

  mutating func step(_ head: inout DenseHead, _ gradients: [(weights: [Float], bias: [Float])]) {
    step += 1
    let correction1 = 1 - Float.pow(beta1, Float(step))
    let correction2 = 1 - Float.pow(beta2, Float(step))
    let rate = learningRate * correction2.squareRoot() / correction1
    for index in head.layers.indices {
      Self.update(
        &head.layers[index].weights, gradients[index].weights, &mWeights[index], &vWeights[index],
        rate: rate, decay: learningRate * weightDecay, beta1, beta2, epsilon)
      Self.update(
        &head.layers[index].bias, gradients[index].bias, &mBias[index], &vBias[index], rate: rate,
        decay: 0, beta1, beta2, epsilon)
    }
  }

  private static func update(
    _ parameters: inout [Float], _ gradient: [Float], _ m: inout [Float], _ v: inout [Float], rate: Float, decay: Float,
    _ beta1: Float, _ beta2: Float, _ epsilon: Float
  ) {
    for i in parameters.indices {
      m[i] = beta1 * m[i] + (1 - beta1) * gradient[i]
      v[i] = beta2 * v[i] + (1 - beta2) * gradient[i] * gradient[i]
      parameters[i] -= rate * m[i] / (v[i].squareRoot() + epsilon) + decay * parameters[i]
    }
  }
}
