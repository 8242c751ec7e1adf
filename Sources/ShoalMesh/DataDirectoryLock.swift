import Foundation

/// The lock that lets one `shoal up` own a data directory: an exclusive `flock` on
/// `<data>/up.lock`, which holds the owner's pid. The kernel releases it when the process dies, so
/// a crashed supervisor never leaves a stale lock.
public final class DataDirectoryLock: Sendable {
  /// The lock file.
  public let path: String
  private let descriptor: Int32

  /// Takes the lock.
  ///
  /// - Throws: `DataDirectoryLockError.held` with the owner's pid when another process holds it.
  public init(dataDirectory: String) throws(DataDirectoryLockError) {
    path = "\(dataDirectory)/up.lock"
    let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw .unusable(path: path, reason: String(cString: strerror(errno)))
    }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      var buffer = [UInt8](repeating: 0, count: 32)
      let count = read(descriptor, &buffer, buffer.count)
      close(descriptor)
      let text = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
      throw .held(path: path, pid: Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
    }
    ftruncate(descriptor, 0)
    let pid = Array("\(getpid())\n".utf8)
    _ = pwrite(descriptor, pid, pid.count, 0)
    self.descriptor = descriptor
  }

  /// Releases the lock.
  public func release() {
    ftruncate(descriptor, 0)
    flock(descriptor, LOCK_UN)
    close(descriptor)
  }
}

/// Why the data directory could not be locked.
public enum DataDirectoryLockError: Error, Sendable, CustomStringConvertible {
  /// Another process holds it.
  case held(path: String, pid: Int32?)
  /// The lock file cannot be created.
  case unusable(path: String, reason: String)

  /// What happened and what to do.
  public var description: String {
    switch self {
    case .held(let path, let pid?):
      "another `shoal up` (pid \(pid)) is running on this data directory (\(path)); stop it first or use another --data"
    case .held(let path, nil):
      "another `shoal up` is running on this data directory (\(path)); stop it first or use another --data"
    case .unusable(let path, let reason): "cannot create the lock file \(path): \(reason)"
    }
  }
}
