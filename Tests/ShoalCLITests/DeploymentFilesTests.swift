import Foundation
import ShoalTestSupport
import Testing

/// The files for running the mesh elsewhere: the Kubernetes manifests are what
/// `scripts/gen-kubernetes` writes and pass a strict schema validation (`kubernetes-validate`
/// from PyPI, with Kubernetes' own schemas), and the systemd unit passes `systemd-analyze verify`
/// for every service.
struct DeploymentFilesTests {
  static let root = TestEnvironment.repositoryRoot

  @Test func theKubernetesManifestsAreCurrentAndValidate() async throws {
    let fresh = try TemporaryDirectory()
    let generated = try await Subprocess.run(
      "/usr/bin/env", ["python3", "\(Self.root)/scripts/gen-kubernetes", fresh.url.path])
    try #require(generated.status == 0, "\(generated.stderrText)")
    let names = try FileManager.default.contentsOfDirectory(atPath: fresh.url.path).sorted()
    let committed = try FileManager.default.contentsOfDirectory(atPath: "\(Self.root)/mesh/kubernetes")
      .filter { $0.hasSuffix(".yaml") }.sorted()
    #expect(names == committed)
    for name in names {
      let expected = try String(contentsOfFile: fresh.path(name), encoding: .utf8)
      let actual = try String(contentsOfFile: "\(Self.root)/mesh/kubernetes/\(name)", encoding: .utf8)
      #expect(expected == actual, "mesh/kubernetes/\(name) is stale: run scripts/gen-kubernetes")
    }
    let python = try TestEnvironment.peersPython()
    let validator = URL(fileURLWithPath: python).deletingLastPathComponent().appendingPathComponent(
      "kubernetes-validate"
    ).path
    let validated = try await Subprocess.run(
      validator, ["--strict", "--no-warn"] + committed.map { "\(Self.root)/mesh/kubernetes/\($0)" })
    #expect(validated.status == 0, "\(validated.stdoutText)\(validated.stderrText)")
    #expect(!validated.stdoutText.contains("ERROR") && !validated.stderrText.contains("ERROR"))
    // Every resource was checked: 7 services (a Deployment and a Service each), PostgreSQL's
    // StatefulSet and Service, the namespace, volume claim, pipelines, autoscaler and 3 secrets.
    let passed =
      (validated.stdoutText + validated.stderrText).components(separatedBy: " passed for resource ").count - 1
    #expect(passed == 7 * 2 + 2 + 3 + 1 + 3, "\(validated.stdoutText)\(validated.stderrText)")

    // A manifest with a mistake is refused: the validator is not a formality.
    let broken = try String(contentsOfFile: "\(Self.root)/mesh/kubernetes/12-inference.yaml", encoding: .utf8)
      .replacingOccurrences(of: "replicas: 2", with: "replicas: two")
    try broken.write(toFile: fresh.path("broken.yaml"), atomically: true, encoding: .utf8)
    let refused = try await Subprocess.run(validator, ["--strict", fresh.path("broken.yaml")])
    #expect(refused.status != 0 && (refused.stdoutText + refused.stderrText).contains("replicas"))
  }

  @Test func theSystemdUnitVerifiesForEveryService() async throws {
    let analyze = "/usr/bin/systemd-analyze"
    try #require(FileManager.default.isExecutableFile(atPath: analyze), "systemd-analyze is missing (Debian's systemd)")
    let shoal = try TestEnvironment.product("shoal")
    let units = try TemporaryDirectory()
    let unit = try String(contentsOfFile: "\(Self.root)/mesh/systemd/shoal@.service", encoding: .utf8)
      .replacingOccurrences(of: "/usr/local/bin/shoal", with: shoal)
    for service in ["registry", "tracking", "inference", "feedback", "audio-classifier", "pipeline", "gateway"] {
      let path = units.path("shoal@\(service).service")
      try unit.write(toFile: path, atomically: true, encoding: .utf8)
      let verified = try await Subprocess.run(analyze, ["verify", path])
      #expect(verified.status == 0 && verified.stderrText.isEmpty, "\(service): \(verified.stderrText)")
    }
    // A mistake in the unit is reported (systemd-analyze only warns, so the test reads what it says).
    let wrong = unit.replacingOccurrences(of: "Restart=on-failure", with: "Restart=sometimes")
    try wrong.write(toFile: units.path("shoal@wrong.service"), atomically: true, encoding: .utf8)
    let warned = try await Subprocess.run(analyze, ["verify", units.path("shoal@wrong.service")])
    #expect(warned.stderrText.contains("restart specifier"), "\(warned.stderrText)")
  }
}
