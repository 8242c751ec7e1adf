/// Clip: bounds from attributes before opset 11, from optional inputs after.
struct ClipKernel: Kernel {
  /// The bounds of opsets before 11.
  var bounds: (min: Float, max: Float)?

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "input")
    try requireType(x, [.float32, .float64], "input")
    for index in [1, 2] {
      if let bound = inputs.optional(index), bound.shape.elementCount != 1 || bound.dataType != x.dataType {
        throw ModelError(.invalidInput, "input \(index) must be one \(x.dataType) value")
      }
    }
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: x.shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let low = bounds?.min ?? (inputs.count > 1 ? inputs[1].map { Float($0.doubles()[0]) } : nil) ?? -.infinity
    let high = bounds?.max ?? (inputs.count > 2 ? inputs[2].map { Float($0.doubles()[0]) } : nil) ?? .infinity
    let x = inputs[0]!
    if x.dataType == .float32 {
      UnaryKernel.apply(
        .clip(min: low, max: high), x.pointer(as: Float.self), outputs[0].mutablePointer(as: Float.self), x.count)
    } else {
      UnaryKernel.apply(
        .clip(min: low, max: high), x.pointer(as: Double.self), outputs[0].mutablePointer(as: Double.self), x.count)
    }
  }

  static let builders: [String: OperatorBuilder] = [
    "Clip": { context in
      guard context.opset < 11 else { return ClipKernel(bounds: nil) }
      context.attributes.ignore("consumed_inputs")
      return ClipKernel(
        bounds: (
          context.attributes.float("min", default: -.infinity), context.attributes.float("max", default: .infinity)
        ))
    }
  ]
}
