import RealModule

/// BatchNormalization (inference), InstanceNormalization and LRN over [N, C, spatial…].
struct NormalizationKernel: Kernel {
  enum Kind: Sendable {
    case batch(epsilon: Float)
    case instance(epsilon: Float)
    case localResponse(size: Int, alpha: Float, beta: Float, bias: Float)
  }

  var kind: Kind

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try requireType(x, [.float32], "X")
    guard x.rank >= 2 else { throw ModelError(.invalidInput, "X \(x.shape) must be [N, C, …]") }
    let channels = x.shape[1]
    let parameters: Int
    switch kind {
    case .batch: parameters = 4
    case .instance: parameters = 2
    case .localResponse: parameters = 0
    }
    for index in 0..<parameters {
      let parameter = try inputs.required(index + 1, "parameter \(index + 1)")
      guard parameter.shape.elementCount == channels, parameter.dataType == .float32 else {
        throw ModelError(.invalidInput, "input \(index + 1) \(parameter.shape) must hold \(channels) float values")
      }
    }
    return KernelPlan(outputs: [ValueType(dataType: .float32, shape: x.shape)])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let px = x.pointer(as: Float.self)
    let py = outputs[0].mutablePointer(as: Float.self)
    let (batch, channels) = (x.shape[0], x.shape[1])
    let size = x.shape.dropFirst(2).reduce(1, *)
    switch kind {
    case .batch(let epsilon):
      let (scale, bias, mean, variance) = (
        inputs[1]!.pointer(as: Float.self), inputs[2]!.pointer(as: Float.self), inputs[3]!.pointer(as: Float.self),
        inputs[4]!.pointer(as: Float.self)
      )
      for c in 0..<channels {
        let a = scale[c] / (variance[c] + epsilon).squareRoot()
        let b = bias[c] - mean[c] * a
        for n in 0..<batch {
          let offset = (n * channels + c) * size
          for i in 0..<size { py[offset + i] = px[offset + i] * a + b }
        }
      }
    case .instance(let epsilon):
      let (scale, bias) = (inputs[1]!.pointer(as: Float.self), inputs[2]!.pointer(as: Float.self))
      for n in 0..<batch {
        for c in 0..<channels {
          let offset = (n * channels + c) * size
          var mean = 0.0
          for i in 0..<size { mean += Double(px[offset + i]) }
          mean /= Double(size)
          var variance = 0.0
          for i in 0..<size { variance += (Double(px[offset + i]) - mean) * (Double(px[offset + i]) - mean) }
          variance /= Double(size)
          let a = Double(scale[c]) / (variance + Double(epsilon)).squareRoot()
          for i in 0..<size { py[offset + i] = Float((Double(px[offset + i]) - mean) * a + Double(bias[c])) }
        }
      }
    case .localResponse(let window, let alpha, let beta, let bias):
      let before = (window - 1) / 2
      let after = window - 1 - before
      for n in 0..<batch {
        for c in 0..<channels {
          let offset = (n * channels + c) * size
          for i in 0..<size {
            var squares: Float = 0
            for neighbour in max(0, c - before)...min(channels - 1, c + after) {
              let value = px[(n * channels + neighbour) * size + i]
              squares += value * value
            }
            py[offset + i] = px[offset + i] / Float.pow(bias + alpha / Float(window) * squares, beta)
          }
        }
      }
    }
  }

  static let builders: [String: OperatorBuilder] = [
    "BatchNormalization": { context in
      let attributes = context.attributes
      attributes.ignore("momentum", "consumed_inputs")
      if let spatial = attributes.int("spatial"), spatial != 1, context.opset < 9 {
        throw ModelError(.unsupported, "spatial = 0 is not supported")
      }
      if let isTest = attributes.int("is_test"), isTest == 0, context.outputCount > 1 {
        throw ModelError(.unsupported, "training mode is not supported")
      }
      if attributes.int("training_mode", default: 0) != 0 {
        throw ModelError(.unsupported, "training_mode = 1 is not supported (inference only)")
      }
      guard context.outputCount == 1 else {
        throw ModelError(.unsupported, "the running mean and variance outputs (training) are not supported")
      }
      return NormalizationKernel(kind: .batch(epsilon: attributes.float("epsilon", default: 1e-5)))
    },
    "InstanceNormalization": { context in
      NormalizationKernel(kind: .instance(epsilon: context.attributes.float("epsilon", default: 1e-5)))
    },
    "LRN": { context in
      guard let size = context.attributes.int("size") else { throw ModelError(.invalidModel, "size is required") }
      return NormalizationKernel(
        kind: .localResponse(
          size: size, alpha: context.attributes.float("alpha", default: 1e-4),
          beta: context.attributes.float("beta", default: 0.75), bias: context.attributes.float("bias", default: 1)))
    },
  ]
}
