import ShoalRPC
import Testing

@testable import Tracking

struct RunFilterTests {
  private func parse(_ text: String) throws(RunFilterError) -> RunFilter? { try RunFilterParser.parse(text) }

  private func compare(_ entity: RunFilter.Entity, _ op: RunFilter.Operator, _ values: RunFilter.Value...) -> RunFilter
  {
    .comparison(RunFilter.Comparison(entity: entity, op: op, values: values))
  }

  @Test func andBindsTighterThanOr() throws {
    let a = compare(.metric("a"), .greater, .number(1))
    let b = compare(.param("b"), .equal, .string("x"))
    let c = compare(.tag("c"), .notEqual, .string("y"))
    #expect(try parse("metrics.a > 1 OR params.b = 'x' AND tags.c != 'y'") == .or(a, .and(b, c)))
    #expect(try parse("metrics.a > 1 and params.b = 'x' or tags.c != 'y'") == .or(.and(a, b), c))
    #expect(try parse("(metrics.a > 1 OR params.b = 'x') AND tags.c != 'y'") == .and(.or(a, b), c))
  }

  /// The same grammar over experiments: attributes bare or after `attributes.`, and tags.
  @Test func experimentFiltersNameAttributesAndTags() throws {
    func experiments(_ text: String) throws(RunFilterError) -> RunFilter? {
      try RunFilterParser.parse(text, experiments: true)
    }
    #expect(
      try experiments("name LIKE 'road%' OR tags.team = 'maps' AND creation_time > 5")
        == .or(
          compare(.experiment(.name), .like, .string("road%")),
          .and(
            compare(.tag("team"), .equal, .string("maps")), compare(.experiment(.creationTime), .greater, .number(5)))
        ))
    #expect(
      try experiments("attributes.last_update_time <= 7")
        == compare(.experiment(.lastUpdateTime), .lessOrEqual, .number(7)))
    #expect(try experiments("tags.`the team` = 'x'") == compare(.tag("the team"), .equal, .string("x")))
    for (text, message) in [
      ("metrics.acc > 1", "'metrics' is not tags or attributes"),
      ("attributes.status = 'x'", "not an experiment attribute"),
      ("owner = 'x'", "'owner' is not name, creation_time, last_update_time or tags.<key>"),
      ("name =", "at position 7: expected a number"),
    ] {
      #expect(throws: RunFilterError.self, "\(text)") { try experiments(text) }
      do {
        _ = try experiments(text)
      } catch {
        #expect(error.description.contains(message), "\(text): \(error)")
      }
    }
    // A run filter names no experiment attribute.
    #expect(throws: RunFilterError.self) { try parse("name = 'x'") }
  }

  @Test func everyEntityOperatorAndValueForm() throws {
    #expect(try parse("") == nil)
    #expect(try parse("   ") == nil)
    #expect(try parse("metric.`val loss` <= -1.5e-3") == compare(.metric("val loss"), .lessOrEqual, .number(-0.0015)))
    #expect(try parse("params.\"learning rate\" = '0.1'") == compare(.param("learning rate"), .equal, .string("0.1")))
    #expect(try parse("tags.note LIKE 'it''s%'") == compare(.tag("note"), .like, .string("it's%")))
    #expect(
      try parse("attributes.status NOT IN ('FAILED', 'KILLED')")
        == compare(.attribute(.status), .notIn, .string("FAILED"), .string("KILLED")))
    #expect(try parse("attribute.run_name ILIKE 'Base%'") == compare(.attribute(.runName), .ilike, .string("Base%")))
    #expect(
      try parse("run.start_time >= 1700000000000") == compare(.attribute(.startTime), .greaterOrEqual, .number(1.7e12)))
    #expect(
      try parse("tags.mlflow.source.type = 'LOCAL'") == compare(.tag("mlflow.source.type"), .equal, .string("LOCAL")))
  }

  @Test(arguments: [
    ("metrics.acc >", "at position 14: expected a number"),
    ("metrics.acc > 1 AND", "at position 20: expected metrics.<key>"),
    ("(metrics.acc > 1", "at position 17: expected ')'"),
    ("metrics.acc ~ 1", "at position 13: unexpected character '~'"),
    ("metrics.acc = 1 params.a = 'x'", "at position 17: expected AND, OR"),
    ("losses.acc = 1", "at position 1: 'losses' is not metrics"),
    ("attributes.colour = 'red'", "at position 1: 'colour' is not a run attribute"),
    ("params.a = 'open", "at position 12: the quote ' is never closed"),
    ("params.a IN 'x'", "at position 13: expected '('"),
    ("params.a NOT = 'x'", "at position 14: expected IN after NOT"),
    ("metrics = 1", "at position 1: 'metrics' needs a key"),
    ("datasets.size = 'x'", "at position 1: 'size' is not a dataset field"),
  ])
  func malformedFiltersNameThePosition(_ text: String, _ expected: String) {
    do {
      _ = try parse(text)
      Issue.record("accepted \(text)")
    } catch {
      #expect(error.description.hasPrefix(expected), "\(error.description)")
    }
  }

  /// Found by the fuzz target (Fuzz/crashes/filter-crash-…): 4,000 '(' overflowed the stack.
  @Test func deepNestingAndHugeFiltersAreRefusedNotOverflowed() throws {
    let deep = String(repeating: "(", count: 4_000) + "metrics.a > 1" + String(repeating: ")", count: 4_000)
    #expect(throws: RunFilterError.self) { try parse(deep) }
    do {
      _ = try parse(deep)
    } catch {
      #expect(error.message.contains("nest deeper than 64"), "\(error)")
    }
    let nested = String(repeating: "(", count: 64) + "metrics.a > 1" + String(repeating: ")", count: 64)
    #expect(try parse(nested) != nil)
    let many = (0..<600).map { "metrics.m\($0) > 1" }.joined(separator: " AND ")
    do {
      _ = try parse(many)
      Issue.record("accepted 600 comparisons")
    } catch {
      #expect(error.message.contains("more than 500 comparisons"), "\(error)")
    }
  }
}

struct ArtifactPathTests {
  @Test func pathsWithNULOrEscapesAreRefused() {
    for path in ["nul\u{0}byte", "../x", "/abs", "a//b", "./a", "a/..", ""] {
      #expect(throws: RPCError.self, "\(path)") { try TrackingStore.checkArtifactPath(path) }
    }
    for path in ["model.onnx", "model/weights.bin", "plots/loss..svg"] {
      #expect(throws: Never.self) { try TrackingStore.checkArtifactPath(path) }
    }
  }
}
