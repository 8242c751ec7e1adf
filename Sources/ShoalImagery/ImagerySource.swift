import Foundation
import ShoalGeo
import ShoalStore

/// A named, reusable imagery source: where tiles come from and how to ask for them.
///
/// `headers` may hold keys (`Authorization`, `X-Api-Key`); they are sent with every request and
/// are never returned by the service, written to a log or put in an error.
public struct ImagerySource: Sendable, Hashable {
  public var name: String
  public var template: TileTemplate
  /// The tiles' width and height in pixels.
  public var tileSize: Int
  public var minZoom: Int
  public var maxZoom: Int
  /// What the tiles are: `png`, `jpeg`, `webp` or `tiff`; empty: whatever the server sends.
  public var format: String
  public var attribution: String
  public var headers: [String: String]

  /// The formats a source may declare.
  public static let formats = ["", "png", "jpeg", "webp", "tiff"]

  /// Checks every field.
  ///
  /// - Throws: an `ImageryError` naming the field that is wrong.
  public init(
    name: String, template: TileTemplate, tileSize: Int = 256, minZoom: Int = 0, maxZoom: Int = 22,
    format: String = "", attribution: String = "", headers: [String: String] = [:]
  ) throws(ImageryError) {
    guard !name.isEmpty, name.count <= 128, !name.contains("/"), !name.contains(where: \.isWhitespace) else {
      throw ImageryError("name '\(name)': give 1 to 128 characters without '/' or spaces")
    }
    guard [64, 128, 256, 512, 1024, 2048].contains(tileSize) else {
      throw ImageryError("tile size \(tileSize): give 64, 128, 256, 512, 1024 or 2048 pixels")
    }
    guard (0...Tile.maxZoom).contains(minZoom), (0...Tile.maxZoom).contains(maxZoom), minZoom <= maxZoom else {
      throw ImageryError("zooms \(minZoom)–\(maxZoom): give 0 ≤ min ≤ max ≤ \(Tile.maxZoom)")
    }
    guard Self.formats.contains(format) else {
      throw ImageryError("format '\(format)': give png, jpeg, webp or tiff (or nothing)")
    }
    for (key, value) in headers {
      guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
        throw ImageryError("header '\(key)': a header name is letters, digits and '-'")
      }
      guard !value.contains("\r"), !value.contains("\n") else {
        throw ImageryError("header '\(key)': its value may not hold a line break")
      }
    }
    self.name = name
    self.template = template
    self.tileSize = tileSize
    self.minZoom = minZoom
    self.maxZoom = maxZoom
    self.format = format
    self.attribution = attribution
    self.headers = headers
  }

  /// Whether the source has tiles at `zoom`.
  public func serves(zoom: Int) -> Bool { (minZoom...maxZoom).contains(zoom) }

  /// What names this source's tiles in a cache shared by every source: the owner, the template
  /// and the headers (so that a tile fetched with one key is never served to a source without it).
  public func cacheKey(owner: String) -> String {
    let headerLines = headers.sorted { $0.key.lowercased() < $1.key.lowercased() }
      .map { "\($0.key.lowercased()): \($0.value)" }
    let text = ([owner, template.text, template.subdomains.joined(separator: ",")] + headerLines)
      .joined(separator: "\n")
    return String(BlobDigest.of(Array(text.utf8)).hex.prefix(32))
  }
}
