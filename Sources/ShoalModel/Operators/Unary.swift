import RealModule

/// Element-wise functions of one tensor: activations and math (Relu, Sigmoid, Exp, Clip, …).
struct UnaryKernel: Kernel {
  enum Function: Sendable {
    case relu, sigmoid, tanh, softplus, softsign, exp, log, sqrt, abs, neg, sign, reciprocal, floor, ceil, erf, round
    case identity
    case leakyRelu(Float)
    case elu(Float)
    case selu(alpha: Float, gamma: Float)
    case hardSigmoid(alpha: Float, beta: Float)
    case shrink(bias: Float, lambda: Float)
    case clip(min: Float, max: Float)
    case celu(Float)
    case thresholdedRelu(Float)

    /// Whether the function is defined for integer tensors too.
    var allowsIntegers: Bool {
      switch self {
      case .abs, .neg, .sign, .identity: true
      default: false
      }
    }
  }

  var function: Function

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try requireType(
      x, function.allowsIntegers ? [.float32, .float64, .int64, .int32, .int8] : [.float32, .float64], "X")
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: x.shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let y = outputs[0]
    switch x.dataType {
    case .float32: Self.apply(function, x.pointer(as: Float.self), y.mutablePointer(as: Float.self), x.count)
    case .float64: Self.apply(function, x.pointer(as: Double.self), y.mutablePointer(as: Double.self), x.count)
    case .int64: Self.applyInteger(function, x.pointer(as: Int64.self), y.mutablePointer(as: Int64.self), x.count)
    case .int32: Self.applyInteger(function, x.pointer(as: Int32.self), y.mutablePointer(as: Int32.self), x.count)
    case .int8: Self.applyInteger(function, x.pointer(as: Int8.self), y.mutablePointer(as: Int8.self), x.count)
    default: break
    }
  }

  /// `y[i] = f(x[i])`; the simple functions are written as plain loops the compiler vectorises.
  static func apply<T: FloatElement>(
    _ function: Function, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ count: Int
  ) {
    if T.self == Float.self,
      applyVectorised(function, UnsafeRawPointer(x), UnsafeMutableRawPointer(y), count)
    {
      return
    }
    switch function {
    case .relu: for i in 0..<count { y[i] = x[i] < 0 ? 0 : x[i] }
    case .leakyRelu(let alpha):
      let a = T(alpha)
      for i in 0..<count { y[i] = x[i] >= 0 ? x[i] : x[i] * a }
    case .clip(let low, let high):
      let lo = T(low)
      let hi = T(high)
      // Written so NaN passes through both comparisons unchanged, without a branch.
      for i in 0..<count {
        let raised = x[i] < lo ? lo : x[i]
        y[i] = raised > hi ? hi : raised
      }
    case .identity: y.update(from: x, count: count)
    case .neg: for i in 0..<count { y[i] = -x[i] }
    case .abs: for i in 0..<count { y[i] = Swift.abs(x[i]) }
    case .sigmoid:
      for i in 0..<count { y[i] = x[i] >= 0 ? 1 / (1 + T.exp(-x[i])) : T.exp(x[i]) / (1 + T.exp(x[i])) }
    case .tanh: for i in 0..<count { y[i] = T.tanh(x[i]) }
    case .softplus:
      for i in 0..<count { y[i] = x[i] > 0 ? x[i] + T.log(onePlus: T.exp(-x[i])) : T.log(onePlus: T.exp(x[i])) }
    case .softsign: for i in 0..<count { y[i] = x[i] / (1 + Swift.abs(x[i])) }
    case .exp: for i in 0..<count { y[i] = T.exp(x[i]) }
    case .log: for i in 0..<count { y[i] = T.log(x[i]) }
    case .sqrt: for i in 0..<count { y[i] = x[i].squareRoot() }
    case .sign: for i in 0..<count { y[i] = x[i] > 0 ? 1 : (x[i] < 0 ? -1 : x[i]) }
    case .reciprocal: for i in 0..<count { y[i] = 1 / x[i] }
    case .floor: for i in 0..<count { y[i] = x[i].rounded(.down) }
    case .ceil: for i in 0..<count { y[i] = x[i].rounded(.up) }
    case .round: for i in 0..<count { y[i] = x[i].rounded(.toNearestOrEven) }
    case .erf: for i in 0..<count { y[i] = T.erf(x[i]) }
    case .elu(let alpha):
      let a = T(alpha)
      for i in 0..<count { y[i] = x[i] >= 0 ? x[i] : a * T.expMinusOne(x[i]) }
    case .celu(let alpha):
      let a = T(alpha)
      for i in 0..<count { y[i] = Swift.max(0, x[i]) + Swift.min(0, a * T.expMinusOne(x[i] / a)) }
    case .selu(let alpha, let gamma):
      let a = T(alpha)
      let g = T(gamma)
      for i in 0..<count { y[i] = x[i] > 0 ? g * x[i] : g * a * T.expMinusOne(x[i]) }
    case .hardSigmoid(let alpha, let beta):
      let a = T(alpha)
      let b = T(beta)
      for i in 0..<count { y[i] = Swift.max(0, Swift.min(1, a * x[i] + b)) }
    case .shrink(let bias, let lambda):
      let b = T(bias)
      let l = T(lambda)
      for i in 0..<count { y[i] = x[i] < -l ? x[i] + b : (x[i] > l ? x[i] - b : 0) }
    case .thresholdedRelu(let alpha):
      let a = T(alpha)
      for i in 0..<count { y[i] = x[i] > a ? x[i] : 0 }
    }
  }

  /// ReLU, LeakyReLU and Clip on float32, eight lanes at a time (the compiler leaves their plain
  /// loops scalar); false for the other functions. `y` may be `x`.
  private static func applyVectorised(
    _ function: Function, _ x: UnsafeRawPointer, _ y: UnsafeMutableRawPointer, _ count: Int
  ) -> Bool {
    let (lo, hi, slope): (Float, Float, Float)
    switch function {
    case .relu: (lo, hi, slope) = (0, .infinity, 0)
    case .clip(let low, let high): (lo, hi, slope) = (Float(low), Float(high), 0)
    case .leakyRelu(let alpha): (lo, hi, slope) = (-.infinity, .infinity, Float(alpha))
    default: return false
    }
    let (vector, scalar) = (MemoryLayout<SIMD8<Float>>.stride, MemoryLayout<Float>.stride)
    let end = count * scalar
    var offset = 0
    // Comparisons are false for NaN, so NaN passes through unchanged.
    if slope != 0 {
      while offset + vector <= end {
        let v = x.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        y.storeBytes(of: (v * slope).replacing(with: v, where: v .>= 0), toByteOffset: offset, as: SIMD8<Float>.self)
        offset += vector
      }
      while offset < end {
        let v = x.load(fromByteOffset: offset, as: Float.self)
        y.storeBytes(of: v >= 0 ? v : v * slope, toByteOffset: offset, as: Float.self)
        offset += scalar
      }
    } else {
      while offset + vector <= end {
        let v = x.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        let raised = v.replacing(with: lo, where: v .< lo)
        y.storeBytes(of: raised.replacing(with: hi, where: raised .> hi), toByteOffset: offset, as: SIMD8<Float>.self)
        offset += vector
      }
      while offset < end {
        let v = x.load(fromByteOffset: offset, as: Float.self)
        let raised = v < lo ? lo : v
        y.storeBytes(of: raised > hi ? hi : raised, toByteOffset: offset, as: Float.self)
        offset += scalar
      }
    }
    return true
  }

  static func applyInteger<T: FixedWidthInteger & SignedInteger & TensorElement>(
    _ function: Function, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ count: Int
  ) {
    switch function {
    case .neg: for i in 0..<count { y[i] = 0 &- x[i] }
    case .abs: for i in 0..<count { y[i] = x[i] < 0 ? 0 &- x[i] : x[i] }
    case .sign: for i in 0..<count { y[i] = x[i] > 0 ? 1 : (x[i] < 0 ? -1 : 0) }
    default: y.update(from: x, count: count)
    }
  }
}

