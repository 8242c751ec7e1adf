/// A dense, row-major tensor whose elements are contiguous and 64-byte aligned.
///
/// Tensors are values: once made, their elements do not change. Copies share the elements (a
/// reshaped tensor too). The executor writes only into tensors it has just allocated, before
/// anyone else sees them.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
  /// The element type.
  public let dataType: DataType
  /// The size of each dimension; `[]` is a scalar.
  public let shape: [Int]
  let buffer: TensorBuffer

  /// A tensor of zeros (false for `.bool`).
  public init(zeros shape: [Int], dataType: DataType = .float32) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.dataType = dataType
    self.shape = shape
    buffer = TensorBuffer(byteCount: shape.elementCount * dataType.byteSize)
  }

  /// A tensor whose elements are not set: for a kernel's output, which it writes whole.
  init(uninitialized shape: [Int], dataType: DataType) {
    self.dataType = dataType
    self.shape = shape
    buffer = TensorBuffer(byteCount: shape.elementCount * dataType.byteSize, zeroed: false)
  }

  /// A tensor holding `elements` in row-major order.
  ///
  /// - Precondition: `elements.count` is the product of `shape`.
  public init<Element: TensorElement>(shape: [Int], elements: [Element]) {
    precondition(
      shape.elementCount == elements.count, "\(elements.count) elements do not fill shape \(shape)")
    self.init(zeros: shape, dataType: Element.dataType)
    elements.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
  }

  /// A scalar (rank 0) tensor.
  public init<Element: TensorElement>(scalar: Element) {
    self.init(shape: [], elements: [scalar])
  }

  init(dataType: DataType, shape: [Int], buffer: TensorBuffer) {
    self.dataType = dataType
    self.shape = shape
    self.buffer = buffer
  }

  /// The number of elements.
  public var count: Int { shape.elementCount }

  /// The number of dimensions.
  public var rank: Int { shape.count }

  /// The size of the elements in bytes.
  public var byteCount: Int { count * dataType.byteSize }

  /// The elements in row-major order.
  ///
  /// - Precondition: `Element` is the tensor's element type.
  public func elements<Element: TensorElement>(as type: Element.Type = Element.self) -> [Element] {
    withUnsafeBufferPointer(as: type) { Array($0) }
  }

  /// Calls `body` with the elements in row-major order.
  ///
  /// - Precondition: `Element` is the tensor's element type.
  public func withUnsafeBufferPointer<Element: TensorElement, Result>(
    as type: Element.Type, _ body: (UnsafeBufferPointer<Element>) throws -> Result
  ) rethrows -> Result {
    precondition(Element.dataType == dataType, "a \(dataType) tensor read as \(Element.dataType)")
    return try body(UnsafeBufferPointer(start: buffer.pointer.assumingMemoryBound(to: type), count: count))
  }

  /// Calls `body` with the raw bytes of the elements.
  public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
    try body(UnsafeRawBufferPointer(start: buffer.pointer, count: byteCount))
  }

  /// The same elements seen with another shape of the same element count.
  public func reshaped(_ shape: [Int]) -> Tensor {
    precondition(shape.elementCount == count, "cannot reshape \(self.shape) to \(shape)")
    return Tensor(dataType: dataType, shape: shape, buffer: buffer)
  }

  /// A copy whose elements are not shared with this tensor.
  public func copied() -> Tensor {
    let copy = Tensor(zeros: shape, dataType: dataType)
    copy.buffer.pointer.copyMemory(from: buffer.pointer, byteCount: byteCount)
    return copy
  }

  /// The elements for writing; only for a tensor its maker has not handed out yet.
  func mutablePointer<Element: TensorElement>(as type: Element.Type) -> UnsafeMutablePointer<Element> {
    precondition(Element.dataType == dataType, "a \(dataType) tensor written as \(Element.dataType)")
    return buffer.pointer.assumingMemoryBound(to: type)
  }

  /// The elements for reading, as `Element`.
  func pointer<Element: TensorElement>(as type: Element.Type) -> UnsafePointer<Element> {
    precondition(Element.dataType == dataType, "a \(dataType) tensor read as \(Element.dataType)")
    return UnsafePointer(buffer.pointer.assumingMemoryBound(to: type))
  }

  /// The elements as 64-bit integers, for the shape-like inputs operators take (Reshape's shape,
  /// Slice's starts, …).
  func integers() -> [Int] {
    switch dataType {
    case .int64: elements(as: Int64.self).map { Int($0) }
    case .int32: elements(as: Int32.self).map { Int($0) }
    case .int8: elements(as: Int8.self).map { Int($0) }
    case .uint8: elements(as: UInt8.self).map { Int($0) }
    case .bool: elements(as: Bool.self).map { $0 ? 1 : 0 }
    case .float32: elements(as: Float.self).map { Int($0) }
    case .float64: elements(as: Double.self).map { Int($0) }
    }
  }

  /// The elements converted to Double, whatever the element type.
  public func doubles() -> [Double] {
    switch dataType {
    case .float32: elements(as: Float.self).map { Double($0) }
    case .float64: elements(as: Double.self)
    case .int64: elements(as: Int64.self).map { Double($0) }
    case .int32: elements(as: Int32.self).map { Double($0) }
    case .int8: elements(as: Int8.self).map { Double($0) }
    case .uint8: elements(as: UInt8.self).map { Double($0) }
    case .bool: elements(as: Bool.self).map { $0 ? 1 : 0 }
    }
  }

  public var description: String { "Tensor<\(dataType)>\(shape)" }
}

extension Array where Element == Int {
  /// The number of elements of a tensor of this shape.
  var elementCount: Int { reduce(1, *) }

  /// Steps this multi-dimensional index to the next element of a tensor of `shape` in row-major
  /// order (the last axis fastest), wrapping to all zeros after the last element.
  mutating func advance(within shape: [Int]) {
    var axis = count - 1
    while axis >= 0 {
      self[axis] += 1
      if self[axis] < shape[axis] { return }
      self[axis] = 0
      axis -= 1
    }
  }

  /// Row-major strides, in elements, for a tensor of this shape.
  var strides: [Int] {
    var strides = [Int](repeating: 1, count: count)
    var stride = 1
    for axis in indices.reversed() {
      strides[axis] = stride
      stride *= self[axis]
    }
    return strides
  }
}
