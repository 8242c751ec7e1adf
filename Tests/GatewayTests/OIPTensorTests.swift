import ShoalProto
import Testing

@testable import Gateway

/// OIP's JSON tensors to raw little-endian contents and back.
struct OIPTensorTests {
  @Test func everyDatatypeRoundTrips() throws {
    let cases: [(String, JSONValue)] = [
      ("BOOL", .array([.bool(true), .bool(false)])),
      ("UINT8", .array([.number("0"), .number("255")])),
      ("INT8", .array([.number("-128"), .number("127")])),
      ("UINT16", .array([.number("65535"), .number("1")])),
      ("INT16", .array([.number("-32768"), .number("7")])),
      ("UINT32", .array([.number("4294967295"), .number("2")])),
      ("INT32", .array([.number("-2147483648"), .number("3")])),
      ("UINT64", .array([.number("18446744073709551615"), .number("4")])),
      ("INT64", .array([.number("-9223372036854775808"), .number("5")])),
      ("FP32", .array([.number("0.5"), .string("NaN")])),
      ("FP64", .array([.number("-0.25"), .string("-Infinity")])),
      ("FP16", .array([.number("1.5"), .number("-2.0")])),
      ("BYTES", .array([.string("héllo"), .string("")])),
    ]
    for (datatype, data) in cases {
      let raw = try OIPTensor.raw(data, datatype: datatype, count: 2, name: "x")
      if let size = OIPTensor.elementSize(datatype) { #expect(raw.count == 2 * size, "\(datatype)") }
      #expect(OIPTensor.json(raw, datatype: datatype) == data, "\(datatype)")
    }
  }

  @Test func nestedDataIsRowMajorAndLittleEndian() throws {
    let data = JSONValue.array([.array([.number("1"), .number("2")]), .array([.number("3"), .number("258")])])
    let raw = try OIPTensor.raw(data, datatype: "INT16", count: 4, name: "x")
    #expect(raw == [1, 0, 2, 0, 3, 0, 2, 1])
  }
}
