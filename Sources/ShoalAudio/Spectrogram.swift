import CKissFFT
import Foundation
import Synchronization

/// A time–frequency matrix: `rows` frequency (or mel) bins by `columns` frames, row-major, as
/// librosa's arrays of shape (bins, frames).
public struct Spectrum: Sendable, Equatable {
  public let rows: Int
  public let columns: Int
  public var values: [Float]

  public init(rows: Int, columns: Int, values: [Float]) {
    precondition(values.count == rows * columns, "\(values.count) values do not fill \(rows)×\(columns)")
    self.rows = rows
    self.columns = columns
    self.values = values
  }

  public subscript(row: Int, column: Int) -> Float { values[row * columns + column] }
}

/// Short-time Fourier transforms, mel filterbanks, decibels and PCEN with librosa's defaults and
/// conventions (0.11, whose code for these is the same as 1.0's).
public enum Spectrogram {
  /// `|STFT(y)|^power` as `librosa.stft(y, n_fft, hop_length, center=True, pad_mode="constant")`
  /// takes it: a periodic Hann window of `nFFT` samples, the signal padded with `nFFT / 2` zeros
  /// at each end, a frame every `hop` samples. Rows are the `1 + nFFT / 2` frequencies.
  ///
  /// The FFT is kissfft's in single precision; librosa's is numpy's on the window's float64
  /// products, rounded to single precision after.
  public static func stft(_ y: [Float], nFFT: Int = 2048, hop: Int = 512, power: Double = 2) -> Spectrum {
    let bins = 1 + nFFT / 2
    var frames = 0
    var values: [Float] = []
    forEachGroup(y, nFFT: nFFT, hop: hop, power: power) { count in
      frames = count
      values = [Float](repeating: 0, count: bins * count)
    } body: { first, count, powers in
      for bin in 0..<bins {
        for lane in 0..<count { values[bin * frames + first + lane] = powers[bin][lane] }
      }
    }
    return Spectrum(rows: bins, columns: frames, values: values)
  }

