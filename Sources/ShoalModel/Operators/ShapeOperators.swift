/// Operators that only change how elements are seen (Reshape, Flatten, Squeeze, Unsqueeze,
/// Identity, Dropout at inference: no copy), and those whose output follows from shapes alone
/// (Shape, Size, ConstantOfShape), which the planner computes once.
struct ViewKernel: Kernel {
  enum Kind: Sendable {
    case reshape(shape: [Int]?, allowZero: Bool)
    case flatten(axis: Int)
    case squeeze(axes: [Int]?)
    case unsqueeze(axes: [Int]?)
    case identity
  }

  var kind: Kind

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "data")
    let shape: [Int]
    switch kind {
    case .identity: shape = x.shape
    case .reshape(let legacy, let allowZero):
      guard let requested = try inputs.integers(legacy, orInput: 1, "shape") else {
        throw ModelError(.invalidModel, "the shape input is required")
      }
      shape = try Self.reshaped(x.shape, to: requested, allowZero: allowZero)
    case .flatten(let axis):
      let split = try normalisedAxis(axis, rank: x.rank + 1)
      shape = [x.shape.prefix(split).reduce(1, *), x.shape.suffix(from: split).reduce(1, *)]
    case .squeeze(let legacy):
      if let axes = try inputs.integers(legacy, orInput: 1, "axes") {
        let normalised = try Set(axes.map { axis throws(ModelError) in try normalisedAxis(axis, rank: x.rank) })
        for axis in normalised where x.shape[axis] != 1 {
          throw ModelError(.invalidInput, "axis \(axis) of \(x.shape) has size \(x.shape[axis]), not 1")
        }
        shape = x.shape.enumerated().filter { !normalised.contains($0.offset) }.map(\.element)
      } else {
        shape = x.shape.filter { $0 != 1 }
      }
    case .unsqueeze(let legacy):
      guard let axes = try inputs.integers(legacy, orInput: 1, "axes") else {
        throw ModelError(.invalidModel, "axes are required")
      }
      let rank = x.rank + axes.count
      let normalised = try Set(axes.map { axis throws(ModelError) in try normalisedAxis(axis, rank: rank) })
      guard normalised.count == axes.count else { throw ModelError(.invalidModel, "axes \(axes) repeat an axis") }
      var remaining = x.shape.makeIterator()
      shape = (0..<rank).map { normalised.contains($0) ? 1 : remaining.next()! }
    }
    return KernelPlan(outputs: [ValueType(dataType: x.dataType, shape: shape)], aliasesInput: true)
  }

  /// The executor shows the input under the new shape instead (`aliasesInput`); run, it copies.
  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    outputs[0].buffer.pointer.copyMemory(from: inputs[0]!.buffer.pointer, byteCount: outputs[0].byteCount)
  }

  /// Reshape's rules: 0 keeps the input's dimension (unless `allowZero`), one -1 is inferred.
  static func reshaped(_ input: [Int], to requested: [Int], allowZero: Bool) throws(ModelError) -> [Int] {
    var shape = requested
    for (axis, size) in requested.enumerated() where size == 0 && !allowZero {
      guard axis < input.count else {
        throw ModelError(.invalidInput, "shape \(requested) copies axis \(axis) of \(input)")
      }
      shape[axis] = input[axis]
    }
    let count = input.elementCount
    let inferred = shape.indices.filter { shape[$0] == -1 }
    guard inferred.count <= 1, shape.allSatisfy({ $0 >= -1 }) else {
      throw ModelError(.invalidInput, "shape \(requested) is not a valid shape")
    }
    if let axis = inferred.first {
      let known = shape.filter { $0 != -1 }.reduce(1, *)
      guard known > 0, count % known == 0 else {
        throw ModelError(.invalidInput, "cannot reshape \(input) (\(count) elements) to \(requested)")
      }
      shape[axis] = count / known
    }
    guard shape.elementCount == count else {
      throw ModelError(.invalidInput, "cannot reshape \(input) (\(count) elements) to \(requested)")
    }
    return shape
  }
}

/// Shape, Size and ConstantOfShape: outputs known when planning.
struct ShapeKernel: Kernel {
  enum Kind: Sendable {
    case shape(start: Int, end: Int?)
    case size
    case constantOfShape(Tensor)
  }

