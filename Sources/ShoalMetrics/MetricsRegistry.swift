import Synchronization

/// A service's metrics, written out in Prometheus' text exposition format (version 0.0.4).
///
/// Counters are atomics and histograms take one uncontended lock per observation, so recording
/// costs tens of nanoseconds on the request path; the text is made only when scraped. Series are
/// created by name and labels, and the same name and labels give the same series.
public final class MetricsRegistry: Sendable {
  /// A metric family's kind.
  public enum Kind: String, Sendable {
    case counter, gauge, histogram
  }

  private struct Family {
    var kind: Kind
    var help: String
    var series: [Labels: any MetricSeries] = [:]
  }

  private let families = Mutex<[String: Family]>([:])

  /// An empty registry.
  public init() {}

  /// The counter `name` with `labels`, created at 0 on first use.
  public func counter(_ name: String, help: String, labels: [String: String] = [:]) -> Counter {
    series(name, .counter, help, labels) { Counter() }
  }

  /// The gauge `name` with `labels`, created at 0 on first use.
  public func gauge(_ name: String, help: String, labels: [String: String] = [:]) -> Gauge {
    series(name, .gauge, help, labels) { Gauge() }
  }

  /// A gauge whose value `read` gives when the metrics are scraped (replacing an earlier one).
  public func gauge(
    _ name: String, help: String, labels: [String: String] = [:], reading read: @escaping @Sendable () -> Double
  ) {
    families.withLock { families in
      families[name, default: Family(kind: .gauge, help: help)].series[Labels(labels)] = ReadGauge(read: read)
    }
  }

  /// The histogram `name` with `labels` and upper bounds `buckets` (ascending; +Inf is added).
  public func histogram(
    _ name: String, help: String, labels: [String: String] = [:], buckets: [Double] = Histogram.latencyBuckets
  ) -> Histogram {
    series(name, .histogram, help, labels) { Histogram(buckets: buckets) }
  }

  /// Forgets every series whose labels include all of `labels` (a model that was unloaded).
  public func remove(matching labels: [String: String]) {
    families.withLock { families in
      for name in families.keys {
        families[name]!.series = families[name]!.series.filter { key, _ in
          !labels.allSatisfy { key.value(of: $0.key) == $0.value }
        }
      }
    }
  }

  /// Every series in the text exposition format, families sorted by name.
  public func exposition() -> String {
    let snapshot = families.withLock { $0 }
    var text = ""
    for (name, family) in snapshot.sorted(by: { $0.key < $1.key }) where !family.series.isEmpty {
      text += "# HELP \(name) \(Self.escapeHelp(family.help))\n# TYPE \(name) \(family.kind.rawValue)\n"
      for (labels, series) in family.series.sorted(by: { $0.key.text < $1.key.text }) {
        series.write(name: name, labels: labels, into: &text)
      }
    }
    return text
  }

  private func series<Series: MetricSeries>(
    _ name: String, _ kind: Kind, _ help: String, _ labels: [String: String], make: () -> Series
  ) -> Series {
    families.withLock { families in
      let key = Labels(labels)
      if let existing = families[name]?.series[key] as? Series { return existing }
      let made = make()
      families[name, default: Family(kind: kind, help: help)].series[key] = made
      return made
    }
  }

  static func escapeHelp(_ text: String) -> String { escaped(text, quotes: false) }

  /// `text` with backslashes and line breaks (and, for label values, quotes) escaped.
  static func escaped(_ text: String, quotes: Bool) -> String {
    var result = ""
    for character in text {
      switch character {
      case "\\": result += "\\\\"
      case "\n": result += "\\n"
      case "\"" where quotes: result += "\\\""
      default: result.append(character)
      }
    }
    return result
  }

  /// A number as Prometheus writes it.
  static func format(_ value: Double) -> String {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
    if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return "\(value)"
  }
}

/// A series' label set, kept sorted so that equal sets are equal keys.
struct Labels: Hashable, Sendable {
  let pairs: [(String, String)]
  let text: String

