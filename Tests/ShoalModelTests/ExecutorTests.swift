import ShoalModel
import ShoalTestSupport
import Testing

@Suite struct ExecutorTests {
  /// Conv(3→4, 3×3, pad 1) → BatchNormalization → Relu → GlobalAveragePool → Flatten → Gemm(4→2),
  /// with random weights; `exposeConv` also makes the Conv's output a graph output, which keeps
  /// the planner from fusing anything into it.
  static func convNet(exposeConv: Bool = false, seed: UInt64 = 7) throws -> [UInt8] {
    var random = SplitMix64(seed: seed)
    func tensor(_ shape: [Int], scale: Float = 1, offset: Float = 0) -> Tensor {
      Tensor(
        shape: shape,
        elements: (0..<shape.reduce(1, *)).map { _ in offset + scale * (Float.random(in: 0..<1, using: &random) - 0.5) }
      )
    }
    var graph = OnnxGraphBuilder(name: "convnet", opset: 13)
    graph.input("image", .float32, [.symbolic("batch"), .fixed(3), .fixed(8), .fixed(8)])
    graph.initializer("W", tensor([4, 3, 3, 3]))
    graph.initializer("B", tensor([4]))
    graph.initializer("scale", tensor([4], offset: 1))
    graph.initializer("shift", tensor([4]))
    graph.initializer("mean", tensor([4]))
    graph.initializer("variance", tensor([4], scale: 0.5, offset: 1))
    graph.initializer("G", tensor([2, 4]))
    graph.initializer("g", tensor([2]))
    graph.node("Conv", ["image", "W", "B"], ["conv"], name: "conv", attributes: ["pads": .ints([1, 1, 1, 1])])
    graph.node("BatchNormalization", ["conv", "scale", "shift", "mean", "variance"], ["bn"], name: "bn")
    graph.node("Relu", ["bn"], ["relu"], name: "relu")
    graph.node("GlobalAveragePool", ["relu"], ["pooled"])
    graph.node("Flatten", ["pooled"], ["flat"])
    graph.node("Gemm", ["flat", "G", "g"], ["logits"], attributes: ["transB": .int(1)])
    graph.output("logits", .float32, [.symbolic("batch"), .fixed(2)])
    if exposeConv { graph.output("conv", .float32, [.symbolic("batch"), .fixed(4), .fixed(8), .fixed(8)]) }
    return try graph.bytes()
  }

  static func images(_ batch: Int, seed: UInt64) -> Tensor {
    var random = SplitMix64(seed: seed)
    return Tensor(
      shape: [batch, 3, 8, 8],
      elements: (0..<(batch * 192)).map { _ in Float.random(in: 0..<1, using: &random) * 2 - 1 })
  }

