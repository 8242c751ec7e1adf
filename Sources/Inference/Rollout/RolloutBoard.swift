import Foundation
public import ShoalImagery
public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs
import Synchronization

/// Rollouts on aliases: which requests of `name@production` the candidate answers (canary, by
/// request id when given) or shadows, each side's errors and latency over a window, the
/// candidate's agreement with production, and the automatic rollback when a threshold is passed.
/// Promotion moves the alias in the registry; the host, which follows the alias, swaps to it.
/// Rollouts are kept in memory: a restart ends them, and requests go to production.
public final class RolloutBoard: Sendable {
  enum Arm { case production, candidate }

  struct Sample {
    var at: ContinuousClock.Instant
    var ok: Bool
    var seconds: Double
  }

  struct Entry {
    var rollout: InferenceV1.Rollout
    var candidateKey: String
    var samples: [Arm: [Sample]] = [:]
    var totals: [Arm: Int64] = [:]
    var started: ContinuousClock.Instant
  }

  private let entries = Mutex<[String: Entry]>([:])
  private let registry: RegistryV1.ModelRegistry.Client
  private let webhooks: FileDownloader
  private let log: @Sendable (String) -> Void

  public init(
    registry: any RPCChannel, webhooks: FileDownloader = FileDownloader(), log: @escaping @Sendable (String) -> Void
  ) {
    self.registry = RegistryV1.ModelRegistry.Client(registry)
    self.webhooks = webhooks
    self.log = log
  }

  // MARK: Predict's path

  /// The candidate's key when this request of `key` goes to it (an active canary).
  func route(_ key: String, requestID: String) -> String? {
    entries.withLock { entries in
      guard let entry = entries[key], entry.rollout.state == .active, entry.rollout.mode == .canary else { return nil }
      let draw = requestID.isEmpty ? Int.random(in: 0..<10_000) : Int(Self.fnv1a(requestID) % 10_000)
      return Double(draw) < entry.rollout.canaryPercent * 100 ? entry.candidateKey : nil
    }
  }

  /// The candidate's key when requests of `key` are shadowed.
  func shadow(_ key: String) -> String? {
    entries.withLock { entries in
      guard let entry = entries[key], entry.rollout.state == .active, entry.rollout.mode == .shadow else { return nil }
      return entry.candidateKey
    }
  }

  /// Records one answer of `arm` (and, for shadow copies, whether it agreed), then rolls back if
  /// the candidate passed a threshold.
  func record(_ key: String, _ arm: Arm, ok: Bool, seconds: Double, agreed: Bool? = nil) {
    let breach = entries.withLock { entries -> InferenceV1.Rollout? in
      guard var entry = entries[key], entry.rollout.state == .active else { return nil }
      let now = ContinuousClock.now
      let window = Duration.seconds(Int(entry.rollout.windowSeconds))
      entry.samples[arm, default: []].append(Sample(at: now, ok: ok, seconds: seconds))
      entry.samples[arm]!.removeAll { now - $0.at > window }
      entry.totals[arm, default: 0] += 1
      if let agreed {
        entry.rollout.compared += 1
        if agreed { entry.rollout.agreed += 1 }
      }
      var reason: String?
      if arm == .candidate { reason = Self.breach(entry) }
      if let reason {
        entry.rollout.state = .rolledBack
        Self.event(&entry.rollout, "rolled back: \(reason)")
      }
      entries[key] = entry
      return reason == nil ? nil : Self.snapshot(entry)
    }
    if let breach {
      log("rollout of \(breach.candidate) on \(breach.model): \(breach.events.last?.what ?? "rolled back")")
      notify(breach)
    }
  }

  /// Why the candidate must go back, if it must: over the window, with enough requests.
  private static func breach(_ entry: Entry) -> String? {
    let rollout = entry.rollout
    let samples = entry.samples[.candidate] ?? []
    guard samples.count >= Int(rollout.minRequests) else { return nil }
    let errors = samples.filter { !$0.ok }.count
    let rate = Double(errors) / Double(samples.count)
    if rate > rollout.maxErrorRate {
      return String(
        format: "the candidate's error rate %.2f over %d s passes %.2f (%d of %d requests)", rate,
        rollout.windowSeconds, rollout.maxErrorRate, errors, samples.count)
    }
    let p99 = percentile99(samples.map(\.seconds)) * 1000
    if rollout.maxP99Ms > 0, p99 > rollout.maxP99Ms {
      return String(
        format: "the candidate's p99 %.1f ms over %d s passes %.1f ms", p99, rollout.windowSeconds, rollout.maxP99Ms)
    }
    if rollout.minAgreement > 0, rollout.compared >= Int64(rollout.minRequests) {
      let agreement = Double(rollout.agreed) / Double(rollout.compared)
      if agreement < rollout.minAgreement {
        return String(
          format: "the candidate agrees with production on %.3f of %lld requests, below %.3f", agreement,
          rollout.compared,
          rollout.minAgreement)
      }
    }
    return nil
  }

