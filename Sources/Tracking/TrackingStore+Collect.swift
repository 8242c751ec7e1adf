import ShoalProto
import ShoalStore

extension TrackingStore {
  /// Removes runs deleted at or before `cutoff` (and their rows everywhere), then experiments
  /// deleted at or before it that have no runs left; returns how many of each.
  func collectDeleted(deletedBefore cutoff: Int64) async throws -> (runs: Int64, experiments: Int64) {
    try await database.transaction { connection in
      let doomed = "SELECT run_id FROM runs WHERE deleted = 1 AND deleted_at_ms <= $1"
      for table in [
        "params", "run_tags", "metrics", "metric_chunks", "latest_metrics", "batch_requests", "run_inputs", "artifacts",
      ] {
        try connection.execute("DELETE FROM \(table) WHERE run_id IN (\(doomed))", .integer(cutoff))
      }
      let runs = try connection.execute("DELETE FROM runs WHERE deleted = 1 AND deleted_at_ms <= $1", .integer(cutoff))
      try connection.execute(
        """
        DELETE FROM experiment_tags WHERE experiment_id IN (
          SELECT e.id FROM experiments e WHERE e.deleted = 1 AND e.updated_at_ms <= $1
            AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = e.id))
        """, .integer(cutoff))
      let experiments = try connection.execute(
        """
        DELETE FROM experiments WHERE deleted = 1 AND updated_at_ms <= $1
          AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = experiments.id)
        """, .integer(cutoff))
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