  /// Each frame's `|FFT|^power` (its `1 + nFFT / 2` bins), 8 frames at a time: `start` hears
  /// the number of frames first, then `body` gets the first frame's column, how many of the 8
  /// lanes hold frames, and the bins as vectors (bin b of lane l at b · 8 + l). Frames are taken
  /// from the signal as if padded with `nFFT / 2` zeros at each end, without copying it.
  static func forEachGroup(
    _ y: [Float], nFFT: Int, hop: Int, power: Double, start: (Int) -> Void,
    body: (Int, Int, UnsafePointer<FrameFFT.Lanes>) -> Void
  ) {
    precondition(nFFT >= 2 && nFFT % 2 == 0 && hop >= 1, "n_fft must be even and hop positive")
    let pad = nFFT / 2
    let length = y.count + 2 * pad
    let frames = length >= nFFT ? 1 + (length - nFFT) / hop : 0
    let bins = 1 + nFFT / 2
    let lanes = FrameFFT.lanes
    start(frames)
    let window = Self.window(nFFT)
    guard frames > 0 else { return }
    /// One frame's windowed samples (zeros where it hangs over the padding), `stride` apart.
    func fill(_ frame: UnsafeMutablePointer<Float>, stride: Int, column: Int, _ signal: UnsafeBufferPointer<Float>) {
      // Frame `column` covers padded samples column·hop ..< +nFFT, signal sample − pad.
      let first = column * hop - pad
      let inside = max(0, -first)..<min(nFFT, y.count - first)
      if inside.count < nFFT { for index in 0..<nFFT { frame[index * stride] = 0 } }
      for index in inside { frame[index * stride] = signal[first + index] * window[index] }
    }
    var powers = [FrameFFT.Lanes](repeating: .zero, count: bins)
    func finish(_ powers: UnsafeMutablePointer<FrameFFT.Lanes>) {
      guard power != 2 else { return }
      for bin in 0..<bins {
        powers[bin] =
          power == 1
          ? powers[bin].squareRoot()
          : FrameFFT.Lanes(powers[bin].indices.map { Float(pow(Double(powers[bin][$0]), power / 2)) })
      }
    }
    if let fft = FrameFFT(size: nFFT) {
      // Power-of-two sizes: 8 frames at a time, one per vector lane.
      var packed = [FrameFFT.Lanes](repeating: .zero, count: nFFT)
      var re = [FrameFFT.Lanes](repeating: .zero, count: nFFT / 2)
      var im = [FrameFFT.Lanes](repeating: .zero, count: nFFT / 2)
      y.withUnsafeBufferPointer { signal in
        packed.withUnsafeMutableBufferPointer { packed in
          powers.withUnsafeMutableBufferPointer { powers in
            re.withUnsafeMutableBufferPointer { re in
              im.withUnsafeMutableBufferPointer { im in
                let samples = UnsafeMutableRawPointer(packed.baseAddress!).assumingMemoryBound(to: Float.self)
                for group in stride(from: 0, to: frames, by: lanes) {
                  let count = min(lanes, frames - group)
                  for lane in 0..<lanes {
                    if lane < count {
                      fill(samples + lane, stride: lanes, column: group + lane, signal)
                    } else {
                      for index in 0..<nFFT { samples[index * lanes + lane] = 0 }
                    }
                  }
                  fft.power(packed.baseAddress!, into: powers.baseAddress!, re: re.baseAddress!, im: im.baseAddress!)
                  finish(powers.baseAddress!)
                  body(group, count, powers.baseAddress!)
                }
              }
            }
          }
        }
      }
      return
    }
    // Other even sizes: kissfft, a frame at a time, put in the lanes.
    guard let plan = kiss_fftr_alloc(Int32(nFFT), 0, nil, nil) else { return }
    defer { free(UnsafeMutableRawPointer(plan)) }  // kiss_fftr_free is a macro for free
    var frame = [Float](repeating: 0, count: nFFT)
    var spectrum = [kiss_fft_cpx](repeating: kiss_fft_cpx(), count: bins)
    y.withUnsafeBufferPointer { signal in
      frame.withUnsafeMutableBufferPointer { frame in
        powers.withUnsafeMutableBufferPointer { powers in
          for group in stride(from: 0, to: frames, by: lanes) {
            let count = min(lanes, frames - group)
            for lane in 0..<count {
              fill(frame.baseAddress!, stride: 1, column: group + lane, signal)
              kiss_fftr(plan, frame.baseAddress, &spectrum)
              for bin in 0..<bins {
                powers[bin][lane] = spectrum[bin].r * spectrum[bin].r + spectrum[bin].i * spectrum[bin].i
              }
            }
            finish(powers.baseAddress!)
            body(group, count, powers.baseAddress!)
          }
        }
      }
    }
  }

  private static let windows = Mutex<[Int: [Float]]>([:])

