/// POSIX ustar archive entries, written as they come: a 512-byte header per file, its bytes padded
/// to 512, and two empty blocks at the end. Times are 0, so that the same files make the same bytes.
enum TarWriter {
  /// The header and padded bytes of the file `name` (at most 100 bytes of path).
  static func entry(_ name: String, _ data: [UInt8]) -> [UInt8] {
    precondition(name.utf8.count <= 100, "a tar name longer than 100 bytes")
    var header = [UInt8](repeating: 0, count: 512)
    func put(_ text: String, at offset: Int) {
      for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte }
    }
    func octal(_ value: Int, width: Int) -> String {
      let digits = String(value, radix: 8)
      return String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
    }
    put(name, at: 0)
    put(octal(0o644, width: 8), at: 100)
    put(octal(0, width: 8), at: 108)
    put(octal(0, width: 8), at: 116)
    put(octal(data.count, width: 12), at: 124)
    put(octal(0, width: 12), at: 136)
    put("        ", at: 148)
    header[156] = UInt8(ascii: "0")
    put("ustar", at: 257)
    put("00", at: 263)
    let checksum = header.reduce(0) { $0 + Int($1) }
    put(octal(checksum, width: 7), at: 148)
    header[155] = UInt8(ascii: " ")
    let padding = (512 - data.count % 512) % 512
    return header + data + [UInt8](repeating: 0, count: padding)
  }

  /// The end of an archive.
  static let end = [UInt8](repeating: 0, count: 1024)
}
