import ShoalProto
import ShoalStore
import ShoalTestSupport
import Tracking

/// A metric point as the tests log it.
func metric(_ key: String, _ value: Double, step: Int64, at time: Int64 = 1000) -> TrackingV1.Metric {
  var metric = TrackingV1.Metric()
  metric.key = key
  metric.value = value
  metric.step = step
  metric.timestampMs = time
  return metric
}

/// A param as the tests log it.
func param(_ key: String, _ value: String) -> TrackingV1.Param {
  var param = TrackingV1.Param()
  param.key = key
  param.value = value
  return param
}

/// A migrated tracking store on `backend` with one experiment named `name`, whose id `body` gets.
func withExperiment(
  _ backend: Backend, named name: String, _ body: (Database, TrackingStore, String) async throws -> Void
) async throws {
  try await backend.withDatabase { database, _ in
    try await database.migrate(TrackingStore.migrations)
    let store = TrackingStore(database: database)
    var create = TrackingV1.CreateExperimentRequest()
    create.name = name
    try await body(database, store, try await store.createExperiment(create).experimentId)
  }
}
