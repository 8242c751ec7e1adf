import Foundation
import Synchronization

/// A blob being written: bytes go to a temporary file and into a running SHA-256; `commit`
/// fsyncs and renames the file to its digest. Nothing appears in the store unless committed.
/// Use from one task at a time.
public final class BlobWriter: Sendable {
  private struct State: ~Copyable {
    var hash = SHA256()
    var size: Int64 = 0
    var finished = false
  }

  private let store: BlobStore
  private let temporaryPath: String
  private let descriptor: Int32
  private let state = Mutex(State())

  init(store: BlobStore, temporaryPath: String, descriptor: Int32) {
    self.store = store
    self.temporaryPath = temporaryPath
    self.descriptor = descriptor
  }

  /// Bytes written so far.
  public var size: Int64 { state.withLock { $0.size } }

  /// Appends `bytes`.
  public func write(_ bytes: [UInt8]) async throws {
    guard !bytes.isEmpty else { return }
    state.withLock { state in
      bytes.withUnsafeBytes { state.hash.update($0) }
      state.size += Int64(bytes.count)
    }
    let descriptor = descriptor
    let path = temporaryPath
    try await store.blocking { () throws(StoreError) in
      let failed = bytes.withUnsafeBytes { buffer -> Bool in
        var offset = 0
        while offset < buffer.count {
          let written = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
          if written < 0 {
            if errno == EINTR { continue }
            return true
          }
          offset += written
        }
        return false
      }
      if failed { throw BlobStore.ioError("cannot write \(path)") }
    }
  }

  /// Makes the blob durable under its digest and returns the digest and size.
  ///
  /// - Throws: `StoreError.dataLoss` when `expected` is given and the bytes do not match it
  ///   (nothing is kept); `.unavailable` for disk trouble.
  public func commit(expecting expected: BlobDigest? = nil) async throws -> (digest: BlobDigest, size: Int64) {
    let (hex, size) = state.withLock { state -> (String, Int64) in
      state.finished = true
      return (state.hash.finish(), state.size)
    }
    let digest = BlobDigest(verifiedHex: hex)
    if let expected, expected != digest {
      await abort()
      throw StoreError(
        .dataLoss, "the received bytes have digest \(digest.reference), not the announced \(expected.reference)")
    }
    let descriptor = descriptor
    let temporary = temporaryPath
    let final = store.path(of: digest)
    try await store.blocking { () throws(StoreError) in
      defer { close(descriptor) }
      guard fsync(descriptor) == 0 else {
        unlink(temporary)
        throw BlobStore.ioError("cannot flush \(temporary)")
      }
      let directory = String(final[..<final.lastIndex(of: "/")!])
      mkdir(directory, 0o755)
      guard rename(temporary, final) == 0 else {
        unlink(temporary)
        throw BlobStore.ioError("cannot move the blob to \(final)")
      }
      let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
      if directoryDescriptor >= 0 {
        fsync(directoryDescriptor)
        close(directoryDescriptor)
      }
    }
    return (digest, size)
  }

  /// Drops what was written (also when the calling task is cancelled).
  public func abort() async {
    let alreadyFinished = state.withLock { state in
      defer { state.finished = true }
      return state.finished
    }
    let descriptor = descriptor
    let temporary = temporaryPath
    let store = store
    // Aborting usually follows a cancellation; the clean-up must still run, so it runs in a task
    // of its own (awaited), whose thread-pool work is not cancelled with the caller.
    await Task.detached {
      try? await store.blocking { () throws(StoreError) in
        if !alreadyFinished { close(descriptor) }
        unlink(temporary)
      }
    }.value
  }
}
