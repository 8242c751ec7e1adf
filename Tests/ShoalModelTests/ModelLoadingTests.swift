import Foundation
import ShoalModel
import ShoalProto
import ShoalTestSupport
import Testing

/// Bad models and bad inputs: each refused with an error that names what is wrong.
@Suite struct ModelLoadingTests {
  /// y = Relu(x · W + b) for x of shape [batch, 3].
  static func dense(opset: Int = 13) -> OnnxGraphBuilder {
    var graph = OnnxGraphBuilder(name: "dense", opset: opset)
    graph.input("x", .float32, [.symbolic("batch"), .fixed(3)])
    graph.initializer("W", Tensor(shape: [3, 2], elements: [Float(1), -1, 2, 0.5, -3, 1]))
    graph.initializer("b", Tensor(shape: [2], elements: [Float(0.25), -0.5]))
    graph.node("MatMul", ["x", "W"], ["xw"], name: "matmul")
    graph.node("Add", ["xw", "b"], ["z"], name: "bias")
    graph.node("Relu", ["z"], ["y"], name: "relu")
    graph.output("y", .float32, [.symbolic("batch"), .fixed(2)])
    return graph
  }

  @Test func runsAndReportsItsSignature() throws {
    let model = try Model(onnx: Self.dense().bytes())
    #expect(model.inputs.map(\.name) == ["x"])
    #expect(model.inputs[0].dimensions == [.symbolic("batch"), .fixed(3)])
    #expect(model.opsets[""] == 13)
    #expect(model.operatorCounts == ["MatMul": 1, "Add": 1, "Relu": 1])
    let y = try model.run(["x": Tensor(shape: [2, 3], elements: [Float(1), 2, 3, -1, 0, 1])])["y"]!
    // Row 1: [1+4-9, -1+1+3] + b = [-4+0.25, 3-0.5] → relu → [0, 2.5]; row 2: [-1-3, 1+1] + b → [0, 1.5].
    #expect(y.shape == [2, 2])
    #expect(y.elements(as: Float.self) == [0, 2.5, 0, 1.5])
  }

  @Test func truncatedAndForeignBytesAreNotModels() throws {
    let bytes = try Self.dense().bytes()
    let truncated = #expect(throws: ModelError.self) { try Model(onnx: Array(bytes.prefix(bytes.count / 2))) }
    #expect(truncated?.code == .invalidModel)
    let foreign = #expect(throws: ModelError.self) { try Model(onnx: Array("PK\u{3}\u{4} a zip file".utf8)) }
    #expect(foreign?.code == .invalidModel)
    #expect(foreign?.message.contains("not an ONNX model") == true)
  }

