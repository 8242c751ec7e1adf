import ShoalProto
import ShoalRPC
import ShoalStore
import ShoalTestSupport
import Testing
import Tracking

/// SearchRuns against real data on SQLite and PostgreSQL.
struct SearchRunsTests {
  /// Five runs: name, lr param, stage tag, accuracy, status.
  private static let runs: [(String, String, String, Double?, TrackingV1.RunStatus)] = [
    ("base", "0.1", "dev", 0.71, .finished),
    ("Base-2", "0.01", "prod", 0.93, .finished),
    ("wide", "0.01", "dev", 0.88, .failed),
    ("deep", "0.001", "prod-candidate", .nan, .running),
    ("tiny", "0.1", "dev", nil, .killed),
  ]

  private static let evaluation = {
    var input = TrackingV1.DatasetInput()
    input.name = "holdout"
    input.digest = "sha256:cd"
    input.context = "evaluation"
    return input
  }()

  private func withRuns(
    _ backend: Backend, _ body: (TrackingStore, String) async throws -> Void
  ) async throws {
    try await withExperiment(backend, named: "search") { _, store, experimentID in
      for (index, (name, lr, stage, accuracy, status)) in Self.runs.enumerated() {
        var request = TrackingV1.CreateRunRequest()
        request.experimentId = experimentID
        request.name = name
        request.user = index < 2 ? "ana" : "bo"
        request.startTimeMs = 1000 + Int64(index)
        let run = try await store.createRun(request)
        var batch = TrackingV1.LogBatchRequest()
        batch.runId = run.runId
        batch.params = [param("lr", lr)]
        var tag = TrackingV1.Tag()
        tag.key = "stage"
        tag.value = stage
        batch.tags = [tag]
        if let accuracy { batch.metrics = [metric("acc", accuracy, step: 0, at: 0)] }
        _ = try await store.logBatch(batch)
        if index < 2 {
          var inputs = TrackingV1.LogInputsRequest()
          inputs.runId = run.runId
          var training = TrackingV1.DatasetInput()
          training.name = "tiles-2026"
          training.digest = "sha256:ab"
          training.source = "blob:sha256:ab"
          training.context = "training"
          inputs.datasets = index == 1 ? [training, training, Self.evaluation] : [training]
          try await store.logInputs(inputs)
          try await store.logInputs(inputs)
        }
        var update = TrackingV1.UpdateRunRequest()
        update.runId = run.runId
        update.status = status
        _ = try await store.updateRun(update)
      }
      try await body(store, experimentID)
    }
  }

  private func names(
    _ store: TrackingStore, _ experiment: String, _ filter: String, orderBy: [String] = ["attributes.start_time"]
  ) async throws -> [String] {
    var request = TrackingV1.SearchRunsRequest()
    request.experimentIds = [experiment]
    request.filter = filter
    request.orderBy = orderBy
    return try await store.searchRuns(request).runs.map(\.name)
  }

  private func expectRuns(
    _ store: TrackingStore, _ experiment: String, _ filter: String, orderBy: [String] = ["attributes.start_time"],
    _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    let found = try await names(store, experiment, filter, orderBy: orderBy)
    #expect(found == expected, "\(filter) \(orderBy)", sourceLocation: sourceLocation)
  }

