import ShoalModel
import ShoalTestSupport
import Testing

/// ONNX's own backend test data (shipped in the `onnx` package): every case whose operators are
/// supported must pass at the ONNX runner's tolerances; the rest may only be skipped for
/// operators the core does not implement (sequences, strings, training).
@Suite struct ConformanceTests {
  /// Operators the conformance data uses that the model core deliberately leaves out.
  static let unsupported = [
    "ConcatFromSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
    "SequenceLength", "SplitToSequence", "StringNormalizer", "ai.onnx.preview.training.Gradient",
  ]

  static func dataDirectory() async throws -> String {
    let python = try TestEnvironment.python()
    let result = try await Subprocess.run(
      python, ["-c", "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data'))"])
    return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  @Test(arguments: ["pytorch-converted", "pytorch-operator", "simple", "light"])
  func suite(_ name: String) async throws {
    let cases = ConformanceCase.cases(under: try await Self.dataDirectory() + "/" + name)
    #expect(cases.count >= 9, "the \(name) cases are missing from the onnx package")
    var passed = 0
    for testCase in cases {
      switch testCase.run() {
      case .passed: passed += 1
      case .failed(let reason): Issue.record("\(testCase.name) failed: \(reason)")
      case .skipped(let reason):
        let named = Self.unsupported.contains { reason.contains("operator \($0) is not supported") }
        #expect(named, "\(testCase.name) was skipped for something other than an unsupported operator: \(reason)")
      }
    }
    #expect(passed > 0)
  }
}