  // MARK: Calls

  /// Starts a rollout of `candidateKey` on `key` (both loaded by the caller).
  func start(
    _ request: InferenceV1.StartRolloutRequest, key: String, candidateKey: String, productionVersion: Int64,
    candidateVersion: Int64, by principal: String
  ) throws(RPCError) -> InferenceV1.Rollout {
    var rollout = InferenceV1.Rollout()
    rollout.model = key
    rollout.candidate = candidateKey
    rollout.mode = request.mode
    rollout.canaryPercent = request.mode == .canary ? (request.canaryPercent == 0 ? 10 : request.canaryPercent) : 0
    guard request.mode == .shadow || (0.01...100).contains(rollout.canaryPercent) else {
      throw RPCError(.invalidArgument, "canary_percent: give 0.01 to 100")
    }
    rollout.maxErrorRate = request.maxErrorRate == 0 ? 0.05 : request.maxErrorRate
    rollout.maxP99Ms = request.maxP99Ms
    rollout.minAgreement = request.minAgreement
    rollout.windowSeconds = request.windowSeconds == 0 ? 60 : request.windowSeconds
    rollout.minRequests = request.minRequests == 0 ? 20 : request.minRequests
    rollout.promoteAfterSeconds = request.promoteAfterSeconds
    guard (0...1).contains(rollout.maxErrorRate), rollout.maxP99Ms >= 0, (0...1).contains(rollout.minAgreement),
      (1...86_400).contains(rollout.windowSeconds), (1...1_000_000).contains(rollout.minRequests),
      (0...2_592_000).contains(rollout.promoteAfterSeconds)
    else {
      throw RPCError(
        .invalidArgument,
        "thresholds: max_error_rate and min_agreement 0–1, max_p99_ms ≥ 0, window 1–86400 s, min_requests ≥ 1")
    }
    if !request.webhook.isEmpty, !(request.webhook.hasPrefix("http://") || request.webhook.hasPrefix("https://")) {
      throw RPCError(.invalidArgument, "webhook: give an http(s) URL")
    }
    rollout.webhook = request.webhook
    rollout.state = .active
    rollout.startedAtMs = Self.now()
    rollout.startedBy = principal
    rollout.productionArm = Self.arm(key, productionVersion)
    rollout.candidateArm = Self.arm(candidateKey, candidateVersion)
    Self.event(
      &rollout,
      request.mode == .canary
        ? String(format: "canary started: %.2f%% of requests to v%lld", rollout.canaryPercent, candidateVersion)
        : "shadow started: v\(candidateVersion) runs a copy of every request")
    let started = rollout
    return try entries.withLock { entries throws(RPCError) in
      if let current = entries[key], current.rollout.state == .active {
        throw RPCError(
          .failedPrecondition, "\(key) has a rollout of \(current.candidateKey) already; promote or roll it back first")
      }
      entries[key] = Entry(rollout: started, candidateKey: candidateKey, started: .now)
      return started
    }
  }

  func status(_ key: String) throws(RPCError) -> InferenceV1.Rollout {
    guard let entry = entries.withLock({ $0[key] }) else { throw RPCError(.notFound, "\(key) has no rollout") }
    return Self.snapshot(entry)
  }

  func list(organization: String?) -> [InferenceV1.Rollout] {
    entries.withLock { Array($0.values) }.map(Self.snapshot)
      .filter { organization == nil || $0.model.hasPrefix("\(organization!)/") }.sorted { $0.model < $1.model }
  }

  /// Sends every request back to production.
  func rollback(_ key: String, reason: String) throws(RPCError) -> InferenceV1.Rollout {
    let rollout = try entries.withLock { entries throws(RPCError) -> InferenceV1.Rollout in
      guard var entry = entries[key] else { throw RPCError(.notFound, "\(key) has no rollout") }
      guard entry.rollout.state == .active else {
        throw RPCError(.failedPrecondition, "the rollout on \(key) is over (\(entry.rollout.state.protoName ?? ""))")
      }
      entry.rollout.state = .rolledBack
      Self.event(&entry.rollout, "rolled back: \(reason)")
      entries[key] = entry
      return Self.snapshot(entry)
    }
    notify(rollout)
    return rollout
  }

