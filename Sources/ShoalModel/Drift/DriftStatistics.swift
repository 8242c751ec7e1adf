public import Foundation

import Synchronization

/// What a version saw in training, to compare what it is asked with: per input channel the
/// mean, deviation and decile edges (each bin a tenth of the training values), and of its first
/// output the share of each top class and the deciles of the top probability. Kept as JSON in the
/// version's tag `shoal.drift` (made by `shoal models push --drift-reference SAMPLE.npy`).
public struct DriftReference: Codable, Sendable, Equatable {
  public struct Distribution: Codable, Sendable, Equatable {
    public var mean: Double
    public var std: Double
    /// The bins' inner edges, rising; bin i holds values in [edges[i-1], edges[i]).
    public var edges: [Double]
    /// The training share of each bin (edges.count + 1).
    public var fractions: [Double]
  }

  /// By input name, each channel (dimension 1 of [N, C, …]; a column of [N, F]; at most 64).
  public var inputs: [String: [Distribution]]
  /// The top class's share, by class index as text.
  public var classes: [String: Double]
  public var confidence: Distribution?
  public var examples: Int

  public static let tag = "shoal.drift"
  static let maxChannels = 64

  /// The reference of a sample of training inputs and the model's outputs for them.
  public static func of(inputs: [String: Tensor], outputs: [String: Tensor], firstOutput: String) -> DriftReference {
    var reference = DriftReference(inputs: [:], classes: [:], confidence: nil, examples: 0)
    for (name, tensor) in inputs where tensor.dataType == .float32 && tensor.rank >= 2 {
      reference.inputs[name] = channels(tensor).map { distribution($0) }
      reference.examples = tensor.shape[0]
    }
    if let output = outputs[firstOutput], output.dataType == .float32, output.rank == 2, output.shape[0] > 0 {
      let (tops, confidences) = topClasses(output)
      for top in tops { reference.classes["\(top)", default: 0] += 1 / Double(tops.count) }
      reference.confidence = distribution(confidences)
    }
    return reference
  }

  /// Each channel's values, in order.
  static func channels(_ tensor: Tensor) -> [[Double]] {
    let values = tensor.elements(as: Float.self)
    let rows = tensor.shape[0]
    let channels = min(maxChannels, tensor.shape[1])
    let inner = tensor.shape.dropFirst(2).reduce(1, *)
    var result = [[Double]](repeating: [], count: channels)
    for row in 0..<rows {
      for channel in 0..<channels {
        let start = (row * tensor.shape[1] + channel) * inner
        result[channel].append(contentsOf: values[start..<start + inner].map(Double.init))
      }
    }
    return result
  }

  /// Every row's top class and its probability.
  static func topClasses(_ output: Tensor) -> ([Int], [Double]) {
    let values = output.elements(as: Float.self)
    let (rows, width) = (output.shape[0], output.shape[1])
    var tops: [Int] = []
    var confidences: [Double] = []
    for row in 0..<rows where width > 0 {
      var best = 0
      for column in 1..<width where values[row * width + column] > values[row * width + best] { best = column }
      tops.append(best)
      confidences.append(Double(values[row * width + best]))
    }
    return (tops, confidences)
  }

  static func distribution(_ values: [Double]) -> Distribution {
    let sorted = values.sorted()
    let mean = values.reduce(0, +) / Double(max(1, values.count))
    let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, values.count))).squareRoot()
    var edges: [Double] = []
    for decile in 1..<10 where !sorted.isEmpty {
      let edge = sorted[min(sorted.count - 1, decile * sorted.count / 10)]
      if edges.last.map({ edge > $0 }) ?? true { edges.append(edge) }
    }
    var counts = [Int](repeating: 0, count: edges.count + 1)
    for value in values { counts[bin(value, edges)] += 1 }
    return Distribution(
      mean: mean, std: std, edges: edges, fractions: counts.map { Double($0) / Double(max(1, values.count)) })
  }

  static func bin(_ value: Double, _ edges: [Double]) -> Int {
    var low = 0
    var high = edges.count
    while low < high {
      let middle = (low + high) / 2
      if value >= edges[middle] { low = middle + 1 } else { high = middle }
    }
    return low
  }

  /// The population stability index of `observed` counts against `expected` shares: Σ (o − e)
  /// ln(o / e), each share at least 1e-4. Below 0.1 is stable, above 0.25 a shift.
  public static func psi(expected: [Double], observed: [Int]) -> Double {
    let total = Double(observed.reduce(0, +))
    guard total > 0, expected.count == observed.count else { return 0 }
    return zip(expected, observed).reduce(0) { sum, pair in
      let e = max(pair.0, 1e-4)
      let o = max(Double(pair.1) / total, 1e-4)
      return sum + (o - e) * log(o / e)
    }
  }
}

/// What one served version is asked, binned as its reference, with the PSI of each feature and
/// the alerts raised when one passes the threshold.
public final class DriftMonitor: Sendable {
  public struct Feature: Sendable {
    public var name: String
    public var psi: Double
    public var observed: Int
    public var expectedMean: Double
    public var observedMean: Double
    public var alert: Bool
  }

