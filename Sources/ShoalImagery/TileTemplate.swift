import Foundation
public import ShoalGeo

/// A tile URL template: `{z}`, `{x}`, `{y}`, `{-y}` (TMS rows, counted from the south),
/// `{quadkey}` and `{s}` (one of the subdomains, chosen by the tile so that a tile always has the
/// same URL). `http`, `https` and `file` URLs; a `file://` template names files in a directory.
public struct TileTemplate: Sendable, Hashable, CustomStringConvertible {
  /// The template as given.
  public let text: String
  /// What `{s}` is replaced with.
  public let subdomains: [String]

  /// The placeholders a template may hold.
  public static let placeholders = ["z", "x", "y", "-y", "quadkey", "s"]

  /// Checks `text`: an http, https or file URL naming a tile by `{z}` with `{x}` and `{y}` (or
  /// `{-y}`), or by `{quadkey}`, with no other placeholder, and subdomains when it has `{s}`.
  ///
  /// - Throws: an `ImageryError` saying what is missing or unknown.
  public init(_ text: String, subdomains: [String] = []) throws(ImageryError) {
    guard let scheme = text.split(separator: ":", maxSplits: 1).first.map({ $0.lowercased() }),
      ["http", "https", "file"].contains(scheme), text.contains("://")
    else {
      throw ImageryError("template '\(text)': give an http://, https:// or file:// URL")
    }
    var found: Set<String> = []
    var rest = Substring(text)
    while let open = rest.firstIndex(of: "{") {
      guard let close = rest[open...].firstIndex(of: "}") else {
        throw ImageryError("template '\(text)': a '{' is never closed")
      }
      let name = String(rest[rest.index(after: open)..<close])
      guard Self.placeholders.contains(name) else {
        throw ImageryError(
          "template '\(text)': unknown placeholder {\(name)}; use {z}, {x}, {y}, {-y}, {quadkey} or {s}")
      }
      found.insert(name)
      rest = rest[rest.index(after: close)...]
    }
    if !found.contains("quadkey") {
      guard found.contains("z") else {
        throw ImageryError("template '\(text)': it names no tile; give {z}/{x}/{y} (or {-y}) or {quadkey}")
      }
      guard found.contains("x"), found.contains("y") || found.contains("-y") else {
        throw ImageryError("template '\(text)': with {z} give {x} and {y} (or {-y} for TMS)")
      }
    }
    if found.contains("s"), subdomains.isEmpty {
      throw ImageryError("template '\(text)': it has {s}; give the subdomains")
    }
    guard subdomains.allSatisfy({ !$0.isEmpty && !$0.contains("/") }) else {
      throw ImageryError("subdomains: each is a non-empty name without '/'")
    }
    self.text = text
    self.subdomains = subdomains
  }

  /// Whether the template names local files.
  public var isFile: Bool { text.lowercased().hasPrefix("file://") }

  /// The URL (or, for `file://`, the path) of `tile`.
  public func location(of tile: Tile) -> String {
    var url = text
    if url.contains("{s}") {
      url = url.replacingOccurrences(of: "{s}", with: subdomains[(tile.x + tile.y) % subdomains.count])
    }
    url = url.replacingOccurrences(of: "{z}", with: String(tile.z))
      .replacingOccurrences(of: "{x}", with: String(tile.x))
      .replacingOccurrences(of: "{-y}", with: String((1 << tile.z) - 1 - tile.y))
      .replacingOccurrences(of: "{y}", with: String(tile.y))
      .replacingOccurrences(of: "{quadkey}", with: tile.quadkey)
    if isFile { return String(url.dropFirst("file://".count)).removingPercentEncoding ?? "" }
    return url
  }

  public var description: String { text }
}

/// Why imagery could not be added or fetched.
public struct ImageryError: Error, Sendable, CustomStringConvertible {
  public var message: String

  public init(_ message: String) { self.message = message }

  public var description: String { message }
}
