extension MeshFile {
  /// The mesh `shoal up` runs when there is no mesh file: every service on a Unix socket in the
  /// data directory, SQLite stores. Kept equal to the repository's mesh/local.json by a test.
  public static let builtIn = """
    {
      "store": "sqlite",
      "lease_ttl_seconds": 10,
      "services": [
        { "name": "registry", "listen": ["unix:registry.sock"] },
        { "name": "tracking", "listen": ["unix:tracking.sock"] },
        { "name": "inference", "listen": ["unix:inference.sock"] },
        { "name": "feedback", "listen": ["unix:feedback.sock"] },
        { "name": "audio-classifier", "listen": ["unix:audio-classifier.sock"] },
        { "name": "pipeline", "listen": ["unix:pipeline.sock"] },
        { "name": "gateway", "listen": ["unix:gateway.sock"], "http": "127.0.0.1:5080" },
        { "name": "bench", "listen": ["unix:bench.sock"] }
      ]
    }

    """
}
