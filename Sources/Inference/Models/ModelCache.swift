import Foundation
import ShoalRPC
public import ShoalStore

/// The model files this service has downloaded, by content: a version whose file is cached loads
/// without a download. The cache keeps at most `limit` bytes; adding a file past that evicts the
/// files of versions that are not loaded, least recently used first. A file's last use is its
/// modification time, so the order survives a restart.
public actor ModelCache {
  /// The files, content-addressed and verified on read.
  public let blobs: BlobStore
  /// The most bytes kept (a loaded version's file is kept even past it).
  public let limit: Int64
  private var entries: [BlobDigest: (size: Int64, lastUse: Date)] = [:]
  private var inUse: [BlobDigest: Int] = [:]
  private var scanned = false

  /// A cache in `blobs` of at most `limit` bytes.
  public init(blobs: BlobStore, limit: Int64) {
    self.blobs = blobs
    self.limit = limit
  }

  /// The bytes cached now.
  public var size: Int64 { entries.values.reduce(0) { $0 + $1.size } }

  /// Whether `digest` is cached.
  public func contains(_ digest: BlobDigest) async -> Bool {
    await scanIfNeeded()
    return entries[digest] != nil
  }

  /// The file `digest`, verified, marked in use until `release`. `download` fetches it into the
  /// writer it is given when it is not cached.
  ///
  /// - Throws: DATA_LOSS when what was downloaded or stored does not have the digest, and what
  ///   `download` throws; nothing partial is kept.
  public func acquire(
    _ digest: BlobDigest, download: @Sendable (BlobWriter) async throws -> Void
  ) async throws -> (bytes: [UInt8], downloaded: Bool) {
    await scanIfNeeded()
    var downloaded = false
    let present = entries[digest] != nil ? (try? await blobs.size(of: digest)) != nil : false
    if !present {
      let writer = try await blobs.makeWriter()
      do {
        try await download(writer)
        let (stored, size) = try await writer.commit(expecting: digest)
        entries[stored] = (size, Date())
        downloaded = true
      } catch let error as StoreError {
        await writer.abort()
        throw RPCError(error.code == .dataLoss ? .dataLoss : .unavailable, "model file \(digest.hex): \(error)")
      } catch {
        await writer.abort()
        throw error
      }
    }
    inUse[digest, default: 0] += 1
    do {
      let bytes = try await blobs.read(digest)
      touch(digest)
      await evict()
      return (bytes, downloaded)
    } catch {
      release(digest)
      if let error = error as? StoreError, error.code == .dataLoss {
        // A file altered on disk: drop it, so that the next load downloads it again.
        _ = try? await blobs.delete(digest)
        entries[digest] = nil
        throw RPCError(.dataLoss, "the cached model file \(digest.hex) no longer matches its digest; it was removed")
      }
      throw error
    }
  }

  /// The file is no longer held by a loaded version; it may be evicted.
  public func release(_ digest: BlobDigest) {
    guard let count = inUse[digest] else { return }
    inUse[digest] = count > 1 ? count - 1 : nil
  }

  /// Removes unused files, least recently used first, until the cache fits its limit.
  public func evict() async {
    var total = size
    guard total > limit else { return }
    for (digest, entry) in entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) where inUse[digest] == nil {
      guard total > limit else { break }
      if (try? await blobs.delete(digest)) != nil {
        entries[digest] = nil
        total -= entry.size
      }
    }
  }

  private func touch(_ digest: BlobDigest) {
    let now = Date()
    entries[digest]?.lastUse = now
    try? FileManager.default.setAttributes([.modificationDate: now], ofItemAtPath: blobs.path(of: digest))
  }

  private func scanIfNeeded() async {
    guard !scanned else { return }
    scanned = true
    for digest in (try? await blobs.list()) ?? [] {
      let attributes = try? FileManager.default.attributesOfItem(atPath: blobs.path(of: digest))
      let size = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
      entries[digest] = (size, attributes?[.modificationDate] as? Date ?? .distantPast)
    }
  }
}
