import Foundation
import ShoalModel
import ShoalTestSupport
import Testing

/// `shoal onnx info|run` on real files, as a user runs them.
@Suite struct OnnxCommandTests {
  /// y = Softmax(x · W) for x of shape [batch, 3].
  static func classifier() -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "classifier", opset: 13)
    graph.input("features", .float32, [.symbolic("batch"), .fixed(3)])
    graph.initializer("W", Tensor(shape: [3, 2], elements: [Float(1), -1, 0.5, 0.5, -2, 2]))
    graph.node("MatMul", ["features", "W"], ["logits"])
    graph.node("Softmax", ["logits"], ["probabilities"])
    graph.output("probabilities", .float32, [.symbolic("batch"), .fixed(2)])
    return graph.bytes()
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
}
