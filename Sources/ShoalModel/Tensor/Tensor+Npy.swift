#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// numpy's `.npy` format (versions 1.0–3.0), the format people exchange tensors in.
extension Tensor {
  private static let npyMagic: [UInt8] = [0x93] + Array("NUMPY".utf8)

  /// The tensor stored in `.npy` bytes: little- or big-endian, C order.
  ///
  /// - Throws: `.invalidModel` for bytes that are not `.npy`, or `.unsupported` for Fortran order
  ///   or an element type the core lacks.
  public init(npy bytes: [UInt8]) throws(ModelError) {
    guard bytes.count >= 10, Array(bytes[0..<6]) == Self.npyMagic else {
      throw ModelError(.invalidModel, "not a .npy file (no \\x93NUMPY magic)")
    }
    let major = bytes[6]
    let headerLength: Int
    let headerStart: Int
    switch major {
    case 1:
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
      headerStart = 10
    case 2, 3:
      guard bytes.count >= 12 else { throw ModelError(.invalidModel, ".npy header is truncated") }
      headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }
      headerStart = 12
    default:
      throw ModelError(.unsupported, ".npy version \(major).\(bytes[7]) is not supported (1.0–3.0 are)")
    }
    guard bytes.count >= headerStart + headerLength else {
      throw ModelError(.invalidModel, ".npy header is truncated")
    }
    let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
    let fields = try NpyHeader(parsing: header)
    guard !fields.fortranOrder else {
      throw ModelError(.unsupported, ".npy in Fortran order is not supported; save with C order")
    }
    let descriptor = fields.descriptor
    let bigEndian = descriptor.hasPrefix(">")
    let normalised = bigEndian ? "<" + descriptor.dropFirst() : descriptor
    guard
      let dataType = DataType.allCases.first(where: {
        $0.numpyDescriptor == normalised || $0.numpyDescriptor == "|" + normalised.dropFirst()
          || "<" + $0.numpyDescriptor.dropFirst() == normalised
      })
    else {
      throw ModelError(.unsupported, ".npy element type '\(descriptor)' is not supported")
    }
    self.init(zeros: fields.shape, dataType: dataType)
    let dataStart = headerStart + headerLength
    guard bytes.count - dataStart >= byteCount else {
      throw ModelError(
        .invalidModel, ".npy data is truncated: \(bytes.count - dataStart) bytes for \(byteCount) expected")
    }
    let size = dataType.byteSize
    let target = buffer.pointer.assumingMemoryBound(to: UInt8.self)
    bytes.withUnsafeBufferPointer { source in
      if bigEndian && size > 1 {
        for element in 0..<count {
          for byte in 0..<size { target[element * size + byte] = source[dataStart + element * size + size - 1 - byte] }
        }
      } else {
        target.update(from: source.baseAddress! + dataStart, count: byteCount)
      }
    }
  }

  /// The tensor as `.npy` version 1.0 bytes, the header padded so the data starts 64-byte aligned.
  public func npyBytes() -> [UInt8] {
    let dimensions = shape.map(String.init).joined(separator: ", ")
    let shapeText = shape.count == 1 ? "(\(dimensions),)" : "(\(dimensions))"
    var header = "{'descr': '\(dataType.numpyDescriptor)', 'fortran_order': False, 'shape': \(shapeText), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: unpadded.roundedUp(to: 64) - unpadded) + "\n"
    var bytes = Self.npyMagic + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
    bytes += Array(header.utf8)
    withUnsafeBytes { bytes += $0 }
    return bytes
  }

  /// Reads a `.npy` file.
  public init(npyFile path: String) throws(ModelError) {
    try self.init(npy: try FileBytes.read(path))
  }

  /// Writes the tensor to a `.npy` file, replacing it.
  public func writeNpy(to path: String) throws(ModelError) {
    try FileBytes.write(npyBytes(), to: path)
  }
}

/// The dictionary in a `.npy` header: `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
private struct NpyHeader {
  var descriptor = ""
  var fortranOrder = false
  var shape: [Int] = []

  init(parsing header: String) throws(ModelError) {
    func value(of key: String) throws(ModelError) -> Substring {
      guard let keyRange = header.firstRange(of: "'\(key)'") ?? header.firstRange(of: "\"\(key)\""),
        let colon = header[keyRange.upperBound...].firstIndex(of: ":")
      else { throw ModelError(.invalidModel, ".npy header has no '\(key)': \(header)") }
      return header[header.index(after: colon)...].drop(while: { $0 == " " })
    }
    let descr = try value(of: "descr")
    guard let quote = descr.first, quote == "'" || quote == "\"",
      let end = descr.dropFirst().firstIndex(of: quote)
    else { throw ModelError(.invalidModel, ".npy header's descr is not a string: \(header)") }
    descriptor = String(descr[descr.index(after: descr.startIndex)..<end])
    fortranOrder = try value(of: "fortran_order").hasPrefix("True")
    let shapeText = try value(of: "shape")
    guard shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else {
      throw ModelError(.invalidModel, ".npy header's shape is not a tuple: \(header)")
    }
    for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
      let trimmed = part.trimmingCharacters(in: " L")
      if trimmed.isEmpty { continue }
      guard let dimension = Int(trimmed), dimension >= 0 else {
        throw ModelError(.invalidModel, ".npy header's shape has a bad dimension '\(part)'")
      }
      shape.append(dimension)
    }
  }
}

extension Substring {
  fileprivate func trimmingCharacters(in characters: String) -> Substring {
    drop(while: { characters.contains($0) }).reversed().drop(while: { characters.contains($0) }).reversed()
      .reduce(into: Substring()) { $0.append($1) }
  }
}

/// Whole-file reads and writes with POSIX calls (the model core does not need Foundation).
enum FileBytes {
  static func read(_ path: String) throws(ModelError) -> [UInt8] {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw ModelError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
      if count < 0 {
        if errno == EINTR { continue }
        throw ModelError(.io, "cannot read '\(path)': \(String(cString: strerror(errno)))")
      }
      if count == 0 { return bytes }
      bytes += chunk[0..<count]
    }
  }

  static func write(_ bytes: [UInt8], to path: String) throws(ModelError) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else {
      throw ModelError(.io, "cannot create '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    var written = 0
    while written < bytes.count {
      let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, $0.count - written) }
      if count < 0 {
        if errno == EINTR { continue }
        throw ModelError(.io, "cannot write '\(path)': \(String(cString: strerror(errno)))")
      }
      written += count
    }
  }
}
