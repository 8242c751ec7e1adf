import Foundation
import ShoalGeo
import ShoalProto
import ShoalStore
import ShoalTestSupport
import Testing

@testable import Feedback

/// NextForReview's ranking and locks, with two reviewers at once, on SQLite and PostgreSQL.
struct ReviewQueueTests {
  private func withSet(
    _ backend: Backend, _ body: (FeedbackStore, Int64, [Tile: Double]) async throws -> Void
  )
    async throws
  {
    try await backend.withDatabase { database, _ in
      try await database.migrate(FeedbackStore.migrations)
      let store = FeedbackStore(database: database)
      var request = FeedbackV1.CreateSetRequest()
      request.model = "roads"
      request.zoom = 14
      request.classes = classLabels("road")
      let set = try await store.createSet(request, organization: "local", principal: "local@local")
      var random = SplitMix64(seed: 5)
      var scores: [Tile: Double] = [:]
      for index in 0..<60 {
        scores[try Tile(z: 14, x: 8000 + index % 10, y: 5000 + index / 10)] = Double(random.next() % 1000) / 1000
      }
      _ = try await store.putBatches([
        FeedbackStore.PutBatch(
          setID: Int64(set.setId)!, requestID: "", tiles: scores.map { ($0.key, "", ["road": $0.value], []) })
      ])
      try await body(store, Int64(set.setId)!, scores)
    }
  }

  @Test(arguments: Backend.available)
  func twoReviewersNeverGetTheSameTile(_ backend: Backend) async throws {
    Backend.expectPostgresWhenRequired()
    try await withSet(backend) { store, set, scores in
      async let ana = store.nextForReview(
        setID: set, strategy: .leastConfidence, className: nil, n: 10, holder: "ana@acme", lockMs: 60_000)
      async let ben = store.nextForReview(
        setID: set, strategy: .leastConfidence, className: nil, n: 10, holder: "ben@acme", lockMs: 60_000)
      let (first, second) = try await (ana, ben)
      let anas = Set(first.map(\.tile.tile))
      let bens = Set(second.map(\.tile.tile))
      #expect(anas.count == 10 && bens.count == 10 && anas.isDisjoint(with: bens))
      // Together they hold the twenty least confident tiles: closest to 0.5.
      let ranked = scores.sorted { abs($0.value - 0.5) < abs($1.value - 0.5) }.map(\.key)
      #expect(anas.union(bens) == Set(ranked.prefix(20)))
      #expect(first.map(\.uncertainty) == first.map(\.uncertainty).sorted(by: >))

      // A reviewer asking again gets its own tiles back; the other still none of them.
      let again = try await store.nextForReview(
        setID: set, strategy: .leastConfidence, className: nil, n: 10, holder: "ana@acme", lockMs: 60_000)
      #expect(Set(again.map(\.tile.tile)) == anas)
      // Given back, they go to the next reviewer.
      #expect(try await store.releaseLocks(setID: set, holder: "ana@acme", tiles: []) == 10)
      let cal = try await store.nextForReview(
        setID: set, strategy: .leastConfidence, className: nil, n: 10, holder: "cal@acme", lockMs: 50)
      #expect(Set(cal.map(\.tile.tile)) == anas)
      // Expired locks return to the pool.
      try await Task.sleep(for: .milliseconds(120))
      let dan = try await store.nextForReview(
        setID: set, strategy: .leastConfidence, className: "road", n: 10, holder: "dan@acme", lockMs: 60_000)
      #expect(Set(dan.map(\.tile.tile)) == anas)

      // Validated tiles leave the queue.
      var change = FeedbackV1.ValidityChange()
      change.target = .tileId("\(dan[0].tile.tile)")
      change.className = "road"
      change.validity = .valid
      _ = try await store.setValidity(setID: set, classes: ["road"], changes: [change], by: "dan@acme")
      let later = try await store.nextForReview(
        setID: set, strategy: .entropy, className: nil, n: 60, holder: "dan@acme", lockMs: 60_000)
      #expect(later.count == 60 - 10 - 1 && !later.contains { $0.tile.tile == dan[0].tile.tile })
    }
  }

  @Test func strategiesRankAsTheirFormulasSay() {
    let sure = Uncertainty([0.95, 0.03, 0.02])
    let torn = Uncertainty([0.48, 0.47, 0.05])
    #expect(torn.leastConfidence > sure.leastConfidence && torn.margin > sure.margin && torn.entropy > sure.entropy)
    // One class: p against 1 − p, the same order as |0.5 − p|.
    let values = [0.1, 0.45, 0.5, 0.7, 0.99].map { Uncertainty([$0]) }
    for strategy in [\Uncertainty.leastConfidence, \Uncertainty.margin, \Uncertainty.entropy] {
      let order = values.indices.sorted { values[$0][keyPath: strategy] > values[$1][keyPath: strategy] }
      #expect(order == [2, 1, 3, 0, 4])
    }
  }
}
