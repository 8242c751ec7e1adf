public import Foundation
import NIOPosix

/// Content-addressed files: each blob is stored once under the SHA-256 of its bytes, written
/// atomically (a temporary file, fsync, rename) and verified against its digest when read.
///
/// Layout: `<root>/sha256/<first two hex digits>/<hex>`, with unfinished writes in `<root>/tmp`.
/// File work runs on NIO's blocking thread pool, never on an event loop.
public final class BlobStore: Sendable {
  /// The directory holding the blobs.
  public let root: String
  let threads: NIOThreadPool

  /// A store in `root`, creating the directories if needed.
  ///
  /// - Throws: `StoreError.unavailable` when the directories cannot be created.
  public init(root: String) throws(StoreError) {
    self.root = root
    self.threads = .singleton
    for directory in ["\(root)/sha256", "\(root)/tmp"] {
      do {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      } catch {
        throw StoreError(.unavailable, "cannot create the blob directory \(directory)", cause: "\(error)")
      }
    }
  }

  /// Where the blob `digest` lives (whether or not it exists).
  public func path(of digest: BlobDigest) -> String {
    "\(root)/sha256/\(digest.hex.prefix(2))/\(digest.hex)"
  }

  /// Stores `bytes` and returns their digest (storing the same bytes twice keeps one copy).
  public func put(_ bytes: [UInt8]) async throws -> BlobDigest {
    let writer = try await makeWriter()
    do {
      try await writer.write(bytes)
      return try await writer.commit().digest
    } catch {
      await writer.abort()
      throw error
    }
  }

  /// A writer for a blob that arrives in pieces; `commit` names and keeps it, `abort` drops it.
  public func makeWriter() async throws -> BlobWriter {
    let temporary = "\(root)/tmp/\(UUID().uuidString)"
    let descriptor = try await blocking { () throws(StoreError) in
      let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
      guard descriptor >= 0 else { throw Self.ioError("cannot create \(temporary)") }
      return descriptor
    }
    return BlobWriter(store: self, temporaryPath: temporary, descriptor: descriptor)
  }

  /// Whether the blob exists, and its size.
  public func size(of digest: BlobDigest) async throws -> Int64? {
    let path = path(of: digest)
    return try await blocking { () throws(StoreError) in
      var info = stat()
      guard stat(path, &info) == 0 else { return nil }
      return Int64(info.st_size)
    }
  }

  /// The bytes of `digest`, verified.
  ///
  /// - Throws: `StoreError.notFound`, or `.dataLoss` when the stored bytes no longer match.
  public func read(_ digest: BlobDigest) async throws -> [UInt8] {
    let reader = try await openReader(digest)
    defer { reader.close() }
    var bytes: [UInt8] = []
    while let chunk = try await reader.next() { bytes += chunk }
    return bytes
  }

  /// A reader of the blob in chunks; the last `next()` checks the digest and throws
  /// `StoreError.dataLoss` instead of ending if the bytes were altered.
  ///
  /// - Throws: `StoreError.notFound` when there is no such blob.
  public func openReader(_ digest: BlobDigest, chunkSize: Int = 256 * 1024) async throws -> BlobReader {
    let path = path(of: digest)
    let descriptor = try await blocking { () throws(StoreError) in
      let descriptor = open(path, O_RDONLY | O_CLOEXEC)
      guard descriptor >= 0 else {
        if errno == ENOENT { throw StoreError(.notFound, "no blob \(digest.reference)") }
        throw Self.ioError("cannot open \(path)")
      }
      return descriptor
    }
    return BlobReader(store: self, digest: digest, descriptor: descriptor, chunkSize: chunkSize)
  }

  /// Removes the blob; returns whether it existed.
  @discardableResult
  public func delete(_ digest: BlobDigest) async throws -> Bool {
    let path = path(of: digest)
    return try await blocking { () throws(StoreError) in
      if unlink(path) == 0 { return true }
      if errno == ENOENT { return false }
      throw Self.ioError("cannot remove \(path)")
    }
  }

  /// Every stored blob.
  public func list() async throws -> [BlobDigest] {
    let root = root
    return try await blocking { () throws(StoreError) in
      let files = (try? FileManager.default.subpathsOfDirectory(atPath: "\(root)/sha256")) ?? []
      return files.compactMap { file -> BlobDigest? in
        guard let name = file.split(separator: "/").last else { return nil }
        return try? BlobDigest(hex: String(name))
      }.sorted { $0.hex < $1.hex }
    }
  }

  /// Removes every blob whose reference is not in `references` and whose file is older than
  /// `cutoff`; returns how many and how many bytes.
  public func removeUnreferenced(keeping references: Set<String>, olderThan cutoff: Date) async throws -> (Int, Int64) {
    let candidates = try await list().filter { !references.contains($0.reference) }
    let paths = candidates.map { path(of: $0) }
    return try await blocking { () throws(StoreError) in
      var removed = 0
      var freed: Int64 = 0
      for path in paths {
        var info = stat()
        guard stat(path, &info) == 0, Double(info.st_mtim.tv_sec) < cutoff.timeIntervalSince1970 else { continue }
        if unlink(path) == 0 {
          removed += 1
          freed += Int64(info.st_size)
        }
      }
      return (removed, freed)
    }
  }

  /// Runs blocking file work on the thread pool.
  func blocking<T: Sendable>(_ body: @escaping @Sendable () throws(StoreError) -> T) async throws(StoreError) -> T {
    do {
      return try await threads.runIfActive { try body() }
    } catch let error as StoreError {
      throw error
    } catch {
      throw StoreError(.unavailable, "the blob store's threads are stopped", cause: "\(error)")
    }
  }

  /// An error for the failed system call that just set `errno`; a full disk is UNAVAILABLE too.
  static func ioError(_ what: String) -> StoreError {
    let code = errno
    let cause = String(cString: strerror(code))
    if code == ENOSPC || code == EDQUOT { return StoreError(.unavailable, "\(what): the disk is full", cause: cause) }
    return StoreError(.unavailable, what, cause: cause)
  }
}
