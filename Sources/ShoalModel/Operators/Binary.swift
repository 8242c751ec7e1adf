import RealModule

/// Element-wise operators of two or more tensors with numpy broadcasting: arithmetic, Max/Min/
/// Sum/Mean, PRelu, comparisons. Opsets before 7 broadcast only when asked (`broadcast`, `axis`).
struct BinaryKernel: Kernel {
  enum Operation: Sendable {
    case add, sub, mul, div, pow, max, min, prelu, mod, fmod
    case equal, less, greater, lessOrEqual, greaterOrEqual
    case and, or, xor

    var isComparison: Bool {
      switch self {
      case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual: true
      default: false
      }
    }

    var isLogical: Bool {
      switch self {
      case .and, .or, .xor: true
      default: false
      }
    }
  }

  var operation: Operation
  /// Opset < 7: the axis of the first input at which the second's dimensions start.
  var legacyAxis: Int? = nil
  /// For Mean: divide the sum by the number of inputs.
  var mean = false
  /// An activation fused in at load (Add → Relu in residual blocks).
  var activation: UnaryKernel.Function? = nil

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let operands = inputs.compactMap { $0 }
    guard operands.count >= (mean || operands.count == 1 ? 1 : 2) else {
      throw ModelError(.invalidModel, "needs at least two inputs")
    }
    let dataType = operands[0].dataType
    for (index, operand) in operands.enumerated() where operand.dataType != dataType {
      throw ModelError(.invalidInput, "input \(index) is \(operand.dataType), input 0 is \(dataType)")
    }
    if operation.isLogical {
      try requireType(operands[0], [.bool], "A")
    } else {
      try requireType(operands[0], [.float32, .float64, .int64, .int32], "A")
    }
    let shape = try Broadcast.shape(
      operands.map(\.shape).enumerated().map { index, shape in alignedShape(shape, index, operands[0].shape) })
    let outputType: DataType = operation.isComparison ? .bool : dataType
    return KernelPlan(outputs: [ValueType(dataType: outputType, shape: shape)])
  }

  /// Opset < 7 broadcasting: the second operand's dimensions placed at `legacyAxis`.
  private func alignedShape(_ shape: [Int], _ index: Int, _ first: [Int]) -> [Int] {
    guard index > 0, let axis = legacyAxis else { return shape }
    let start = axis < 0 ? axis + first.count : axis
    return [Int](repeating: 1, count: start) + shape
      + [Int](repeating: 1, count: max(0, first.count - start - shape.count))
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let operands = inputs.compactMap { $0 }
    let out = outputs[0]
    let first = operands[0].shape
    let shapes = operands.enumerated().map { alignedShape($1.shape, $0, first) }
    if operands.count == 1 {
      out.buffer.pointer.copyMemory(from: operands[0].buffer.pointer, byteCount: out.byteCount)
      return
    }
    // Two operands straight into the output; more fold into it, which then holds the running result.
    var activated = false
    for index in 1..<operands.count {
      let (a, aShape) = index == 1 ? (operands[0], shapes[0]) : (out, out.shape)
      let fused = operands.count == 2 && !mean ? activation : nil
      activated = try combine(a, aShape, operands[index], shapes[index], into: out, activation: fused)
    }
    if mean {
      let divisor = Double(operands.count)
      switch out.dataType {
      case .float32:
        let pointer = out.mutablePointer(as: Float.self)
        for i in 0..<out.count { pointer[i] /= Float(divisor) }
      case .float64:
        let pointer = out.mutablePointer(as: Double.self)
        for i in 0..<out.count { pointer[i] /= divisor }
      default: break
      }
    }
    if let activation, !activated { Activation.apply(activation, to: out) }
  }

  /// `out = a op b`; returns whether `activation` was applied on the way.
  private func combine(
    _ a: Tensor, _ aShape: [Int], _ b: Tensor, _ bShape: [Int], into out: Tensor, activation: UnaryKernel.Function?
  ) throws(ModelError) -> Bool {
    switch a.dataType {
    case .float32:
      return try Self.real(
        operation, a.pointer(as: Float.self), aShape, b.pointer(as: Float.self), bShape, out, activation: activation)
    case .float64:
      return try Self.real(
        operation, a.pointer(as: Double.self), aShape, b.pointer(as: Double.self), bShape, out, activation: activation)
    case .int64: try Self.integer(operation, a.pointer(as: Int64.self), aShape, b.pointer(as: Int64.self), bShape, out)
    case .int32: try Self.integer(operation, a.pointer(as: Int32.self), aShape, b.pointer(as: Int32.self), bShape, out)
    case .bool:
      let x = a.pointer(as: Bool.self)
      let y = b.pointer(as: Bool.self)
      let z = out.mutablePointer(as: Bool.self)
      switch operation {
      case .and: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 && $1 }
      case .or: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 || $1 }
      case .xor: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 != $1 }
      default: break
      }
    default: throw ModelError(.unsupported, "element type \(a.dataType)")
    }
    return false
  }

  private static func compare<T: Comparable>(
    _ operation: Operation, _ x: UnsafePointer<T>, _ aShape: [Int], _ y: UnsafePointer<T>, _ bShape: [Int],
    _ out: Tensor
  ) {
    let z = out.mutablePointer(as: Bool.self)
    switch operation {
    case .equal: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 == $1 }
    case .less: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 < $1 }
    case .greater: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 > $1 }
    case .lessOrEqual: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 <= $1 }
    case .greaterOrEqual: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 >= $1 }
    default: break
    }
  }

  /// Returns whether the activation was applied too.
  private static func real<T: FloatElement>(
    _ operation: Operation, _ x: UnsafePointer<T>, _ aShape: [Int], _ y: UnsafePointer<T>, _ bShape: [Int],
    _ out: Tensor, activation: UnaryKernel.Function?
  ) throws(ModelError) -> Bool {
    if operation.isComparison {
      compare(operation, x, aShape, y, bShape, out)
      return false
    }
    let z = out.mutablePointer(as: T.self)
    if aShape == out.shape, bShape == out.shape, [.add, .sub, .mul].contains(operation) {
      // Flat loops for the common case (residual additions, gates), then a fused activation,
      // both on each core's share while it is in cache.
      Parallel.forEachRange(out.count, costPerItem: 1) { range in
        switch operation {
        case .add: for i in range { z[i] = x[i] + y[i] }
        case .sub: for i in range { z[i] = x[i] - y[i] }
        default: for i in range { z[i] = x[i] * y[i] }
        }
        if let activation { UnaryKernel.apply(activation, z + range.lowerBound, z + range.lowerBound, range.count) }
      }
      return true
    }
    switch operation {
    case .add: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 + $1 }
    case .sub: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 - $1 }
    case .mul: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 * $1 }
    case .div: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 / $1 }
    case .pow: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { T.pow($0, $1) }
    case .max: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0.isNaN || $1.isNaN ? T.nan : Swift.max($0, $1) }
    case .min: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0.isNaN || $1.isNaN ? T.nan : Swift.min($0, $1) }
    case .prelu: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 < 0 ? $0 * $1 : $0 }
    case .mod, .fmod: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0.truncatingRemainder(dividingBy: $1) }
    default: throw ModelError(.unsupported, "this operator on \(T.dataType)")
    }
    return false
  }

  private static func integer<T: FixedWidthInteger & SignedInteger & TensorElement>(
    _ operation: Operation, _ x: UnsafePointer<T>, _ aShape: [Int], _ y: UnsafePointer<T>, _ bShape: [Int],
    _ out: Tensor
  ) throws(ModelError) {
    if operation.isComparison { return compare(operation, x, aShape, y, bShape, out) }
    if operation == .div || operation == .mod || operation == .fmod {
      let divisors = UnsafeBufferPointer(start: y, count: bShape.elementCount)
      guard !divisors.contains(0) else { throw ModelError(.invalidInput, "integer division by zero") }
    }
    let z = out.mutablePointer(as: T.self)
    switch operation {
    case .add: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 &+ $1 }
    case .sub: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 &- $1 }
    case .mul: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 &* $1 }
    case .div: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 / $1 }
    case .mod: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { ($0 % $1 + $1) % $1 }
    case .fmod: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 % $1 }
    case .max: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { Swift.max($0, $1) }
    case .min: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { Swift.min($0, $1) }
    case .pow:
      Broadcast.apply(x, aShape, y, bShape, z, out.shape) { base, exponent in
        exponent < 0 ? 0 : (0..<Int(exponent)).reduce(T(1)) { result, _ in result &* base }
      }
    case .prelu: Broadcast.apply(x, aShape, y, bShape, z, out.shape) { $0 < 0 ? $0 &* $1 : $0 }
    default: throw ModelError(.unsupported, "this operator on \(T.dataType)")
    }
  }
}