  @Test func fusionKeepsTheResults() throws {
    let fused = try Model(onnx: Self.convNet())
    let unfused = try Model(onnx: Self.convNet(exposeConv: true))
    let summary = try fused.summary(inputShapes: ["image": [2, 3, 8, 8]])
    #expect(summary.flopsByOperator["Conv+Relu"] == 2 * 2 * 4 * 64 * 27, "BatchNormalization folded, Relu fused")
    #expect(summary.flopsByOperator["BatchNormalization"] == nil)
    #expect(try unfused.summary(inputShapes: ["image": [2, 3, 8, 8]]).flopsByOperator["Conv"] != nil)
    let input = Self.images(2, seed: 1)
    let a = try fused.run(["image": input])["logits"]!.elements(as: Float.self)
    let b = try unfused.run(["image": input])["logits"]!.elements(as: Float.self)
    for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-5 * max(1, abs(y))) }
  }

  @Test func oneModelServesConcurrentRunsOfAnyBatchSize() async throws {
    let model = try Model(onnx: Self.convNet())
    let inputs = (1...4).map { Self.images($0, seed: UInt64($0)) }
    let expected = try inputs.map { try model.run(["image": $0])["logits"]!.elements(as: Float.self) }
    try await withThrowingTaskGroup(of: Bool.self) { group in
      for worker in 0..<8 {
        group.addTask {
          for round in 0..<25 {
            let index = (worker + round) % inputs.count
            let result = try model.run(["image": inputs[index]])["logits"]!
            guard result.shape == [index + 1, 2], result.elements(as: Float.self) == expected[index] else {
              return false
            }
          }
          return true
        }
      }
      for try await ok in group { #expect(ok) }
    }
  }

  @Test func intermediatesShareTheArena() throws {
    // Ten element-wise steps over 1 MiB each: the arena holds two values at a time, not ten.
    var graph = OnnxGraphBuilder(name: "chain")
    graph.input("x", .float32, [.fixed(262_144)])
    var previous = "x"
    for step in 0..<10 {
      graph.node(step % 2 == 0 ? "Relu" : "Neg", [previous], ["v\(step)"])
      previous = "v\(step)"
    }
    graph.node("Sigmoid", [previous], ["y"])
    graph.output("y", .float32, [.fixed(262_144)])
    let model = try Model(onnx: graph.bytes())
    let summary = try model.summary()
    #expect(summary.steps == 11)
    #expect(summary.arenaBytes <= 2 * 1_048_576)
    let x = Tensor(shape: [262_144], elements: (0..<262_144).map { Float($0 % 7) - 3 })
    let y = try model.run(["x": x])["y"]!.elements(as: Float.self)
    // relu, neg, relu, neg…: positives become 0 after the first neg; every value ends as sigmoid(0) or sigmoid(-0).
    #expect(y.allSatisfy { $0 == 0.5 })
  }

  @Test func shapeArithmeticIsPlannedFromInputShapes() throws {
    // Shape → Gather → Unsqueeze → Concat → Reshape, as exporters write "flatten all but batch".
    var graph = OnnxGraphBuilder(name: "dynamic-reshape", opset: 13)
    graph.input("x", .float32, [.symbolic("n"), .fixed(2), .fixed(3)])
    graph.initializer("zero", Tensor(scalar: Int64(0)))
    graph.initializer("axes", Tensor(shape: [1], elements: [Int64(0)]))
    graph.initializer("minusOne", Tensor(shape: [1], elements: [Int64(-1)]))
    graph.node("Shape", ["x"], ["shape"])
    graph.node("Gather", ["shape", "zero"], ["batch"])
    graph.node("Unsqueeze", ["batch", "axes"], ["batch1"])
    graph.node("Concat", ["batch1", "minusOne"], ["target"], attributes: ["axis": .int(0)])
    graph.node("Reshape", ["x", "target"], ["y"])
    graph.output("y", .float32, [.symbolic("n"), .fixed(6)])
    let model = try Model(onnx: graph.bytes())
    for batch in [1, 5] {
      let x = Tensor(shape: [batch, 2, 3], elements: (0..<(batch * 6)).map(Float.init))
      let y = try model.run(["x": x])["y"]!
      #expect(y.shape == [batch, 6])
      #expect(y.elements(as: Float.self) == x.elements(as: Float.self))
    }
    #expect(try model.summary(inputShapes: ["x": [4, 2, 3]]).steps == 1, "only the Reshape is left to run")
  }

  @Test func anOutputThatViewsAnIntermediateKeepsItsMemory() throws {
    // y is a Reshape (a view) of a; the steps after it must not reuse a's bytes.
    var graph = OnnxGraphBuilder(name: "view-output", opset: 13)
    graph.input("x", .float32, [.fixed(64)])
    graph.initializer("shape", Tensor(shape: [2], elements: [Int64(8), 8]))
    graph.node("Relu", ["x"], ["a"])
    graph.node("Reshape", ["a", "shape"], ["y"])
    graph.node("Neg", ["x"], ["b"])
    graph.node("Exp", ["b"], ["c"])
    graph.node("Abs", ["c"], ["z"])
    graph.output("y", .float32, [.fixed(8), .fixed(8)])
    graph.output("z", .float32, [.fixed(64)])
    let x = Tensor(shape: [64], elements: (0..<64).map { Float($0) - 31.5 })
    let outputs = try Model(onnx: graph.bytes()).run(["x": x])
    #expect(outputs["y"]!.elements(as: Float.self) == x.elements(as: Float.self).map { max($0, 0) })
    #expect(outputs["z"]!.elements(as: Float.self) == x.elements(as: Float.self).map { Float.exp(-$0) })
  }
}
