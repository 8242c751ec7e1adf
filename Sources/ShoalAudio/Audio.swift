import CSndfile
import CSoxr
import Foundation

/// Why audio could not be read or converted.
public struct AudioError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// Decoded audio: float samples in [−1, 1], interleaved by channel, as libsndfile (and Python's
/// soundfile) reads them.
public struct Audio: Sendable, Equatable {
  public let sampleRate: Int
  public let channels: Int
  public let samples: [Float]

  public init(sampleRate: Int, channels: Int, samples: [Float]) {
    precondition(channels >= 1 && samples.count % channels == 0, "samples do not fill \(channels) channels")
    self.sampleRate = sampleRate
    self.channels = channels
    self.samples = samples
  }

  /// Frames (samples per channel).
  public var frames: Int { samples.count / channels }

  /// Seconds.
  public var duration: Double { Double(frames) / Double(sampleRate) }

  /// The lowest and highest sample rates taken.
  public static let sampleRates = 8_000...192_000

  /// Decodes a file: WAV (8–32-bit integer and float), FLAC, OGG (Vorbis, Opus) or MP3, anything
  /// libsndfile reads.
  ///
  /// - Throws: `AudioError` naming the file and libsndfile's reason: a missing, truncated or
  ///   non-audio file, or a sample rate outside 8–192 kHz.
  public init(contentsOf path: String) throws(AudioError) {
    var info = SF_INFO()
    guard let file = sf_open(path, Int32(SFM_READ), &info) else {
      throw AudioError("\(path): \(String(cString: sf_strerror(nil)))")
    }
    defer { sf_close(file) }
    try self.init(reading: file, info: info, name: path)
  }

  /// Decodes a file's bytes (as `init(contentsOf:)`).
  public init(bytes: [UInt8], name: String = "the clip") throws(AudioError) {
    let source = MemorySource(bytes)
    var callbacks = SF_VIRTUAL_IO(
      get_filelen: { data in sf_count_t(MemorySource.from(data).bytes.count) },
      seek: { offset, whence, data in MemorySource.from(data).seek(Int(offset), whence) },
      read: { pointer, count, data in MemorySource.from(data).read(into: pointer, count: Int(count)) },
      write: { _, _, _ in 0 }, tell: { data in sf_count_t(MemorySource.from(data).position) })
    var info = SF_INFO()
    let opened = withExtendedLifetime(source) {
      sf_open_virtual(&callbacks, Int32(SFM_READ), &info, Unmanaged.passUnretained(source).toOpaque())
    }
    guard let file = opened else { throw AudioError("\(name): \(String(cString: sf_strerror(nil)))") }
    defer { sf_close(file) }
    let decoded = try withExtendedLifetime(source) { () throws(AudioError) in
      try Self.read(file, info: info, name: name)
    }
    self = decoded
  }

  private init(reading file: OpaquePointer, info: SF_INFO, name: String) throws(AudioError) {
    self = try Self.read(file, info: info, name: name)
  }

  /// The most samples (over every channel) a file may decode to: 2^28, over an hour and a half of
  /// 48 kHz mono, 1 GiB of floats.
  public static let maxSamples = 1 << 28

  private static func read(_ file: OpaquePointer, info: SF_INFO, name: String) throws(AudioError) -> Audio {
    guard Self.sampleRates.contains(Int(info.samplerate)) else {
      throw AudioError("\(name): a sample rate of \(info.samplerate) Hz (8–192 kHz are taken)")
    }
    guard (1...64).contains(info.channels) else {
      throw AudioError("\(name): \(info.channels) channels (1–64 are taken)")
    }
    let channels = Int(info.channels)
    // Read in pieces until the file ends, rather than trusting the header's frame count: a
    // stream may give none (SF_COUNT_MAX), and a fuzzed Ogg file gave one whose samples overflowed.
    let piece = 1 << 16
    var samples: [Float] = []
    samples.reserveCapacity(min(max(0, Int(clamping: info.frames)), Self.maxSamples / channels) * channels)
    var chunk = [Float](repeating: 0, count: piece * channels)
    while true {
      let read = chunk.withUnsafeMutableBufferPointer { buffer in
        sf_readf_float(file, buffer.baseAddress, sf_count_t(piece))
      }
      if sf_error(file) != 0 { throw AudioError("\(name): \(String(cString: sf_strerror(file)))") }
      guard read > 0 else { break }
      guard samples.count + Int(read) * channels <= Self.maxSamples else {
        throw AudioError("\(name): longer than the limit of \(Self.maxSamples) samples")
      }
      samples += chunk[0..<(Int(read) * channels)]
    }
    // A file cut short reads fewer frames than its header says.
    guard !samples.isEmpty || info.frames == 0 else { throw AudioError("\(name): no audio frames could be read") }
    return Audio(sampleRate: Int(info.samplerate), channels: channels, samples: samples)
  }

