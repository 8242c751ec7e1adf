import Foundation
import Synchronization

/// Reads a stored blob in chunks, hashing as it goes; at the end it checks the digest, so a blob
/// altered on disk fails with `StoreError.dataLoss` rather than ending quietly.
public final class BlobReader: Sendable {
  private struct State: ~Copyable {
    var hash = SHA256()
    var done = false
    var closed = false
  }

  /// The blob being read.
  public let digest: BlobDigest
  private let store: BlobStore
  private let descriptor: Int32
  private let chunkSize: Int
  private let state = Mutex(State())

  init(store: BlobStore, digest: BlobDigest, descriptor: Int32, chunkSize: Int) {
    self.store = store
    self.digest = digest
    self.descriptor = descriptor
    self.chunkSize = chunkSize
  }

  deinit { close() }

  /// The next chunk, or nil at the end of a blob whose bytes matched its digest.
  public func next() async throws -> [UInt8]? {
    if state.withLock({ $0.done || $0.closed }) { return nil }
    let descriptor = descriptor
    let size = chunkSize
    let path = store.path(of: digest)
    let chunk = try await store.blocking { () throws(StoreError) -> [UInt8] in
      var bytes = [UInt8](repeating: 0, count: size)
      var filled = 0
      while filled < size {
        let count = bytes.withUnsafeMutableBytes {
          Foundation.read(descriptor, $0.baseAddress! + filled, size - filled)
        }
        if count < 0 {
          if errno == EINTR { continue }
          throw BlobStore.ioError("cannot read \(path)")
        }
        if count == 0 { break }
        filled += count
      }
      bytes.removeLast(size - filled)
      return bytes
    }
    if !chunk.isEmpty {
      state.withLock { state in chunk.withUnsafeBytes { state.hash.update($0) } }
      return chunk
    }
    let hex = state.withLock { state -> String in
      state.done = true
      return state.hash.finish()
    }
    guard hex == digest.hex else {
      throw StoreError(
        .dataLoss, "blob \(digest.reference) is corrupt on disk: its bytes now hash to sha256:\(hex)")
    }
    return nil
  }

  /// Closes the file (also done on deinit).
  public func close() {
    let wasOpen = state.withLock { state in
      defer { state.closed = true }
      return !state.closed
    }
    if wasOpen { Foundation.close(descriptor) }
  }
}
