import ShoalGeo
import ShoalRPC
import ShoalStore

/// Where an item of a set of items (an audio clip, not a map tile) is kept: a tile at the
/// deepest zoom whose x and y are the first 48 bits of the SHA-256 of its key, so that the key
/// finds its row on the tile index without a lookup, and putting it again finds the same row.
/// Two keys of one set at one place (about one chance in 10^7 for 10,000 items) are refused.
enum ItemKey {
  static let zoom = Tile.maxZoom

  /// The place of `key`.
  ///
  /// - Throws: INVALID_ARGUMENT for an empty key or one over 200 characters.
  static func tile(_ key: String, at: String) throws(RPCError) -> Tile {
    guard (1...200).contains(key.count) else {
      throw RPCError(.invalidArgument, "\(at): give the item's key (1 to 200 characters)")
    }
    let digest = BlobDigest.of(Array(key.utf8)).hex
    let bits = UInt64(digest.prefix(12), radix: 16)!
    let side = UInt64(1) << UInt64(zoom)
    // Both halves are below 2^24, so the tile is valid.
    return try! Tile(z: zoom, x: Int(bits >> 24 & (side - 1)), y: Int(bits & (side - 1)))
  }
}
