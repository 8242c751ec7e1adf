import Foundation
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
}
