import Foundation
import ShoalProto
import ShoalRPC
public import ShoalStore

/// The inference service's table of AOI jobs: each job's request and its record (state,
/// progress, the set it writes to), as protobuf bytes, so that a restart finds the jobs it was
/// running and resumes them.
public struct JobStore: Sendable {
  /// The inference service's migrations.
  public static let migrations = [
    Migration(
      1, "AOI jobs",
      """
      CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, organization TEXT NOT NULL, state BIGINT NOT NULL, created_at_ms BIGINT NOT NULL,
        request {blob} NOT NULL, record {blob} NOT NULL);
      CREATE INDEX jobs_organization ON jobs (organization, created_at_ms);
      """)
  ]

  let database: Database

  public init(database: Database) {
    self.database = database
  }

  /// Writes `job` (new or changed) with the request that started it.
  func put(_ job: InferenceV1.Job, request: InferenceV1.StartJobRequest) async throws {
    let record = try job.serializedBytes()
    let requestBytes = try request.serializedBytes()
    try await database.transaction { connection in
      _ = try connection.execute(
        """
        INSERT INTO jobs (job_id, organization, state, created_at_ms, request, record)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, record = excluded.record
        """, .text(job.jobId), .text(job.organization), .integer(Int64(job.state.rawValue)),
        .integer(job.createdAtMs), .blob(requestBytes), .blob(record))
    }
  }

  /// Every job's record and request, newest first: of `organization` (nil: all) and in `states`
  /// (empty: any), at most `limit`.
  func jobs(
    organization: String?, states: [InferenceV1.JobState] = [], limit: Int = 100_000
  ) async throws -> [(job: InferenceV1.Job, request: InferenceV1.StartJobRequest)] {
    var conditions: [String] = []
    var parameters: [SQLValue] = []
    if let organization {
      parameters.append(.text(organization))
      conditions.append("organization = $\(parameters.count)")
    }
    if !states.isEmpty {
      let list = states.map { state -> String in
        parameters.append(.integer(Int64(state.rawValue)))
        return "$\(parameters.count)"
      }
      conditions.append("state IN (\(list.joined(separator: ", ")))")
    }
    parameters.append(.integer(Int64(limit)))
    let sql = """
      SELECT request, record FROM jobs \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))
      ORDER BY created_at_ms DESC, job_id DESC LIMIT $\(parameters.count)
      """
    let values = parameters
    let rows = try await database.read { connection in
      try connection.query(sql, values).map { row in (try row.bytes("request"), try row.bytes("record")) }
    }
    return try rows.map { request, record in
      (try InferenceV1.Job(serializedBytes: record), try InferenceV1.StartJobRequest(serializedBytes: request))
    }
  }

  /// One job, or nil.
  func job(_ id: String) async throws -> (job: InferenceV1.Job, request: InferenceV1.StartJobRequest)? {
    let row = try await database.read { connection in
      try connection.queryFirst("SELECT request, record FROM jobs WHERE job_id = $1", .text(id)).map { row in
        (try row.bytes("request"), try row.bytes("record"))
      }
    }
    guard let (request, record) = row else { return nil }
    return (try InferenceV1.Job(serializedBytes: record), try InferenceV1.StartJobRequest(serializedBytes: request))
  }
}