  /// Moves the alias to the candidate's version in the registry and ends the rollout.
  func promote(_ key: String, version: Int64, reason: String) async throws -> InferenceV1.Rollout {
    let rollout = try status(key)
    guard rollout.state == .active else {
      throw RPCError(.failedPrecondition, "the rollout on \(key) is over (\(rollout.state.protoName ?? ""))")
    }
    let reference = try ModelReference(parsing: key)
    guard case .alias(let alias) = reference.selector else { throw RPCError(.internal, "\(key) is not an alias") }
    var move = RegistryV1.SetAliasRequest()
    move.organization = reference.organization ?? "local"
    move.model = reference.model
    // The version it replaces keeps an alias of its own (first, so that a failure leaves the
    // alias where it was).
    if let previous = rollout.productionArm?.version, previous != 0, previous != version {
      move.alias = "previous-\(alias)"
      move.version = previous
      _ = try await registry.setAlias(move, options: CallOptions(timeout: .seconds(30)))
    }
    move.alias = alias
    move.version = version
    _ = try await registry.setAlias(move, options: CallOptions(timeout: .seconds(30)))
    let promoted = entries.withLock { entries -> InferenceV1.Rollout? in
      guard var entry = entries[key], entry.rollout.state == .active else { return nil }
      entry.rollout.state = .promoted
      Self.event(&entry.rollout, "promoted: \(alias) → v\(version) (\(reason))")
      entries[key] = entry
      return Self.snapshot(entry)
    }
    guard let promoted else { return try status(key) }
    log("rollout on \(key): \(promoted.events.last?.what ?? "promoted")")
    notify(promoted)
    return promoted
  }

  /// Promotes, every second, the rollouts whose canary period passed without a rollback, once
  /// the candidate has had its least requests. `version` gives a candidate's served version.
  public func run(version: @Sendable @escaping (String) -> Int64?) async {
    while !Task.isCancelled {
      let due = entries.withLock { entries in
        entries.filter { _, entry in
          entry.rollout.state == .active && entry.rollout.promoteAfterSeconds > 0
            && ContinuousClock.now - entry.started >= .seconds(Int(entry.rollout.promoteAfterSeconds))
            && (entry.totals[.candidate] ?? 0) >= Int64(entry.rollout.minRequests)
        }.map { ($0.key, $0.value.candidateKey) }
      }
      for (key, candidate) in due {
        guard let number = version(candidate) else { continue }
        do {
          _ = try await promote(key, version: number, reason: "the canary period passed without a rollback")
        } catch {
          log("rollout on \(key): promotion failed: \(error)")
        }
      }
      try? await Task.sleep(for: .seconds(1))
    }
  }

  // MARK: Helpers

  private func notify(_ rollout: InferenceV1.Rollout) {
    guard !rollout.webhook.isEmpty else { return }
    let webhooks = webhooks
    let log = log
    let body: [String: Any] = [
      "model": rollout.model, "candidate": rollout.candidate, "state": rollout.state.protoName ?? "",
      "event": rollout.events.last?.what ?? "",
      "text": "Shoal rollout on \(rollout.model): \(rollout.events.last?.what ?? "")",
    ]
    let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
    Task {
      let (result, attempts) = await webhooks.post(
        rollout.webhook, body: data, headers: ["Content-Type: application/json"])
      if case .failure(let failure) = result {
        log("rollout on \(rollout.model): the webhook failed after \(attempts) attempts: \(failure.message)")
      }
    }
  }

  private static func snapshot(_ entry: Entry) -> InferenceV1.Rollout {
    var rollout = entry.rollout
    let now = ContinuousClock.now
    let window = Duration.seconds(Int(rollout.windowSeconds))
    for arm in [Arm.production, .candidate] {
      let samples = (entry.samples[arm] ?? []).filter { now - $0.at <= window }
      var side = (arm == .production ? rollout.productionArm : rollout.candidateArm) ?? InferenceV1.RolloutArm()
      side.requests = Int64(samples.count)
      side.errors = Int64(samples.filter { !$0.ok }.count)
      side.errorRate = samples.isEmpty ? 0 : Double(side.errors) / Double(samples.count)
      side.p99Ms = percentile99(samples.map(\.seconds)) * 1000
      side.totalRequests = entry.totals[arm] ?? 0
      if arm == .production { rollout.productionArm = side } else { rollout.candidateArm = side }
    }
    rollout.agreement = rollout.compared == 0 ? 0 : Double(rollout.agreed) / Double(rollout.compared)
    return rollout
  }

  private static func arm(_ reference: String, _ version: Int64) -> InferenceV1.RolloutArm {
    var arm = InferenceV1.RolloutArm()
    arm.reference = reference
    arm.version = version
    return arm
  }

  private static func event(_ rollout: inout InferenceV1.Rollout, _ what: String) {
    var event = InferenceV1.RolloutEvent()
    event.atMs = now()
    event.what = what
    rollout.events.append(event)
  }

  static func percentile99(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[max(0, Int((0.99 * Double(sorted.count)).rounded(.up)) - 1)]
  }

  static func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return hash
  }

  static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
