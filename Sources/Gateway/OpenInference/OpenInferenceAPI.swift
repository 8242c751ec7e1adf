import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ShoalProto
import ShoalRPC

/// KServe's Open Inference Protocol v2 over REST, with Triton's binary tensor extension, over the
/// inference service: `tritonclient.http` and other OIP clients work unchanged.
///
/// `{m}` is a Shoal model reference as loaded in inference (`roads`, `roads@production`);
/// `versions/{v}` makes it `m/v`. Errors are `{"error": …}`.
struct OpenInferenceAPI: Sendable {
  let gateway: Gateway

  var inference: InferenceV1.Inference.Client { gateway.mesh.inference }

  static let headerLength = HTTPField.Name("Inference-Header-Content-Length")!

  func register(in router: Router<GatewayContext>) {
    let api = self
    router.get("v2/health/live") { _, _ in Response.json(.object([("live", .bool(true))])) }
    router.get("v2/health/ready") { request, context in
      let caller = try api.gateway.caller(request, context)
      _ = try await api.inference.modelStatus(
        InferenceV1.ModelStatusRequest(), options: caller.options(timeout: .seconds(5)))
      return Response.json(.object([("ready", .bool(true))]))
    }
    let version = gateway.config.serverVersion
    router.get("v2") { _, _ in
      Response.json(
        .object([
          ("name", .string("shoal")), ("version", .string(version)),
          (
            "extensions",
            .array([.string("binary_tensor_data"), .string("classification"), .string("model_configuration")])
          ),
        ]))
    }
    for versioned in [false, true] {
      let base = versioned ? "v2/models/:model/versions/:version" : "v2/models/:model"
      router.get(RouterPath(base)) { request, context in
        try await api.metadata(try api.gateway.caller(request, context), try Self.reference(context))
      }
      router.get(RouterPath("\(base)/ready")) { request, context in
        try await api.ready(try api.gateway.caller(request, context), try Self.reference(context))
      }
      router.get(RouterPath("\(base)/config")) { request, context in
        try await api.config(try api.gateway.caller(request, context), try Self.reference(context))
      }
      router.post(RouterPath("\(base)/infer")) { request, context in
        try await api.infer(request, try api.gateway.caller(request, context), try Self.reference(context))
      }
    }
  }

  /// The reference the path names.
  static func reference(_ context: GatewayContext) throws(GatewayError) -> String {
    guard let model = context.parameters.get("model")?.removingPercentEncoding, !model.isEmpty else {
      throw GatewayError.invalid("the path names no model")
    }
    guard let version = context.parameters.get("version") else { return model }
    guard let number = Int64(version), number > 0 else {
      throw GatewayError.invalid("version '\(version)' is not a version number (1, 2, …)")
    }
    return "\(model)/\(number)"
  }

  func metadata(_ caller: GatewayCaller, _ reference: String) async throws -> Response {
    var request = InferenceV1.ModelMetadataRequest()
    request.model = reference
    let metadata = try await inference.modelMetadata(request, options: caller.options())
    let tensor = { (spec: InferenceV1.TensorMetadata) -> JSONValue in
      .object([
        ("name", .string(spec.name)), ("datatype", .string(spec.datatype)),
        ("shape", .array(spec.shape.map { .number(String($0)) })),
      ])
    }
    return Response.json(
      .object([
        ("name", .string(reference)), ("versions", .array(metadata.versions.map { .string($0) })),
        ("platform", .string(metadata.platform)), ("inputs", .array(metadata.inputs.map(tensor))),
        ("outputs", .array(metadata.outputs.map(tensor))),
      ]))
  }

  func ready(_ caller: GatewayCaller, _ reference: String) async throws -> Response {
    var request = InferenceV1.ModelStatusRequest()
    request.model = reference
    let models = try await inference.modelStatus(request, options: caller.options()).models
    guard let model = models.first, model.state == .available else {
      let state = models.first.map { $0.state.protoName ?? "unknown" } ?? "not loaded"
      throw GatewayError(.badRequest, "INVALID_STATE", "model '\(reference)' is not ready: \(state)")
    }
    return Response.json(.object([("name", .string(reference)), ("ready", .bool(true))]))
  }

  /// Triton's model configuration, as much as clients read: inputs and outputs with Triton's
  /// type names and dims (without the batch dimension when the model batches), and the batch size.
  func config(_ caller: GatewayCaller, _ reference: String) async throws -> Response {
    var metadataRequest = InferenceV1.ModelMetadataRequest()
    metadataRequest.model = reference
    let metadata = try await inference.modelMetadata(metadataRequest, options: caller.options())
    var statusRequest = InferenceV1.ModelStatusRequest()
    statusRequest.model = reference
    let loaded = try await inference.modelStatus(statusRequest, options: caller.options()).models.first
    var maxBatch: Int32 = 0
    if case .maxBatchSize(let size)? = loaded?.config?.batching?.maxBatch { maxBatch = size }
    let batched = maxBatch > 1 && metadata.inputs.allSatisfy { $0.shape.first == -1 }
    let tensor = { (spec: InferenceV1.TensorMetadata) -> JSONValue in
      let dims = batched ? Array(spec.shape.dropFirst()) : spec.shape
      return .object([
        ("name", .string(spec.name)),
        ("data_type", .string("TYPE_\(spec.datatype == "BYTES" ? "STRING" : spec.datatype)")),
        ("dims", .array(dims.map { .number(String($0)) })),
      ])
    }
    return Response.json(
      .object([
        ("name", .string(reference)), ("platform", .string("onnxruntime_onnx")), ("backend", .string("onnxruntime")),
        ("max_batch_size", .number(String(batched ? maxBatch : 0))), ("input", .array(metadata.inputs.map(tensor))),
        ("output", .array(metadata.outputs.map(tensor))),
      ]))
  }
}
