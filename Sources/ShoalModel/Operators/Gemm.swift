import COpenBLAS

/// General matrix multiplication through OpenBLAS.
enum Blas {
  /// `c = alpha · op(a) · op(b) + beta · c`, row-major, `op` transposing when asked; split by
  /// columns of `c` across the cores.
  ///
  /// A single row or column of `c` (a fully connected layer at batch 1) is a matrix-vector
  /// product: `sgemv` streams the matrix once, where `sgemm` would first copy it into packed
  /// panels (4× slower on a 1000 × 2048 layer here).
  static func gemm<T: TensorElement>(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
    _ a: UnsafePointer<T>, lda: Int, _ b: UnsafePointer<T>, ldb: Int, beta: Double, _ c: UnsafeMutablePointer<T>,
    ldc: Int
  ) {
    if m == 1 && k > 1 {
      // c[1 × n] = a · op(b): rows of b (transB) or its columns, times the vector a.
      let stride = transA ? lda : 1
      Parallel.forEachRange(n, costPerItem: k) { columns in
        gemv(
          transpose: !transB, rows: transB ? columns.count : k, columns: transB ? k : columns.count, alpha: alpha,
          b + (transB ? columns.lowerBound * ldb : columns.lowerBound), ld: ldb, a, stride: stride, beta: beta,
          c + columns.lowerBound, stride: 1)
      }
      return
    }
    if n == 1 && k > 1 {
      // c[m × 1] = op(a) · b: the same with the roles swapped, written down a column of c.
      let stride = transB ? 1 : ldb
      Parallel.forEachRange(m, costPerItem: k) { rows in
        gemv(
          transpose: transA, rows: transA ? k : rows.count, columns: transA ? rows.count : k, alpha: alpha,
          a + (transA ? rows.lowerBound : rows.lowerBound * lda), ld: lda, b, stride: stride, beta: beta,
          c + rows.lowerBound * ldc, stride: ldc)
      }
      return
    }
    Parallel.forEachRange(n, costPerItem: m * k) { columns in
      serialGemm(
        transA: transA, transB: transB, m: m, n: columns.count, k: k, alpha: alpha, a, lda: lda,
        b + (transB ? columns.lowerBound * ldb : columns.lowerBound), ldb: ldb, beta: beta, c + columns.lowerBound,
        ldc: ldc)
    }
  }

  /// `y = alpha · op(matrix) · x + beta · y` on the calling thread, `matrix` [rows × columns]
  /// row-major with leading dimension `ld`.
  private static func gemv<T: TensorElement>(
    transpose: Bool, rows: Int, columns: Int, alpha: Double, _ matrix: UnsafePointer<T>, ld: Int,
    _ x: UnsafePointer<T>, stride incX: Int, beta: Double, _ y: UnsafeMutablePointer<T>, stride incY: Int
  ) {
    guard rows > 0, columns > 0 else { return }
    let trans = transpose ? CblasTrans : CblasNoTrans
    let count = transpose ? columns : rows
    if T.self == Float.self {
      let y = UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self)
      // beta 0 means y is not read; scaling it by 0 would keep a NaN left in a reused buffer.
      if beta == 0 { for index in 0..<count { y[index * incY] = 0 } }
      cblas_sgemv(
        CblasRowMajor, trans, Int32(rows), Int32(columns), Float(alpha),
        UnsafeRawPointer(matrix).assumingMemoryBound(to: Float.self), Int32(ld),
        UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), Int32(incX), Float(beta), y, Int32(incY))
    } else {
      let y = UnsafeMutableRawPointer(y).assumingMemoryBound(to: Double.self)
      if beta == 0 { for index in 0..<count { y[index * incY] = 0 } }
      cblas_dgemv(
        CblasRowMajor, trans, Int32(rows), Int32(columns), alpha,
        UnsafeRawPointer(matrix).assumingMemoryBound(to: Double.self), Int32(ld),
        UnsafeRawPointer(x).assumingMemoryBound(to: Double.self), Int32(incX), beta, y, Int32(incY))
    }
  }

  /// `gemm` on the calling thread.
  static func serialGemm<T: TensorElement>(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
    _ a: UnsafePointer<T>, lda: Int, _ b: UnsafePointer<T>, ldb: Int, beta: Double, _ c: UnsafeMutablePointer<T>,
    ldc: Int
  ) {
    guard m > 0, n > 0 else { return }
    let ta = transA ? CblasTrans : CblasNoTrans
    let tb = transB ? CblasTrans : CblasNoTrans
    if T.self == Float.self {
      cblas_sgemm(
        CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), Float(alpha),
        UnsafeRawPointer(a).assumingMemoryBound(to: Float.self),
        Int32(lda), UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), Int32(ldb), Float(beta),
        UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), Int32(ldc))
    } else {
      cblas_dgemm(
        CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha,
        UnsafeRawPointer(a).assumingMemoryBound(to: Double.self),
        Int32(lda), UnsafeRawPointer(b).assumingMemoryBound(to: Double.self), Int32(ldb), beta,
        UnsafeMutableRawPointer(c).assumingMemoryBound(to: Double.self), Int32(ldc))
    }
  }
}

