import ArgumentParser
import Foundation
import ShoalAudio
import ShoalModel

/// `shoal audio …`: audio clips' features, as the audio classifier computes them.
struct AudioCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audio", abstract: "Audio clips: spectrograms as librosa computes them.",
    subcommands: [SpectrogramCommand.self, Ingest.self])

  struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Cut an HLS stream (Orcasound's live input) into clips named LOCATION_UNIXTIME.wav.",
      discussion: """
        SOURCE is an .m3u8 URL or file, or a directory of a stream's .ts segments (its playlist if \
        it has one). The stream is decoded by ffmpeg (Debian's) to mono at --sr and cut into clips \
        of --seconds, 16-bit WAV; the start time comes from --start, else from a Unix time in \
        SOURCE's path (Orcasound's …/hls/1600000000/live.m3u8). A last piece of at least a second \
        is padded to a whole clip.
        """)
    @Argument(help: "The stream: a URL, a playlist or a directory of segments.") var source: String
    @Option(help: "The hydrophone's name (orcasound_lab).") var location: String
    @Option(help: "The stream's start, Unix seconds.") var start: Int?
    @Option(help: "Seconds per clip.") var seconds = 3.0
    @Option(help: "The clips' sample rate.") var sr = 48_000
    @Option(help: "The directory the clips go to.") var out: String

    func run() async throws {
      guard let start = start ?? HLSIngest.startTime(in: source) else {
        throw ValidationError("--start: SOURCE's path holds no Unix time; give the stream's start")
      }
      guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds: give 0–600") }
      guard Audio.sampleRates.contains(sr) else { throw ValidationError("--sr: give 8000–192000 Hz") }
      var ingest = HLSIngest(location: location, start: start)
      ingest.clipSeconds = seconds
      ingest.sampleRate = sr
      do {
        let clips = try ingest.run(source, into: out)
        emit(
          "wrote \(clips.count) clips of \(seconds) s into \(out)\(clips.first.map { ", from \(($0 as NSString).lastPathComponent)" } ?? "")"
        )
      } catch {
        logLine("shoal audio ingest", error.message)
        throw ExitCode(1)
      }
    }
  }

  struct SpectrogramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "spectrogram", abstract: "A clip's log-mel (or PCEN) spectrogram, as .npy or a viridis .png.",
      discussion: """
        The clip (WAV, FLAC, OGG, MP3) is mixed to mono and resampled with soxr's HQ resampler, as \
        librosa.load does; then the mel spectrogram with librosa's defaults (periodic Hann window, \
        centred frames padded with zeros, Slaney's mel scale and area normalisation), in dB \
        (power_to_db: amin 1e-10, top 80 dB) or, with --pcen, PCEN of the magnitude mel spectrogram \
        scaled by 2^31 (librosa's example). The .npy is [mels, frames] float32; the .png has time \
        across and low frequencies at the bottom.
        """)
    @Argument(help: "The clip.") var clip: String
    @Option(help: "The sample rate it is resampled to.") var sr = 22_050
    @Option(help: "FFT size.") var nFFT = 2048
    @Option(help: "Samples between frames.") var hop = 512
    @Option(help: "Mel bands.") var mels = 128
    @Option(help: "The lowest frequency, Hz.") var fmin = 0.0
    @Option(help: "The highest frequency, Hz (default: half the sample rate).") var fmax: Double?
    @Flag(help: "HTK's mel scale instead of Slaney's.") var htk = false
    @Flag(help: "PCEN instead of dB.") var pcen = false
    @Option(help: "Cut or pad the clip to this many seconds first.") var seconds: Double?
    @Option(help: "PNG pixels per frame and band.") var scale = 4
    @Option(help: "The file to write: .npy or .png.") var out: String

    func run() async throws {
      guard Audio.sampleRates.contains(sr) else { throw ValidationError("--sr: give 8000–192000 Hz") }
      guard nFFT >= 16, nFFT % 2 == 0, hop >= 1, mels >= 1 else {
        throw ValidationError("--n-fft must be even and at least 16, --hop and --mels at least 1")
      }
      let lower = out.lowercased()
      guard lower.hasSuffix(".npy") || lower.hasSuffix(".png") else {
        throw ValidationError("--out: name a .npy or .png")
      }
      let audio: Audio
      do {
        var loaded = try Audio(contentsOf: clip).mono().resampled(to: sr)
        if let seconds { loaded = loaded.fitted(to: Int((seconds * Double(sr)).rounded())) }
        audio = loaded
      } catch {
        logLine("shoal audio spectrogram", error.message)
        throw ExitCode(1)
      }
      let melScale: Spectrogram.MelScale = htk ? .htk : .slaney
      let spectrum: Spectrum
      if pcen {
        var magnitude = Spectrogram.mel(
          audio.samples, sampleRate: sr, nFFT: nFFT, hop: hop, mels: mels, fmin: fmin, fmax: fmax, scale: melScale,
          power: 1)
        magnitude.values = magnitude.values.map { $0 * Float(1 << 31) }
        spectrum = Spectrogram.pcen(magnitude, sampleRate: sr, hop: hop)
      } else {
        spectrum = Spectrogram.powerToDB(
          Spectrogram.mel(
            audio.samples, sampleRate: sr, nFFT: nFFT, hop: hop, mels: mels, fmin: fmin, fmax: fmax, scale: melScale))
      }
      if lower.hasSuffix(".npy") {
        try Tensor(shape: [spectrum.rows, spectrum.columns], elements: spectrum.values).writeNpy(to: out)
      } else {
        try Data(try spectrum.image(scale: max(1, scale)).pngBytes()).write(to: URL(fileURLWithPath: out))
      }
      emit(
        "wrote \(out): \(spectrum.rows) \(pcen ? "PCEN" : "log-mel") bands × \(spectrum.columns) frames "
          + "(\(String(format: "%.2f", audio.duration)) s at \(sr) Hz)")
    }
  }
}
