/// A deterministic random number generator (PCG-XSH-RR 64/32), so that training with a seed
/// gives the same head every time.
public struct SeededRandom: RandomNumberGenerator, Sendable {
  private var state: UInt64
  private let increment: UInt64

  /// A generator whose sequence depends only on `seed`.
  public init(seed: UInt64) {
    increment = (seed << 1) | 1
    state = 0
    _ = nextWord()
    state &+= seed
    _ = nextWord()
  }

  private mutating func nextWord() -> UInt32 {
    let old = state
    state = old &* 6_364_136_223_846_793_005 &+ increment
    let shifted = UInt32(truncatingIfNeeded: ((old >> 18) ^ old) >> 27)
    let rotation = UInt32(truncatingIfNeeded: old >> 59)
    return (shifted >> rotation) | (shifted << ((~rotation &+ 1) & 31))
  }

  public mutating func next() -> UInt64 { UInt64(nextWord()) << 32 | UInt64(nextWord()) }
}
