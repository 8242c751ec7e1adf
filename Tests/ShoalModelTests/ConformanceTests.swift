import ShoalModel
import ShoalTestSupport
import Testing

/// ONNX's own backend test data (shipped in the `onnx` package), run through `shoal onnx
/// conformance` in a process of its own (the work is long and CPU-bound: it must not hold the
/// test runner's threads). Every case whose operators are supported must pass at the ONNX
/// runner's tolerances; the rest may only be skipped for operators the core does not implement
/// (sequences, strings, training).
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
    return String(result.stdoutText.filter { $0 != "\n" })
  }

  @Test func everySuite() async throws {
    let data = try await Self.dataDirectory()
    let suites = ["pytorch-converted", "pytorch-operator", "simple", "light"].map { data + "/" + $0 }
    for suite in suites {
      #expect(ConformanceCase.cases(under: suite).count >= 9, "the cases of \(suite) are missing from the onnx package")
    }
    // One process for all four suites: it takes one core, and leaves the other to the other tests.
    let result = try await Subprocess.run(
      try TestEnvironment.product("shoal"), ["onnx", "conformance", "--verbose"] + suites)
    let lines = result.stdoutText.split(separator: "\n")
    for line in lines where line.hasPrefix("FAIL ") { Issue.record("\(line)") }
    for line in lines where line.hasPrefix("SKIP ") {
      let named = Self.unsupported.contains { line.contains("operator \($0) is not supported") }
      #expect(named, "skipped for something other than an unsupported operator: \(line)")
    }
    #expect(result.status == 0, "\(result.stderrText)")
    #expect(lines.filter { $0.hasPrefix("PASS ") }.count >= 133, "\(lines.last ?? "")")
  }
}
