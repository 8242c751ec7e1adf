import Feedback
import ShoalImagery
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalStore
import ShoalTestSupport
import Testing

typealias FeedbackClient = FeedbackV1.Feedback.Client

/// Runs `body` with a client of a feedback service on a real Unix socket, over a fresh database of
/// `backend`, fetching imagery with `fetcher`, keeping blobs in the test's directory and recording
/// training sets in `tracking`.
func withFeedback(
  _ backend: Backend, fetcher: TileFetcher = TileFetcher(), tracking: TrackingV1.Tracking.Client? = nil,
  _ body: (FeedbackClient, FeedbackStore) async throws -> Void
) async throws {
  try await backend.withDatabase { database, directory in
    try await database.migrate(FeedbackStore.migrations)
    let store = FeedbackStore(database: database)
    var router = ServiceRouter()
    FeedbackService(
      store: store, fetcher: fetcher, blobs: try BlobStore(root: directory.path("blobs")), tracking: tracking
    ).register(in: &router)
    let server = RPCServer(router: router)
    let address = try await server.bind(to: .unix(path: directory.path("feedback.sock")))
    let rpc = RPCClient(address: address)
    do {
      try await body(FeedbackClient(rpc), store)
    } catch {
      await rpc.close()
      await server.shutdown()
      throw error
    }
    await rpc.close()
    await server.shutdown()
  }
}

/// Expects `call` to fail with `code` and a message holding `fragment`.
func expectCode(_ code: RpcV1.StatusCode, _ fragment: String, _ call: () async throws -> Void) async {
  do {
    try await call()
    Issue.record("expected \(code) (\(fragment))")
  } catch let error as RPCError {
    #expect(error.code == code && error.message.contains(fragment), "\(error) (expected \(fragment))")
  } catch {
    Issue.record("\(error)")
  }
}

/// Classes of a prediction set, by name.
func classLabels(_ names: String...) -> [RegistryV1.ClassLabel] {
  names.map { name in
    var label = RegistryV1.ClassLabel()
    label.name = name
    return label
  }
}
