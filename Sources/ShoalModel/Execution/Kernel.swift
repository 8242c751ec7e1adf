/// What the planner knows about a value before running: its type and shape, and its elements
/// when they follow from constants and input shapes alone (shape arithmetic, folded constants).
struct ValueType: Sendable {
  var dataType: DataType
  var shape: [Int]
  var value: Tensor? = nil

  init(dataType: DataType, shape: [Int], value: Tensor? = nil) {
    self.dataType = dataType
    self.shape = shape
    self.value = value
  }

  var rank: Int { shape.count }

  init(_ tensor: Tensor) {
    self.init(dataType: tensor.dataType, shape: tensor.shape, value: tensor)
  }
}

/// A kernel's answer to the planner for one set of input types.
struct KernelPlan: Sendable {
  /// The type of every output the kernel produces, in order.
  var outputs: [ValueType]
  /// Bytes of scratch memory `run` needs (im2col buffers and the like).
  var scratchBytes = 0
  /// Output 0 is input 0's elements seen with output 0's shape (Reshape, Squeeze, …): no copy, no run.
  var aliasesInput = false
}

/// One operator instance, built once at load from the node's attributes and opset. Kernels are
/// immutable and shared by every concurrent run of the model.
protocol Kernel: Sendable {
  /// The outputs' types for these inputs (nil where an optional input is absent), checking that
  /// the inputs fit the operator.
  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan

  /// Computes the outputs, which the planner has allocated with the types `plan` gave.
  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError)

  /// An estimate of the floating-point operations one run takes (multiply-adds count two).
  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int
}

extension Kernel {
  /// Data movement and shape arithmetic: no floating-point work.
  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int { 0 }
}

extension Array where Element == ValueType? {
  /// Input `index`, which the operator requires.
  func required(_ index: Int, _ name: String) throws(ModelError) -> ValueType {
    guard index < count, let value = self[index] else {
      throw ModelError(.invalidModel, "input \(index) (\(name)) is required")
    }
    return value
  }

  /// Input `index` if present.
  func optional(_ index: Int) -> ValueType? { index < count ? self[index] : nil }

  /// `legacy` (an attribute of older opsets) if given, else the elements of input `index`.
  func integers(_ legacy: [Int]?, orInput index: Int, _ name: String) throws(ModelError) -> [Int]? {
    if let legacy { return legacy }
    return try constantIntegers(index, name)
  }

  /// The elements of input `index` as integers, which must be known when planning.
  func constantIntegers(_ index: Int, _ name: String) throws(ModelError) -> [Int]? {
    guard let input = optional(index) else { return nil }
    guard let value = input.value else {
      throw ModelError.needsValue("input \(index) (\(name))")
    }
    return value.integers()
  }
}

/// Normalises a possibly negative `axis` for a tensor of `rank` dimensions.
func normalisedAxis(_ axis: Int, rank: Int, _ label: String = "axis") throws(ModelError) -> Int {
  let normalised = axis < 0 ? axis + rank : axis
  guard normalised >= 0, normalised < max(rank, 1) else {
    throw ModelError(.invalidInput, "\(label) \(axis) is out of range for rank \(rank)")
  }
  return normalised
}

/// Fails unless `type` is one of `allowed`.
func requireType(_ type: ValueType, _ allowed: [DataType], _ label: String) throws(ModelError) {
  guard allowed.contains(type.dataType) else {
    throw ModelError(
      .unsupported,
      "\(label) has element type \(type.dataType); supported: \(allowed.map(\.description).joined(separator: ", "))")
  }
}