  /// Found by the fuzz target (Fuzz/crashes/onnx-oom-…): an initializer declaring about a billion
  /// elements over a few hundred bytes was allocated before its data was checked.
  @Test func anInitializerLargerThanItsDataIsRefusedBeforeItIsAllocated() throws {
    let bytes = try Data(
      contentsOf: URL(
        fileURLWithPath:
          "\(TestEnvironment.repositoryRoot)/Fuzz/crashes/onnx-oom-1be4fd393228c19867974e488dca4c918e46b051"))
    let error = #expect(throws: ModelError.self) { try Model(onnx: [UInt8](bytes)) }
    #expect(
      error?.code == .invalidModel && error?.message.contains("values in raw_data") == true,
      "\(String(describing: error))")
    var huge = Onnx.TensorProto()
    huge.name = "w"
    huge.dataType = 1
    huge.dims = [1 << 40, 1 << 40]
    let overflow = #expect(throws: ModelError.self) { try Tensor(onnx: huge) }
    #expect(overflow?.message.contains("too many elements") == true, "\(String(describing: overflow))")
    huge.dims = [1 << 20, 1 << 20]
    huge.dataLocation = .external
    let elsewhere = #expect(throws: ModelError.self) { try Tensor(onnx: huge) }
    #expect(elsewhere?.message.contains("stored externally") == true, "\(String(describing: elsewhere))")
  }

  @Test func aCycleIsNamed() throws {
    var graph = OnnxGraphBuilder(name: "cycle")
    graph.input("x", .float32, [.fixed(2)])
    graph.node("Add", ["x", "c"], ["a"], name: "first")
    graph.node("Relu", ["a"], ["c"], name: "second")
    graph.output("c", .float32, [.fixed(2)])
    let error = #expect(throws: ModelError.self) { try Model(onnx: graph.bytes()) }
    #expect(error?.code == .invalidModel)
    #expect(error?.message.contains("cycle") == true)
    #expect(error?.message.contains("'first'") == true)
  }

  @Test func aMissingInitializerIsNamed() throws {
    var graph = OnnxGraphBuilder(name: "missing")
    graph.input("x", .float32, [.fixed(2)])
    graph.node("Mul", ["x", "scale"], ["y"], name: "scaling")
    graph.output("y", .float32, [.fixed(2)])
    let error = #expect(throws: ModelError.self) { try Model(onnx: graph.bytes()) }
    #expect(error?.message.contains("node 'scaling' (Mul) reads 'scale'") == true)
  }

  @Test func everyUnsupportedOperatorAndAttributeIsListed() throws {
    var graph = OnnxGraphBuilder(name: "unsupported")
    graph.input("x", .float32, [.fixed(2)])
    graph.node("Relu", ["x"], ["a"], name: "relu", attributes: ["flavour": .string("spicy")])
    graph.node("FancyOp", ["a"], ["b"], name: "fancy")
    graph.node("OtherOp", ["b"], ["y"], name: "other")
    graph.output("y", .float32, [.fixed(2)])
    let error = #expect(throws: ModelError.self) { try Model(onnx: graph.bytes()) }
    #expect(error?.code == .unsupported)
    for part in ["operator FancyOp", "operator OtherOp", "'fancy'", "attribute 'flavour'"] {
      #expect(error?.message.contains(part) == true, "\(part) is not named in: \(error?.message ?? "")")
    }
  }

  @Test func inputsThatDoNotFitAreRefusedByName() throws {
    let model = try Model(onnx: Self.dense().bytes())
    let cases: [([String: Tensor], String)] = [
      ([:], "input 'x' is missing"),
      (["x": Tensor(shape: [2, 3], elements: [Int64](repeating: 1, count: 6))], "input 'x' must be FLOAT, not INT64"),
      (["x": Tensor(zeros: [2, 3, 1])], "input 'x' has rank 3"),
      (["x": Tensor(zeros: [2, 4])], "dimension 1 must be 3"),
      (["x": Tensor(zeros: [2, 3]), "z": Tensor(zeros: [1])], "the model has no input 'z'"),
    ]
    for (inputs, message) in cases {
      let error = #expect(throws: ModelError.self) { try model.run(inputs) }
      #expect(error?.code == .invalidInput)
      #expect(error?.message.contains(message) == true, "\(error?.message ?? "") does not say \(message)")
    }
    // A shape the graph's own operators cannot take names the node.
    var graph = OnnxGraphBuilder(name: "reshape")
    graph.input("x", .float32, [.unknown])
    graph.initializer("shape", Tensor(shape: [2], elements: [Int64(3), -1]))
    graph.node("Reshape", ["x", "shape"], ["y"], name: "into-rows")
    graph.output("y", .float32, [.unknown, .unknown])
    let reshape = try Model(onnx: graph.bytes())
    #expect(try reshape.run(["x": Tensor(zeros: [6])])["y"]?.shape == [3, 2])
    let error = #expect(throws: ModelError.self) { try reshape.run(["x": Tensor(zeros: [7])]) }
    #expect(error?.message.contains("node 'into-rows' (Reshape)") == true)
  }

  @Test func nanInputsComeOutAsNaN() throws {
    let model = try Model(onnx: Self.dense().bytes())
    let y = try model.run(["x": Tensor(shape: [1, 3], elements: [Float.nan, 0, 0])])["y"]!
    #expect(y.elements(as: Float.self).allSatisfy { $0.isNaN })
    var graph = OnnxGraphBuilder(name: "softmax")
    graph.input("x", .float32, [.fixed(1), .fixed(3)])
    graph.node("Softmax", ["x"], ["s"])
    graph.node("MaxPool", ["x3"], ["p"], attributes: ["kernel_shape": .ints([2])])
    graph.node("Unsqueeze", ["x", "axes"], ["x3"])
    graph.initializer("axes", Tensor(shape: [1], elements: [Int64(0)]))
    graph.output("s", .float32, [.fixed(1), .fixed(3)])
    graph.output("p", .float32, [.fixed(1), .fixed(1), .fixed(2)])
    let outputs = try Model(onnx: graph.bytes()).run(["x": Tensor(shape: [1, 3], elements: [Float(1), .nan, 2])])
    #expect(outputs["s"]!.elements(as: Float.self).allSatisfy { $0.isNaN })
    #expect(outputs["p"]!.elements(as: Float.self).allSatisfy { $0.isNaN })
  }

  /// A convolution with a fused ReLU (on AVX-512, the panel kernel, whose ReLU is a vector
  /// maximum): a NaN input makes its position's outputs NaN, for every feature, and no others.
  @Test func aNaNInputStaysNaNThroughConvAndRelu() throws {
    var graph = OnnxGraphBuilder(name: "conv-relu")
    graph.input("x", .float32, [.fixed(1), .fixed(2), .fixed(3), .fixed(3)])
    graph.initializer("w", Tensor(shape: [40, 2, 1, 1], elements: (0..<80).map { Float($0 % 7) - 3 }))
    graph.initializer("b", Tensor(shape: [40], elements: (0..<40).map { Float($0) }))
    graph.node("Conv", ["x", "w", "b"], ["c"])
    graph.node("Relu", ["c"], ["y"])
    graph.output("y", .float32, [.fixed(1), .fixed(40), .fixed(3), .fixed(3)])
    var x = [Float](repeating: 1, count: 18)
    x[4] = .nan
    let y = try Model(onnx: graph.bytes()).run(["x": Tensor(shape: [1, 2, 3, 3], elements: x)])["y"]!
    for (index, value) in y.elements(as: Float.self).enumerated() {
      #expect(value.isNaN == (index % 9 == 4), "output \(index)")
    }
  }

  /// A depthwise 3×3 convolution with a bias and a ReLU, which its kernel applies as it writes:
  /// a NaN input makes exactly the outputs whose windows hold it NaN, in its channel only.
  @Test func aNaNInputStaysNaNThroughDepthwiseConvAndRelu() throws {
    var graph = OnnxGraphBuilder(name: "depthwise-relu")
    graph.input("x", .float32, [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])
    graph.initializer("w", Tensor(shape: [2, 1, 3, 3], elements: (0..<18).map { Float($0 % 5) - 2 }))
    graph.initializer("b", Tensor(shape: [2], elements: [Float(-1), 1]))
    graph.node("Conv", ["x", "w", "b"], ["c"], attributes: ["group": .int(2), "pads": .ints([1, 1, 1, 1])])
    graph.node("Relu", ["c"], ["y"])
    graph.output("y", .float32, [.fixed(1), .fixed(2), .fixed(5), .fixed(5)])
    var x = [Float](repeating: 1, count: 50)
    x[12] = .nan  // channel 0, row 2, column 2
    let y = try Model(onnx: graph.bytes()).run(["x": Tensor(shape: [1, 2, 5, 5], elements: x)])["y"]!
    for (index, value) in y.elements(as: Float.self).enumerated() {
      let (row, column) = ((index % 25) / 5, index % 5)
      let inWindow = index < 25 && (1...3).contains(row) && (1...3).contains(column)
      #expect(value.isNaN == inWindow, "output \(index)")
    }
  }

  /// Max pooling, 8 outputs at a time inside the row and one at a time at its borders: a NaN
  /// wins every window that holds it, and every other output is its window's maximum.
  @Test(arguments: [1, 2])
  func maxPoolingLetsNaNWinItsWindowsOnly(stride: Int) throws {
    let (height, width) = (5, 41)
    var generator = SplitMix64(seed: 7)
    var values = (0..<(height * width)).map { _ in Float.random(in: -3...3, using: &generator) }
    values[2 * width + 17] = .nan
    values[4 * width + 40] = .nan
    var graph = OnnxGraphBuilder(name: "max-pool")
    graph.input("x", .float32, [.fixed(1), .fixed(1), .fixed(height), .fixed(width)])
    graph.node(
      "MaxPool", ["x"], ["y"],
      attributes: [
        "kernel_shape": .ints([3, 3]), "strides": .ints([stride, stride]), "pads": .ints([1, 1, 1, 1]),
      ])
    graph.output("y", .float32, nil)
    let y = try Model(onnx: graph.bytes()).run(["x": Tensor(shape: [1, 1, height, width], elements: values)])["y"]!
    let (outH, outW) = ((height - 1) / stride + 1, (width - 1) / stride + 1)
    #expect(y.shape == [1, 1, outH, outW])
    let pooled = y.elements(as: Float.self)
    for oh in 0..<outH {
      for ow in 0..<outW {
        var window: [Float] = []
        for ih in max(0, oh * stride - 1)...min(height - 1, oh * stride + 1) {
          for iw in max(0, ow * stride - 1)...min(width - 1, ow * stride + 1) { window.append(values[ih * width + iw]) }
        }
        let value = pooled[oh * outW + ow]
        if window.contains(where: \.isNaN) {
          #expect(value.isNaN, "output (\(oh), \(ow))")
        } else {
          #expect(value == window.max()!, "output (\(oh), \(ow))")
        }
      }
    }
  }
}