extension UnaryKernel {
  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    outputs[0].shape.elementCount * max(1, inputs.count - 1)
  }
}

extension UnaryKernel {
  /// The builders of the one-input element-wise operators.
  static let builders: [String: OperatorBuilder] = {
    var builders: [String: OperatorBuilder] = [:]
    let simple: [String: Function] = [
      "Relu": .relu, "Sigmoid": .sigmoid, "Tanh": .tanh, "Softplus": .softplus, "Softsign": .softsign, "Exp": .exp,
      "Log": .log, "Sqrt": .sqrt, "Abs": .abs, "Neg": .neg, "Sign": .sign, "Reciprocal": .reciprocal, "Floor": .floor,
      "Ceil": .ceil, "Erf": .erf, "Round": .round,
    ]
    for (name, function) in simple {
      builders[name] = { context in
        if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
        return UnaryKernel(function: function)
      }
    }
    builders["LeakyRelu"] = { context in
      if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
      return UnaryKernel(function: .leakyRelu(context.attributes.float("alpha", default: 0.01)))
    }
    builders["Elu"] = { context in
      if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
      return UnaryKernel(function: .elu(context.attributes.float("alpha", default: 1)))
    }
    builders["Celu"] = { context in UnaryKernel(function: .celu(context.attributes.float("alpha", default: 1))) }
    builders["ThresholdedRelu"] = { context in
      UnaryKernel(function: .thresholdedRelu(context.attributes.float("alpha", default: 1)))
    }
    builders["Selu"] = { context in
      if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
      return UnaryKernel(
        function: .selu(
          alpha: context.attributes.float("alpha", default: 1.67326319217681884765625),
          gamma: context.attributes.float("gamma", default: 1.05070102214813232421875)))
    }
    builders["HardSigmoid"] = { context in
      if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
      return UnaryKernel(
        function: .hardSigmoid(
          alpha: context.attributes.float("alpha", default: 0.2), beta: context.attributes.float("beta", default: 0.5)))
    }
    builders["Shrink"] = { context in
      UnaryKernel(
        function: .shrink(
          bias: context.attributes.float("bias", default: 0), lambda: context.attributes.float("lambd", default: 0.5)))
    }
    return builders
  }()
}
