import Foundation
import ShoalProto
import ShoalTestSupport
import Testing

/// Real `.onnx` files (the onnx package's backend test models) decode as the onnx package reads
/// them, and what Shoal re-encodes loads in the onnx package the same way.
struct OnnxModelFileTests {
  @Test func everyBackendTestModelDecodesAndReEncodesAsTheReferenceReadsIt() async throws {
    let peer = try await PythonPeer()
    let dataDirectory = try await peer.onnxDataDirectory()
    let paths = try FileManager.default.subpathsOfDirectory(atPath: dataDirectory)
      .filter { $0.hasSuffix(".onnx") }.sorted().map { "\(dataDirectory)/\($0)" }
    #expect(paths.count >= 100)
    let reference = try await peer.onnxSummaries(paths)

    let output = try TemporaryDirectory()
    var reEncoded: [String: String] = [:]
    for (i, path) in paths.enumerated() {
      let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
      let model = try Onnx.ModelProto(serializedBytes: bytes)
      let expected = try JSONValue(parsing: try #require(reference[path]))
      #expect(Self.summary(model) == expected, "\(path)")
      let copy = output.path("\(i).onnx")
      try Data(model.serializedBytes()).write(to: URL(fileURLWithPath: copy))
      reEncoded[copy] = path
    }
    let reread = try await peer.onnxSummaries(Array(reEncoded.keys))
    for (copy, original) in reEncoded {
      #expect(reread[copy] == reference[original], "\(original) re-encoded by Shoal")
    }
  }

  @Test func graphInputsAndOutputsOfAConvolutionModel() async throws {
    let peer = try await PythonPeer()
    let path = "\(try await peer.onnxDataDirectory())/pytorch-operator/test_operator_conv/model.onnx"
    let model = try Onnx.ModelProto(serializedBytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    let graph = try #require(model.graph)
    #expect(graph.node.contains { $0.opType == "Conv" })
    let input = try #require(graph.input.first)
    guard case .tensorType(let tensor)? = input.type?.value else {
      Issue.record("input \(input.name) is not a tensor")
      return
    }
    #expect(tensor.elemType == Onnx.TensorProto.DataType.float.rawValue)
    #expect(tensor.shape?.dim.count == 4)
    #expect(!graph.output.isEmpty)
  }

  /// The same summary proto_peer.py makes with the onnx package.
  static func summary(_ model: Onnx.ModelProto) -> JSONValue {
    let graph = model.graph ?? Onnx.GraphProto()
    func number<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }
    func numbers<T: BinaryInteger>(_ values: [T]) -> JSONValue { .array(values.map(number)) }
    func strings(_ values: [String]) -> JSONValue { .array(values.map(JSONValue.string)) }
    func hex(_ bytes: [UInt8]) -> String {
      let digits = Array("0123456789abcdef")
      return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
    func valueInfo(_ info: Onnx.ValueInfoProto) -> JSONValue {
      var elemType: Int32 = 0
      var dims = JSONValue.null
      if case .tensorType(let tensor)? = info.type?.value {
        elemType = tensor.elemType
        if let shape = tensor.shape {
          dims = .array(
            shape.dim.map { dim in
              switch dim.value {
              case .dimValue(let value)?: number(value)
              case .dimParam(let name)?: .string(name)
              case nil: .null
              }
            }
          )
        }
      }
      return .array([.string(info.name), number(elemType), dims])
    }
    func attribute(_ a: Onnx.AttributeProto) -> JSONValue {
      let t = a.t ?? Onnx.TensorProto()
      return .array([
        .string(a.name), number(a.type.rawValue), number(a.i), number(a.f.bitPattern), .string(hex(a.s)),
        numbers(a.ints),
        numbers(a.floats.map(\.bitPattern)), numbers(t.dims), number(t.dataType), number(t.rawData.count),
        number(a.g?.node.count ?? 0),
      ])
    }
    return .object([
      ("ir", number(model.irVersion)),
      ("producer", .string(model.producerName)),
      ("opsets", .array(model.opsetImport.map { .array([.string($0.domain), number($0.version)]) })),
      ("inputs", .array(graph.input.map(valueInfo))),
      ("outputs", .array(graph.output.map(valueInfo))),
      (
        "nodes",
        .array(
          graph.node.map {
            .array([
              .string($0.opType), .string($0.domain), strings($0.input), strings($0.output),
              .array($0.attribute.map(attribute)),
            ])
          }
        )
      ),
      (
        "initializers",
        .array(
          graph.initializer.map {
            .array([
              .string($0.name), number($0.dataType), numbers($0.dims), number($0.rawData.count),
              number($0.floatData.count),
              number($0.int64Data.count), number($0.int32Data.count),
            ])
          }
        )
      ),
    ])
  }
}
