import Foundation
import ShoalAudio
import ShoalImage
import ShoalModel
import ShoalTestSupport
import Testing

/// `shoal audio spectrogram` on a FLAC file written by soundfile, against librosa's log-mel of the
/// same file; a PCEN PNG; a file that is not audio.
@Suite struct AudioCommandTests {
  static let make = #"""
    import sys
    import numpy as np, soundfile as sf, librosa
    out = sys.argv[1]
    sr = 44100
    t = np.arange(int(2.5 * sr)) / sr
    sf.write(f"{out}/call.flac", (0.3 * np.sin(2 * np.pi * (900 + 600 * t) * t)).astype(np.float32), sr, subtype="PCM_24")
    y, _ = librosa.load(f"{out}/call.flac", sr=16000)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_mels=64, n_fft=1024, hop_length=256)
    np.save(f"{out}/expected.npy", np.ascontiguousarray(librosa.power_to_db(mel)))
    """#

  @Test func spectrogramsAsNpyAndPNG() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let directory = try TemporaryDirectory()
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.make, directory.url.path])
    try #require(made.status == 0, "\(made.stderrText)")

    let npy = try await Subprocess.run(
      shoal,
      [
        "audio", "spectrogram", directory.path("call.flac"), "--sr", "16000", "--mels", "64", "--n-fft", "1024",
        "--hop", "256", "--out", directory.path("mel.npy"),
      ])
    #expect(npy.status == 0 && npy.stdoutText.contains("64 log-mel bands"), "\(npy.stderrText)")
    let ours = try Tensor(npyFile: directory.path("mel.npy"))
    let expected = try Tensor(npyFile: directory.path("expected.npy"))
    #expect(ours.shape == expected.shape)
    let difference = zip(ours.elements(as: Float.self), expected.elements(as: Float.self)).map { abs($0 - $1) }.max()
    #expect((difference ?? .infinity) <= 0.01, "\(String(describing: difference)) dB")

    let png = try await Subprocess.run(
      shoal,
      [
        "audio", "spectrogram", directory.path("call.flac"), "--pcen", "--mels", "64", "--seconds", "3", "--scale", "2",
        "--out", directory.path("pcen.png"),
      ])
    #expect(png.status == 0, "\(png.stderrText)")
    let image = try Image(decoding: [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.path("pcen.png")))))
    // 3 s at 22,050 Hz in frames of 512: 130 frames, 2 pixels each; 64 bands.
    #expect(image.width == 260 && image.height == 128)

    try Data("RIFF but not really".utf8).write(to: directory.url.appendingPathComponent("bad.wav"))
    let bad = try await Subprocess.run(
      shoal, ["audio", "spectrogram", directory.path("bad.wav"), "--out", directory.path("bad.npy")])
    #expect(bad.status == 1 && bad.stderrText.contains("bad.wav"), "\(bad.stderrText)")
  }

  /// A 10 s stream of four tones (1, 2, 3 and 4 kHz from seconds 0, 3, 6 and 9), encoded by
  /// ffmpeg as HLS (AAC in 2 s .ts segments) in Orcasound's layout, …/hls/UNIXTIME/live.m3u8.
  static let makeStream = #"""
    import subprocess, sys
    import numpy as np, soundfile as sf
    out = sys.argv[1]
    sr = 48000
    t = np.arange(10 * sr) / sr
    y = 0.4 * np.sin(2 * np.pi * (1000 * (1 + np.minimum(t // 3, 3))) * t)
    sf.write(f"{out}/tones.wav", y.astype(np.float32), sr, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", f"{out}/tones.wav", "-c:a", "aac", "-b:a", "128k",
                    "-f", "hls", "-hls_time", "2", "-hls_list_size", "0", "-hls_segment_filename",
                    f"{out}/hls/1600000000/live%03d.ts", f"{out}/hls/1600000000/live.m3u8"], check=True)
    """#

  /// The frequency of the strongest STFT bin over a clip.
  static func peakFrequency(_ path: String) throws -> Double {
    let audio = try Audio(contentsOf: path)
    let power = Spectrogram.stft(audio.samples, nFFT: 4096, hop: 4096)
    var best = (bin: 0, value: Float(0))
    for bin in 0..<power.rows {
      let sum = (0..<power.columns).reduce(Float(0)) { $0 + power[bin, $1] }
      if sum > best.value { best = (bin, sum) }
    }
    return Double(best.bin) * Double(audio.sampleRate) / 4096
  }

  @Test func hlsStreamsBecomeNamedClips() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let directory = try TemporaryDirectory()
    try FileManager.default.createDirectory(
      atPath: directory.path("hls/1600000000"), withIntermediateDirectories: true)
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeStream, directory.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    let stream = directory.path("hls/1600000000")

    // From the directory (its playlist), the start time from the path.
    let ingested = try await Subprocess.run(
      shoal, ["audio", "ingest", stream, "--location", "orcasound_lab", "--out", directory.path("clips")])
    #expect(ingested.status == 0 && ingested.stdoutText.contains("wrote 4 clips"), "\(ingested.stderrText)")
    for (index, tone) in [1000.0, 2000, 3000, 4000].enumerated() {
      let path = directory.path("clips/orcasound_lab_\(1_600_000_000 + 3 * index).wav")
      let clip = try Audio(contentsOf: path)
      #expect(clip.frames == 144_000 && clip.sampleRate == 48_000 && clip.channels == 1)
      #expect(abs(try Self.peakFrequency(path) - tone) < 24, "clip \(index)")
    }

    // Over HTTP, from the playlist's URL; and from the segments alone (no playlist), at 16 kHz.
    let files = directory.url
    let server = try await TestHTTPServer { request in
      let path = files.appendingPathComponent(String(request.path.dropFirst())).path
      guard let data = FileManager.default.contents(atPath: path) else { return .init(status: 404) }
      return .init(body: data)
    }
    let remote = try await Subprocess.run(
      shoal,
      [
        "audio", "ingest", "\(server.base)/hls/1600000000/live.m3u8", "--location", "bush_point", "--out",
        directory.path("remote"),
      ])
    await server.close()
    #expect(remote.status == 0 && remote.stdoutText.contains("wrote 4 clips"), "\(remote.stderrText)")
    #expect(FileManager.default.fileExists(atPath: directory.path("remote/bush_point_1600000009.wav")))
    try FileManager.default.removeItem(atPath: "\(stream)/live.m3u8")
    let segments = try await Subprocess.run(
      shoal,
      [
        "audio", "ingest", stream, "--location", "port_townsend", "--start", "1700000000", "--sr", "16000",
        "--seconds", "5", "--out", directory.path("segments"),
      ])
    #expect(segments.status == 0 && segments.stdoutText.contains("wrote 2 clips"), "\(segments.stderrText)")
    let second = try Audio(contentsOf: directory.path("segments/port_townsend_1700000005.wav"))
    #expect(second.sampleRate == 16_000 && second.frames == 80_000)

    // A source that is not a stream: ffmpeg's reason, exit 1.
    try Data("#EXTM3U\nnothing.ts\n".utf8).write(to: directory.url.appendingPathComponent("broken.m3u8"))
    let broken = try await Subprocess.run(
      shoal,
      [
        "audio", "ingest", directory.path("broken.m3u8"), "--location", "lab", "--start", "1", "--out",
        directory.path("none"),
      ])
    #expect(broken.status == 1 && broken.stderrText.contains("ffmpeg could not decode"), "\(broken.stderrText)")
  }
}
