import Foundation
import ShoalModel
import ShoalTestSupport
import Testing

/// `shoal onnx info|run` on real files, as a user runs them.
@Suite struct OnnxCommandTests {
  /// y = Softmax(x · W) for x of shape [batch, 3].
  static func classifier() throws -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "classifier", opset: 13)
    graph.input("features", .float32, [.symbolic("batch"), .fixed(3)])
    graph.initializer("W", Tensor(shape: [3, 2], elements: [Float(1), -1, 0.5, 0.5, -2, 2]))
    graph.node("MatMul", ["features", "W"], ["logits"])
    graph.node("Softmax", ["logits"], ["probabilities"])
    graph.output("probabilities", .float32, [.symbolic("batch"), .fixed(2)])
    return try graph.bytes()
  }

  @Test func infoRunAndRepeat() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let directory = try TemporaryDirectory()
    let model = directory.path("classifier.onnx")
    try Data(Self.classifier()).write(to: URL(fileURLWithPath: model))
    let x = Tensor(shape: [2, 3], elements: [Float(1), 0, 0, 0, 0, 1])
    try x.writeNpy(to: directory.path("x.npy"))

    let info = try await Subprocess.run(shoal, ["onnx", "info", model, "--shape", "features=8,3"])
    #expect(info.status == 0, "\(info.stderrText)")
    for part in ["features", "[batch, 3]", "probabilities", "ai.onnx 13", "MatMul", "Softmax", "GFLOP"] {
      #expect(info.stdoutText.contains(part), "info lacks \(part):\n\(info.stdoutText)")
    }

    let run = try await Subprocess.run(
      shoal,
      [
        "onnx", "run", model, "--input", "features=\(directory.path("x.npy"))", "--out", directory.path("out"),
        "--repeat", "5",
      ])
    #expect(run.status == 0, "\(run.stderrText)")
    #expect(run.stdoutText.contains("runs=5 median_ms="))

    // One row per planned step, in order, with its output shape; then their sum.
    let steps = try await Subprocess.run(
      shoal,
      [
        "onnx", "run", model, "--input", "features=\(directory.path("x.npy"))", "--out", directory.path("out"),
        "--repeat", "3", "--profile-steps",
      ])
    #expect(steps.status == 0, "\(steps.stderrText)")
    let rows = steps.stdoutText.split(separator: "\n").filter { $0.hasPrefix("0 ") || $0.hasPrefix("1 ") }
    #expect(rows.count == 2, "\(steps.stdoutText)")
    #expect(rows.first?.contains("MatMul") == true && rows.first?.contains("2×2") == true, "\(steps.stdoutText)")
    #expect(rows.last?.contains("Softmax") == true, "\(steps.stdoutText)")
    #expect(steps.stdoutText.contains("steps=2 sum_of_medians_ms="), "\(steps.stdoutText)")
    let y = try Tensor(npyFile: directory.path("out/probabilities.npy"))
    #expect(y.shape == [2, 2])
    let expected = try Model(onnx: Self.classifier()).run(["features": x])["probabilities"]!
    #expect(y.elements(as: Float.self) == expected.elements(as: Float.self))

    let wrong = try await Subprocess.run(
      shoal,
      [
        "onnx", "run", model, "--input", "features=\(directory.path("out/probabilities.npy"))", "--out",
        directory.path("out"),
      ])
    #expect(wrong.status != 0)
    #expect(wrong.stderrText.contains("dimension 1 must be 3"), "\(wrong.stderrText)")
  }

  /// The outputs `names` (concatenated) of `graph` on input `x`, from `shoal onnx run` once for
  /// each setting of the environment variable `variable`.
  private static func outputs(
    of graph: OnnxGraphBuilder, _ x: Tensor, _ names: [String], in directory: TemporaryDirectory, variable: String,
    settings: [String]
  ) async throws -> [[Float]] {
    try await outputs(of: graph, x, names, in: directory, environments: settings.map { [variable: $0] })
  }

  /// The outputs `names` (concatenated) of `graph` on input `x`, from `shoal onnx run` once in
  /// each of `environments`.
  private static func outputs(
    of graph: OnnxGraphBuilder, _ x: Tensor, _ names: [String], in directory: TemporaryDirectory,
    environments: [[String: String]]
  ) async throws -> [[Float]] {
    let shoal = try TestEnvironment.product("shoal")
    let model = directory.path("model.onnx")
    try Data(graph.bytes()).write(to: URL(fileURLWithPath: model))
    try x.writeNpy(to: directory.path("x.npy"))
    var outputs: [[Float]] = []
    for (index, environment) in environments.enumerated() {
      let out = directory.path("out-\(index)")
      let run = try await Subprocess.run(
        shoal, ["onnx", "run", model, "--input", "x=\(directory.path("x.npy"))", "--out", out],
        environment: environment)
      #expect(run.status == 0, "\(run.stderrText)")
      outputs.append(try names.flatMap { try Tensor(npyFile: "\(out)/\($0).npy").elements(as: Float.self) })
    }
    return outputs
  }

  @Test func winogradCanBeSwitchedOffAndBothAgree() async throws {
    let directory = try TemporaryDirectory()
    var random = SplitMix64(seed: 3)
    func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &random) } }
    // A 3×3 convolution with stride 1, constant weights and 16 channels: Winograd's F(4×4, 3×3)
    // by default, F(2×2, 3×3) when asked.
    var graph = OnnxGraphBuilder(name: "conv", opset: 13)
    graph.input("x", .float32, [.fixed(1), .fixed(16), .fixed(12), .fixed(12)])
    graph.initializer("w", Tensor(shape: [16, 16, 3, 3], elements: values(16 * 16 * 9)))
    graph.node("Conv", ["x", "w"], ["y"], attributes: ["pads": .ints([1, 1, 1, 1])])
    graph.output("y", .float32, nil)
    let x = Tensor(shape: [1, 16, 12, 12], elements: values(16 * 144))
    let outputs = try await Self.outputs(
      of: graph, x, ["y"], in: directory, variable: "SHOAL_WINOGRAD", settings: ["on", "off", "2x2"])
    // Three algorithms: equal up to float32 rounding (F(4×4, 3×3)'s transforms round more), and
    // not bit for bit.
    func agree(_ a: [Float], _ b: [Float], within tolerance: Float) -> Bool {
      zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * max(1, abs($1)) }
    }
    #expect(agree(outputs[0], outputs[1], within: 5e-5))
    #expect(agree(outputs[2], outputs[1], within: 1e-5))
    #expect(outputs[0] != outputs[1] && outputs[0] != outputs[2] && outputs[2] != outputs[1])
  }

  @Test func thePortableKernelsCanBeChosenAndAgreeWithTheVectorOnes() async throws {
    let directory = try TemporaryDirectory()
    var random = SplitMix64(seed: 4)
    func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &random) } }
    // Depthwise 3×3 rows of 13 (8 and an overlapping 8) and of 7 (masked), strides 1 and 2.
    var graph = OnnxGraphBuilder(name: "depthwise", opset: 13)
    graph.input("x", .float32, [.fixed(1), .fixed(8), .fixed(13), .fixed(13)])
    graph.initializer("w", Tensor(shape: [8, 1, 3, 3], elements: values(72)))
    graph.node("Conv", ["x", "w"], ["s1"], attributes: ["group": .int(8), "pads": .ints([1, 1, 1, 1])])
    graph.node(
      "Conv", ["x", "w"], ["s2"],
      attributes: ["group": .int(8), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
    // 160 features on 7×7 outputs with a bias and a ReLU: with AVX-512 the panel kernel, in the
    // portable setting OpenBLAS with the features split across the cores. 16 features of a 3×3
    // convolution of those, padded to 7 × 33: Winograd's F(4×4, 3×3) on rows of 9 tiles (8 and
    // the rest), the last column and row cut; `avx2` takes the AVX2 transforms.
    graph.initializer("w3", Tensor(shape: [160, 8, 1, 1], elements: values(160 * 8)))
    graph.initializer("b3", Tensor(shape: [160], elements: values(160)))
    graph.node("Conv", ["x", "w3", "b3"], ["c3"], attributes: ["strides": .ints([2, 2])])
    graph.node("Relu", ["c3"], ["s3"])
    graph.initializer("w4", Tensor(shape: [16, 160, 3, 3], elements: values(16 * 160 * 9).map { $0 / 16 }))
    graph.node("Conv", ["s3", "w4"], ["s4"], attributes: ["pads": .ints([1, 14, 1, 14])])
    graph.output("s1", .float32, nil)
    graph.output("s2", .float32, nil)
    graph.output("s3", .float32, nil)
    graph.output("s4", .float32, nil)
    let x = Tensor(shape: [1, 8, 13, 13], elements: values(8 * 169))
    let outputs = try await Self.outputs(
      of: graph, x, ["s1", "s2", "s3", "s4"], in: directory, variable: "SHOAL_KERNELS",
      settings: ["default", "portable", "avx2"])
    let expected = 8 * (169 + 49) + 160 * 49 + 16 * 7 * 33
    #expect(outputs[0].count == expected)
    for other in outputs.dropFirst() {
      #expect(zip(outputs[0], other).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
    }
    // With AVX2 and FMA the default is the fused vector loop: equal up to rounding, not bit for bit.
    if Self.cpuHasAVX2() { #expect(outputs[0] != outputs[1]) }
  }

  /// Convolutions with weights packed at load: with AVX-512 its kernels, with AVX2 (or `avx2`)
  /// `shoal_gemm_rows_avx2`, over a batch's 1×1 convolutions in one loop, with the bias, the
  /// residual and a Clip applied as the outputs are written; in the portable setting OpenBLAS.
  /// 37 features (tiles of 6 and 4 rows cut short) on 63 positions (blocks of 32 cut short),
  /// and a 3×3 stride-2 convolution unfolded first, with a ReLU.
  @Test func packedWeightConvolutionsAreTheSameWithEveryKernelSetting() async throws {
    let directory = try TemporaryDirectory()
    var random = SplitMix64(seed: 6)
    func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -1...1, using: &random) } }
    var graph = OnnxGraphBuilder(name: "packed", opset: 13)
    graph.input("x", .float32, [.fixed(3), .fixed(20), .fixed(7), .fixed(9)])
    graph.initializer("w1", Tensor(shape: [37, 20, 1, 1], elements: values(37 * 20)))
    graph.initializer("b1", Tensor(shape: [37], elements: values(37)))
    graph.initializer("lo", Tensor(shape: [], elements: [Float(0)]))
    graph.initializer("hi", Tensor(shape: [], elements: [Float(0.75)]))
    graph.node("Conv", ["x", "w1", "b1"], ["c1"])
    graph.node("Clip", ["c1", "lo", "hi"], ["s1"])
    graph.initializer("w2", Tensor(shape: [37, 20, 1, 1], elements: values(37 * 20)))
    graph.initializer("b2", Tensor(shape: [37], elements: values(37)))
    graph.node("Conv", ["x", "w2", "b2"], ["c2"])
    graph.node("Add", ["c2", "s1"], ["s2"])
    graph.initializer("w3", Tensor(shape: [13, 20, 3, 3], elements: values(13 * 20 * 9)))
    graph.node("Conv", ["x", "w3"], ["c3"], attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
    graph.node("Relu", ["c3"], ["s3"])
    graph.output("s1", .float32, nil)
    graph.output("s2", .float32, nil)
    graph.output("s3", .float32, nil)
    let x = Tensor(shape: [3, 20, 7, 9], elements: values(3 * 20 * 63))
    let outputs = try await Self.outputs(
      of: graph, x, ["s1", "s2", "s3"], in: directory, variable: "SHOAL_KERNELS",
      settings: ["default", "portable", "avx2"])
    let (convolved, unfolded): (Int, Int) = (3 * 37 * 63, 3 * 13 * 4 * 5)
    #expect(outputs[0].count == 2 * convolved + unfolded)
    let clipped = Array(outputs[0].prefix(convolved))
    let bounded = clipped.allSatisfy { $0 >= 0 && $0 <= 0.75 }
    #expect(bounded && clipped.contains(0) && clipped.contains(0.75))
    for other in outputs.dropFirst() {
      #expect(zip(outputs[0], other).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
    }
  }

  /// Convolutional networks run in channel blocks on AVX2 without AVX-512 (`SHOAL_KERNELS=avx2`
  /// asks for that on any AVX2 CPU): the same floats as NCHW and the portable loops, over an odd
  /// number of blocks, planes 7 and 9 wide, a first layer that reads 3 channels in planes,
  /// depthwise and direct convolutions with stride 2, a 4-fold expanding 3×3 in blocks and a
  /// Winograd 3×3 left in NCHW, residuals, Clip, ReLU and Sigmoid, a Concat of two convolutions
  /// that write into its output, max pooling, an output taken from inside the chain and
  /// GlobalAveragePool; a graph where reorders would outnumber the work stays in NCHW.
  @Test func channelBlocksAreTheSameAsPlanes() async throws {
    let directory = try TemporaryDirectory()
    var random = SplitMix64(seed: 8)
    func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -0.5...0.5, using: &random) } }
    var graph = OnnxGraphBuilder(name: "blocks", opset: 13)
    graph.input("x", .float32, [.symbolic("batch"), .fixed(3), .fixed(7), .fixed(9)])
    graph.initializer("lo", Tensor(shape: [], elements: [Float(0)]))
    graph.initializer("hi", Tensor(shape: [], elements: [Float(0.75)]))
    var (value, channels, layer) = ("x", 3, 0)
    func conv(
      _ features: Int, kernel: Int = 1, depthwise: Bool = false, stride: Int = 1, residual: String? = nil,
      _ activation: String?
    ) {
      layer += 1
      let (name, depth, kernel) = ("c\(layer)", depthwise ? 1 : channels, depthwise ? 3 : kernel)
      graph.initializer(
        "w\(layer)",
        Tensor(shape: [features, depth, kernel, kernel], elements: values(features * depth * kernel * kernel)))
      graph.initializer("b\(layer)", Tensor(shape: [features], elements: values(features)))
      var attributes: [String: OnnxAttribute] = [:]
      if kernel == 3 { attributes = ["pads": .ints([1, 1, 1, 1]), "strides": .ints([stride, stride])] }
      if depthwise { attributes["group"] = .int(features) }
      graph.node("Conv", [value, "w\(layer)", "b\(layer)"], [name], attributes: attributes)
      var output = name
      if let residual {
        graph.node("Add", [output, residual], [name + "r"])
        output = name + "r"
      }
      switch activation {
      case "Clip": graph.node("Clip", [output, "lo", "hi"], [name + "a"])
      case .some(let function): graph.node(function, [output], [name + "a"])
      case nil: break
      }
      (value, channels) = (activation == nil ? output : name + "a", features)
    }
    // The first layer reads the 3 channels in planes and writes blocks.
    conv(24, kernel: 3, "Clip")
    conv(24, depthwise: true, "Relu")
    conv(16, nil)
    let middle = value
    // Winograd's algorithm could run this one, but it expands the channels 4-fold: direct, in
    // blocks.
    conv(64, kernel: 3, "Relu")
    conv(40, "Clip")
    conv(40, depthwise: true, stride: 2, "Sigmoid")
    conv(24, nil)
    conv(48, "Relu")
    conv(48, depthwise: true, "Clip")
    conv(24, nil)
    let skip = value
    conv(48, "Relu")
    conv(48, depthwise: true, "Clip")
    conv(24, residual: skip, nil)
    // Direct convolutions (3×3 with fewer than 16 channels, which Winograd's algorithm leaves
    // alone, and stride 2), a Concat of two branches, max pooling over the border in ceil mode.
    conv(8, kernel: 3, "Relu")
    let trunk = value
    conv(16, nil)
    let branch = value
    (value, channels) = (trunk, 8)
    conv(8, kernel: 3, nil)
    graph.node("Concat", [branch, value], ["joined"], attributes: ["axis": .int(1)])
    graph.node(
      "MaxPool", ["joined"], ["pooled3"],
      attributes: [
        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "ceil_mode": .int(1),
      ])
    (value, channels) = ("pooled3", 24)
    conv(16, kernel: 3, stride: 2, "Clip")
    // Winograd's, in planes between two reorders.
    conv(16, kernel: 3, "Relu")
    conv(16, nil)
    graph.node("GlobalAveragePool", [value], ["pooled"])
    graph.output(middle, .float32, nil)
    graph.output(value, .float32, nil)
    graph.output("pooled", .float32, nil)
    let x = Tensor(shape: [3, 3, 7, 9], elements: values(3 * 3 * 63))
    // F(2×2, 3×3) rounds close enough to the direct convolution for the tolerance below.
    let outputs = try await Self.outputs(
      of: graph, x, [middle, value, "pooled"], in: directory,
      environments: [
        ["SHOAL_KERNELS": "avx2", "SHOAL_WINOGRAD": "2x2"],
        ["SHOAL_KERNELS": "avx2", "SHOAL_WINOGRAD": "2x2", "SHOAL_CHANNEL_BLOCKS": "off"],
        ["SHOAL_KERNELS": "portable", "SHOAL_WINOGRAD": "2x2"],
      ])
    let expectedCount: Int = 3 * 16 * 63 + 3 * 16 * 2 * 2 + 3 * 16
    #expect(outputs[0].count == expectedCount)
    for other in outputs.dropFirst() {
      #expect(zip(outputs[0], other).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
    }
    guard Self.cpuHasAVX2() else { return }
    let shoal = try TestEnvironment.product("shoal")
    func steps(_ model: String, input: String = "x.npy") async throws -> String {
      let run = try await Subprocess.run(
        shoal,
        [
          "onnx", "run", model, "--input", "x=\(directory.path(input))", "--out", directory.path("steps"),
          "--repeat", "1", "--profile-steps",
        ], environment: ["SHOAL_KERNELS": "avx2", "SHOAL_WINOGRAD": "2x2"])
      #expect(run.status == 0, "\(run.stderrText)")
      return run.stdoutText
    }
    let chain = try await steps(directory.path("model.onnx"))
    func rows(_ operation: String) -> Int { chain.split(separator: "\n").filter { $0.contains(operation) }.count }
    #expect(rows("ToChannelBlocks") == 1 && rows("FromChannelBlocks") == 3, "\(chain)")
    // The Concat's two convolutions write straight into its output: one node, no copy.
    #expect(rows("Conv+Concat") == 1 && rows("Concat") == 1, "\(chain)")
    // An empty batch goes through every kernel in blocks.
    try Tensor(shape: [0, 3, 7, 9], elements: [Float]()).writeNpy(to: directory.path("empty.npy"))
    let empty = try await steps(directory.path("model.onnx"), input: "empty.npy")
    #expect(empty.contains("Conv+Concat"), "\(empty)")
    var short = OnnxGraphBuilder(name: "short", opset: 13)
    short.input("x", .float32, [.fixed(3), .fixed(3), .fixed(7), .fixed(9)])
    short.initializer("w", Tensor(shape: [16, 3, 1, 1], elements: values(48)))
    short.node("Conv", ["x", "w"], ["y"])
    short.output("y", .float32, nil)
    try Data(short.bytes()).write(to: URL(fileURLWithPath: directory.path("short.onnx")))
    let alone = try await steps(directory.path("short.onnx"))
    #expect(!alone.contains("ChannelBlocks") && alone.contains("Conv"), "\(alone)")
  }

  /// Whether this CPU has AVX2 and FMA, from /proc/cpuinfo.
  private static func cpuHasAVX2() -> Bool {
    let flags =
      ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "")
      .split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
    let set = Set(flags.split(separator: " "))
    return set.contains("avx2") && set.contains("fma")
  }

  /// Max pooling takes 16 windows at a time with AVX-512, 8 with AVX2, one in the portable loop:
  /// all three give the same floats, a NaN winning its windows, over rows that end inside a
  /// vector, windows over the padding and a ceil-mode window past the edge.
  @Test func maxPoolingIsTheSameWithEveryKernelSetting() async throws {
    let directory = try TemporaryDirectory()
    var random = SplitMix64(seed: 5)
    var values = (0..<(3 * 9 * 37)).map { _ in Float.random(in: -1...1, using: &random) }
    values[40] = .nan
    values[2 * 9 * 37 + 8 * 37 + 36] = .nan
    var graph = OnnxGraphBuilder(name: "max-pool", opset: 13)
    graph.input("x", .float32, [.fixed(1), .fixed(3), .fixed(9), .fixed(37)])
    graph.node(
      "MaxPool", ["x"], ["s1"], attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])
    graph.node(
      "MaxPool", ["x"], ["s2"],
      attributes: [
        "kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 0]), "ceil_mode": .int(1),
      ])
    graph.node("MaxPool", ["x"], ["s3"], attributes: ["kernel_shape": .ints([2, 4]), "strides": .ints([1, 2])])
    graph.output("s1", .float32, nil)
    graph.output("s2", .float32, nil)
    graph.output("s3", .float32, nil)
    let outputs = try await Self.outputs(
      of: graph, Tensor(shape: [1, 3, 9, 37], elements: values), ["s1", "s2", "s3"], in: directory,
      variable: "SHOAL_KERNELS", settings: ["default", "portable", "avx2"])
    let count: Int = 3 * (9 * 37 + 5 * 19 + 8 * 17)
    #expect(outputs[0].count == count)
    #expect(outputs[0].contains { $0.isNaN })
    #expect(!outputs[0].contains(-Float.infinity))
    for other in outputs.dropFirst() {
      #expect(zip(outputs[0], other).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }
  }

  @Test func trainHeadWritesAModelThatClassifies() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let directory = try TemporaryDirectory()
    // Two well separated classes in 2-D.
    var random = SplitMix64(seed: 2)
    let labels = (0..<200).map { Int64($0 % 2) }
    let features = labels.flatMap { label -> [Float] in
      let centre: Float = label == 0 ? -2 : 2
      return [centre + Float.random(in: -1...1, using: &random), Float.random(in: -1...1, using: &random)]
    }
    let x = Tensor(shape: [200, 2], elements: features)
    try x.writeNpy(to: directory.path("x.npy"))
    try Tensor(shape: [200], elements: labels).writeNpy(to: directory.path("y.npy"))
    let train = try await Subprocess.run(
      shoal,
      [
        "onnx", "train-head", "--features", directory.path("x.npy"), "--labels", directory.path("y.npy"), "--hidden",
        "8",
        "--epochs", "40", "--learning-rate", "0.01", "--out", directory.path("head.onnx"),
      ])
    #expect(train.status == 0, "\(train.stderrText)")
    #expect(train.stdoutText.contains("epoch   1  loss"))
    #expect(train.stdoutText.contains("TRUE \\ PREDICTED"))
    let model = try Model(contentsOf: directory.path("head.onnx"))
    let probabilities = try model.run(["features": x])["probabilities"]!.elements(as: Float.self)
    let correct = labels.indices.filter { (probabilities[2 * $0 + 1] > 0.5) == (labels[$0] == 1) }.count
    #expect(correct >= 196)
  }
}