  init(_ labels: [String: String]) {
    pairs = labels.sorted { $0.key < $1.key }
    text = pairs.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
  }

  func value(of key: String) -> String? { pairs.first { $0.0 == key }?.1 }

  /// `{a="1",b="2"}` with `extra` appended, or nothing for no labels.
  func braces(_ extra: String = "") -> String {
    let all = [text, extra].filter { !$0.isEmpty }.joined(separator: ",")
    return all.isEmpty ? "" : "{\(all)}"
  }

  static func == (lhs: Labels, rhs: Labels) -> Bool { lhs.text == rhs.text }
  func hash(into hasher: inout Hasher) { hasher.combine(text) }

  static func escape(_ value: String) -> String { MetricsRegistry.escaped(value, quotes: true) }
}

protocol MetricSeries: Sendable {
  func write(name: String, labels: Labels, into text: inout String)
}

/// A count that only goes up.
public final class Counter: MetricSeries {
  private let count = Atomic<UInt64>(0)

  init() {}

  /// Adds `amount`.
  public func increment(by amount: UInt64 = 1) { count.add(amount, ordering: .relaxed) }

  /// The count now.
  public var value: UInt64 { count.load(ordering: .relaxed) }

  func write(name: String, labels: Labels, into text: inout String) {
    text += "\(name)\(labels.braces()) \(value)\n"
  }
}

/// A value that goes up and down.
public final class Gauge: MetricSeries {
  private let bits = Atomic<UInt64>(0.0.bitPattern)

  init() {}

  /// Sets the value.
  public func set(_ value: Double) { bits.store(value.bitPattern, ordering: .relaxed) }

  /// Adds `delta` (negative to lower it).
  public func add(_ delta: Double) {
    var current = bits.load(ordering: .relaxed)
    while true {
      let next = (Double(bitPattern: current) + delta).bitPattern
      let (exchanged, original) = bits.compareExchange(
        expected: current, desired: next, ordering: .relaxed)
      if exchanged { return }
      current = original
    }
  }

  /// The value now.
  public var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }

  func write(name: String, labels: Labels, into text: inout String) {
    text += "\(name)\(labels.braces()) \(MetricsRegistry.format(value))\n"
  }
}

struct ReadGauge: MetricSeries {
  let read: @Sendable () -> Double

  func write(name: String, labels: Labels, into text: inout String) {
    text += "\(name)\(labels.braces()) \(MetricsRegistry.format(read()))\n"
  }
}

/// Observations counted in buckets by upper bound, with their sum and count.
public final class Histogram: MetricSeries {
  /// Seconds from 50 µs to 10 s: request, queue and compute times.
  public static let latencyBuckets: [Double] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  ]
  /// Powers of two to 512: batch sizes.
  public static let sizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

  /// The upper bounds.
  public let buckets: [Double]
  private let state: Mutex<(counts: [UInt64], sum: Double, count: UInt64)>

  init(buckets: [Double]) {
    self.buckets = buckets
    state = Mutex((Array(repeating: 0, count: buckets.count), 0, 0))
  }

  /// Records one observation.
  public func observe(_ value: Double) {
    let index = buckets.firstIndex { value <= $0 }
    state.withLock { state in
      if let index { state.counts[index] += 1 }
      state.sum += value
      state.count += 1
    }
  }

  /// How many observations there were, and their sum.
  public var totals: (count: UInt64, sum: Double) { state.withLock { ($0.count, $0.sum) } }

  func write(name: String, labels: Labels, into text: inout String) {
    let (counts, sum, count) = state.withLock { $0 }
    var cumulative: UInt64 = 0
    for (bound, bucketCount) in zip(buckets, counts) {
      cumulative += bucketCount
      text += "\(name)_bucket\(labels.braces("le=\"\(MetricsRegistry.format(bound))\"")) \(cumulative)\n"
    }
    text += "\(name)_bucket\(labels.braces("le=\"+Inf\"")) \(count)\n"
    text += "\(name)_sum\(labels.braces()) \(MetricsRegistry.format(sum))\n"
    text += "\(name)_count\(labels.braces()) \(count)\n"
  }
}
