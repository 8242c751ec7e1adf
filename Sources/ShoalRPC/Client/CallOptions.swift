/// Per-call settings.
public struct CallOptions: Sendable {
  /// How long the caller waits; the server is told and enforces it too. Inside a handler, the
  /// served call's deadline also applies, whichever is sooner.
  public var timeout: Duration?
  /// Metadata sent with CALL.
  public var metadata: Metadata
  /// Retry an idempotent method on UNAVAILABLE (non-idempotent calls are retried only when
  /// the request never left this process).
  public var retries: RetryPolicy
  /// The largest response this call accepts, below the connection's limit; larger ones fail the
  /// call with RESOURCE_EXHAUSTED. Nil: the connection's limit (4 MiB by default).
  public var maxResponseSize: Int?

  /// Options for one call.
  public init(
    timeout: Duration? = nil, metadata: Metadata = [], retries: RetryPolicy = .defaults, maxResponseSize: Int? = nil
  ) {
    self.timeout = timeout
    self.metadata = metadata
    self.retries = retries
    self.maxResponseSize = maxResponseSize
  }
}

/// Jittered exponential backoff between attempts, within the call's deadline.
public struct RetryPolicy: Sendable {
  /// Attempts in all, the first included.
  public var maxAttempts: Int
  /// The wait before the second attempt.
  public var initialBackoff: Duration
  /// The longest wait between attempts.
  public var maxBackoff: Duration
  /// Each wait is the previous one times this.
  public var multiplier: Double

  /// 5 attempts (gRPC's limit), 50 ms doubling to at most 2 s, ±20 % jitter.
  public static var defaults: RetryPolicy {
    RetryPolicy(maxAttempts: 5, initialBackoff: .milliseconds(50), maxBackoff: .seconds(2), multiplier: 2)
  }

  /// No retries.
  public static var none: RetryPolicy {
    RetryPolicy(maxAttempts: 1, initialBackoff: .zero, maxBackoff: .zero, multiplier: 1)
  }

  /// The wait before attempt `attempt` (2, 3, …), with ±20 % jitter.
  func backoff(beforeAttempt attempt: Int) -> Duration {
    var wait = initialBackoff
    for _ in 2..<max(attempt, 2) { wait = min(wait * multiplier, maxBackoff) }
    return wait * Double.random(in: 0.8...1.2)
  }
}
