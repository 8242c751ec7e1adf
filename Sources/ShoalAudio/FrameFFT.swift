import Foundation

/// Real FFTs of 8 frames at once, one frame per SIMD lane: every butterfly of an iterative
/// radix-2 transform works on the same bin of 8 frames, so the arithmetic is all whole-vector
/// (kissfft transforms one frame at a time in scalar code). A real frame of `size` samples is
/// packed into `size / 2` complex values (even samples real, odd imaginary), transformed, and
/// unpacked into its `size / 2 + 1` bins. Twiddle factors are computed in double precision.
struct FrameFFT {
  typealias Lanes = SIMD8<Float>
  static let lanes = 8

  let size: Int
  private let half: Int
  private let reversed: [Int]
  /// exp(−2πi k / half) for k < half / 2, as (cos, −sin).
  private let twiddles: [(Float, Float)]
  /// exp(−2πi k / size) for k ≤ half / 2, for the unpacking.
  private let unpack: [(Float, Float)]

  /// A transform of `size` samples, a power of two of at least 4.
  init?(size: Int) {
    guard size >= 4, size & (size - 1) == 0 else { return nil }
    self.size = size
    half = size / 2
    let bits = half.trailingZeroBitCount
    reversed = (0..<half).map { index in
      var value = 0
      for bit in 0..<bits where index & (1 << bit) != 0 { value |= 1 << (bits - 1 - bit) }
      return value
    }
    twiddles = (0..<max(1, half / 2)).map { k in
      let angle = -2 * Double.pi * Double(k) / Double(size / 2)
      return (Float(cos(angle)), Float(sin(angle)))
    }
    unpack = (0...(size / 4)).map { k in
      let angle = -2 * Double.pi * Double(k) / Double(size)
      return (Float(cos(angle)), Float(sin(angle)))
    }
  }

  /// `|X[k]|²` of each lane's frame for k in 0...size / 2: `frames` holds `size` samples per lane
  /// (sample n of lane l at n · 8 + l); `power` receives `size / 2 + 1` bins per lane the same
  /// way. `re` and `im` are scratch of `size / 2` vectors each.
  func power(
    _ frames: UnsafePointer<Lanes>, into power: UnsafeMutablePointer<Lanes>, re: UnsafeMutablePointer<Lanes>,
    im: UnsafeMutablePointer<Lanes>
  ) {
    // Pack even samples as real parts, odd as imaginary, in bit-reversed order.
    for index in 0..<half {
      let target = reversed[index]
      re[target] = frames[2 * index]
      im[target] = frames[2 * index + 1]
    }
    // Butterflies, stage by stage.
    var span = 1
    while span < half {
      let stride = half / (2 * span)
      var start = 0
      while start < half {
        for offset in 0..<span {
          let (c, s) = twiddles[offset * stride]
          let (a, b) = (start + offset, start + offset + span)
          let tre = re[b] * c - im[b] * s
          let tim = re[b] * s + im[b] * c
          re[b] = re[a] - tre
          im[b] = im[a] - tim
          re[a] = re[a] + tre
          im[a] = im[a] + tim
        }
        start += 2 * span
      }
      span *= 2
    }
    // Unpack: X[k] = (Z[k] + conj Z[N/2 − k]) / 2 − i/2 · W^k (Z[k] − conj Z[N/2 − k]).
    power[0] = (re[0] + im[0]) * (re[0] + im[0])
    power[half] = (re[0] - im[0]) * (re[0] - im[0])
    let halfScale = Lanes(repeating: 0.5)
    for k in 1...(half / 2) {
      let m = half - k
      let (zr, zi, yr, yi) = (re[k], im[k], re[m], -im[m])
      let (er, ei) = ((zr + yr) * halfScale, (zi + yi) * halfScale)
      let (dr, di) = ((zr - yr) * halfScale, (zi - yi) * halfScale)
      // o = −i · d, then times the twiddle W^k = (c, s).
      let (orr, oi) = (di, -dr)
      let (c, s) = unpack[k]
      let (wr, wi) = (orr * c - oi * s, orr * s + oi * c)
      let (xr, xi) = (er + wr, ei + wi)
      power[k] = xr * xr + xi * xi
      // X[N/2 − k] = conj(E) − conj(W^k O)... written from the same parts.
      let (xr2, xi2) = (er - wr, -(ei - wi))
      power[m] = xr2 * xr2 + xi2 * xi2
    }
  }
}