  /// Writes the audio as a WAV file of 16-bit samples (or 32-bit floats with `float`).
  ///
  /// - Throws: `AudioError` with libsndfile's reason.
  public func writeWAV(to path: String, float: Bool = false) throws(AudioError) {
    var info = SF_INFO()
    info.samplerate = Int32(sampleRate)
    info.channels = Int32(channels)
    info.format = Int32(SF_FORMAT_WAV | (float ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16))
    guard let file = sf_open(path, Int32(SFM_WRITE), &info) else {
      throw AudioError("cannot write \(path): \(String(cString: sf_strerror(nil)))")
    }
    let written = samples.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress, sf_count_t(frames)) }
    let failure = sf_error(file) != 0 ? String(cString: sf_strerror(file)) : nil
    sf_close(file)
    if let failure { throw AudioError("cannot write \(path): \(failure)") }
    guard written == frames else { throw AudioError("cannot write \(path): \(written) of \(frames) frames written") }
  }

  /// One channel, the mean of all (librosa's `to_mono`).
  public func mono() -> Audio {
    guard channels > 1 else { return self }
    var mixed = [Float](repeating: 0, count: frames)
    let scale = 1 / Float(channels)
    samples.withUnsafeBufferPointer { source in
      for frame in 0..<frames {
        var sum: Float = 0
        for channel in 0..<channels { sum += source[frame * channels + channel] }
        mixed[frame] = sum * scale
      }
    }
    return Audio(sampleRate: sampleRate, channels: 1, samples: mixed)
  }

  /// Exactly `frames` frames: cut, or padded with silence at the end.
  public func fitted(to frames: Int) -> Audio {
    var samples = Array(samples.prefix(frames * channels))
    samples += [Float](repeating: 0, count: frames * channels - samples.count)
    return Audio(sampleRate: sampleRate, channels: channels, samples: samples)
  }

  /// Resampled to `rate` with libsoxr's high-quality resampler, as librosa's default `soxr_hq`
  /// does: the whole signal, then the output cut or padded to ⌈frames × rate / sampleRate⌉.
  ///
  /// - Throws: `AudioError` with libsoxr's reason.
  public func resampled(to rate: Int) throws(AudioError) -> Audio {
    guard rate != sampleRate else { return self }
    let ratio = Double(rate) / Double(sampleRate)
    let wanted = Int((Double(frames) * ratio).rounded(.up))
    var error: soxr_error_t?
    var io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
    var quality = soxr_quality_spec(UInt(SOXR_HQ), 0)
    guard let resampler = soxr_create(Double(sampleRate), Double(rate), UInt32(channels), &error, &io, &quality, nil)
    else { throw AudioError("cannot resample: \(error.map { String(cString: $0) } ?? "libsoxr failed")") }
    defer { soxr_delete(resampler) }
    let capacity = Int(Double(frames) * ratio) + 1
    var output = [Float](repeating: 0, count: capacity * channels)
    var produced = 0
    output.withUnsafeMutableBufferPointer { out in
      samples.withUnsafeBufferPointer { input in
        var done = 0
        error = soxr_process(
          resampler, input.baseAddress, frames, nil, out.baseAddress, capacity, &done)
        produced = done
        if error == nil {
          // The end of the signal: what the filter still holds.
          error = soxr_process(
            resampler, nil, 0, nil, out.baseAddress! + produced * channels, capacity - produced, &done)
          produced += done
        }
      }
    }
    if let error { throw AudioError("cannot resample: \(String(cString: error))") }
    output.removeLast(output.count - produced * channels)
    return Audio(sampleRate: rate, channels: channels, samples: output).fitted(to: wanted)
  }
}

/// A byte buffer libsndfile reads through its virtual I/O.
private final class MemorySource {
  let bytes: [UInt8]
  var position = 0

  init(_ bytes: [UInt8]) { self.bytes = bytes }

  static func from(_ pointer: UnsafeMutableRawPointer?) -> MemorySource {
    Unmanaged<MemorySource>.fromOpaque(pointer!).takeUnretainedValue()
  }

  func seek(_ offset: Int, _ whence: Int32) -> sf_count_t {
    let base: Int
    switch whence {
    case SEEK_CUR: base = position
    case SEEK_END: base = bytes.count
    default: base = 0
    }
    position = min(max(0, base + offset), bytes.count)
    return sf_count_t(position)
  }

  func read(into pointer: UnsafeMutableRawPointer?, count: Int) -> sf_count_t {
    let taken = min(count, bytes.count - position)
    guard taken > 0, let pointer else { return 0 }
    bytes.withUnsafeBytes { source in
      pointer.copyMemory(from: source.baseAddress! + position, byteCount: taken)
    }
    position += taken
    return sf_count_t(taken)
  }
}
