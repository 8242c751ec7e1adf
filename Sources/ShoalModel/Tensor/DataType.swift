import RealModule

/// The element types a tensor can hold: ONNX's, limited to those the model core computes with.
public enum DataType: Sendable, Hashable, CaseIterable, CustomStringConvertible {
  case float32
  case float64
  case int64
  case int32
  case int8
  case uint8
  case bool

  /// The size of one element in bytes.
  public var byteSize: Int {
    switch self {
    case .float64, .int64: 8
    case .float32, .int32: 4
    case .int8, .uint8, .bool: 1
    }
  }

  /// ONNX's `TensorProto.DataType` number.
  public var onnxCode: Int32 {
    switch self {
    case .float32: 1
    case .uint8: 2
    case .int8: 3
    case .int32: 6
    case .int64: 7
    case .bool: 9
    case .float64: 11
    }
  }

  /// The type for ONNX's `TensorProto.DataType` number, or nil when the model core has no such type.
  public init?(onnxCode: Int32) {
    guard let type = Self.allCases.first(where: { $0.onnxCode == onnxCode }) else { return nil }
    self = type
  }

  /// ONNX's name for an element type number (`FLOAT`, `INT64`, …), also for types the core lacks.
  public static func onnxName(_ code: Int32) -> String {
    let names = [
      "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16",
      "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
    ]
    return names.indices.contains(Int(code)) ? names[Int(code)] : "TYPE_\(code)"
  }

  /// numpy's little-endian type string (`<f4`, `<i8`, `|b1`, …).
  public var numpyDescriptor: String {
    switch self {
    case .float32: "<f4"
    case .float64: "<f8"
    case .int64: "<i8"
    case .int32: "<i4"
    case .int8: "|i1"
    case .uint8: "|u1"
    case .bool: "|b1"
    }
  }

  /// Whether the type is a floating-point type.
  public var isFloatingPoint: Bool { self == .float32 || self == .float64 }

  public var description: String { Self.onnxName(onnxCode).lowercased() }
}

/// A Swift type a tensor's elements can be read and written as.
public protocol TensorElement: Sendable {
  /// The tensor element type this Swift type stands for.
  static var dataType: DataType { get }
}

extension Float: TensorElement { public static var dataType: DataType { .float32 } }
extension Double: TensorElement { public static var dataType: DataType { .float64 } }
extension Int64: TensorElement { public static var dataType: DataType { .int64 } }
extension Int32: TensorElement { public static var dataType: DataType { .int32 } }
extension Int8: TensorElement { public static var dataType: DataType { .int8 } }
extension UInt8: TensorElement { public static var dataType: DataType { .uint8 } }
extension Bool: TensorElement { public static var dataType: DataType { .bool } }

/// The floating-point element types, with the elementary functions kernels need.
protocol FloatElement: TensorElement, BinaryFloatingPoint, RealModule.Real {}

extension Float: FloatElement {}
extension Double: FloatElement {}