extension BinaryKernel {
  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    outputs[0].shape.elementCount * max(1, inputs.count - 1)
  }
}

extension BinaryKernel {
  /// The builders of the element-wise operators of several inputs.
  static let builders: [String: OperatorBuilder] = {
    var builders: [String: OperatorBuilder] = [:]
    let arithmetic: [String: Operation] = [
      "Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div, "Pow": .pow, "Equal": .equal,
      "Less": .less, "Greater": .greater, "LessOrEqual": .lessOrEqual, "GreaterOrEqual": .greaterOrEqual,
      "And": .and, "Or": .or, "Xor": .xor,
    ]
    for (name, operation) in arithmetic {
      builders[name] = { context in
        var kernel = BinaryKernel(operation: operation)
        if context.opset < 7 {
          context.attributes.ignore("consumed_inputs")
          if context.attributes.int("broadcast", default: 0) != 0 {
            kernel.legacyAxis = context.attributes.int("axis")
          } else {
            _ = context.attributes.int("axis")
          }
        }
        return kernel
      }
    }
    builders["PRelu"] = { context in
      // Before opset 7 the slope is per channel: its axis 0 meets the input's axis 1.
      if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
      return BinaryKernel(operation: .prelu, legacyAxis: context.opset < 7 ? 1 : nil)
    }
    builders["Mod"] = { context in
      BinaryKernel(operation: context.attributes.int("fmod", default: 0) == 1 ? .fmod : .mod)
    }
    for (name, operation) in ["Max": Operation.max, "Min": .min, "Sum": .add] {
      builders[name] = { context in
        if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
        return BinaryKernel(operation: operation)
      }
    }
    builders["Mean"] = { context in
      if context.opset < 6 { context.attributes.ignore("consumed_inputs") }
      return BinaryKernel(operation: .add, mean: true)
    }
    return builders
  }()
}
