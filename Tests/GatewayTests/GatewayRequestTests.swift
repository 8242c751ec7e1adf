import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ShoalMetrics
import ShoalRPC
import Testing

@testable import Gateway

/// The gateway's answers to requests that never reach the mesh (Hummingbird's router test
/// framework, whose peer is not on loopback): tokens, bad input, unknown routes, limits.
struct GatewayRequestTests {
  private static func application(maxJSONBytes: Int = 1 << 20) throws -> some ApplicationProtocol {
    var config = Gateway.Config.defaults
    config.maxJSONBytes = maxJSONBytes
    return try MeshlessGateway.application(config: config)
  }

  private static let token: HTTPFields = [.authorization: "Bearer shoal_test"]

  /// The response's JSON object (empty if it is not one, which the checks then report).
  private static func json(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8))) as? [String: Any] ?? [:]
  }

  @Test func aCallerOffThisHostNeedsAToken() async throws {
    try await Self.application().test(.router) { client in
      try await client.execute(uri: "/api/2.0/mlflow/experiments/get?experiment_id=1", method: .get) { response in
        #expect(response.status == .unauthorized)
        #expect(Self.json(response)["error_code"] as? String == "UNAUTHENTICATED")
      }
      try await client.execute(uri: "/v2/models/m/infer", method: .post, body: ByteBuffer(string: "{}")) { response in
        #expect(response.status == .unauthorized)
        #expect((Self.json(response)["error"] as? String)?.contains("token") == true)
      }
      // Basic auth carries the token as its password (Label Studio's backend settings): without
      // one, or in another scheme, there is no token.
      for header in ["Basic dXNlcjo=", "Token shoal_test"] {
        let headers: HTTPFields = [.authorization: header]
        try await client.execute(uri: "/api/2.0/mlflow/runs/get?run_id=1", method: .get, headers: headers) {
          #expect($0.status == .unauthorized)
        }
      }
      // Liveness and metrics need none.
      try await client.execute(uri: "/v2/health/live", method: .get) { #expect($0.status == .ok) }
      try await client.execute(uri: "/metrics", method: .get) { response in
        #expect(String(buffer: response.body).contains(#"status="401"} 2"#))
      }
    }
  }

  @Test func anUnknownRouteIsEndpointNotFoundInEachAPIsShape() async throws {
    try await Self.application().test(.router) { client in
      try await client.execute(uri: "/api/2.0/mlflow/runs/nosuch", method: .post, headers: Self.token) { response in
        #expect(response.status == .notFound)
        let body = Self.json(response)
        #expect(body["error_code"] as? String == "ENDPOINT_NOT_FOUND")
        #expect((body["message"] as? String)?.contains("/api/2.0/mlflow/runs/nosuch") == true)
      }
      try await client.execute(uri: "/v2/nosuch", method: .get) { response in
        #expect(response.status == .notFound)
        #expect(Self.json(response)["error"] != nil)
      }
    }
  }

  @Test func badBodiesAre400NamingTheField() async throws {
    let cases: [(String, String, String)] = [
      ("runs/log-metric", "{not json", "the body is not JSON"),
      ("runs/log-metric", "[1, 2]", "must be a JSON object"),
      ("runs/log-metric", #"{"run_id": "r", "key": "loss", "timestamp": 1}"#, "'value'"),
      (
        "runs/log-metric", #"{"run_id": "r", "key": "loss", "value": "high", "timestamp": 1}"#,
        "value: expected a number"
      ),
      ("runs/log-metric", #"{"run_id": "r", "key": "loss", "value": 1}"#, "'timestamp'"),
      (
        "runs/log-batch", #"{"run_id": "r", "metrics": [{"key": "a", "value": 1, "timestamp": 1}, {"value": 2}]}"#,
        "metrics[1].key"
      ),
      ("runs/log-batch", #"{"run_id": "r", "params": {"lr": 1}}"#, "params: expected an array"),
      ("runs/update", #"{"run_id": "r", "status": "DONE"}"#, "status: 'DONE'"),
      ("experiments/create", #"{"tags": []}"#, "'name'"),
      ("runs/search", #"{"max_results": 0}"#, "max_results"),
    ]
    try await Self.application().test(.router) { client in
      for (path, body, fragment) in cases {
        try await client.execute(
          uri: "/api/2.0/mlflow/\(path)", method: .post, headers: Self.token, body: ByteBuffer(string: body)
        ) { response in
          #expect(response.status == .badRequest, "\(path) \(body)")
          let message = Self.json(response)["message"] as? String ?? ""
          #expect(message.contains(fragment), "\(path) \(body): \(message)")
        }
      }
    }
  }

  @Test func aBodyOverTheLimitIs413() async throws {
    try await Self.application(maxJSONBytes: 64).test(.router) { client in
      let body = ByteBuffer(string: #"{"name": "\#(String(repeating: "x", count: 100))"}"#)
      try await client.execute(
        uri: "/api/2.0/mlflow/experiments/create", method: .post, headers: Self.token, body: body
      ) {
        response in
        #expect(response.status == .contentTooLarge)
        #expect((Self.json(response)["message"] as? String)?.contains("64 bytes") == true)
      }
    }
  }

  @Test func artifactPathsStayInsideTheirRun() async throws {
    try await Self.application().test(.router) { client in
      for path in [
        "1/run/artifacts/../../other/artifacts/x", "1/run/artifacts/a/%2E%2E/%2E%2E/b", "1/run/artifacts/a//b",
        "1/run/x",
      ] {
        try await client.execute(
          uri: "/api/2.0/mlflow-artifacts/artifacts/\(path)", method: .put, headers: Self.token,
          body: ByteBuffer(string: "data")
        ) { response in
          #expect(response.status == .badRequest, "\(path)")
          #expect(Self.json(response)["error_code"] as? String == "INVALID_PARAMETER_VALUE", "\(path)")
        }
      }
    }
  }

  @Test func inferenceInputsThatDoNotFitAre400() async throws {
    let cases: [(String, HTTPFields, String)] = [
      (
        #"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3]}]}"#, [:],
        "4 elements, data has 3"
      ),
      (#"{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}"#, [:], "FP99"),
      (#"{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}"#, [:], "fits Int8"),
      (#"{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}"#, [:], "datatype"),
      (
        #"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "parameters": {"binary_data_size": 16}}]}"#,
        [HTTPField.Name("Inference-Header-Content-Length")!: "900"], "is not a length"
      ),
    ]
    try await Self.application().test(.router) { client in
      for (body, headers, fragment) in cases {
        var all = headers
        all[.authorization] = "Bearer shoal_test"
        try await client.execute(uri: "/v2/models/m/infer", method: .post, headers: all, body: ByteBuffer(string: body))
        {
          response in
          #expect(response.status == .badRequest, "\(body)")
          let message = Self.json(response)["error"] as? String ?? ""
          #expect(message.contains(fragment), "\(body): \(message)")
        }
      }
    }
  }

  @Test func aMeshThatCannotBeReachedIs503NotAnInternalError() async throws {
    try await Self.application().test(.router) { client in
      try await client.execute(
        uri: "/api/2.0/mlflow/experiments/get?experiment_id=1", method: .get, headers: Self.token
      ) {
        response in
        #expect(response.status == .serviceUnavailable)
        #expect(Self.json(response)["error_code"] as? String == "TEMPORARILY_UNAVAILABLE")
      }
    }
  }
}
