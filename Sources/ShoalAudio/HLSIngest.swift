import Foundation

/// Orcasound's live input: an HLS stream (an `.m3u8` playlist of AAC `.ts` segments) at a URL,
/// a playlist file, or a directory of segments, decoded by Debian's ffmpeg as a subprocess
/// (libsndfile reads neither) and cut into clips named `{location}_{unix time}.wav`.
public struct HLSIngest: Sendable {
  /// The hydrophone's name, the first part of every clip's name.
  public var location: String
  /// The stream's start in Unix seconds (Orcasound names each stream's folder so).
  public var start: Int
  public var clipSeconds: Double = 3
  public var sampleRate = 48_000
  /// The ffmpeg to run.
  public var ffmpeg = "ffmpeg"

  public init(location: String, start: Int) {
    self.location = location
    self.start = start
  }

  /// The Unix time in a source's path (`…/hls/1600000000/live.m3u8`), if one of its parts is one.
  public static func startTime(in source: String) -> Int? {
    source.split(separator: "/").reversed().compactMap { Int($0) }.first { $0 > 1_000_000_000 && $0 < 10_000_000_000 }
  }

  /// What ffmpeg reads: the URL or playlist as given; for a directory, its playlist, else its
  /// `.ts` segments in name order joined by the concat protocol.
  static func input(_ source: String) throws(AudioError) -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), isDirectory.boolValue else {
      return source
    }
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []).sorted()
    if let playlist = names.first(where: { $0.hasSuffix(".m3u8") }) { return "\(source)/\(playlist)" }
    let segments = names.filter { $0.hasSuffix(".ts") }
    guard !segments.isEmpty else { throw AudioError("\(source) holds no .m3u8 playlist and no .ts segments") }
    return "concat:" + segments.map { "\(source)/\($0)" }.joined(separator: "|")
  }

  /// Decodes `source` and writes its clips into `directory`, calling `wrote` with each path.
  /// A last piece of at least a second is padded with silence to a whole clip; a shorter one is
  /// dropped. Returns the paths.
  ///
  /// - Throws: `AudioError` when ffmpeg is missing or fails (with the end of what it said), or
  ///   a clip cannot be written.
  @discardableResult
  public func run(
    _ source: String, into directory: String, wrote: (String) -> Void = { _ in }
  ) throws(AudioError)
    -> [String]
  {
    guard location.range(of: #"^[A-Za-z0-9_.-]{1,100}$"#, options: .regularExpression) != nil else {
      throw AudioError("location '\(location)': give 1 to 100 of A–Z, a–z, 0–9, '_', '.' and '-'")
    }
    let input = try Self.input(source)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", input, "-vn", "-ac", "1", "-ar", "\(sampleRate)",
      "-f", "f32le", "-",
    ]
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      try process.run()
    } catch {
      throw AudioError("cannot run \(ffmpeg): \(error.localizedDescription) (Debian: apt-get install ffmpeg)")
    }
    // Its error output is read as it comes, so that ffmpeg never blocks on a full pipe.
    let said = ErrorOutput()
    Thread { said.finish(errors.fileHandleForReading.readDataToEndOfFile()) }.start()

    let clipFrames = Int((clipSeconds * Double(sampleRate)).rounded())
    var pending: [Float] = []
    var written: [String] = []
    var index = 0
    var writeError: AudioError?
    func emit(_ samples: [Float]) {
      let name = "\(location)_\(start + Int((Double(index) * clipSeconds).rounded(.down))).wav"
      let path = "\(directory)/\(name)"
      do throws(AudioError) {
        try Audio(sampleRate: sampleRate, channels: 1, samples: samples).writeWAV(to: path)
        written.append(path)
        wrote(path)
      } catch {
        writeError = writeError ?? error
      }
      index += 1
    }
    var leftover = Data()
    while true {
      let chunk = output.fileHandleForReading.availableData
      if chunk.isEmpty { break }
      leftover.append(chunk)
      let whole = leftover.count / 4 * 4
      leftover.withUnsafeBytes { raw in
        pending += raw.prefix(whole).bindMemory(to: Float.self)
      }
      leftover.removeFirst(whole)
      while pending.count >= clipFrames {
        emit(Array(pending.prefix(clipFrames)))
        pending.removeFirst(clipFrames)
      }
    }
    process.waitUntilExit()
    let message = said.wait()
    if process.terminationStatus != 0 {
      let message = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      throw AudioError(
        "ffmpeg could not decode \(source) (exit \(process.terminationStatus)): \(message.suffix(400))")
    }
    if pending.count >= sampleRate { emit(pending + [Float](repeating: 0, count: clipFrames - pending.count)) }
    if let writeError { throw writeError }
    return written
  }
}

/// ffmpeg's error output, read to its end on a thread of its own.
private final class ErrorOutput: @unchecked Sendable {
  private let done = DispatchSemaphore(value: 0)
  private var data = Data()

  func finish(_ data: Data) {
    self.data = data
    done.signal()
  }

  /// Waits for the end of the output (the semaphore orders the write before this read).
  func wait() -> Data {
    done.wait()
    return data
  }
}
