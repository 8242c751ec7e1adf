public import Foundation
public import ShoalGeo
import Synchronization

/// Fetched tiles on local disk, `ROOT/<source key>/<z>/<x>/<y>`, kept under a size limit: when a
/// tile would pass it, the tiles used longest ago are deleted first.
///
/// One process owns a cache directory. What is on disk is counted when the cache opens.
public final class TileCache: Sendable {
  /// The directory.
  public let root: String
  /// The most bytes kept.
  public let limit: Int64

  private struct Entry {
    var size: Int64
    var used: UInt64
  }

  private struct State {
    var entries: [String: Entry] = [:]
    var total: Int64 = 0
    var clock: UInt64 = 0
    var hits = 0
    var misses = 0
  }

  private let state = Mutex(State())

  /// Opens (creating it if needed) the cache in `root`, kept under `limit` bytes.
  public init(root: String, limit: Int64) throws {
    self.root = root
    self.limit = max(0, limit)
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    var found: [(path: String, size: Int64, modified: Date)] = []
    if let walker = FileManager.default.enumerator(atPath: root) {
      while let relative = walker.nextObject() as? String {
        let attributes = walker.fileAttributes
        guard attributes?[.type] as? FileAttributeType == .typeRegular else { continue }
        if relative.hasSuffix(".partial") {
          try? FileManager.default.removeItem(atPath: "\(root)/\(relative)")
          continue
        }
        let size = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        found.append((relative, size, attributes?[.modificationDate] as? Date ?? .distantPast))
      }
    }
    found.sort { $0.modified < $1.modified }
    state.withLock { state in
      for file in found {
        state.clock += 1
        state.entries[file.path] = Entry(size: file.size, used: state.clock)
        state.total += file.size
      }
    }
    evict(keeping: nil)
  }

  /// Bytes on disk now.
  public var size: Int64 { state.withLock { $0.total } }
  /// Tiles on disk now.
  public var count: Int { state.withLock { $0.entries.count } }
  /// Lookups that found their tile, and those that did not, since the cache opened.
  public var hitsAndMisses: (hits: Int, misses: Int) { state.withLock { ($0.hits, $0.misses) } }

  /// The cached bytes of `tile` from the source keyed `key`, if present.
  public func get(_ key: String, _ tile: Tile) -> Data? {
    let relative = Self.relativePath(key, tile)
    let known = state.withLock { state -> Bool in
      guard state.entries[relative] != nil else {
        state.misses += 1
        return false
      }
      state.clock += 1
      state.entries[relative]!.used = state.clock
      state.hits += 1
      return true
    }
    guard known else { return nil }
    guard let data = FileManager.default.contents(atPath: "\(root)/\(relative)") else {
      forget(relative)
      return nil
    }
    return data
  }

  /// Keeps `data` as `tile` of the source keyed `key`, then deletes the least recently used tiles
  /// while the cache is over its limit. A tile larger than the whole limit is not kept.
  public func put(_ key: String, _ tile: Tile, _ data: Data) {
    guard Int64(data.count) <= limit else { return }
    let relative = Self.relativePath(key, tile)
    let path = "\(root)/\(relative)"
    let partial = "\(path).\(UUID().uuidString).partial"
    do {
      try FileManager.default.createDirectory(
        atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try data.write(to: URL(fileURLWithPath: partial))
      if rename(partial, path) != 0 { throw CocoaError(.fileWriteUnknown) }
    } catch {
      try? FileManager.default.removeItem(atPath: partial)
      return
    }
    state.withLock { state in
      state.total -= state.entries[relative]?.size ?? 0
      state.clock += 1
      state.entries[relative] = Entry(size: Int64(data.count), used: state.clock)
      state.total += Int64(data.count)
    }
    evict(keeping: relative)
  }

  private func forget(_ relative: String) {
    state.withLock { state in
      if let entry = state.entries.removeValue(forKey: relative) { state.total -= entry.size }
    }
  }

  private func evict(keeping kept: String?) {
    let victims = state.withLock { state -> [String] in
      guard state.total > limit else { return [] }
      // Down to 90% of the limit, so that a full cache sorts its entries once per many puts.
      let target = limit - limit / 10
      var victims: [String] = []
      for (path, entry) in state.entries.sorted(by: { $0.value.used < $1.value.used }) {
        guard state.total > target else { break }
        if path == kept { continue }
        victims.append(path)
        state.total -= entry.size
        state.entries[path] = nil
      }
      return victims
    }
    for path in victims { try? FileManager.default.removeItem(atPath: "\(root)/\(path)") }
  }

  static func relativePath(_ key: String, _ tile: Tile) -> String { "\(key)/\(tile.z)/\(tile.x)/\(tile.y)" }
}