  struct Counts {
    var inputs: [String: [(bins: [Int], sum: Double, count: Int)]] = [:]
    var classes: [String: Int] = [:]
    var confidence: [Int] = []
    var confidenceSum = 0.0
    var rows = 0
    var alerted: Set<String> = []
  }

  public let reference: DriftReference
  public let threshold: Double
  /// Rows seen before a PSI is judged.
  public let minimumRows: Int
  private let counts = Mutex(Counts())

  public init(reference: DriftReference, threshold: Double = 0.2, minimumRows: Int = 100) {
    self.reference = reference
    self.threshold = threshold
    self.minimumRows = minimumRows
  }

  /// Counts one call's inputs and outputs; the features that passed the threshold with it (each
  /// once, until it falls back under).
  public func observe(inputs: [String: Tensor], outputs: [String: Tensor], firstOutput: String) -> [Feature] {
    var values: [String: [[Double]]] = [:]
    var rows = 0
    for (name, tensor) in inputs where reference.inputs[name] != nil && tensor.dataType == .float32 && tensor.rank >= 2
    {
      values[name] = DriftReference.channels(tensor)
      rows = tensor.shape[0]
    }
    var tops: ([Int], [Double]) = ([], [])
    if let output = outputs[firstOutput], output.dataType == .float32, output.rank == 2 {
      tops = DriftReference.topClasses(output)
      rows = max(rows, output.shape[0])
    }
    return counts.withLock { counts in
      for (name, channels) in values {
        let distributions = reference.inputs[name]!
        if counts.inputs[name] == nil {
          counts.inputs[name] = distributions.map { ([Int](repeating: 0, count: $0.fractions.count), 0, 0) }
        }
        for (index, channel) in channels.enumerated() where index < distributions.count {
          for value in channel {
            counts.inputs[name]![index].bins[DriftReference.bin(value, distributions[index].edges)] += 1
          }
          counts.inputs[name]![index].sum += channel.reduce(0, +)
          counts.inputs[name]![index].count += channel.count
        }
      }
      if let confidence = reference.confidence {
        if counts.confidence.isEmpty { counts.confidence = [Int](repeating: 0, count: confidence.fractions.count) }
        for value in tops.1 { counts.confidence[DriftReference.bin(value, confidence.edges)] += 1 }
        counts.confidenceSum += tops.1.reduce(0, +)
      }
      for top in tops.0 { counts.classes["\(top)", default: 0] += 1 }
      counts.rows += rows
      let features = Self.features(reference, counts, threshold: threshold, minimumRows: minimumRows)
      var raised: [Feature] = []
      for feature in features {
        if feature.alert, counts.alerted.insert(feature.name).inserted { raised.append(feature) }
        if !feature.alert { counts.alerted.remove(feature.name) }
      }
      return raised
    }
  }

  /// Every feature's PSI now.
  public func report() -> (rows: Int, features: [Feature]) {
    counts.withLock { counts in
      (counts.rows, Self.features(reference, counts, threshold: threshold, minimumRows: minimumRows))
    }
  }

  private static func features(
    _ reference: DriftReference, _ counts: Counts, threshold: Double, minimumRows: Int
  ) -> [Feature] {
    var features: [Feature] = []
    let judged = counts.rows >= minimumRows
    for (name, channels) in counts.inputs.sorted(by: { $0.key < $1.key }) {
      for (index, channel) in channels.enumerated() {
        let expected = reference.inputs[name]![index]
        let psi = DriftReference.psi(expected: expected.fractions, observed: channel.bins)
        features.append(
          Feature(
            name: "input \(name) channel \(index)", psi: psi, observed: channel.count, expectedMean: expected.mean,
            observedMean: channel.count == 0 ? 0 : channel.sum / Double(channel.count), alert: judged && psi > threshold
          ))
      }
    }
    if !reference.classes.isEmpty {
      let keys = Set(reference.classes.keys).union(counts.classes.keys).sorted()
      let psi = DriftReference.psi(
        expected: keys.map { reference.classes[$0] ?? 0 }, observed: keys.map { counts.classes[$0] ?? 0 })
      let observed = counts.classes.values.reduce(0, +)
      features.append(
        Feature(
          name: "output classes", psi: psi, observed: observed, expectedMean: 0, observedMean: 0,
          alert: judged && psi > threshold))
    }
    if let confidence = reference.confidence, !counts.confidence.isEmpty {
      let psi = DriftReference.psi(expected: confidence.fractions, observed: counts.confidence)
      let observed = counts.confidence.reduce(0, +)
      features.append(
        Feature(
          name: "output confidence", psi: psi, observed: observed, expectedMean: confidence.mean,
          observedMean: observed == 0 ? 0 : counts.confidenceSum / Double(observed), alert: judged && psi > threshold))
    }
    return features
  }
}