  /// scipy's get_window("hann", n, fftbins=True): 0.5 − 0.5 cos(2πn / N), in double precision;
  /// made once per size.
  static func window(_ size: Int) -> [Float] {
    if let window = windows.withLock({ $0[size] }) { return window }
    let window = (0..<size).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(size))) }
    windows.withLock { $0[size] = window }
    return window
  }

  /// Mel scales: Slaney's (linear below 1 kHz, logarithmic above; librosa's default) or HTK's.
  public enum MelScale: String, Sendable, Hashable {
    case slaney, htk

    func mel(_ hz: Double) -> Double {
      switch self {
      case .htk: return 2595 * log10(1 + hz / 700)
      case .slaney:
        let linear = hz / (200.0 / 3)
        return hz >= 1000 ? 15 + log(hz / 1000) / (log(6.4) / 27) : linear
      }
    }

    func hz(_ mel: Double) -> Double {
      switch self {
      case .htk: return 700 * (pow(10, mel / 2595) - 1)
      case .slaney: return mel >= 15 ? 1000 * exp(log(6.4) / 27 * (mel - 15)) : 200.0 / 3 * mel
      }
    }
  }

  /// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm)`: `mels` triangular filters
  /// over the `1 + nFFT / 2` FFT bins, spaced evenly on the mel scale from `fmin` to `fmax`
  /// (default half the sample rate), each divided by its width in Hz (Slaney's area
  /// normalisation) unless `areaNormalised` is false. Computed in double precision, then rounded.
  public static func melFilterbank(
    sampleRate: Int, nFFT: Int = 2048, mels: Int = 128, fmin: Double = 0, fmax: Double? = nil,
    scale: MelScale = .slaney, areaNormalised: Bool = true
  ) -> Spectrum {
    let bins = 1 + nFFT / 2
    let top = fmax ?? Double(sampleRate) / 2
    // numpy's rfftfreq(n_fft, d=1/sr): arange(bins) × 1 / (n_fft · (1 / sr)).
    let step = 1.0 / (Double(nFFT) * (1.0 / Double(sampleRate)))
    let frequencies = (0..<bins).map { Double($0) * step }
    // numpy's linspace of mels + 2 points, its last exactly the end, back to Hz.
    let (low, high) = (scale.mel(fmin), scale.mel(top))
    let count = mels + 2
    let delta = (high - low) / Double(count - 1)
    let edges = (0..<count).map { index in scale.hz(index == count - 1 ? high : low + Double(index) * delta) }
    var weights = [Float](repeating: 0, count: mels * bins)
    for band in 0..<mels {
      let (lower, center, upper) = (edges[band], edges[band + 1], edges[band + 2])
      let norm = areaNormalised ? 2 / (upper - lower) : 1
      for bin in 0..<bins {
        let rising = (frequencies[bin] - lower) / (center - lower)
        let falling = (upper - frequencies[bin]) / (upper - center)
        weights[band * bins + bin] = Float(max(0, min(rising, falling)) * norm)
      }
    }
    return Spectrum(rows: mels, columns: bins, values: weights)
  }

  /// The mel spectrogram (`librosa.feature.melspectrogram`): the filterbank times the STFT's
  /// `power` spectrum. Each frame's spectrum goes straight into its mel bands (each band sums
  /// only the bins its triangle covers), without the whole STFT kept.
  public static func mel(
    _ y: [Float], sampleRate: Int, nFFT: Int = 2048, hop: Int = 512, mels: Int = 128, fmin: Double = 0,
    fmax: Double? = nil, scale: MelScale = .slaney, power: Double = 2
  ) -> Spectrum {
    let bands = SparseBank.cached(
      BankKey(sampleRate: sampleRate, nFFT: nFFT, mels: mels, fmin: fmin, fmax: fmax ?? -1, scale: scale))
    var frames = 0
    var values: [Float] = []
    forEachGroup(y, nFFT: nFFT, hop: hop, power: power) { count in
      frames = count
      values = [Float](repeating: 0, count: mels * count)
    } body: { column, lanes, powers in
      // Each band of 8 frames at once.
      bands.weights.withUnsafeBufferPointer { weights in
        values.withUnsafeMutableBufferPointer { out in
          for band in 0..<mels {
            let (first, offset, count) = bands.spans[band]
            var sum = FrameFFT.Lanes.zero
            for index in 0..<count { sum += weights[offset + index] * powers[first + index] }
            for lane in 0..<lanes { out[band * frames + column + lane] = sum[lane] }
          }
        }
      }
    }
    return Spectrum(rows: mels, columns: frames, values: values)
  }

  /// A clip's features as the audio classifier computes them: the log-mel spectrogram
  /// (`power_to_db` of the power mel spectrogram, top 80 dB), or with `pcen` the PCEN of the
  /// magnitude mel spectrogram scaled by 2³¹ (librosa's example for PCEN).
  public static func features(
    _ y: [Float], sampleRate: Int, nFFT: Int = 2048, hop: Int = 512, mels: Int = 128, fmin: Double = 0,
    fmax: Double? = nil, scale: MelScale = .slaney, pcen usePCEN: Bool = false
  ) -> Spectrum {
    guard usePCEN else {
      return powerToDB(
        mel(y, sampleRate: sampleRate, nFFT: nFFT, hop: hop, mels: mels, fmin: fmin, fmax: fmax, scale: scale))
    }
    var magnitude = mel(
      y, sampleRate: sampleRate, nFFT: nFFT, hop: hop, mels: mels, fmin: fmin, fmax: fmax, scale: scale, power: 1)
    magnitude.values = magnitude.values.map { $0 * Float(1 << 31) }
    return pcen(magnitude, sampleRate: sampleRate, hop: hop)
  }

  /// What a filterbank is made from.
  struct BankKey: Hashable {
    var sampleRate: Int
    var nFFT: Int
    var mels: Int
    var fmin: Double
    var fmax: Double
    var scale: MelScale
  }

  /// A filterbank as each band's non-zero weights (its first bin, where its weights start, how
  /// many), made once per set of parameters.
  final class SparseBank: Sendable {
    let spans: [(first: Int, offset: Int, count: Int)]
    let weights: [Float]

    private static let made = Mutex<[BankKey: SparseBank]>([:])

    static func cached(_ key: BankKey) -> SparseBank {
      if let bank = made.withLock({ $0[key] }) { return bank }
      let bank = SparseBank(
        melFilterbank(
          sampleRate: key.sampleRate, nFFT: key.nFFT, mels: key.mels, fmin: key.fmin,
          fmax: key.fmax < 0 ? nil : key.fmax, scale: key.scale))
      made.withLock { banks in
        if banks.count > 64 { banks = [:] }
        banks[key] = bank
      }
      return bank
    }

    init(_ bank: Spectrum) {
      var spans: [(Int, Int, Int)] = []
      var weights: [Float] = []
      for band in 0..<bank.rows {
        let row = Array(bank.values[(band * bank.columns)..<((band + 1) * bank.columns)])
        guard let first = row.firstIndex(where: { $0 != 0 }), let last = row.lastIndex(where: { $0 != 0 }) else {
          spans.append((0, weights.count, 0))
          continue
        }
        spans.append((first, weights.count, last - first + 1))
        weights += row[first...last]
      }
      self.spans = spans
      self.weights = weights
    }
  }

  /// `librosa.power_to_db(S, ref, amin, top_db)`: 10 log₁₀(max(amin, S)) − 10 log₁₀(max(amin,
  /// ref)), then, with `topDB`, nothing below the maximum − `topDB`.
  public static func powerToDB(
    _ spectrum: Spectrum, ref: Double = 1, amin: Double = 1e-10, topDB: Double? = 80
  ) -> Spectrum {
    let offset = 10 * log10(max(amin, ref))
    var values = spectrum.values.map { Float(10 * log10(max(amin, Double($0))) - offset) }
    if let topDB, let peak = values.max() {
      let floor = peak - Float(topDB)
      values = values.map { max($0, floor) }
    }
    return Spectrum(rows: spectrum.rows, columns: spectrum.columns, values: values)
  }

  /// `librosa.pcen(S, sr, hop_length, gain, bias, power, time_constant, eps)` with `max_size` 1:
  /// each row smoothed over time by a first-order filter whose coefficient comes from the time
  /// constant, starting, as librosa's does, from the state of a steady input of 1 (scipy's
  /// `lfilter_zi`), then adaptive gain and root compression. In double precision.
  public static func pcen(
    _ spectrum: Spectrum, sampleRate: Int = 22_050, hop: Int = 512, gain: Double = 0.98, bias: Double = 2,
    power: Double = 0.5, timeConstant: Double = 0.4, eps: Double = 1e-6
  ) -> Spectrum {
    let frames = timeConstant * Double(sampleRate) / Double(hop)
    let b = ((1 + 4 * frames * frames).squareRoot() - 1) / (2 * frames * frames)
    var values = [Float](repeating: 0, count: spectrum.values.count)
    let (logEps, biasPower) = (log(eps), pow(bias, power))
    for row in 0..<spectrum.rows {
      var smooth = 1.0
      for column in 0..<spectrum.columns {
        let s = Double(abs(spectrum[row, column]))
        // y[t] = b·x[t] + (1 − b)·y[t − 1], with y[−1] = 1.
        smooth = b * s + (1 - b) * smooth
        let agc = exp(-gain * (logEps + log1p(smooth / eps)))
        let out: Double
        if power == 0 {
          out = log1p(s * agc)
        } else if bias == 0 {
          out = exp(power * (log(s) + log(agc)))
        } else {
          out = biasPower * expm1(power * log1p(s * agc / bias))
        }
        values[row * spectrum.columns + column] = Float(out)
      }
    }
    return Spectrum(rows: spectrum.rows, columns: spectrum.columns, values: values)
  }
}