  var kind: Kind

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "input")
    let value: Tensor
    switch kind {
    case .shape(let start, let end):
      let rank = x.rank
      let from = min(max(start < 0 ? start + rank : start, 0), rank)
      let to = min(max(end.map { $0 < 0 ? $0 + rank : $0 } ?? rank, 0), rank)
      let dimensions = from < to ? x.shape[from..<to].map { Int64($0) } : []
      value = Tensor(shape: [dimensions.count], elements: dimensions)
    case .size:
      value = Tensor(scalar: Int64(x.shape.elementCount))
    case .constantOfShape(let fill):
      guard let shape = x.value?.integers() else {
        throw ModelError.needsValue("the shape input")
      }
      guard shape.allSatisfy({ $0 >= 0 }) else {
        throw ModelError(.invalidInput, "shape \(shape) has a negative dimension")
      }
      let result = Tensor(zeros: shape, dataType: fill.dataType)
      let size = fill.dataType.byteSize
      for index in 0..<result.count {
        (result.buffer.pointer + index * size).copyMemory(from: fill.buffer.pointer, byteCount: size)
      }
      value = result
    }
    return KernelPlan(outputs: [ValueType(value)])
  }

  /// The planner keeps the planned value as a constant; run, the value is computed again.
  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    let types = inputs.map { $0.map { ValueType($0) } }
    guard let value = try plan(types).outputs[0].value else { return }
    outputs[0].buffer.pointer.copyMemory(from: value.buffer.pointer, byteCount: value.byteCount)
  }
}

enum ShapeOperators {
  static let builders: [String: OperatorBuilder] = [
    "Reshape": { context in
      let legacy = context.opset < 5 ? context.attributes.ints("shape") : nil
      if context.opset < 5 { context.attributes.ignore("consumed_inputs") }
      return ViewKernel(kind: .reshape(shape: legacy, allowZero: context.attributes.int("allowzero", default: 0) != 0))
    },
    "Flatten": { context in ViewKernel(kind: .flatten(axis: context.attributes.int("axis", default: 1))) },
    "Squeeze": { context in ViewKernel(kind: .squeeze(axes: context.opset < 13 ? context.attributes.ints("axes") : nil))
    },
    "Unsqueeze": { context in
      guard context.opset >= 13 || context.attributes.has("axes") else {
        throw ModelError(.invalidModel, "axes are required")
      }
      return ViewKernel(kind: .unsqueeze(axes: context.opset < 13 ? context.attributes.ints("axes") : nil))
    },
    "Identity": { _ in ViewKernel(kind: .identity) },
    "Dropout": { context in
      context.attributes.ignore("ratio", "seed", "consumed_inputs")
      if let isTest = context.attributes.int("is_test"), isTest == 0 {
        throw ModelError(.unsupported, "is_test = 0 (training) is not supported")
      }
      guard context.inputCount < 3 else { throw ModelError(.unsupported, "the training_mode input is not supported") }
      guard context.outputCount == 1 else { return DropoutMaskKernel() }
      return ViewKernel(kind: .identity)
    },
    "Shape": { context in
      ShapeKernel(kind: .shape(start: context.attributes.int("start", default: 0), end: context.attributes.int("end")))
    },
    "Size": { _ in ShapeKernel(kind: .size) },
    "ConstantOfShape": { context in
      let fill = try context.attributes.tensor("value") ?? Tensor(shape: [1], elements: [Float(0)])
      guard fill.count == 1 else { throw ModelError(.invalidModel, "value must hold one element") }
      return ShapeKernel(kind: .constantOfShape(fill))
    },
  ]
}

/// Dropout at inference with its mask output: the input unchanged and a mask of all true.
struct DropoutMaskKernel: Kernel {
  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let x = try inputs.required(0, "data")
    return KernelPlan(outputs: [
      ValueType(dataType: x.dataType, shape: x.shape), ValueType(dataType: .bool, shape: x.shape),
    ])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    outputs[0].buffer.pointer.copyMemory(from: inputs[0]!.buffer.pointer, byteCount: inputs[0]!.byteCount)
    outputs[1].mutablePointer(as: Bool.self).update(repeating: true, count: outputs[1].count)
  }
}
