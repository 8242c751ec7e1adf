import ShoalProto

/// OIP tensors between their JSON form (`data` as numbers, booleans or strings, row-major,
/// nested or flat) and the little-endian raw contents the inference service takes.
enum OIPTensor {
  /// Bytes per element; nil for BYTES, whose elements are each a 4-byte length and the bytes.
  static func elementSize(_ datatype: String) -> Int? {
    switch datatype {
    case "BOOL", "UINT8", "INT8": 1
    case "UINT16", "INT16", "FP16", "BF16": 2
    case "UINT32", "INT32", "FP32": 4
    case "UINT64", "INT64", "FP64": 8
    default: nil
    }
  }

  static let datatypes = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES",
  ]

  /// The raw contents of `data` (JSON) for a tensor of `datatype` and `count` elements.
  static func raw(_ data: JSONValue, datatype: String, count: Int, name: String) throws(GatewayError) -> [UInt8] {
    var values: [JSONValue] = []
    flatten(data, into: &values)
    guard values.count == count else {
      throw GatewayError.invalid("input '\(name)': shape holds \(count) elements, data has \(values.count)")
    }
    var out: [UInt8] = []
    out.reserveCapacity(count * (elementSize(datatype) ?? 8))
    for (index, value) in values.enumerated() {
      let place = "input '\(name)' data[\(index)]"
      switch datatype {
      case "BOOL":
        guard case .bool(let flag) = value else { throw GatewayError.invalid("\(place): expected true or false") }
        out.append(flag ? 1 : 0)
      case "BYTES":
        guard case .string(let text) = value else { throw GatewayError.invalid("\(place): expected a string") }
        append(UInt32(text.utf8.count), to: &out)
        out += Array(text.utf8)
      case "FP32": append(try number(value, place, as: Float.self).bitPattern, to: &out)
      case "FP64": append(try number(value, place, as: Double.self).bitPattern, to: &out)
      case "FP16":
        #if arch(x86_64) || arch(arm64)
          append(Float16(try number(value, place, as: Float.self)).bitPattern, to: &out)
        #else
          throw GatewayError.invalid("\(place): FP16 is not supported on this machine")
        #endif
      case "INT8": append(UInt8(bitPattern: try integer(value, place, as: Int8.self)), to: &out)
      case "INT16": append(UInt16(bitPattern: try integer(value, place, as: Int16.self)), to: &out)
      case "INT32": append(UInt32(bitPattern: try integer(value, place, as: Int32.self)), to: &out)
      case "INT64": append(UInt64(bitPattern: try integer(value, place, as: Int64.self)), to: &out)
      case "UINT8": out.append(try integer(value, place, as: UInt8.self))
      case "UINT16": append(try integer(value, place, as: UInt16.self), to: &out)
      case "UINT32": append(try integer(value, place, as: UInt32.self), to: &out)
      case "UINT64": append(try integer(value, place, as: UInt64.self), to: &out)
      default:
        throw GatewayError.invalid(
          "input '\(name)': datatype '\(datatype)' is not one of \(datatypes.joined(separator: ", "))")
      }
    }
    return out
  }

  /// The JSON `data` of raw contents.
  static func json(_ raw: [UInt8], datatype: String) -> JSONValue {
    var values: [JSONValue] = []
    raw.withUnsafeBytes { bytes in
      func each<T>(_ type: T.Type, _ make: (T) -> JSONValue) {
        let size = MemoryLayout<T>.size
        var offset = 0
        while offset + size <= bytes.count {
          values.append(make(bytes.loadUnaligned(fromByteOffset: offset, as: T.self)))
          offset += size
        }
      }
      switch datatype {
      case "BOOL": each(UInt8.self) { .bool($0 != 0) }
      case "FP32": each(Float.self) { $0._jsonValue() }
      case "FP64": each(Double.self) { $0._jsonValue() }
      case "INT8": each(Int8.self) { .number(String($0)) }
      case "INT16": each(Int16.self) { .number(String($0)) }
      case "INT32": each(Int32.self) { .number(String($0)) }
      case "INT64": each(Int64.self) { .number(String($0)) }
      case "UINT8": each(UInt8.self) { .number(String($0)) }
      case "UINT16": each(UInt16.self) { .number(String($0)) }
      case "UINT32": each(UInt32.self) { .number(String($0)) }
      case "UINT64": each(UInt64.self) { .number(String($0)) }
      #if arch(x86_64) || arch(arm64)
        case "FP16": each(UInt16.self) { Float(Float16(bitPattern: $0))._jsonValue() }
      #endif
      case "BYTES":
        var offset = 0
        while offset + 4 <= bytes.count {
          let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
          offset += 4
          guard offset + length <= bytes.count else { break }
          values.append(.string(String(decoding: bytes[offset..<offset + length], as: UTF8.self)))
          offset += length
        }
      default: break
      }
    }
    return .array(values)
  }

  private static func flatten(_ value: JSONValue, into values: inout [JSONValue]) {
    if case .array(let elements) = value {
      for element in elements { flatten(element, into: &values) }
    } else {
      values.append(value)
    }
  }

  private static func number<T: _JSONFieldValue & BinaryFloatingPoint>(
    _ value: JSONValue, _ place: String, as type: T.Type
  ) throws(GatewayError) -> T {
    if case .null = value { throw GatewayError.invalid("\(place): expected a number, found null") }
    do {
      return try T(_json: value, path: place)
    } catch {
      throw GatewayError.invalid(error.message)
    }
  }

  private static func integer<T: FixedWidthInteger>(
    _ value: JSONValue, _ place: String, as type: T.Type
  ) throws(GatewayError) -> T {
    if case .number(let text) = value {
      if let exact = T(text) { return exact }
      if let real = Double(text), real.rounded() == real, let exact = T(exactly: real) { return exact }
    }
    if case .bool(let flag) = value { return flag ? 1 : 0 }
    throw GatewayError.invalid("\(place): expected an integer that fits \(T.self), found \(value.kindName)")
  }

  private static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { out += $0 }
  }
}
