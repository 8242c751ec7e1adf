import RealModule

/// ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceSumSquare, ReduceL1, ReduceL2,
/// ReduceLogSumExp. Axes come from an attribute, or from an input from opset 13 (ReduceSum) or 18
/// (the others).
struct ReduceKernel: Kernel {
  enum Kind: Sendable { case mean, sum, max, min, prod, sumSquare, l1, l2, logSumExp }

  var kind: Kind
  var axes: [Int]?
  var axesFromInput: Bool
  var keepDims: Bool
  var noopWithEmptyAxes: Bool

  private func reducedAxes(_ x: ValueType, _ inputs: [ValueType?]) throws(ModelError) -> Set<Int>? {
    let given = axesFromInput ? try inputs.constantIntegers(1, "axes") : axes
    guard let given, !given.isEmpty else { return noopWithEmptyAxes ? nil : Set(0..<x.rank) }
    return try Set(given.map { axis throws(ModelError) in try normalisedAxis(axis, rank: x.rank) })
  }

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "data")
    try requireType(x, [.float32, .float64], "data")
    guard let axes = try reducedAxes(x, inputs) else {
      return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: x.shape)])
    }
    let shape = x.shape.enumerated().compactMap { axis, size in axes.contains(axis) ? (keepDims ? 1 : nil) : size }
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let type = ValueType(dataType: x.dataType, shape: x.shape)
    let axes = try reducedAxes(type, inputs.map { $0.map { ValueType($0) } })
    if x.dataType == .float32 {
      reduce(x.pointer(as: Float.self), x.shape, axes, outputs[0].mutablePointer(as: Float.self))
    } else {
      reduce(x.pointer(as: Double.self), x.shape, axes, outputs[0].mutablePointer(as: Double.self))
    }
  }

  private func reduce<T: Real>(_ x: UnsafePointer<T>, _ shape: [Int], _ axes: Set<Int>?, _ y: UnsafeMutablePointer<T>) {
    guard let axes else {
      y.update(from: x, count: shape.elementCount)
      return
    }
    // Strides that map each input element to its output element (0 along reduced axes).
    let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
    let outStrides = kept.strides.enumerated().map { axes.contains($0.offset) ? 0 : $0.element }
    let outCount = kept.elementCount
    let count = T(shape.indices.filter { axes.contains($0) }.map { shape[$0] }.reduce(1, *))
    var initial: T
    switch kind {
    case .max: initial = -T.infinity
    case .min: initial = T.infinity
    case .prod: initial = 1
    case .logSumExp: initial = -T.infinity
    default: initial = 0
    }
    y.update(repeating: initial, count: outCount)
    if kind == .logSumExp {
      // Shift by the maximum first, for stability.
      var maxima = [T](repeating: -T.infinity, count: outCount)
      forEach(shape, outStrides) { input, output in maxima[output] = Swift.max(maxima[output], x[input]) }
      y.update(repeating: 0, count: outCount)
      forEach(shape, outStrides) { input, output in
        y[output] += maxima[output].isFinite ? T.exp(x[input] - maxima[output]) : T.exp(x[input])
      }
      for i in 0..<outCount { y[i] = T.log(y[i]) + (maxima[i].isFinite ? maxima[i] : 0) }
      return
    }
    forEach(shape, outStrides) { input, output in
      let value = x[input]
      switch kind {
      case .mean, .sum: y[output] += value
      case .max: y[output] = value.isNaN || value > y[output] ? value : y[output]
      case .min: y[output] = value.isNaN || value < y[output] ? value : y[output]
      case .prod: y[output] *= value
      case .sumSquare, .l2: y[output] += value * value
      case .l1: y[output] += Swift.abs(value)
      case .logSumExp: break
      }
    }
    switch kind {
    case .mean: for i in 0..<outCount { y[i] /= count }
    case .l2: for i in 0..<outCount { y[i] = y[i].squareRoot() }
    default: break
    }
  }

  /// Calls `body(inputIndex, outputIndex)` for every input element.
  private func forEach(_ shape: [Int], _ outStrides: [Int], _ body: (Int, Int) -> Void) {
    var index = [Int](repeating: 0, count: shape.count)
    var output = 0
    for input in 0..<shape.elementCount {
      body(input, output)
      var axis = shape.count - 1
      while axis >= 0 {
        index[axis] += 1
        output += outStrides[axis]
        if index[axis] < shape[axis] { break }
        output -= outStrides[axis] * shape[axis]
        index[axis] = 0
        axis -= 1
      }
    }
  }

  static let builders: [String: OperatorBuilder] = {
    var builders: [String: OperatorBuilder] = [:]
    let kinds: [String: Kind] = [
      "ReduceMean": .mean, "ReduceSum": .sum, "ReduceMax": .max, "ReduceMin": .min, "ReduceProd": .prod,
      "ReduceSumSquare": .sumSquare, "ReduceL1": .l1, "ReduceL2": .l2, "ReduceLogSumExp": .logSumExp,
    ]
    for (name, kind) in kinds {
      builders[name] = { context in
        let fromInput = context.opset >= (kind == .sum ? 13 : 18)
        return ReduceKernel(
          kind: kind, axes: fromInput ? nil : context.attributes.ints("axes"), axesFromInput: fromInput,
          keepDims: context.attributes.int("keepdims", default: 1) != 0,
          noopWithEmptyAxes: context.attributes.int("noop_with_empty_axes", default: 0) != 0)
      }
    }
    return builders
  }()
}
