import CHTTPGet
public import Foundation

/// Whole files over HTTP(S) with the imagery fetcher's libcurl threads and its policy: timeouts,
/// a size limit, and tries again with backoff on 429, 5xx and failed connections.
public final class FileDownloader: Sendable {
  public let policy: FetchPolicy
  private let workers: WorkerThreads<OpaquePointer>

  public init(policy: FetchPolicy = FetchPolicy()) {
    self.policy = policy
    workers = WorkerThreads(
      count: max(1, policy.concurrency), name: "shoal-download", setUp: { shoal_http_handle_new()! },
      tearDown: { shoal_http_handle_free($0) })
  }

  /// The body of a 200 answer to a GET of `url` with `headers` ("Name: value", never shown), or
  /// why there is none (the last HTTP status, or the transport's reason), with the URL's
  /// key-like query values hidden.
  public func download(_ url: String, headers: [String] = []) async -> Result<Data, DownloadFailure> {
    let policy = policy
    var attempt = 0
    var wait = policy.backoff
    while true {
      attempt += 1
      let response = await workers.run { handle in TileFetcher.get(handle, url: url, headers: headers, policy: policy) }
      let failure: (status: Int, message: String, retry: Bool, after: Int)
      switch response {
      case .transport(let message):
        failure = (0, message, true, -1)
      case .response(let status, let body, _, let retryAfter):
        if status == 200 { return .success(body) }
        failure = (status, "HTTP \(status)", status == 429 || (500...599).contains(status), retryAfter)
      }
      guard failure.retry, attempt < policy.attempts, !Task.isCancelled else {
        return .failure(
          DownloadFailure(status: failure.status, url: TileFetcher.redacted(url), message: failure.message))
      }
      try? await Task.sleep(for: failure.after >= 0 ? min(.seconds(failure.after), policy.maxBackoff) : wait)
      wait = min(wait * 2, policy.maxBackoff)
    }
  }
}

extension FileDownloader {
  /// POSTs `body` to `url` with `headers` ("Name: value"), trying again with the policy's
  /// backoff on 429, 5xx and failed connections; the status of a 2xx answer, or why there was
  /// none. Returns the attempts made too.
  public func post(_ url: String, body: Data, headers: [String]) async -> (Result<Int, DownloadFailure>, attempts: Int)
  {
    let policy = policy
    var attempt = 0
    var wait = policy.backoff
    while true {
      attempt += 1
      let response = await workers.run { handle in
        TileFetcher.post(handle, url: url, headers: headers, body: [UInt8](body), policy: policy)
      }
      let failure: (status: Int, message: String, retry: Bool, after: Int)
      switch response {
      case .transport(let message):
        failure = (0, message, true, -1)
      case .response(let status, _, _, let retryAfter):
        if (200...299).contains(status) { return (.success(status), attempt) }
        failure = (status, "HTTP \(status)", status == 429 || (500...599).contains(status), retryAfter)
      }
      guard failure.retry, attempt < policy.attempts, !Task.isCancelled else {
        return (
          .failure(DownloadFailure(status: failure.status, url: TileFetcher.redacted(url), message: failure.message)),
          attempt
        )
      }
      try? await Task.sleep(for: failure.after >= 0 ? min(.seconds(failure.after), policy.maxBackoff) : wait)
      wait = min(wait * 2, policy.maxBackoff)
    }
  }
}

/// Why a download failed.
public struct DownloadFailure: Error, Sendable, CustomStringConvertible {
  public var status: Int
  public var url: String
  public var message: String
  public var description: String { "\(url): \(message)" }
}
