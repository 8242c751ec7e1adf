import Testing

@testable import Gateway

/// The artifact URIs and endpoint paths MLflow's client sends.
struct ArtifactPathTests {
  @Test func sourcesNameARunAndAPath() throws {
    #expect(try ArtifactPath(source: "runs:/abc/model") == .run(experiment: nil, run: "abc", path: "model"))
    #expect(
      try ArtifactPath(source: "mlflow-artifacts:/3/abc/artifacts/model/")
        == .run(experiment: "3", run: "abc", path: "model"))
    #expect(
      try ArtifactPath(source: "mlflow-artifacts://127.0.0.1:5080/3/abc/artifacts")
        == .run(experiment: "3", run: "abc", path: ""))
    #expect(
      try ArtifactPath(source: "http://h:1/api/2.0/mlflow-artifacts/artifacts/3/abc/artifacts/a/b.onnx")
        == .run(experiment: "3", run: "abc", path: "a/b.onnx"))
    #expect(throws: GatewayError.self) { try ArtifactPath(source: "models:/m-123") }
    #expect(throws: GatewayError.self) { try ArtifactPath(source: "s3://bucket/model") }
    #expect(throws: GatewayError.self) { try ArtifactPath(source: "mlflow-artifacts:/_registry/local/m/1") }
  }

  @Test func endpointPathsNameRunsOrRegistryVersions() throws {
    #expect(
      try ArtifactPath(endpointPath: "_registry/acme/roads/2/model.onnx")
        == .registry(organization: "acme", model: "roads", version: 2, file: "model.onnx"))
    #expect(
      try ArtifactPath(endpointPath: "_registry/acme/roads/2")
        == .registry(organization: "acme", model: "roads", version: 2, file: ""))
    for bad in [
      "_registry/acme/roads/zero", "1/abc/files/x", "1/abc/artifacts/../x", "1/abc/artifacts/a\\b", "1//artifacts",
    ] {
      #expect(throws: GatewayError.self, "\(bad)") { try ArtifactPath(endpointPath: bad) }
    }
  }
}
