import CKissFFT
import Foundation

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
    precondition(nFFT >= 2 && nFFT % 2 == 0 && hop >= 1, "n_fft must be even and hop positive")
    let pad = nFFT / 2
    let padded = [Float](repeating: 0, count: pad) + y + [Float](repeating: 0, count: pad)
    let frames = padded.count >= nFFT ? 1 + (padded.count - nFFT) / hop : 0
    let bins = 1 + nFFT / 2
    // scipy's get_window("hann", n, fftbins=True): 0.5 − 0.5 cos(2πn / N), in double precision.
    let window = (0..<nFFT).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(nFFT))) }
    var values = [Float](repeating: 0, count: bins * frames)
    guard frames > 0, let plan = kiss_fftr_alloc(Int32(nFFT), 0, nil, nil) else {
      return Spectrum(rows: bins, columns: frames, values: values)
    }
    defer { free(UnsafeMutableRawPointer(plan)) }  // kiss_fftr_free is a macro for free
    var frame = [Float](repeating: 0, count: nFFT)
    var spectrum = [kiss_fft_cpx](repeating: kiss_fft_cpx(), count: bins)
    padded.withUnsafeBufferPointer { signal in
      window.withUnsafeBufferPointer { window in
        values.withUnsafeMutableBufferPointer { out in
          for column in 0..<frames {
            let start = signal.baseAddress! + column * hop
            for index in 0..<nFFT { frame[index] = start[index] * window[index] }
            kiss_fftr(plan, frame, &spectrum)
            for bin in 0..<bins {
              let (re, im) = (spectrum[bin].r, spectrum[bin].i)
              let squared = re * re + im * im
              out[bin * frames + column] =
                power == 2 ? squared : (power == 1 ? squared.squareRoot() : Float(pow(Double(squared), power / 2)))
            }
          }
        }
      }
    }
    return Spectrum(rows: bins, columns: frames, values: values)
  }

  /// Mel scales: Slaney's (linear below 1 kHz, logarithmic above; librosa's default) or HTK's.
  public enum MelScale: String, Sendable {
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
  /// `power` spectrum.
  public static func mel(
    _ y: [Float], sampleRate: Int, nFFT: Int = 2048, hop: Int = 512, mels: Int = 128, fmin: Double = 0,
    fmax: Double? = nil, scale: MelScale = .slaney, power: Double = 2
  ) -> Spectrum {
    let spectrum = stft(y, nFFT: nFFT, hop: hop, power: power)
    let bank = melFilterbank(sampleRate: sampleRate, nFFT: nFFT, mels: mels, fmin: fmin, fmax: fmax, scale: scale)
    return multiply(bank, spectrum)
  }

  /// `a × b`, sums in double precision.
  static func multiply(_ a: Spectrum, _ b: Spectrum) -> Spectrum {
    precondition(a.columns == b.rows, "a is \(a.rows)×\(a.columns), b \(b.rows)×\(b.columns)")
    var out = [Float](repeating: 0, count: a.rows * b.columns)
    var row = [Double](repeating: 0, count: b.columns)
    a.values.withUnsafeBufferPointer { a0 in
      b.values.withUnsafeBufferPointer { b0 in
        for i in 0..<a.rows {
          for j in 0..<b.columns { row[j] = 0 }
          for k in 0..<a.columns {
            let weight = Double(a0[i * a.columns + k])
            guard weight != 0 else { continue }
            let line = b0.baseAddress! + k * b.columns
            for j in 0..<b.columns { row[j] += weight * Double(line[j]) }
          }
          for j in 0..<b.columns { out[i * b.columns + j] = Float(row[j]) }
        }
      }
    }
    return Spectrum(rows: a.rows, columns: b.columns, values: out)
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
