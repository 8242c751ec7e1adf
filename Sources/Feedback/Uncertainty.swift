import Foundation

/// How uncertain a prediction is, by each review strategy; higher is less certain. With one
/// class of score p the scores are taken as p and 1 − p.
struct Uncertainty: Equatable {
  /// 1 − the highest score.
  var leastConfidence: Double
  /// 1 − (highest − second highest): higher when the two best are closer.
  var margin: Double
  /// Shannon entropy of the scores normalised to sum to 1, in nats.
  var entropy: Double

  init(_ scores: [Double]) {
    var values = scores.map { min(max($0, 0), 1) }
    if values.count == 1 { values.append(1 - values[0]) }
    values.sort(by: >)
    let best = values.first ?? 0
    let second = values.count > 1 ? values[1] : 0
    leastConfidence = 1 - best
    margin = 1 - (best - second)
    let total = values.reduce(0, +)
    entropy =
      total > 0
      ? -values.map { $0 / total }.filter { $0 > 0 }.reduce(0) { $0 + $1 * log($1) }
      : 0
  }
}
