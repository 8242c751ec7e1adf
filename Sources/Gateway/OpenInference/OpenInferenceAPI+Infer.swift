import HTTPTypes
import Hummingbird
import NIOCore
import ShoalProto
import ShoalRPC

/// `POST …/infer`: JSON tensors, or Triton's binary tensor extension (a JSON header of
/// `Inference-Header-Content-Length` bytes, then the raw tensors in input order).
extension OpenInferenceAPI {
  func infer(_ request: Request, _ caller: GatewayCaller, _ reference: String) async throws -> Response {
    let body = try await Gateway.body(request, limit: gateway.config.maxInferBytes)
    let bytes = Array(body.readableBytesView)
    var headerLength = bytes.count
    if let text = request.headers[Self.headerLength] {
      guard let length = Int(text), (0...bytes.count).contains(length) else {
        throw GatewayError.invalid(
          "Inference-Header-Content-Length: '\(text)' is not a length within the body's \(bytes.count) bytes")
      }
      headerLength = length
    }
    let fields = try RequestFields(json: String(decoding: bytes[0..<headerLength], as: UTF8.self))
    var binary = bytes[headerLength...]

    var predict = InferenceV1.PredictRequest()
    predict.model = reference
    predict.id = try fields.optionalString("id") ?? ""
    let parameters = try fields.object("parameters")
    let binaryOutputs = try parameters?.optionalBool("binary_data_output") ?? false
    predict.parameters = try Self.parameters(parameters, skipping: ["binary_data_output"])
    for (index, input) in try fields.objects("inputs").enumerated() {
      var tensor = InferenceV1.InferTensor()
      tensor.name = try input.string("name", at: "inputs[\(index)].")
      tensor.datatype = try input.string("datatype", at: "inputs[\(index)].")
      tensor.shape = try input.array("shape").enumerated().map { place, value throws(GatewayError) in
        guard case .number(let text) = value, let dimension = Int64(text), dimension >= 0 else {
          throw GatewayError.invalid("input '\(tensor.name)' shape[\(place)]: expected a size ≥ 0")
        }
        return dimension
      }
      let count = tensor.shape.reduce(1, *)
      let inputParameters = try input.object("parameters")
      if let size = try inputParameters?.optionalInt64("binary_data_size") {
        guard size >= 0, size <= binary.count else {
          throw GatewayError.invalid(
            "input '\(tensor.name)': binary_data_size \(size) is more than the \(binary.count) bytes left in the body")
        }
        tensor.rawContents = Array(binary.prefix(Int(size)))
        binary = binary.dropFirst(Int(size))
      } else if let data = input["data"] {
        tensor.rawContents = try OIPTensor.raw(data, datatype: tensor.datatype, count: Int(count), name: tensor.name)
      } else {
        throw GatewayError.invalid("input '\(tensor.name)': no data and no binary_data_size")
      }
      tensor.parameters = try Self.parameters(inputParameters, skipping: ["binary_data_size"])
      predict.inputs.append(tensor)
    }
    guard binary.isEmpty else {
      throw GatewayError.invalid("the body has \(binary.count) bytes after the inputs' binary data")
    }

    // Requested outputs: binary or JSON each, and Triton's classification extension.
    var binaryByName: [String: Bool] = [:]
    var classification: [String: Int64] = [:]
    for (index, output) in try fields.objects("outputs").enumerated() {
      var requested = InferenceV1.RequestedOutput()
      requested.name = try output.string("name", at: "outputs[\(index)].")
      let outputParameters = try output.object("parameters")
      binaryByName[requested.name] = try outputParameters?.optionalBool("binary_data") ?? binaryOutputs
      if let k = try outputParameters?.optionalInt64("classification") {
        guard k > 0 else { throw GatewayError.invalid("output '\(requested.name)': classification must be ≥ 1") }
        classification[requested.name] = k
        predict.topK = Int32(clamping: max(Int64(predict.topK), k))
      }
      requested.parameters = try Self.parameters(outputParameters, skipping: ["binary_data", "classification"])
      predict.outputs.append(requested)
    }

    let response = try await inference.predict(predict, options: caller.options())
    var outputs: [JSONValue] = []
    var raw: [UInt8] = []
    for output in response.outputs {
      var tensor = output
      if let k = classification[output.name] {
        tensor = Self.classification(response.topClasses, name: output.name, k: Int(k))
      }
      var members: [(String, JSONValue)] = [
        ("name", .string(tensor.name)), ("datatype", .string(tensor.datatype)),
        ("shape", .array(tensor.shape.map { .number(String($0)) })),
      ]
      if binaryByName[output.name] ?? binaryOutputs {
        members.append(("parameters", .object([("binary_data_size", .number(String(tensor.rawContents.count)))])))
        raw += tensor.rawContents
      } else {
        members.append(("data", OIPTensor.json(tensor.rawContents, datatype: tensor.datatype)))
      }
      outputs.append(.object(members))
    }
    var answer: [(String, JSONValue)] = [
      ("model_name", .string(reference)), ("model_version", .string(response.modelVersion)),
      ("outputs", .array(outputs)),
    ]
    if !response.id.isEmpty { answer.insert(("id", .string(response.id)), at: 2) }
    let json = JSONValue.object(answer).serialized()
    guard !raw.isEmpty else { return Response.json(.object(answer)) }
    var buffer = ByteBuffer(string: json)
    buffer.writeBytes(raw)
    return Response(
      status: .ok,
      headers: [.contentType: "application/octet-stream", Self.headerLength: String(json.utf8.count)],
      body: ResponseBody(byteBuffer: buffer))
  }

  /// OIP parameters (booleans, integers, strings, numbers) as Predict's.
  static func parameters(
    _ fields: RequestFields?, skipping: Set<String>
  ) throws(GatewayError) -> [String:
    InferenceV1.InferParameter]
  {
    var result: [String: InferenceV1.InferParameter] = [:]
    for (name, value) in fields?.members ?? [] where !skipping.contains(name) {
      var parameter = InferenceV1.InferParameter()
      switch value {
      case .bool(let flag): parameter.choice = .boolParam(flag)
      case .string(let text): parameter.choice = .stringParam(text)
      case .number(let text):
        if let integer = Int64(text) {
          parameter.choice = .int64Param(integer)
        } else if let real = Double(text) {
          parameter.choice = .doubleParam(real)
        }
      default:
        throw GatewayError.invalid(
          "parameters.\(name): expected a boolean, a number or a string, found \(value.kindName)")
      }
      result[name] = parameter
    }
    return result
  }

  /// Triton's classification output: per row, the k best as BYTES "score:index[:label]".
  static func classification(_ rows: [InferenceV1.TopClasses], name: String, k: Int) -> InferenceV1.InferTensor {
    var tensor = InferenceV1.InferTensor()
    tensor.name = name
    tensor.datatype = "BYTES"
    tensor.shape = [Int64(rows.count), Int64(k)]
    for row in rows {
      for index in 0..<k {
        let text: String
        if index < row.classes.count {
          let best = row.classes[index]
          text = best.name.isEmpty ? "\(best.score):\(best.index)" : "\(best.score):\(best.index):\(best.name)"
        } else {
          text = ""
        }
        withUnsafeBytes(of: UInt32(text.utf8.count).littleEndian) { tensor.rawContents += $0 }
        tensor.rawContents += Array(text.utf8)
      }
    }
    return tensor
  }
}
