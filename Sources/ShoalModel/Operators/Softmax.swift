import RealModule

/// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is seen as a matrix split at `axis`
/// (default 1); from 13 the function runs along `axis` alone (default -1).
struct SoftmaxKernel: Kernel {
  enum Kind: Sendable { case softmax, logSoftmax, hardmax }

  var kind: Kind
  var axis: Int
  var flattens: Bool

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "input")
    try requireType(x, [.float32, .float64], "input")
    _ = try normalisedAxis(axis, rank: x.rank)
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: x.shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let axis = try normalisedAxis(axis, rank: x.rank)
    // The tensor as [outer, length, inner]: the function runs over `length` elements `inner` apart.
    let outer = x.shape.prefix(axis).reduce(1, *)
    let length = flattens ? x.shape[axis...].reduce(1, *) : (x.rank == 0 ? 1 : x.shape[axis])
    let inner = flattens ? 1 : x.shape.suffix(from: min(axis + 1, x.rank)).reduce(1, *)
    if x.dataType == .float32 {
      compute(x.pointer(as: Float.self), outputs[0].mutablePointer(as: Float.self), outer, length, inner)
    } else {
      compute(x.pointer(as: Double.self), outputs[0].mutablePointer(as: Double.self), outer, length, inner)
    }
  }

  private func compute<T: Real>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ outer: Int, _ length: Int, _ inner: Int
  ) {
    for o in 0..<outer {
      for i in 0..<inner {
        let base = o * length * inner + i
        var maximum = -T.infinity
        var argmax = 0
        for j in 0..<length where x[base + j * inner] > maximum || x[base + j * inner].isNaN {
          maximum = x[base + j * inner]
          argmax = j
        }
        switch kind {
        case .hardmax:
          for j in 0..<length { y[base + j * inner] = j == argmax ? 1 : 0 }
        case .softmax:
          var sum: T = 0
          for j in 0..<length {
            let e = T.exp(x[base + j * inner] - maximum)
            y[base + j * inner] = e
            sum += e
          }
          let scale = 1 / sum
          for j in 0..<length { y[base + j * inner] *= scale }
        case .logSoftmax:
          var sum: T = 0
          for j in 0..<length { sum += T.exp(x[base + j * inner] - maximum) }
          let shift = maximum + T.log(sum)
          for j in 0..<length { y[base + j * inner] = x[base + j * inner] - shift }
        }
      }
    }
  }

  static let builders: [String: OperatorBuilder] = {
    var builders: [String: OperatorBuilder] = [:]
    for (name, kind) in ["Softmax": Kind.softmax, "LogSoftmax": .logSoftmax, "Hardmax": .hardmax] {
      builders[name] = { context in
        let flattens = context.opset < 13
        return SoftmaxKernel(
          kind: kind, axis: context.attributes.int("axis", default: flattens ? 1 : -1), flattens: flattens)
      }
    }
    return builders
  }()
}
