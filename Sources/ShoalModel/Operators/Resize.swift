/// Resize (opset 10+) and Upsample (opset 7–9): nearest and (multi)linear interpolation over any
/// axes. Opset ≤ 10 uses asymmetric coordinates and floor for nearest; Resize 11+ reads
/// `coordinate_transformation_mode` and `nearest_mode`.
struct ResizeKernel: Kernel {
  var linear: Bool
  var coordinates: String
  var nearestMode: String
  /// Upsample 7/8: the scales attribute.
  var legacyScales: [Float]?
  /// Where the scales input is: 1 for Upsample 9 and Resize 10, 2 for Resize 11+.
  var scalesInput: Int
  var sizesInput: Int?

  private func resolve(_ x: [Int], _ inputs: [ValueType?]) throws(ModelError) -> (scales: [Double], shape: [Int]) {
    if let sizesInput, let sizes = try inputs.constantIntegers(sizesInput, "sizes"), !sizes.isEmpty {
      guard sizes.count == x.count else {
        throw ModelError(.invalidInput, "sizes \(sizes) must give one size per axis of \(x)")
      }
      return (zip(sizes, x).map { Double($0) / Double($1) }, sizes)
    }
    var scales = legacyScales.map { $0.map(Double.init) }
    if scales == nil, let input = inputs.optional(scalesInput) {
      guard let value = input.value else {
        throw ModelError.needsValue("scales")
      }
      scales = value.doubles()
    }
    guard let scales, scales.count == x.count, scales.allSatisfy({ $0 > 0 }) else {
      throw ModelError(.invalidInput, "scales must give one positive factor per axis of \(x)")
    }
    return (scales, zip(x, scales).map { Int((Double($0) * $1).rounded(.down)) })
  }

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "X")
    try requireType(x, [.float32], "X")
    let (_, shape) = try resolve(x.shape, inputs)
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: shape)])
  }

  /// The input coordinate of output position `position` along an axis.
  private func source(_ position: Int, scale: Double, input: Int, output: Int) -> Double {
    let x = Double(position)
    switch coordinates {
    case "align_corners": return output == 1 ? 0 : x * Double(input - 1) / Double(output - 1)
    case "asymmetric": return x / scale
    case "pytorch_half_pixel": return output == 1 ? -0.5 : (x + 0.5) / scale - 0.5
    case "half_pixel_symmetric":
      let adjustment = Double(output) / (scale * Double(input))
      return Double(input) / 2 * (1 - adjustment) + (x + 0.5) / scale - 0.5
    default: return (x + 0.5) / scale - 0.5
    }
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let x = inputs[0]!
    let y = outputs[0]
    let (scales, shape) = try resolve(x.shape, inputs.map { $0.map { ValueType($0) } })
    let rank = x.rank
    // Per axis and output position: two source indices and the weight of the second.
    var low: [[Int]] = []
    var high: [[Int]] = []
    var weight: [[Float]] = []
    for axis in 0..<rank {
      let size = x.shape[axis]
      var l: [Int] = []
      var h: [Int] = []
      var w: [Float] = []
      for position in 0..<shape[axis] {
        let coordinate = source(position, scale: scales[axis], input: size, output: shape[axis])
        if linear {
          let base = coordinate.rounded(.down)
          l.append(min(max(Int(base), 0), size - 1))
          h.append(min(max(Int(base) + 1, 0), size - 1))
          w.append(Float(coordinate - base))
        } else {
          let index: Double
          switch nearestMode {
          case "floor": index = coordinate.rounded(.down)
          case "ceil": index = coordinate.rounded(.up)
          case "round_prefer_ceil": index = (coordinate + 0.5).rounded(.down)
          default:
            index = coordinate == coordinate.rounded(.down) + 0.5 ? coordinate.rounded(.down) : coordinate.rounded()
          }
          let clamped = min(max(Int(index), 0), size - 1)
          l.append(clamped)
          h.append(clamped)
          w.append(0)
        }
      }
      low.append(l)
      high.append(h)
      weight.append(w)
    }
    let strides = x.shape.strides
    let interpolated = (0..<rank).filter { linear && x.shape[$0] != shape[$0] || linear && scales[$0] != 1 }
    let px = x.pointer(as: Float.self)
    let py = y.mutablePointer(as: Float.self)
    var index = [Int](repeating: 0, count: rank)
    for position in 0..<y.count {
      var base = 0
      for axis in 0..<rank { base += low[axis][index[axis]] * strides[axis] }
      var value: Float = 0
      if interpolated.isEmpty {
        value = px[base]
      } else {
        for corner in 0..<(1 << interpolated.count) {
          var offset = base
          var factor: Float = 1
          for (bit, axis) in interpolated.enumerated() {
            let w = weight[axis][index[axis]]
            if corner & (1 << bit) != 0 {
              offset += (high[axis][index[axis]] - low[axis][index[axis]]) * strides[axis]
              factor *= w
            } else {
              factor *= 1 - w
            }
          }
          if factor != 0 { value += factor * px[offset] }
        }
      }
      py[position] = value
      index.advance(within: shape)
    }
  }

  static let builders: [String: OperatorBuilder] = [
    "Upsample": { context in
      let mode = try context.attributes.string("mode", default: "nearest", oneOf: ["nearest", "linear", "bilinear"])
      return ResizeKernel(
        linear: mode != "nearest", coordinates: "asymmetric", nearestMode: "floor",
        legacyScales: context.opset < 9 ? context.attributes.floats("scales") : nil, scalesInput: 1, sizesInput: nil)
    },
    "Resize": { context in
      let attributes = context.attributes
      let mode = try attributes.string("mode", default: "nearest", oneOf: ["nearest", "linear"])
      guard context.opset >= 11 else {
        return ResizeKernel(
          linear: mode == "linear", coordinates: "asymmetric", nearestMode: "floor", legacyScales: nil, scalesInput: 1,
          sizesInput: nil)
      }
      let coordinates = try attributes.string(
        "coordinate_transformation_mode", default: "half_pixel",
        oneOf: ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"])
      let nearest = try attributes.string(
        "nearest_mode", default: "round_prefer_floor",
        oneOf: ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
      attributes.ignore("cubic_coeff_a", "extrapolation_value")
      guard attributes.int("exclude_outside", default: 0) == 0, attributes.int("antialias", default: 0) == 0 else {
        throw ModelError(.unsupported, "exclude_outside and antialias are not supported")
      }
      guard attributes.ints("axes") == nil else { throw ModelError(.unsupported, "axes is not supported") }
      _ = try attributes.string("keep_aspect_ratio_policy", default: "stretch", oneOf: ["stretch"])
      return ResizeKernel(
        linear: mode == "linear", coordinates: coordinates, nearestMode: nearest, legacyScales: nil, scalesInput: 2,
        sizesInput: 3)
    },
  ]
}
