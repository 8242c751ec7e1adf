import ShoalProto
import ShoalStore

extension TrackingStore {
  /// Removes runs deleted at or before `cutoff` (and their rows everywhere), then experiments
  /// deleted at or before it that have no runs left; returns how many of each. Only those of
  /// `organization` when it is given.
  func collectDeleted(
    deletedBefore cutoff: Int64, organization: String? = nil
  ) async throws -> (runs: Int64, experiments: Int64) {
    var parameters: [SQLValue] = [.integer(cutoff)]
    var owned = ""
    if let organization {
      parameters.append(.text(organization))
      owned = " AND experiment_id IN (SELECT id FROM experiments WHERE organization = $2)"
    }
    let doomedRuns = "runs WHERE deleted = 1 AND deleted_at_ms <= $1\(owned)"
    let doomedExperiments = """
      experiments e WHERE e.deleted = 1 AND e.updated_at_ms <= $1\(organization == nil ? "" : " AND e.organization = $2")
        AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id)
      """
    return try await database.transaction { [parameters] connection in
      for table in [
        "params", "run_tags", "metrics", "metric_chunks", "latest_metrics", "batch_requests", "run_inputs", "artifacts",
      ] {
        try connection.execute("DELETE FROM \(table) WHERE run_id IN (SELECT run_id FROM \(doomedRuns))", parameters)
      }
      let runs = try connection.execute("DELETE FROM \(doomedRuns)", parameters)
      try connection.execute(
        "DELETE FROM experiment_tags WHERE experiment_id IN (SELECT e.id FROM \(doomedExperiments))", parameters)
      let experiments = try connection.execute(
        "DELETE FROM experiments WHERE id IN (SELECT e.id FROM \(doomedExperiments))", parameters)
      return (Int64(runs), Int64(experiments))
    }
  }

  /// Every blob some artifact refers to.
  func referencedBlobs() async throws -> Set<String> {
    try await database.read { connection in
      Set(try connection.query("SELECT DISTINCT digest FROM artifacts").map { try $0.string("digest") })
    }
  }
}