/// Gemm: `Y = alpha · A' · B' + beta · C`, with an activation fused in at load.
struct GemmKernel: Kernel {
  var alpha: Float = 1
  var beta: Float = 1
  var transA = false
  var transB = false
  var activation: UnaryKernel.Function? = nil

  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let a = try inputs.required(0, "A")
    let b = try inputs.required(1, "B")
    try requireType(a, [.float32, .float64], "A")
    guard a.rank == 2, b.rank == 2, b.dataType == a.dataType else {
      throw ModelError(.invalidInput, "A and B must be matrices of one type; got \(a.shape) and \(b.shape)")
    }
    let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
    let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
    guard k == kb else {
      throw ModelError(.invalidInput, "A \(a.shape) and B \(b.shape) do not multiply (K \(k) ≠ \(kb))")
    }
    if let c = inputs.optional(2) {
      guard try Broadcast.shape([c.shape, [m, n]]) == [m, n] else {
        throw ModelError(.invalidInput, "C \(c.shape) does not broadcast to [\(m), \(n)]")
      }
    }
    return KernelPlan(outputs: [ValueType(dataType: a.dataType, shape: [m, n])])
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    if outputs[0].dataType == .float32 {
      compute(Float.self, inputs, outputs[0])
    } else {
      compute(Double.self, inputs, outputs[0])
    }
  }

  private func compute<T: TensorElement>(_ type: T.Type, _ inputs: [Tensor?], _ y: Tensor) {
    let a = inputs[0]!
    let b = inputs[1]!
    let (m, n) = (y.shape[0], y.shape[1])
    let k = transA ? a.shape[0] : a.shape[1]
    var beta = 0.0
    if let c = inputs.count > 2 ? inputs[2] : nil, self.beta != 0 {
      Broadcast.expand(c, to: y)
      beta = Double(self.beta)
    }
    Blas.gemm(
      transA: transA, transB: transB, m: m, n: n, k: k, alpha: Double(alpha), a.pointer(as: T.self), lda: a.shape[1],
      b.pointer(as: T.self), ldb: b.shape[1], beta: beta, y.mutablePointer(as: T.self), ldc: n)
    if let activation { Activation.apply(activation, to: y) }
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    guard let a = inputs[0] else { return 0 }
    return 2 * outputs[0].shape.elementCount * (transA ? a.shape[0] : a.shape.last ?? 1)
  }

  static let builders: [String: OperatorBuilder] = [
    "Gemm": { context in
      let attributes = context.attributes
      if context.opset < 7 { attributes.ignore("broadcast") }
      return GemmKernel(
        alpha: attributes.float("alpha", default: 1), beta: attributes.float("beta", default: 1),
        transA: attributes.int("transA", default: 0) != 0, transB: attributes.int("transB", default: 0) != 0)
    }
  ]
}

/// An activation applied in place to a kernel's output (fused Conv/Gemm + Relu and the like).
enum Activation {
  static func apply(_ function: UnaryKernel.Function, to tensor: Tensor) {
    switch tensor.dataType {
    case .float32:
      let pointer = tensor.mutablePointer(as: Float.self)
      UnaryKernel.apply(function, pointer, pointer, tensor.count)
    case .float64:
      let pointer = tensor.mutablePointer(as: Double.self)
      UnaryKernel.apply(function, pointer, pointer, tensor.count)
    default: break
    }
  }
}