  @Test(arguments: Backend.available)
  func filtersSelectTheRightRuns(_ backend: Backend) async throws {
    try await withRuns(backend) { store, experiment in
      try await expectRuns(store, experiment, "metrics.acc > 0.8", ["Base-2", "wide"])
      try await expectRuns(store, experiment, "metrics.acc != 0.71", ["Base-2", "wide"])
      try await expectRuns(store, experiment, "params.lr = '0.1'", ["base", "tiny"])
      try await expectRuns(store, experiment, "tags.stage LIKE 'prod%'", ["Base-2", "deep"])
      try await expectRuns(store, experiment, "attributes.run_name LIKE 'base%'", ["base"])
      try await expectRuns(store, experiment, "attributes.run_name ILIKE 'base%'", ["base", "Base-2"])
      try await expectRuns(store, experiment, "attributes.status IN ('FAILED', 'KILLED')", ["wide", "tiny"])
      try await expectRuns(store, experiment, "attributes.status NOT IN ('FINISHED')", ["wide", "deep", "tiny"])
      try await expectRuns(store, experiment, "attributes.user = 'ana'", ["base", "Base-2"])
      try await expectRuns(store, experiment, "attributes.start_time >= 1003", ["deep", "tiny"])
      // AND binds tighter than OR; parentheses change it.
      try await expectRuns(
        store, experiment, "params.lr = '0.1' OR params.lr = '0.01' AND tags.stage = 'prod'",
        ["base", "Base-2", "tiny"])
      try await expectRuns(
        store, experiment, "(params.lr = '0.1' OR params.lr = '0.01') AND tags.stage = 'prod'", ["Base-2"])
      try await expectRuns(
        store, experiment, "tags.stage = 'prod' AND params.lr = '0.01' OR attributes.run_name = 'tiny'",
        ["Base-2", "tiny"])
      try await expectRuns(store, experiment, "datasets.context = 'evaluation'", ["Base-2"])
      try await expectRuns(store, experiment, "datasets.name = 'tiles-2026' AND metrics.acc < 0.8", ["base"])
      try await expectRuns(store, experiment, "datasets.digest IN ('sha256:cd', 'sha256:zz')", ["Base-2"])
      // User input is data, never SQL.
      try await expectRuns(store, experiment, "params.lr = '0.1'' OR 1=1 --'", [])
    }
  }

  @Test(arguments: Backend.available)
  func orderByAndPaging(_ backend: Backend) async throws {
    try await withRuns(backend) { store, experiment in
      // Runs without the metric come last; NaN sorts by the back end's rule, so only the top is fixed.
      let byAccuracy = try await names(store, experiment, "", orderBy: ["metrics.acc DESC"])
      #expect(Array(byAccuracy.prefix(3)) == ["Base-2", "wide", "base"])
      #expect(Set(byAccuracy.suffix(2)) == ["deep", "tiny"])
      try await expectRuns(
        store, experiment, "", orderBy: ["params.lr ASC", "attributes.run_name DESC"],
        ["deep", "wide", "Base-2", "tiny", "base"])
      try await expectRuns(store, experiment, "", orderBy: [], ["tiny", "deep", "wide", "Base-2", "base"])

      var request = TrackingV1.SearchRunsRequest()
      request.pageSize = 2
      request.orderBy = ["attributes.start_time"]
      var pages: [[String]] = []
      repeat {
        let page = try await store.searchRuns(request)
        pages.append(page.runs.map(\.name))
        request.pageToken = page.nextPageToken
      } while !request.pageToken.isEmpty
      #expect(pages == [["base", "Base-2"], ["wide", "deep"], ["tiny"]])
      // Logging the same dataset twice records it once.
      request.pageToken = ""
      request.pageSize = 5
      let inputs = try await store.searchRuns(request).runs[1].inputs
      #expect(inputs.map(\.name) == ["holdout", "tiles-2026"] && inputs.map(\.context) == ["evaluation", "training"])
    }
  }

  @Test func impossibleFiltersAreInvalidArguments() async throws {
    try await withRuns(.sqlite) { store, experiment in
      for (filter, fragment) in [
        ("metrics.acc LIKE 'x'", "metrics.acc compares numbers"),
        ("params.lr > 1", "params.lr compares with a 'quoted string'"),
        ("params.lr > '1'", "params.lr is text"),
        ("attributes.status = 'DONE'", "attributes.status is one of"),
        ("metrics.acc > 'high'", "metrics.acc compares with a number"),
        ("metrics.acc >", "filter: at position 14"),
      ] {
        do {
          _ = try await names(store, experiment, filter)
          Issue.record("accepted \(filter)")
        } catch {
          let error = RPCError(from: error)
          #expect(error.code == .invalidArgument && error.message.contains(fragment), "\(error)")
        }
      }
      let error = await #expect(throws: RPCError.self) {
        try await names(store, experiment, "", orderBy: ["metrics.acc SIDEWAYS"])
      }
      #expect(error?.message.contains("order_by") == true)
    }
  }
}
