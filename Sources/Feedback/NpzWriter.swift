/// A numpy `.npz` archive written as it goes: a zip of stored (uncompressed) `.npy` files, each
/// a 1-D uint8 array, with the central directory at the end.
struct NpzWriter {
  private(set) var bytes: [UInt8] = []
  private var directory: [UInt8] = []
  private var entries = 0
  private var offset = 0

  /// Appends `values` as the array named `key` (the file `key.npy`).
  mutating func add(_ key: String, _ values: [UInt8]) {
    let file = Self.npy(values)
    let name = Array("\(key).npy".utf8)
    let crc = Self.crc32(file)
    var local: [UInt8] = []
    local += Self.u32(0x0403_4B50) + Self.u16(20) + Self.u16(0) + Self.u16(0) + Self.u16(0) + Self.u16(0x21)
    local += Self.u32(crc) + Self.u32(UInt32(file.count)) + Self.u32(UInt32(file.count))
    local += Self.u16(UInt16(name.count)) + Self.u16(0) + name
    directory += Self.u32(0x0201_4B50) + Self.u16(20) + Self.u16(20) + Self.u16(0) + Self.u16(0) + Self.u16(0)
    directory += Self.u16(0x21) + Self.u32(crc) + Self.u32(UInt32(file.count)) + Self.u32(UInt32(file.count))
    directory += Self.u16(UInt16(name.count)) + Self.u16(0) + Self.u16(0) + Self.u16(0) + Self.u16(0)
    directory += Self.u32(0) + Self.u32(UInt32(offset)) + name
    bytes += local + file
    offset += local.count + file.count
    entries += 1
  }

  /// Takes the bytes written so far (to send them), keeping the archive's state.
  mutating func take() -> [UInt8] {
    defer { bytes = [] }
    return bytes
  }

  /// The central directory and its end record.
  mutating func finish() -> [UInt8] {
    var end = directory
    end += Self.u32(0x0605_4B50) + Self.u16(0) + Self.u16(0) + Self.u16(UInt16(entries)) + Self.u16(UInt16(entries))
    end += Self.u32(UInt32(directory.count)) + Self.u32(UInt32(offset)) + Self.u16(0)
    return take() + end
  }

  /// A `.npy` file (format 1.0) of a 1-D uint8 array.
  static func npy(_ values: [UInt8]) -> [UInt8] {
    var header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(values.count),), }"
    // Magic (6), version (2) and length (2) plus the header and its newline, to a multiple of 64.
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    return [0x93] + Array("NUMPY".utf8) + [1, 0] + u16(UInt16(header.utf8.count)) + Array(header.utf8) + values
  }

  static func u16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
  static func u32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * $0) & 0xFF) } }

  private static let crcTable: [UInt32] = (0..<256).map { index in
    var value = UInt32(index)
    for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
    return value
  }

  static func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    return crc ^ 0xFFFF_FFFF
  }
}
