public import ShoalProto
public import ShoalRPC

/// The points of one metric from one batch, packed into a single row: 24 bytes a point (step,
/// timestamp in ms, and the value's IEEE-754 bits, each little-endian 64-bit), so NaN and
/// ±infinity are stored bit for bit and a batch of 1,000 points is one insert, not 1,000.
public enum MetricChunk {
  /// Bytes per point.
  static let stride = 24

  /// `metrics` (all of one key) in step order, then timestamp, then the order given: the order
  /// a chunk stores its points in.
  public static func sorted(_ metrics: [TrackingV1.Metric]) -> [TrackingV1.Metric] {
    metrics.enumerated().sorted { a, b in
      (a.element.step, a.element.timestampMs, a.offset) < (b.element.step, b.element.timestampMs, b.offset)
    }.map(\.element)
  }

  /// `metrics` (all of one key) packed in their order.
  public static func encode(_ metrics: some Collection<TrackingV1.Metric>) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: metrics.count * stride)
    bytes.withUnsafeMutableBytes { buffer in
      for (index, metric) in metrics.enumerated() {
        let base = index * stride
        buffer.storeBytes(of: UInt64(bitPattern: metric.step).littleEndian, toByteOffset: base, as: UInt64.self)
        buffer.storeBytes(
          of: UInt64(bitPattern: metric.timestampMs).littleEndian, toByteOffset: base + 8, as: UInt64.self)
        buffer.storeBytes(of: metric.value.bitPattern.littleEndian, toByteOffset: base + 16, as: UInt64.self)
      }
    }
    return bytes
  }

  /// The points of a chunk of metric `key`.
  ///
  /// - Throws: when the bytes are not a whole number of points (a damaged row).
  public static func decode(_ bytes: [UInt8], key: String) throws(MetricChunkError) -> [TrackingV1.Metric] {
    guard bytes.count % stride == 0 else { throw MetricChunkError(bytes: bytes.count, key: key) }
    return try decode(bytes, key: key, at: 0..<(bytes.count / stride))
  }

  /// The points at `indices` of a chunk of metric `key`, decoding nothing else.
  ///
  /// - Throws: when the bytes are not a whole number of points or do not reach an index (a
  ///   damaged or missing row).
  public static func decode(
    _ bytes: [UInt8], key: String, at indices: some Collection<Int>
  ) throws(MetricChunkError) -> [TrackingV1.Metric] {
    guard bytes.count % stride == 0, indices.allSatisfy({ $0 >= 0 && $0 < bytes.count / stride }) else {
      throw MetricChunkError(bytes: bytes.count, key: key)
    }
    return bytes.withUnsafeBytes { buffer in
      indices.map { index in
        let base = index * stride
        var metric = TrackingV1.Metric()
        metric.key = key
        metric.step = Int64(
          bitPattern: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: base, as: UInt64.self)))
        metric.timestampMs = Int64(
          bitPattern: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: base + 8, as: UInt64.self)))
        metric.value = Double(
          bitPattern: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: base + 16, as: UInt64.self)))
        return metric
      }
    }
  }
}

/// A stored chunk whose size is not a whole number of points, or too small for the points its
/// row counts: DATA_LOSS on the wire.
public struct MetricChunkError: RPCErrorConvertible, CustomStringConvertible {
  public var bytes: Int
  public var key: String

  public var description: String {
    "a stored chunk of metric '\(key)' is damaged: its \(bytes) bytes are not whole \(MetricChunk.stride)-byte points"
      + " or fewer than its row counts"
  }

  public var rpcError: RPCError { RPCError(.dataLoss, description) }
}
