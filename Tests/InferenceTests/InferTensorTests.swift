import Inference
import ShoalModel
import ShoalProto
import ShoalRPC
import Testing

struct InferTensorTests {
  let spec = Model.ValueSpec(name: "x", elementType: 1, dimensions: [.symbolic("batch"), .fixed(4)])

  func tensor(_ datatype: String = "FP32", _ shape: [Int64] = [2, 4], bytes: Int = 32) -> InferenceV1.InferTensor {
    var tensor = InferenceV1.InferTensor()
    tensor.name = "x"
    tensor.datatype = datatype
    tensor.shape = shape
    tensor.rawContents = [UInt8](repeating: 0, count: bytes)
    return tensor
  }

  func message(_ tensor: InferenceV1.InferTensor) -> String? {
    do {
      _ = try tensor.tensor(for: spec)
      return nil
    } catch {
      #expect(error.code == .invalidArgument)
      return error.message
    }
  }

  @Test func roundTripsRawContents() throws {
    let original = Tensor(shape: [2, 4], elements: (0..<8).map { Float($0) / 3 })
    let wire = InferenceV1.InferTensor(name: "x", tensor: original)
    #expect(wire.datatype == "FP32" && wire.shape == [2, 4] && wire.rawContents.count == 32)
    #expect(try wire.tensor(for: spec).elements(as: Float.self) == original.elements(as: Float.self))
  }

  @Test func badInputsNameWhatWasExpectedAndWhatCame() {
    #expect(message(tensor("FP64", bytes: 64))?.contains("the model expects FP32, got FP64") == true)
    #expect(message(tensor("FLOAT"))?.contains("'FLOAT' is not a datatype") == true)
    #expect(
      message(tensor("FP32", [2, 5], bytes: 40))?.contains("shape [2, 5] does not fit the model's [-1, 4]") == true)
    #expect(message(tensor("FP32", [2, 4, 1]))?.contains("does not fit") == true)
    #expect(
      message(tensor("FP32", [2, 4], bytes: 31))?.contains("raw_contents holds 31 bytes; shape [2, 4] of FP32 needs 32")
        == true)
    #expect(message(tensor("FP32", [-1, 4]))?.contains("negative") == true)
    #expect(message(tensor("FP32", [Int64(Int32.max), 4]))?.contains("needs 34359738352") == true)
    let huge = tensor("FP32", [Int64(Int32.max), Int64(Int32.max), Int64(Int32.max)])
    let unshaped = Model.ValueSpec(name: "x", elementType: 1, dimensions: nil)
    #expect(throws: RPCError.self) { try huge.tensor(for: unshaped) }
    #expect((try? huge.tensor(for: unshaped)) == nil)
    #expect(message(tensor("FP32", [2, 4])) == nil)
  }

  @Test func metadataShowsFreeDimensionsAsMinusOne() {
    let metadata = InferenceV1.TensorMetadata(spec)
    #expect(metadata.name == "x" && metadata.datatype == "FP32" && metadata.shape == [-1, 4])
  }
}
