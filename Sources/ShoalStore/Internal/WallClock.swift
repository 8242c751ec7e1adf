import Foundation

/// Wall-clock time as stored in rows.
package enum WallClock {
  /// Milliseconds since 1970.
  package static func unixMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
