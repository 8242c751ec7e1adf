import Foundation
import ShoalTestSupport
import Testing

/// Every fuzz target's corpus, and every crash libFuzzer has found (Fuzz/crashes), through the
/// plainly built `shoal-fuzz`: each input is read without crashing, so a crash once found stays
/// fixed.
struct FuzzCorpusTests {
  static let targets = ["frames", "messages", "json", "filter", "onnx", "image", "audio", "geojson", "pipeline"]

  @Test(arguments: targets)
  func theCorpusAndPastCrashesRunClean(_ target: String) async throws {
    let root = TestEnvironment.repositoryRoot
    let fuzz = try TestEnvironment.product("shoal-fuzz")
    let corpus = "\(root)/Fuzz/corpus/\(target)"
    let seeds = try FileManager.default.contentsOfDirectory(atPath: corpus)
    #expect(!seeds.isEmpty, "Fuzz/corpus/\(target) is empty: run scripts/fuzz --seed")
    let crashes = ((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/Fuzz/crashes")) ?? [])
      .filter { $0.hasPrefix("\(target)-") }.map { "\(root)/Fuzz/crashes/\($0)" }
    let ran = try await Subprocess.run(fuzz, [target, corpus] + crashes)
    #expect(ran.status == 0, "\(ran.stdoutText)\(ran.stderrText)")
    #expect(ran.stdoutText.contains("\(seeds.count + crashes.count) inputs ran"), "\(ran.stdoutText)")
  }

  @Test func anUnknownTargetIsRefused() async throws {
    let ran = try await Subprocess.run(try TestEnvironment.product("shoal-fuzz"), ["nosuch"])
    #expect(ran.status == 2 && ran.stderrText.contains("targets: audio, filter"))
  }
}
