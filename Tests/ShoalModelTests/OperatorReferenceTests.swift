import Foundation
import ShoalModel
import ShoalTestSupport
import Testing

/// Single-operator graphs, especially the attribute and opset variants the conformance data does
/// not reach, run by Shoal and by onnxruntime on the same random inputs.
@Suite struct OperatorReferenceTests {
  struct Case {
    var name: String
    var opset = 13
    var inputs: [(String, Tensor)]
    var initializers: [(String, Tensor)] = []
    var nodes: [(op: String, inputs: [String], outputs: [String], attributes: [String: OnnxAttribute])]
    var outputs: [String] = ["y"]
    /// The largest difference allowed, relative to max(1, |onnxruntime's value|).
    var tolerance = 1e-5

    func model() throws -> [UInt8] {
      var graph = OnnxGraphBuilder(name: name, opset: opset)
      for (input, tensor) in inputs {
        graph.input(input, tensor.dataType, tensor.shape.map { .fixed($0) })
      }
      for (name, tensor) in initializers { graph.initializer(name, tensor) }
      for node in nodes { graph.node(node.op, node.inputs, node.outputs, attributes: node.attributes) }
      for output in outputs { graph.output(output, .float32, nil) }
      return try graph.bytes()
    }
  }

  static func random(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -2...2) -> Tensor {
    var generator = SplitMix64(seed: seed)
    return Tensor(
      shape: shape, elements: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &generator) })
  }

  static func ints(_ values: [Int]) -> Tensor { Tensor(shape: [values.count], elements: values.map { Int64($0) }) }
  static func floats(_ values: [Float]) -> Tensor { Tensor(shape: [values.count], elements: values) }

  static func single(
    _ name: String, _ op: String, opset: Int = 13, _ inputs: [(String, Tensor)], constants: [(String, Tensor)] = [],
    inputNames: [String]? = nil, attributes: [String: OnnxAttribute] = [:]
  ) -> Case {
    Case(
      name: name, opset: opset, inputs: inputs, initializers: constants,
      nodes: [(op, inputNames ?? (inputs.map(\.0) + constants.map(\.0)), ["y"], attributes)])
  }

  static var cases: [Case] {
    let image = random([2, 3, 5, 6], seed: 1)
    return [
      single(
        "resize-nearest-asymmetric-floor", "Resize", [("x", image)],
        constants: [("roi", floats([])), ("scales", floats([1, 1, 2, 1.5]))], inputNames: ["x", "roi", "scales"],
        attributes: [
          "mode": .string("nearest"), "coordinate_transformation_mode": .string("asymmetric"),
          "nearest_mode": .string("floor"),
        ]),
      single(
        "resize-nearest-half-pixel", "Resize", [("x", image)],
        constants: [("roi", floats([])), ("scales", floats([1, 1, 1.7, 0.6]))], inputNames: ["x", "roi", "scales"]),
      single(
        "resize-linear-half-pixel", "Resize", [("x", image)],
        constants: [("roi", floats([])), ("scales", floats([1, 1, 2, 2]))], inputNames: ["x", "roi", "scales"],
        attributes: ["mode": .string("linear")]),
      single(
        "resize-linear-align-corners-sizes", "Resize", [("x", image)],
        constants: [("roi", floats([])), ("scales", floats([])), ("sizes", ints([2, 3, 9, 4]))],
        inputNames: ["x", "roi", "scales", "sizes"],
        attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")]),
      single(
        "resize-linear-pytorch-half-pixel", "Resize", [("x", image)],
        constants: [("roi", floats([])), ("scales", floats([1, 1, 0.5, 2.5]))], inputNames: ["x", "roi", "scales"],
        attributes: ["mode": .string("linear"), "coordinate_transformation_mode": .string("pytorch_half_pixel")]),
      single(
        "upsample-opset9", "Upsample", opset: 9, [("x", image)], constants: [("scales", floats([1, 1, 2, 3]))],
        attributes: ["mode": .string("nearest")]),
      single(
        "lrn", "LRN", [("x", image)],
        attributes: ["size": .int(3), "alpha": .float(0.01), "beta": .float(0.6), "bias": .float(1.5)]),
      single("global-max-pool", "GlobalMaxPool", [("x", image)]),
      single(
        "average-pool-ceil-include-pad", "AveragePool", [("x", image)],
        attributes: [
          "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]),
          "ceil_mode": .int(1), "count_include_pad": .int(1),
        ]),
      single(
        "max-pool-dilated", "MaxPool", [("x", image)],
        attributes: ["kernel_shape": .ints([2, 2]), "dilations": .ints([2, 1]), "pads": .ints([1, 0, 1, 1])]),
      single(
        "conv-transpose-strided-output-padding", "ConvTranspose", [("x", random([1, 4, 3, 3], seed: 2))],
        constants: [("w", random([4, 2, 3, 3], seed: 3)), ("b", random([4], seed: 4))],
        attributes: [
          "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "output_padding": .ints([1, 0]), "group": .int(2),
        ]),
      single(
        "conv-same-lower-strided", "Conv", [("x", image)], constants: [("w", random([4, 3, 3, 2], seed: 5))],
        attributes: ["auto_pad": .string("SAME_LOWER"), "strides": .ints([2, 1])]),
      single(
        "conv-dilated-padded", "Conv", [("x", image)], constants: [("w", random([4, 3, 3, 2], seed: 5))],
        attributes: ["pads": .ints([2, 1, 1, 0]), "dilations": .ints([1, 2])]),
      single(
        "conv-depthwise-strided", "Conv", [("x", random([1, 6, 9, 8], seed: 6))],
        constants: [("w", random([6, 1, 3, 3], seed: 7))],
        attributes: ["group": .int(6), "strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 1])]),
      single(
        "pad-reflect", "Pad", [("x", image)], constants: [("pads", ints([0, 0, 2, 1, 0, 0, 1, 3]))],
        attributes: ["mode": .string("reflect")]),
      single(
        "pad-edge-negative", "Pad", [("x", image)], constants: [("pads", ints([0, 0, -1, 2, 0, 0, 1, -2]))],
        attributes: ["mode": .string("edge")]),
      single(
        "pad-constant-value", "Pad", [("x", image)],
        constants: [("pads", ints([0, 1, 1, 0, 0, 0, 2, 1])), ("value", Tensor(scalar: Float(7)))]),
      single(
        "slice-negative-steps", "Slice", [("x", image)],
        constants: [
          ("starts", ints([-1, 4])), ("ends", ints([-100, 0])), ("axes", ints([3, 2])), ("steps", ints([-2, -1])),
        ]),
      single(
        "gather-negative-axis", "Gather", [("x", image)],
        constants: [("i", Tensor(shape: [2, 2], elements: [Int64(-1), 0, 2, -3]))],
        attributes: ["axis": .int(-1)]),
      single("transpose", "Transpose", [("x", image)], attributes: ["perm": .ints([3, 1, 0, 2])]),
      single("tile", "Tile", [("x", random([2, 3], seed: 8))], constants: [("r", ints([3, 2]))]),
      single("expand", "Expand", [("x", random([3, 1], seed: 9))], constants: [("s", ints([2, 1, 4]))]),
      Case(
        name: "split-sizes", inputs: [("x", image)], initializers: [("split", ints([2, 4]))],
        nodes: [("Split", ["x", "split"], ["y", "z"], ["axis": .int(3)])], outputs: ["y", "z"]),
      // Copies larger than the 64 KiB pieces the cores share out (145 KiB and 73 KiB a channel
      // block per image), pieces ending inside a copy and at its end, and Split the same way.
      Case(
        name: "concat-split-in-pieces",
        inputs: [("a", random([2, 40, 30, 31], seed: 154)), ("b", random([2, 20, 30, 31], seed: 155))],
        initializers: [("split", ints([25, 35]))],
        nodes: [
          ("Concat", ["a", "b"], ["c"], ["axis": .int(1)]),
          ("Split", ["c", "split"], ["y", "z"], ["axis": .int(1)]),
        ],
        outputs: ["c", "y", "z"]),
      single("hardmax", "Hardmax", [("x", image)], attributes: ["axis": .int(1)]),
      single("softmax-opset11-flattens", "Softmax", opset: 11, [("x", image)], attributes: ["axis": .int(2)]),
      single("log-softmax-axis", "LogSoftmax", [("x", image)], attributes: ["axis": .int(2)]),
      single("reduce-max-keepdims", "ReduceMax", [("x", image)], attributes: ["axes": .ints([1, 3])]),
      single("reduce-l2", "ReduceL2", [("x", image)], attributes: ["axes": .ints([2]), "keepdims": .int(0)]),
      single("reduce-log-sum-exp", "ReduceLogSumExp", [("x", image)], attributes: ["axes": .ints([0, 2])]),
      single("reduce-sum-axes-input", "ReduceSum", [("x", image)], constants: [("axes", ints([-1]))]),
      single("reduce-mean-all", "ReduceMean", [("x", image)], attributes: ["keepdims": .int(0)]),
      single(
        "clip-inputs", "Clip", [("x", image)],
        constants: [("lo", Tensor(scalar: Float(-0.5))), ("hi", Tensor(scalar: Float(1)))]),
      single(
        "instance-normalization", "InstanceNormalization", [("x", image)],
        constants: [("s", random([3], seed: 10)), ("b", random([3], seed: 11))]),
      single(
        "batch-normalization", "BatchNormalization", [("x", image)],
        constants: [
          ("s", random([3], seed: 12)), ("b", random([3], seed: 13)), ("m", random([3], seed: 14)),
          ("v", random([3], seed: 15, range: 0.5...2)),
        ]),
      single(
        "gemm-transposed-broadcast-c", "Gemm", [("a", random([4, 3], seed: 16))],
        constants: [("b", random([5, 4], seed: 17)), ("c", random([5], seed: 18))],
        attributes: ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5), "beta": .float(2)]),
      single(
        "matmul-batched-broadcast", "MatMul", [("a", random([2, 1, 3, 4], seed: 19))],
        constants: [("b", random([3, 4, 5], seed: 20))]),
      single(
        "matmul-vector", "MatMul", [("a", random([4], seed: 21))], constants: [("b", random([2, 4, 3], seed: 22))]),
      single("prelu-broadcast", "PRelu", [("x", image)], constants: [("slope", random([3, 1, 1], seed: 23))]),
      single(
        "pow", "Pow", [("x", random([3, 4], seed: 24, range: 0.1...2))], constants: [("e", random([4], seed: 25))]),
      single(
        "mean-variadic", "Mean", [("a", random([3, 1], seed: 26)), ("b", random([1, 4], seed: 27))],
        constants: [("c", random([4], seed: 28))]),
      single("div-broadcast", "Div", [("a", image)], constants: [("b", random([6], seed: 29, range: 0.5...2))]),
      single("elu-selu-hardsigmoid", "Elu", [("x", image)], attributes: ["alpha": .float(0.7)]),
      single("selu", "Selu", [("x", image)]),
      single("hard-sigmoid", "HardSigmoid", [("x", image)], attributes: ["alpha": .float(0.3)]),
      single("erf", "Erf", [("x", image)]),
      Case(
        name: "where-equal-cast", inputs: [("a", image), ("b", random([6], seed: 30))],
        nodes: [
          ("Less", ["a", "b"], ["mask"], [:]), ("Where", ["mask", "a", "b"], ["w"], [:]),
          ("Cast", ["mask"], ["m"], ["to": .int(1)]), ("Add", ["w", "m"], ["y"], [:]),
        ]),
      Case(
        name: "flatten-squeeze-unsqueeze-concat", inputs: [("x", random([2, 1, 3, 4], seed: 31))],
        initializers: [("axes", ints([1])), ("at", ints([0, 3]))],
        nodes: [
          ("Squeeze", ["x", "axes"], ["s"], [:]), ("Unsqueeze", ["s", "at"], ["u"], [:]),
          ("Flatten", ["u"], ["f"], ["axis": .int(2)]), ("Concat", ["f", "f"], ["y"], ["axis": .int(-1)]),
        ]),
    ] + largeCases
  }

  /// Shapes large enough to be split across the cores, with the activations the loader fuses
  /// (small weights where long sums would otherwise differ in float32 rounding alone).
  static var largeCases: [Case] {
    [
      Case(
        name: "conv-depthwise-3x3-multiplier-bias-relu6", inputs: [("x", random([1, 16, 40, 40], seed: 40))],
        initializers: [
          ("w", random([32, 1, 3, 3], seed: 41)), ("b", random([32], seed: 42)), ("lo", Tensor(scalar: Float(0))),
          ("hi", Tensor(scalar: Float(6))),
        ],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["group": .int(16), "pads": .ints([1, 1, 1, 1])]),
          ("Clip", ["c", "lo", "hi"], ["y"], [:]),
        ]),
      // Bias and ReLU applied by the depthwise kernel as it writes; a LeakyRelu after it instead.
      Case(
        name: "conv-depthwise-3x3-stride2-bias-relu", inputs: [("x", random([1, 12, 15, 14], seed: 129))],
        initializers: [("w", random([12, 1, 3, 3], seed: 130)), ("b", random([12], seed: 131))],
        nodes: [
          (
            "Conv", ["x", "w", "b"], ["c"],
            ["group": .int(12), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]
          ),
          ("Relu", ["c"], ["y"], [:]),
        ]),
      Case(
        name: "conv-depthwise-3x3-bias-leaky-relu", inputs: [("x", random([1, 12, 15, 14], seed: 132))],
        initializers: [("w", random([12, 1, 3, 3], seed: 133)), ("b", random([12], seed: 134))],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["group": .int(12), "pads": .ints([1, 1, 1, 1])]),
          ("LeakyRelu", ["c"], ["y"], ["alpha": .float(0.1)]),
        ]),
      // Stride-1 planes narrower than 32 (with AVX-512, 16 outputs of the flattened plane at a
      // time): a channel multiplier on two 7×7 images with bias and Clip in the kernel, and a
      // 19-wide plane whose blocks cross rows, with a residual added after.
      Case(
        name: "conv-depthwise-3x3-flat-multiplier-clip", inputs: [("x", random([2, 8, 7, 7], seed: 162))],
        initializers: [
          ("w", random([16, 1, 3, 3], seed: 163)), ("b", random([16], seed: 164)), ("lo", Tensor(scalar: Float(0))),
          ("hi", Tensor(scalar: Float(6))),
        ],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["group": .int(8), "pads": .ints([1, 1, 1, 1])]),
          ("Clip", ["c", "lo", "hi"], ["y"], [:]),
        ]),
      Case(
        name: "conv-depthwise-3x3-flat-add",
        inputs: [("x", random([1, 6, 11, 19], seed: 165)), ("r", random([1, 6, 11, 19], seed: 166))],
        initializers: [("w", random([6, 1, 3, 3], seed: 167)), ("b", random([6], seed: 168))],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["group": .int(6), "pads": .ints([1, 1, 1, 1])]),
          ("Add", ["c", "r"], ["y"], [:]),
        ]),
      single(
        "conv-depthwise-3x3-stride2-odd", "Conv", [("x", random([1, 16, 41, 40], seed: 43))],
        constants: [("w", random([16, 1, 3, 3], seed: 44))],
        attributes: ["group": .int(16), "strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1])]),
      Case(
        name: "conv-3x3-bias-leaky-relu-columns", inputs: [("x", random([1, 8, 30, 30], seed: 45))],
        initializers: [("w", random([16, 8, 3, 3], seed: 46)), ("b", random([16], seed: 47))],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 1, 1, 1])]),
          ("LeakyRelu", ["c"], ["y"], ["alpha": .float(0.1)]),
        ]),
      Case(
        name: "conv-2x2-bias-relu-features", inputs: [("x", random([1, 64, 7, 7], seed: 48))],
        initializers: [("w", random([128, 64, 2, 2], seed: 49, range: -0.25...0.25)), ("b", random([128], seed: 50))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 1, 1, 1])]), ("Relu", ["c"], ["y"], [:])]),
      // 3×3, stride 1, constant weights and at least 16 channels each way: Winograd F(4×4, 3×3)
      // (whose transforms round to about 2·10⁻⁵), here with odd output sizes (tiles cut at the
      // edge), asymmetric padding and two images.
      Case(
        name: "conv-3x3-winograd-padded-odd-relu", inputs: [("x", random([2, 16, 13, 11], seed: 56))],
        initializers: [("w", random([24, 16, 3, 3], seed: 57, range: -0.5...0.5)), ("b", random([24], seed: 58))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 0, 1, 2])]), ("Relu", ["c"], ["y"], [:])],
        tolerance: 5e-5),
      // Rows of 10 tiles (8 at a time, then the last 2) and an odd output size: the last tile
      // column and the last tile row are cut at the edge.
      Case(
        name: "conv-3x3-winograd-wide-odd-relu", inputs: [("x", random([1, 16, 39, 37], seed: 117))],
        initializers: [("w", random([24, 16, 3, 3], seed: 118, range: -0.5...0.5)), ("b", random([24], seed: 119))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 1, 1, 1])]), ("Relu", ["c"], ["y"], [:])],
        tolerance: 5e-5),
      Case(
        name: "conv-3x3-winograd-unpadded", inputs: [("x", random([1, 32, 9, 8], seed: 59))],
        initializers: [("w", random([16, 32, 3, 3], seed: 60, range: -0.5...0.5))],
        nodes: [("Conv", ["x", "w"], ["y"], [:])], tolerance: 5e-5),
      // More than 128 tiles (13 × 12): the GEMMs on the row kernel (AVX-512), with 40 features
      // (a panel of 32 and a partial one), a bias, a residual and a ReLU after the output
      // transform.
      Case(
        name: "conv-3x3-winograd-rows-add-relu",
        inputs: [("x", random([1, 24, 50, 46], seed: 147)), ("r", random([1, 40, 50, 46], seed: 148))],
        initializers: [
          ("w", random([40, 24, 3, 3], seed: 149, range: -0.25...0.25)), ("b", random([40], seed: 150)),
        ],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 1, 1, 1])]), ("Add", ["c", "r"], ["s"], [:]),
          ("Relu", ["s"], ["y"], [:]),
        ],
        tolerance: 5e-5),
      // More than 256 × 256 weights: F(2×2, 3×3), whose transforms round like a direct
      // convolution; rows of 5 tiles (fewer than 8), the last column and row cut at the edge.
      Case(
        name: "conv-3x3-winograd-2x2-odd-relu", inputs: [("x", random([1, 264, 9, 10], seed: 151))],
        initializers: [
          ("w", random([256, 264, 3, 3], seed: 152, range: -0.05...0.05)), ("b", random([256], seed: 153)),
        ],
        nodes: [("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 0, 1, 1])]), ("Relu", ["c"], ["y"], [:])]),
      // One row or one column of output (a fully connected layer at batch 1): matrix-vector
      // products split across the cores, the vector strided when transposed.
      Case(
        name: "gemm-one-row-transposed-b-bias-relu", inputs: [("a", random([1, 512], seed: 61))],
        initializers: [("b", random([300, 512], seed: 62, range: -0.25...0.25)), ("c", random([300], seed: 63))],
        nodes: [("Gemm", ["a", "b", "c"], ["g"], ["transB": .int(1)]), ("Relu", ["g"], ["y"], [:])]),
      single(
        "gemm-one-row-transposed-a", "Gemm", [("a", random([512, 1], seed: 64))],
        constants: [("b", random([512, 300], seed: 65, range: -0.25...0.25)), ("c", random([1, 300], seed: 66))],
        attributes: ["transA": .int(1), "alpha": .float(2), "beta": .float(0.5)]),
      single(
        "gemm-one-column-both-transposed", "Gemm", [("a", random([512, 300], seed: 67, range: -0.25...0.25))],
        constants: [("b", random([1, 512], seed: 68))], attributes: ["transA": .int(1), "transB": .int(1)]),
      single(
        "matmul-matrix-vector", "MatMul", [("a", random([300, 512], seed: 69, range: -0.25...0.25))],
        constants: [("b", random([512], seed: 70))]),
      // Stride 2 (not Winograd): im2col takes 8 columns at a time from a 16-wide load while the
      // load stays inside the input line, the rest one at a time.
      single(
        "conv-3x3-stride2-odd-width-padded", "Conv", [("x", random([1, 8, 23, 41], seed: 73))],
        constants: [("w", random([16, 8, 3, 3], seed: 74, range: -0.5...0.5))],
        attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 2])]),
      // At most 256 output positions, constant weights, AVX-512: the panel kernel (32 features ×
      // 12 positions per tile). Features that leave a partial panel, positions that leave a
      // one-column tile, two images; a fused ReLU, a LeakyRelu applied after, no bias.
      Case(
        name: "conv-1x1-panels-ragged-relu", inputs: [("x", random([2, 70, 7, 7], seed: 85))],
        initializers: [("w", random([40, 70, 1, 1], seed: 86, range: -0.25...0.25)), ("b", random([40], seed: 87))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], [:]), ("Relu", ["c"], ["y"], [:])]),
      Case(
        name: "conv-3x3-panels-stride2-leaky-relu", inputs: [("x", random([1, 24, 13, 11], seed: 88))],
        initializers: [("w", random([33, 24, 3, 3], seed: 89, range: -0.25...0.25)), ("b", random([33], seed: 90))],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 1])]),
          ("LeakyRelu", ["c"], ["y"], ["alpha": .float(0.1)]),
        ]),
      single(
        "conv-1x1-stride2-panels-no-bias", "Conv", [("x", random([1, 16, 14, 13], seed: 91))],
        constants: [("w", random([48, 16, 1, 1], seed: 92))], attributes: ["strides": .ints([2, 2])]),
      // Conv → Add → Relu fused into one node (ResNet's residual connections), on each way a
      // convolution runs: panels, im2col with the positions split, Winograd (the residual as the
      // Add's first operand), depthwise, OpenBLAS with the features split (weights fed as an
      // input, so nothing is packed at load), and residuals that broadcast either way.
      Case(
        name: "conv-add-relu-panels",
        inputs: [("x", random([1, 16, 7, 7], seed: 93)), ("r", random([1, 40, 7, 7], seed: 94))],
        initializers: [("w", random([40, 16, 1, 1], seed: 95, range: -0.25...0.25)), ("b", random([40], seed: 96))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], [:]), ("Add", ["c", "r"], ["s"], [:]), ("Relu", ["s"], ["y"], [:])]),
      Case(
        name: "conv-add-relu-columns",
        inputs: [("x", random([1, 8, 30, 30], seed: 97)), ("r", random([1, 16, 30, 30], seed: 98))],
        initializers: [("w", random([16, 8, 3, 3], seed: 99, range: -0.25...0.25)), ("b", random([16], seed: 100))],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([1, 1, 1, 1])]), ("Add", ["c", "r"], ["s"], [:]),
          ("Relu", ["s"], ["y"], [:]),
        ]),
      Case(
        name: "conv-add-relu-winograd",
        inputs: [("x", random([1, 16, 13, 11], seed: 101)), ("r", random([1, 24, 13, 11], seed: 102))],
        initializers: [("w", random([24, 16, 3, 3], seed: 103, range: -0.5...0.5))],
        nodes: [
          ("Conv", ["x", "w"], ["c"], ["pads": .ints([1, 1, 1, 1])]), ("Add", ["r", "c"], ["s"], [:]),
          ("Relu", ["s"], ["y"], [:]),
        ],
        tolerance: 5e-5),
      Case(
        name: "conv-add-depthwise",
        inputs: [("x", random([1, 8, 9, 9], seed: 104)), ("r", random([1, 8, 9, 9], seed: 105))],
        initializers: [("w", random([8, 1, 3, 3], seed: 106))],
        nodes: [
          ("Conv", ["x", "w"], ["c"], ["group": .int(8), "pads": .ints([1, 1, 1, 1])]),
          ("Add", ["c", "r"], ["y"], [:]),
        ]),
      Case(
        name: "conv-add-relu-features-split",
        inputs: [
          ("x", random([1, 8, 7, 7], seed: 107)), ("w", random([160, 8, 1, 1], seed: 108)),
          ("r", random([1, 160, 7, 7], seed: 109)),
        ],
        initializers: [("b", random([160], seed: 110))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], [:]), ("Add", ["c", "r"], ["s"], [:]), ("Relu", ["s"], ["y"], [:])]),
      Case(
        name: "conv-add-relu-broadcast-residual",
        inputs: [("x", random([1, 8, 6, 6], seed: 111)), ("r", random([1, 12, 1, 1], seed: 112))],
        initializers: [("w", random([12, 8, 1, 1], seed: 113))],
        nodes: [("Conv", ["x", "w"], ["c"], [:]), ("Add", ["c", "r"], ["s"], [:]), ("Relu", ["s"], ["y"], [:])]),
      Case(
        name: "conv-add-broadcast-convolution",
        inputs: [("x", random([1, 8, 1, 1], seed: 114)), ("r", random([1, 12, 5, 5], seed: 115))],
        initializers: [("w", random([12, 8, 1, 1], seed: 116))],
        nodes: [("Conv", ["x", "w"], ["c"], [:]), ("Add", ["c", "r"], ["y"], [:])]),
      // Stride 2 along the width with a wider kernel: each input line split once into even and
      // odd columns, then one contiguous copy per kernel column (a 7×7 stem with padding 3 on an
      // odd width, long enough lines for the 8-wide split; an even 4×4 kernel).
      single(
        "conv-7x7-stride2-stem-odd-width", "Conv", [("x", random([1, 3, 23, 41], seed: 120))],
        constants: [("w", random([8, 3, 7, 7], seed: 121, range: -0.25...0.25))],
        attributes: ["strides": .ints([2, 2]), "pads": .ints([3, 3, 3, 3])]),
      single(
        "conv-4x4-stride2-padded", "Conv", [("x", random([1, 4, 16, 15], seed: 122))],
        constants: [("w", random([6, 4, 4, 4], seed: 123, range: -0.25...0.25))],
        attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 2, 1, 0])]),
      // More than 256 positions, constant weights, AVX-512: 8 × 32 tiles over weights packed
      // at load, with rows (13, 11 features) and columns (323, 460 per image) left over at the
      // ends; a fused ReLU with a bias, none without; two images.
      Case(
        name: "conv-1x1-rows-bias-relu", inputs: [("x", random([2, 20, 19, 17], seed: 124))],
        initializers: [("w", random([13, 20, 1, 1], seed: 125, range: -0.5...0.5)), ("b", random([13], seed: 126))],
        nodes: [("Conv", ["x", "w", "b"], ["c"], [:]), ("Relu", ["c"], ["y"], [:])]),
      single(
        "conv-3x3-rows-stride2-no-bias", "Conv", [("x", random([1, 5, 45, 39], seed: 127))],
        constants: [("w", random([11, 5, 3, 3], seed: 128, range: -0.5...0.5))],
        attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
      // More than 256 positions with a column stride of 1, or of 2 with at most 3 kernel columns:
      // `shoal_conv_rows` packs each block of 32 positions straight from the image. A 1×1 stride-2
      // downsampling with a fused residual and ReLU on two images; a dilated stride-2 3×3 with
      // uneven padding and a Sigmoid; output rows of 5 (each block crosses seven of them); a 1-D
      // stride-2 convolution.
      Case(
        name: "conv-1x1-stride2-rows-add-relu",
        inputs: [("x", random([2, 24, 41, 39], seed: 150)), ("r", random([2, 40, 21, 20], seed: 151))],
        initializers: [("w", random([40, 24, 1, 1], seed: 152, range: -0.25...0.25)), ("b", random([40], seed: 153))],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["strides": .ints([2, 2])]), ("Add", ["c", "r"], ["s"], [:]),
          ("Relu", ["s"], ["y"], [:]),
        ]),
      Case(
        name: "conv-3x3-stride2-dilated-rows-sigmoid", inputs: [("x", random([1, 6, 50, 47], seed: 154))],
        initializers: [("w", random([10, 6, 3, 3], seed: 155, range: -0.5...0.5)), ("b", random([10], seed: 156))],
        nodes: [
          (
            "Conv", ["x", "w", "b"], ["c"],
            ["strides": .ints([2, 2]), "dilations": .ints([2, 2]), "pads": .ints([2, 1, 0, 3])]
          ),
          ("Sigmoid", ["c"], ["y"], [:]),
        ]),
      single(
        "conv-3x3-rows-narrow-output-rows", "Conv", [("x", random([1, 4, 60, 5], seed: 157))],
        constants: [("w", random([9, 4, 3, 3], seed: 158, range: -0.5...0.5))],
        attributes: ["pads": .ints([1, 1, 1, 1])]),
      single(
        "conv-1d-stride2-rows", "Conv", [("x", random([1, 8, 701], seed: 159))],
        constants: [("w", random([12, 8, 3], seed: 160, range: -0.5...0.5)), ("b", random([12], seed: 161))],
        attributes: ["strides": .ints([2]), "pads": .ints([1, 1])]),
      // Large enough that each core unfolds several blocks of positions one after another into
      // its own reused part of the scratch: a 5×5 stride-1 layer (5,184 positions, blocks of 288)
      // with a residual and ReLU, and a 7×7 stride-2 stem on 3 channels (6,400 positions, blocks
      // of 800) on the line-splitting unfold.
      Case(
        name: "conv-5x5-blocks-add-relu",
        inputs: [("x", random([1, 16, 72, 72], seed: 141)), ("r", random([1, 32, 72, 72], seed: 142))],
        initializers: [
          ("w", random([32, 16, 5, 5], seed: 143, range: -0.1...0.1)), ("b", random([32], seed: 144)),
        ],
        nodes: [
          ("Conv", ["x", "w", "b"], ["c"], ["pads": .ints([2, 2, 2, 2])]), ("Add", ["c", "r"], ["s"], [:]),
          ("Relu", ["s"], ["y"], [:]),
        ]),
      single(
        "conv-7x7-stride2-stem-blocks", "Conv", [("x", random([1, 3, 160, 160], seed: 145))],
        constants: [("w", random([16, 3, 7, 7], seed: 146, range: -0.25...0.25))],
        attributes: ["strides": .ints([2, 2]), "pads": .ints([3, 3, 3, 3])]),
      // Depthwise rows shorter than 8 outputs (masked lanes), stride 1 and 2.
      single(
        "conv-depthwise-3x3-narrow-rows", "Conv", [("x", random([1, 8, 6, 5], seed: 81))],
        constants: [("w", random([8, 1, 3, 3], seed: 82))],
        attributes: ["group": .int(8), "pads": .ints([1, 1, 1, 1])]),
      single(
        "conv-depthwise-3x3-stride2-narrow-rows", "Conv", [("x", random([1, 8, 9, 9], seed: 83))],
        constants: [("w", random([8, 1, 3, 3], seed: 84))],
        attributes: ["group": .int(8), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
      single("global-average-pool", "GlobalAveragePool", [("x", random([2, 32, 13, 11], seed: 51))]),
      single(
        "max-pool-3x3-stride2-ceil", "MaxPool", [("x", random([1, 16, 55, 55], seed: 52))],
        attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
      // An input over 8 MB is split across the cores by planes, not by output rows.
      single(
        "max-pool-3x3-stride2-ceil-large", "MaxPool", [("x", random([2, 64, 111, 111], seed: 53))],
        attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
      // The last window runs past an even width (ceil mode): it stays out of the 8-wide loop.
      single(
        "max-pool-3x3-stride2-ceil-even-width", "MaxPool", [("x", random([1, 4, 9, 32], seed: 135))],
        attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
      single(
        "max-pool-3x3-stride1-padded", "MaxPool", [("x", random([1, 16, 28, 30], seed: 71))],
        attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
      single(
        "average-pool-3x3-stride1-count-include-pad", "AveragePool", [("x", random([1, 16, 28, 30], seed: 72))],
        attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)]),
      single(
        "average-pool-3x3-stride2-padded", "AveragePool", [("x", random([1, 16, 55, 54], seed: 53))],
        attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 1])]),
      Case(
        name: "add-relu",
        inputs: [("a", random([1, 16, 64, 65], seed: 54)), ("b", random([1, 16, 64, 65], seed: 55))],
        nodes: [("Add", ["a", "b"], ["s"], [:]), ("Relu", ["s"], ["y"], [:])]),
    ]
  }

  /// What Shoal made of one case.
  private struct ShoalRun: Sendable {
    var name: String
    var outputs: [String]
    var tolerance: Double
    var result: Result<[String: Tensor], any Error>
  }

  @Test func operatorsMatchOnnxruntime() async throws {
    let directory = try TemporaryDirectory()
    // Making the cases and running them in Shoal is CPU work: it runs on a thread of its own.
    let runs = try await onOwnThread { [directory] in
      try Self.cases.enumerated().map { index, testCase in
        let path = directory.path("\(index)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let model = try testCase.model()
        try Data(model).write(to: URL(fileURLWithPath: path + "/model.onnx"))
        for (name, tensor) in testCase.inputs { try tensor.writeNpy(to: path + "/input-\(name).npy") }
        let result = Result { try Model(onnx: model).run(Dictionary(uniqueKeysWithValues: testCase.inputs)) }
        return ShoalRun(name: testCase.name, outputs: testCase.outputs, tolerance: testCase.tolerance, result: result)
      }
    }
    let script = """
      import os, sys, numpy as np, onnxruntime as ort
      root = sys.argv[1]
      for case in sorted(os.listdir(root), key=int):
          d = os.path.join(root, case)
          options = ort.SessionOptions()
          options.log_severity_level = 3
          session = ort.InferenceSession(os.path.join(d, "model.onnx"), options, providers=["CPUExecutionProvider"])
          feeds = {i.name: np.load(os.path.join(d, f"input-{i.name}.npy")) for i in session.get_inputs()}
          for output, value in zip(session.get_outputs(), session.run(None, feeds)):
              np.save(os.path.join(d, f"output-{output.name}.npy"), value)
      """
    let result = try await Subprocess.run(try TestEnvironment.python(), ["-c", script, directory.url.path])
    #expect(result.status == 0, "onnxruntime failed: \(result.stderrText)")
    for (index, testCase) in runs.enumerated() {
      let path = directory.path("\(index)")
      let outputs: [String: Tensor]
      switch testCase.result {
      case .success(let produced): outputs = produced
      case .failure(let error):
        Issue.record("\(testCase.name): \(error)")
        continue
      }
      for name in testCase.outputs {
        let expected = try Tensor(npyFile: path + "/output-\(name).npy")
        guard let actual = outputs[name] else {
          Issue.record("\(testCase.name): no output \(name)")
          continue
        }
        #expect(
          actual.shape == expected.shape, "\(testCase.name): shape \(actual.shape), onnxruntime \(expected.shape)")
        guard actual.shape == expected.shape else { continue }
        let (a, e) = (actual.doubles(), expected.doubles())
        // NaN only where onnxruntime has NaN too (an unwritten element reads as NaN in debug builds).
        let worst =
          zip(a, e).map {
            $0.isNaN || $1.isNaN ? ($0.isNaN == $1.isNaN ? 0 : .infinity) : abs($0 - $1) / max(1, abs($1))
          }.max() ?? 0
        #expect(worst <= testCase.tolerance, "\(testCase.name): differs from onnxruntime by \(worst)")
      }
    }
  }
}