/// MatMul with numpy's semantics: batched, broadcast over leading axes, vectors promoted.
struct MatMulKernel: Kernel {
  func plan(_ inputs: [ValueType?]) throws(ModelError) -> KernelPlan {
    let a = try inputs.required(0, "A")
    let b = try inputs.required(1, "B")
    try requireType(a, [.float32, .float64], "A")
    guard a.dataType == b.dataType, a.rank >= 1, b.rank >= 1 else {
      throw ModelError(.invalidInput, "A \(a.shape) and B \(b.shape) must be tensors of one type")
    }
    let (aMatrix, bMatrix) = (Self.matrixShape(a.shape, isA: true), Self.matrixShape(b.shape, isA: false))
    guard aMatrix.last! == bMatrix[bMatrix.count - 2] else {
      throw ModelError(.invalidInput, "A \(a.shape) and B \(b.shape) do not multiply")
    }
    let batch = try Broadcast.shape([Array(aMatrix.dropLast(2)), Array(bMatrix.dropLast(2))])
    var shape = batch
    if a.rank > 1 { shape.append(aMatrix[aMatrix.count - 2]) }
    if b.rank > 1 { shape.append(bMatrix.last!) }
    return KernelPlan(outputs: [ValueType(dataType: a.dataType, shape: shape)])
  }

  private static func matrixShape(_ shape: [Int], isA: Bool) -> [Int] {
    shape.count == 1 ? (isA ? [1, shape[0]] : [shape[0], 1]) : shape
  }

  func run(_ inputs: [Tensor?], _ outputs: [Tensor], scratch: UnsafeMutableRawPointer?) throws(ModelError) {
    if outputs[0].dataType == .float32 {
      compute(Float.self, inputs[0]!, inputs[1]!, outputs[0])
    } else {
      compute(Double.self, inputs[0]!, inputs[1]!, outputs[0])
    }
  }

  private func compute<T: TensorElement>(_ type: T.Type, _ a: Tensor, _ b: Tensor, _ y: Tensor) {
    let aShape = Self.matrixShape(a.shape, isA: true)
    let bShape = Self.matrixShape(b.shape, isA: false)
    let (m, k, n) = (aShape[aShape.count - 2], aShape.last!, bShape.last!)
    let aBatch = Array(aShape.dropLast(2))
    let bBatch = Array(bShape.dropLast(2))
    let pa = a.pointer(as: T.self)
    let pb = b.pointer(as: T.self)
    let py = y.mutablePointer(as: T.self)
    if bBatch.elementCount == 1 {
      // Every batch of A times one B: a single multiplication of (batch · M) × K rows.
      let rows = aBatch.elementCount * m
      Blas.gemm(
        transA: false, transB: false, m: rows, n: n, k: k, alpha: 1, pa, lda: k, pb, ldb: n, beta: 0, py, ldc: n)
      if aBatch.elementCount < y.count / max(m * n, 1) {
        // A was broadcast over B's (size-1) batch: repeat the product.
        let block = rows * n
        for copy in 1..<(y.count / block) { (py + copy * block).update(from: py, count: block) }
      }
      return
    }
    let batch = (try? Broadcast.shape([aBatch, bBatch])) ?? []
    Broadcast.forEachRun(aBatch, bBatch, batch) { aOffset, bOffset, outOffset, count, aStep, bStep in
      for i in 0..<count {
        Blas.gemm(
          transA: false, transB: false, m: m, n: n, k: k, alpha: 1, pa + (aOffset + i * aStep) * m * k, lda: k,
          pb + (bOffset + i * bStep) * k * n, ldb: n, beta: 0, py + (outOffset + i) * m * n, ldc: n)
      }
    }
  }

  func flops(_ inputs: [ValueType?], _ outputs: [ValueType]) -> Int {
    guard let a = inputs[0] else { return 0 }
    return 2 * outputs[0].shape.elementCount * (a.shape.last ?? 1)
  }

  static let builders: [String: OperatorBuilder] = ["MatMul": { _ in MatMulKernel() }]
}
