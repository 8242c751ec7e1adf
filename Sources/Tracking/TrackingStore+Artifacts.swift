import ShoalProto
import ShoalRPC
import ShoalStore

extension TrackingStore {
  /// Checks an artifact path: relative, '/'-separated, no '..', '.', empty parts or NUL.
  ///
  /// - Throws: INVALID_ARGUMENT naming what is wrong.
  static func checkArtifactPath(_ path: String, field: String = "path") throws(RPCError) {
    guard !path.isEmpty, path.utf8.count <= 1024 else {
      throw RPCError(.invalidArgument, "\(field): give a relative path of 1–1024 bytes")
    }
    guard !path.hasPrefix("/") else { throw RPCError(.invalidArgument, "\(field) '\(path)' must be relative") }
    guard !path.utf8.contains(0) else { throw RPCError(.invalidArgument, "\(field) must not contain NUL") }
    for part in path.split(separator: "/", omittingEmptySubsequences: false) {
      guard !part.isEmpty, part != "..", part != "." else {
        throw RPCError(.invalidArgument, "\(field) '\(path)' must not contain '..', '.' or empty parts")
      }
    }
  }

  /// Records (or replaces) the artifact at `path`.
  func putArtifact(
    runID: String, path: String, digest: BlobDigest, size: Int64
  ) async throws -> TrackingV1.Artifact {
    var artifact = TrackingV1.Artifact()
    artifact.runId = runID
    artifact.path = path
    artifact.size = size
    artifact.digest = digest.reference
    artifact.createdAtMs = Self.now()
    let row = artifact
    try await database.transaction { connection in
      try connection.execute(
        """
        INSERT INTO artifacts (run_id, path, size, digest, created_at_ms) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (run_id, path) DO UPDATE SET size = excluded.size, digest = excluded.digest,
          created_at_ms = excluded.created_at_ms
        """, .text(row.runId), .text(row.path), .integer(row.size), .text(row.digest), .integer(row.createdAtMs))
    }
    return artifact
  }

  /// The artifacts of a run under `prefix` (a directory), by path.
  func artifacts(runID: String, prefix: String) async throws -> [TrackingV1.Artifact] {
    _ = try await run(runID)
    let pattern = prefix.isEmpty ? "%" : LikePattern.escaped(prefix.hasSuffix("/") ? prefix : prefix + "/") + "%"
    return try await database.read { connection in
      try connection.query(
        "SELECT * FROM artifacts WHERE run_id = $1 AND path LIKE $2 ESCAPE '\\' ORDER BY path", .text(runID),
        .text(pattern)
      ).map { row in
        var artifact = TrackingV1.Artifact()
        artifact.runId = try row.string("run_id")
        artifact.path = try row.string("path")
        artifact.size = try row.int("size")
        artifact.digest = try row.string("digest")
        artifact.createdAtMs = try row.int("created_at_ms")
        return artifact
      }
    }
  }

  /// The artifact at `path`.
  ///
  /// - Throws: NOT_FOUND naming the run and the path.
  func artifact(runID: String, path: String) async throws -> TrackingV1.Artifact {
    _ = try await run(runID)
    let found = try await database.read { connection in
      try connection.queryFirst(
        "SELECT size, digest, created_at_ms FROM artifacts WHERE run_id = $1 AND path = $2", .text(runID), .text(path))
    }
    guard let found else { throw RPCError(.notFound, "run '\(runID)' has no artifact '\(path)'") }
    var artifact = TrackingV1.Artifact()
    artifact.runId = runID
    artifact.path = path
    artifact.size = try found.int("size")
    artifact.digest = try found.string("digest")
    artifact.createdAtMs = try found.int("created_at_ms")
    return artifact
  }
}
