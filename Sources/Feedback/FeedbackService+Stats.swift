public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs

extension FeedbackService {
  public func stats(_ request: FeedbackV1.StatsRequest, context: ServerContext) async throws -> FeedbackV1.StatsResponse
  {
    let threshold = request.threshold == 0 ? 0.5 : request.threshold
    var sets: [FeedbackV1.PredictionSet] = []
    switch (request.setId.isEmpty, request.model.isEmpty) {
    case (false, true):
      sets = [try await store.set(request.setId, visibleTo: CallerOrganization.current)]
    case (true, false):
      var list = FeedbackV1.ListSetsRequest()
      list.model = request.model
      list.pageSize = 1000
      repeat {
        let page = try await store.sets(list, visibleTo: CallerOrganization.current)
        sets += page.sets
        list.pageToken = page.nextPageToken
      } while !list.pageToken.isEmpty
      guard !sets.isEmpty else { throw RPCError(.notFound, "no prediction set of model '\(request.model)'") }
    default:
      throw RPCError(.invalidArgument, "give set_id or model")
    }
    var tally = StatsTally()
    for set in sets { try await tally.add(set, threshold: threshold, store: store) }
    return tally.response(sets.count)
  }
}

/// Counts over one or more sets: per class, the confusion table, and the reviewers' verdicts.
private struct StatsTally {
  var tiles: Int64 = 0
  var validatedTiles: Int64 = 0
  /// predicted, valid, invalid, unvalidated, by class, in the order first seen.
  var classes: [(String, [Int64])] = []
  var confusion: [ConfusionKey: Int64] = [:]
  var verdicts: [[String: FeedbackV1.Validity]] = []

  struct ConfusionKey: Hashable, Comparable {
    var version: Int64
    var predicted: String
    var actual: String

    static func < (a: Self, b: Self) -> Bool { (a.version, a.predicted, a.actual) < (b.version, b.predicted, b.actual) }
  }

  mutating func add(_ set: FeedbackV1.PredictionSet, threshold: Double, store: FeedbackStore) async throws {
    var perClass = Dictionary(uniqueKeysWithValues: set.classes.map { ($0.name, [Int64](repeating: 0, count: 4)) })
    let version = set.modelVersion
    let names = set.classes.map(\.name)
    try await store.forEachTile(setID: Int64(set.setId)!, zoom: Int(set.zoom)) { stored, all, tileFeatures in
      tiles += 1
      let marks = all.filter { $0.feature == 0 }.map(\.record)
      if !marks.isEmpty { validatedTiles += 1 }
      let said = Dictionary(marks.map { ($0.className, $0.validity) }, uniquingKeysWith: { a, _ in a })
      for name in names {
        let predicted = (stored.scores[name] ?? 0) >= threshold && stored.scores[name] != nil
        if predicted {
          perClass[name]![0] += 1
          switch said[name] {
          case .valid?: perClass[name]![1] += 1
          case .invalid?: perClass[name]![2] += 1
          default: perClass[name]![3] += 1
          }
        }
        // Tiles' class marks: a hit, a false positive, or a miss.
        switch (predicted, said[name]) {
        case (true, .valid?): count(version, name, name)
        case (true, .invalid?): count(version, name, "")
        case (false, .valid?): count(version, "", name)
        default: break
        }
      }
      // Features a reviewer judged: valid for its class is a hit; valid for another, a confusion;
      // only invalid, a false positive.
      for feature in tileFeatures {
        let own = all.filter { String($0.feature) == feature.featureId }.map(\.record)
        guard !own.isEmpty else { continue }
        let valid = own.filter { $0.validity == .valid }.map(\.className)
        if valid.isEmpty {
          count(version, feature.className, "")
        } else {
          for actual in valid { count(version, feature.className, actual) }
        }
      }
    }
    for label in set.classes {
      if let index = classes.firstIndex(where: { $0.0 == label.name }) {
        classes[index].1 = zip(classes[index].1, perClass[label.name]!).map { $0 + $1 }
      } else {
        classes.append((label.name, perClass[label.name]!))
      }
    }
    verdicts += try await store.verdicts(setID: Int64(set.setId)!).values
  }

  mutating func count(_ version: Int64, _ predicted: String, _ actual: String) {
    confusion[ConfusionKey(version: version, predicted: predicted, actual: actual), default: 0] += 1
  }

  func response(_ setCount: Int) -> FeedbackV1.StatsResponse {
    var response = FeedbackV1.StatsResponse()
    response.sets = Int32(setCount)
    response.tiles = tiles
    response.validatedTiles = validatedTiles
    response.classes = classes.map { name, counts in
      var stats = FeedbackV1.ClassStats()
      stats.className = name
      stats.predicted = counts[0]
      stats.valid = counts[1]
      stats.invalid = counts[2]
      stats.unvalidated = counts[3]
      stats.precision = counts[1] + counts[2] == 0 ? 0 : Double(counts[1]) / Double(counts[1] + counts[2])
      return stats
    }
    response.confusion = confusion.keys.sorted().map { key in
      var cell = FeedbackV1.ConfusionCell()
      cell.modelVersion = key.version
      cell.predicted = key.predicted
      cell.actual = key.actual
      cell.count = confusion[key]!
      return cell
    }
    response.agreement = Self.agreement(verdicts)
    return response
  }

  /// Agreement over the items that two or more reviewers judged, with Cohen's kappa per pair.
  static func agreement(_ verdicts: [[String: FeedbackV1.Validity]]) -> FeedbackV1.ReviewerAgreement {
    var agreement = FeedbackV1.ReviewerAgreement()
    var pairs = 0
    var agreeingPairs = 0
    // Per pair of reviewers: [first valid & second valid, valid/invalid, invalid/valid, invalid/invalid].
    var table: [[String]: [Int]] = [:]
    for item in verdicts where item.count >= 2 {
      agreement.items += 1
      if Set(item.values).count == 1 { agreement.unanimous += 1 }
      let reviewers = item.keys.sorted()
      for (index, first) in reviewers.enumerated() {
        for second in reviewers[(index + 1)...] {
          let a = item[first]!
          let b = item[second]!
          pairs += 1
          if a == b { agreeingPairs += 1 }
          let cell = (a == .valid ? 0 : 2) + (b == .valid ? 0 : 1)
          table[[first, second], default: [0, 0, 0, 0]][cell] += 1
        }
      }
    }
    agreement.pairwise = pairs == 0 ? 0 : Double(agreeingPairs) / Double(pairs)
    agreement.pairs = table.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
      let counts = table[key]!.map(Double.init)
      let total = counts.reduce(0, +)
      let observed = (counts[0] + counts[3]) / total
      let firstValid = (counts[0] + counts[1]) / total
      let secondValid = (counts[0] + counts[2]) / total
      let chance = firstValid * secondValid + (1 - firstValid) * (1 - secondValid)
      var pair = FeedbackV1.ReviewerPair()
      pair.first = key[0]
      pair.second = key[1]
      pair.items = Int64(total)
      pair.agreed = Int64(counts[0] + counts[3])
      pair.kappa = chance >= 1 ? 1 : (observed - chance) / (1 - chance)
      return pair
    }
    return agreement
  }
}
