import ArgumentParser
import Foundation
import ShoalClient
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// `shoal load-labels`: what reviewers do, in closed loops (validity changes in feedback, clip
/// labels in the audio classifier), then a check that every acknowledged change is there; ends
/// with one line of key=value pairs.
struct LabelsLoadCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "load-labels",
    abstract:
      "Mark tiles valid or invalid and label clips in closed loops, then check that nothing acknowledged was lost.",
    discussion: """
      Makes its own prediction set of --tiles tiles in feedback and, unless --no-audio, its own dataset \
      of --clips generated clips in the audio classifier (written to a directory beside the data \
      directory, which the service reads). Then, for --duration seconds, one loop marks tiles in turn \
      (valid, invalid, valid, …) and another labels clips in turn (call, noise, call, …); a change that \
      fails is sent again until it is acknowledged. At the end, each tile's and clip's state is read \
      back and compared with the last acknowledged one. The last line is
      validity_changes=… validity_lost=… labels=… labels_lost=… errors_unavailable=… errors_other=… lost=…
      """
  )

  @OptionGroup var mesh: MeshOptions

  @Option(help: "Seconds to run.") var duration: Double = 10
  @Option(help: "Tiles in the prediction set.") var tiles = 20
  @Option(help: "Clips in the dataset.") var clips = 12
  @Flag(help: "Only feedback: no clips, no audio classifier.") var noAudio = false

  /// What one loop saw.
  struct Tally: Sendable {
    var acknowledged = 0
    var unavailable = 0
    var other: [String] = []
  }

  func run() async throws {
    let shoal = ShoalClient(location: try mesh.location())
    let feedback = FeedbackV1.Feedback.Client(shoal.channel(for: "feedback"))
    let audio = AudioV1.AudioClassifier.Client(shoal.channel(for: "audio-classifier"))
    let setID = try await makeSet(feedback)
    let dataset = noAudio ? nil : try await makeDataset(audio)
    let end = ContinuousClock.now + .milliseconds(Int64(duration * 1000))

    async let marking = markTiles(feedback, set: setID, until: end)
    async let labelling = labelClips(audio, dataset: dataset, until: end)
    let (marked, markTally) = try await marking
    let (labelled, labelTally) = try await labelling

    // What is there now, against the last acknowledged state of each.
    var query = FeedbackV1.QueryTilesRequest()
    query.setId = setID
    let stored = try await whileUnavailable(upTo: .seconds(30)) { try await feedback.queryTiles(query).tiles }
    let validityLost = marked.filter { id, validity in
      stored.first { $0.tileId == id }?.validity.first { $0.className == "road" }?.validity != validity
    }.count
    var labelsLost = 0
    if let dataset {
      var list = AudioV1.ListClipsRequest()
      list.datasetId = dataset.id
      list.pageSize = 10_000
      let clips = try await whileUnavailable(upTo: .seconds(30)) { try await audio.listClips(list).clips }
      labelsLost = labelled.filter { digest, label in clips.first { $0.digest == digest }?.label != label }.count
    }
    await shoal.close()
    for message in (markTally.other + labelTally.other).prefix(5) { logLine("shoal load-labels", message) }
    emit(
      "validity_changes=\(markTally.acknowledged) validity_lost=\(validityLost) labels=\(labelTally.acknowledged) "
        + "labels_lost=\(labelsLost) errors_unavailable=\(markTally.unavailable + labelTally.unavailable) "
        + "errors_other=\(markTally.other.count + labelTally.other.count) lost=\(validityLost + labelsLost)")
    if validityLost + labelsLost > 0 { throw ExitCode(1) }
  }

  /// A classification set of `tiles` tiles with a score for `road`.
  private func makeSet(_ feedback: FeedbackV1.Feedback.Client) async throws -> String {
    var create = FeedbackV1.CreateSetRequest()
    create.model = "local/load-labels"
    create.modelVersion = 1
    create.task = .classification
    var road = RegistryV1.ClassLabel()
    road.name = "road"
    create.classes = [road]
    create.zoom = 16
    let set = try await feedback.createSet(create)
    var request = FeedbackV1.PutPredictionsRequest()
    request.setId = set.setId
    request.tiles = (0..<tiles).map { index in
      var tile = FeedbackV1.PredictedTile()
      (tile.z, tile.x, tile.y) = (16, Int64(35_000 + index), 21_000)
      tile.scores = ["road": 0.5]
      return tile
    }
    let put = request
    _ = try await feedback.putPredictions { try await $0.send(put) }
    return set.setId
  }

  /// A dataset of `clips` short generated WAV clips (a tone for `call`, noise for `noise`).
  private func makeDataset(_ audio: AudioV1.AudioClassifier.Client) async throws -> (id: String, clips: [String]) {
    let directory = URL(fileURLWithPath: try mesh.location().dataDirectory)
      .appendingPathComponent("load-labels-\(UUID().uuidString.prefix(8))")
    for label in ["call", "noise"] {
      let folder = directory.appendingPathComponent(label)
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      for index in 0..<(clips + 1) / 2 {
        try Self.wav(tone: label == "call", seed: index).write(
          to: folder.appendingPathComponent("\(label)-\(index).wav"))
      }
    }
    var request = AudioV1.ImportDatasetRequest()
    request.name = directory.lastPathComponent
    request.source = .directory(directory.path)
    let dataset = try await audio.importDataset(request) { answers -> AudioV1.Dataset? in
      var last: AudioV1.Dataset?
      for try await progress in answers where progress.dataset != nil { last = progress.dataset }
      return last
    }
    guard let dataset else { throw RPCError(.unavailable, "the import ended without the dataset") }
    var list = AudioV1.ListClipsRequest()
    list.datasetId = dataset.datasetId
    list.pageSize = 10_000
    return (dataset.datasetId, try await audio.listClips(list).clips.map(\.digest))
  }

  /// One second of 16 kHz mono PCM as WAV: a 440 Hz tone, or noise from `seed`.
  static func wav(tone: Bool, seed: Int) -> Data {
    let rate = 16_000
    var state = UInt64(seed + 1) &* 0x9E37_79B9_7F4A_7C15
    let samples: [Int16] = (0..<rate).map { index in
      if tone { return Int16(8000 * sin(2 * Double.pi * 440 * Double(index) / Double(rate))) }
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int16(truncatingIfNeeded: Int64(state >> 33) % 8000 - 4000)
    }
    var data = Data()
    func append<T: FixedWidthInteger>(_ value: T) {
      withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
    data.append(contentsOf: Array("RIFF".utf8))
    append(UInt32(36 + samples.count * 2))
    data.append(contentsOf: Array("WAVEfmt ".utf8))
    append(UInt32(16))
    append(UInt16(1))
    append(UInt16(1))
    append(UInt32(rate))
    append(UInt32(rate * 2))
    append(UInt16(2))
    append(UInt16(16))
    data.append(contentsOf: Array("data".utf8))
    append(UInt32(samples.count * 2))
    for sample in samples { append(sample) }
    return data
  }

  /// Marks tile after tile until `end`; returns the last acknowledged validity of each.
  private func markTiles(
    _ feedback: FeedbackV1.Feedback.Client, set: String, until end: ContinuousClock.Instant
  ) async throws -> ([String: FeedbackV1.Validity], Tally) {
    var acknowledged: [String: FeedbackV1.Validity] = [:]
    var tally = Tally()
    var step = 0
    while ContinuousClock.now < end {
      let id = "16/\(35_000 + step % tiles)/21000"
      let validity: FeedbackV1.Validity = (step / tiles) % 2 == 0 ? .valid : .invalid
      var change = FeedbackV1.ValidityChange()
      change.target = .tileId(id)
      change.className = "road"
      change.validity = validity
      var request = FeedbackV1.SetValidityRequest()
      request.setId = set
      request.changes = [change]
      if try await Self.attempt(
        { _ = try await feedback.setValidity(request, options: CallOptions(timeout: .seconds(5))) }, &tally)
      {
        acknowledged[id] = validity
        step += 1
      }
    }
    return (acknowledged, tally)
  }

  /// Labels clip after clip until `end`; returns the last acknowledged label of each.
  private func labelClips(
    _ audio: AudioV1.AudioClassifier.Client, dataset: (id: String, clips: [String])?, until end: ContinuousClock.Instant
  ) async throws -> ([String: String], Tally) {
    var acknowledged: [String: String] = [:]
    var tally = Tally()
    guard let dataset, !dataset.clips.isEmpty else { return (acknowledged, tally) }
    var step = 0
    while ContinuousClock.now < end {
      var label = AudioV1.ClipLabel()
      label.digest = dataset.clips[step % dataset.clips.count]
      label.label = (step / dataset.clips.count) % 2 == 0 ? "call" : "noise"
      var request = AudioV1.SubmitLabelsRequest()
      request.datasetId = dataset.id
      request.labels = [label]
      if try await Self.attempt(
        { _ = try await audio.submitLabels(request, options: CallOptions(timeout: .seconds(5))) }, &tally)
      {
        acknowledged[label.digest] = label.label
        step += 1
      }
    }
    return (acknowledged, tally)
  }

  /// Runs one call; counts how it failed and pauses a little after a failure.
  private static func attempt(_ call: () async throws -> Void, _ tally: inout Tally) async throws -> Bool {
    do {
      try await call()
      tally.acknowledged += 1
      return true
    } catch let error as RPCError where error.code == .unavailable {
      tally.unavailable += 1
    } catch {
      tally.other.append("\(error)")
    }
    try await Task.sleep(for: .milliseconds(20))
    return false
  }
}
