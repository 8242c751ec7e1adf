import Foundation
import ShoalAudio
import ShoalImage
public import ShoalImagery
public import ShoalProto
public import ShoalRPC
import ShoalService
public import ShoalServiceStubs
public import ShoalStore
import Synchronization

/// `shoal.audio.v1.AudioClassifier`: datasets of labelled and unlabelled clips, stored by digest,
/// their spectrograms, training into the registry, prediction, and active learning through
/// feedback's review queues.
///
/// Over TCP a caller with a token of one organisation sees and imports into that organisation's
/// datasets only; peers on the Unix socket see every organisation's.
public struct AudioClassifierService: AudioV1.AudioClassifier.ServiceProtocol {
  /// The role each method needs from a caller over TCP.
  public static let requirements: [String: RegistryV1.Role] = [
    "ImportDataset": .writer, "GetDataset": .reader, "ListDatasets": .reader, "ListClips": .reader,
    "Spectrogram": .reader, "Train": .writer, "Predict": .writer, "NextToLabel": .writer, "SubmitLabels": .writer,
    "Stats": .reader, "CheckDataset": .reader, "ClipAudio": .reader,
  ]

  /// Clips imported at once.
  static let concurrency = 4
  /// The largest clip taken, in bytes.
  static let maxClipBytes = 256 << 20

  let store: AudioStore
  let blobs: BlobStore
  private let downloader: FileDownloader
  /// Where trained versions go, and where their runs are recorded (nil: training is refused).
  let registry: RegistryV1.ModelRegistry.Client?
  let tracking: TrackingV1.Tracking.Client?
  /// Where predictions go for review, and where review locks and validity are kept (nil: no
  /// active learning).
  let feedback: FeedbackV1.Feedback.Client?

  public init(
    store: AudioStore, blobs: BlobStore, downloader: FileDownloader = FileDownloader(),
    registry: (any RPCChannel)? = nil,
    tracking: (any RPCChannel)? = nil,
    feedback: (any RPCChannel)? = nil
  ) {
    self.store = store
    self.blobs = blobs
    self.downloader = downloader
    self.registry = registry.map { RegistryV1.ModelRegistry.Client($0) }
    self.tracking = tracking.map { TrackingV1.Tracking.Client($0) }
    self.feedback = feedback.map { FeedbackV1.Feedback.Client($0) }
  }

  // MARK: Datasets

  public func importDataset(
    _ request: AudioV1.ImportDatasetRequest, responses: RPCResponseWriter<AudioV1.ImportProgress>,
    context: ServerContext
  ) async throws {
    guard request.name.range(of: #"^[A-Za-z0-9_.-]{1,100}$"#, options: .regularExpression) != nil else {
      throw RPCError(
        .invalidArgument,
        request.name.isEmpty
          ? "name: give the dataset a name" : "name '\(request.name)': give 1 to 100 of A–Z, a–z, 0–9, '_', '.' and '-'"
      )
    }
    let organization = try CallerOrganization.owner(named: request.organization, of: "datasets")
    let entries: [ManifestEntry]
    switch request.source {
    case .directory(let directory)?:
      entries = try Self.directoryEntries(directory)
    case .manifest(let text)?:
      do {
        entries = try Manifest.entries(text, base: request.baseDirectory)
      } catch {
        throw RPCError(.invalidArgument, error.message)
      }
    case nil:
      throw RPCError(.invalidArgument, "source: give a directory or a manifest")
    }
    guard !entries.isEmpty else { throw RPCError(.invalidArgument, "the source names no clip") }
    let dataset = try await store.dataset(
      named: request.name, organization: organization, createdBy: CallerPrincipal.name)

    let total = Int64(entries.count)
    let counts = Mutex((done: Int64(0), failed: Int64(0)))
    try await withThrowingTaskGroup(of: (ManifestEntry, String?).self) { group in
      var next = entries.makeIterator()
      var running = 0
      while running < Self.concurrency, let entry = next.next() {
        group.addTask { (entry, await self.importClip(entry, into: dataset)) }
        running += 1
      }
      while let (entry, failure) = try await group.next() {
        var progress = AudioV1.ImportProgress()
        progress.total = total
        (progress.done, progress.failed) = counts.withLock { counts in
          counts.done += 1
          if failure != nil { counts.failed += 1 }
          return (counts.done, counts.failed)
        }
        if let failure {
          var reason = AudioV1.ClipFailure()
          reason.source = entry.source
          reason.message = failure
          progress.failure = reason
        }
        try await responses.send(progress)
        if let entry = next.next() {
          group.addTask { (entry, await self.importClip(entry, into: dataset)) }
        }
      }
    }
    var last = AudioV1.ImportProgress()
    last.total = total
    (last.done, last.failed) = counts.withLock { ($0.done, $0.failed) }
    last.dataset = try await store.dataset(id: dataset, name: nil, organization: nil)
    try await responses.send(last)
  }

  /// A directory's clips: a subdirectory per class (its name the label), or the files in it,
  /// unlabelled.
  static func directoryEntries(_ directory: String) throws(RPCError) -> [ManifestEntry] {
    let manager = FileManager.default
    var isDirectory: ObjCBool = false
    guard directory.hasPrefix("/"), manager.fileExists(atPath: directory, isDirectory: &isDirectory),
      isDirectory.boolValue
    else {
      throw RPCError(
        .invalidArgument, "directory '\(directory)' is not an absolute path to a directory on the service's host")
    }
    func files(_ path: String) -> [String] {
      ((try? manager.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".") }.sorted().filter {
        var isDirectory: ObjCBool = false
        return manager.fileExists(atPath: "\(path)/\($0)", isDirectory: &isDirectory) && !isDirectory.boolValue
      }
    }
    let classes = ((try? manager.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
      .filter {
        var isDirectory: ObjCBool = false
        return manager.fileExists(atPath: "\(directory)/\($0)", isDirectory: &isDirectory) && isDirectory.boolValue
      }
    var entries = files(directory).map { ManifestEntry(source: "\(directory)/\($0)") }
    for label in classes {
      entries += files("\(directory)/\(label)").map {
        ManifestEntry(source: "\(directory)/\(label)/\($0)", label: label)
      }
    }
    return entries
  }

  /// Reads, checks and stores one clip; the reason it was not imported, or nil.
  private func importClip(_ entry: ManifestEntry, into dataset: Int64) async -> String? {
    let bytes: [UInt8]
    if entry.isURL {
      switch await downloader.download(entry.source) {
      case .success(let data): bytes = [UInt8](data)
      case .failure(let failure): return "cannot download it: \(failure.message)"
      }
    } else {
      guard let data = FileManager.default.contents(atPath: entry.source) else { return "no such file" }
      bytes = [UInt8](data)
    }
    guard bytes.count <= Self.maxClipBytes else {
      return "\(bytes.count) bytes; a clip has at most \(Self.maxClipBytes)"
    }
    let name = (entry.source as NSString).lastPathComponent
    let audio: Audio
    do {
      audio = try Audio(bytes: bytes, name: name)
    } catch {
      return "cannot decode it: \(error.message)"
    }
    if let given = entry.duration, abs(given - audio.duration) > 0.5 {
      return "its duration is \(String(format: "%.2f", audio.duration)) s, the manifest says \(given) s"
    }
    var clip = AudioV1.Clip()
    clip.name = name
    clip.label = entry.label
    clip.source = entry.isURL ? TileFetcher.redacted(entry.source) : entry.source
    clip.size = Int64(bytes.count)
    clip.duration = audio.duration
    clip.sampleRate = Int32(audio.sampleRate)
    clip.channels = Int32(audio.channels)
    let named = Manifest.locationAndTime(name)
    clip.location = entry.location.isEmpty ? named?.0 ?? "" : entry.location
    clip.timestamp = entry.timestamp != 0 ? entry.timestamp : named?.1 ?? 0
    do {
      clip.digest = try await blobs.put(bytes).hex
      try await store.add(clip, to: dataset)
      return nil
    } catch let conflict as AudioStore.Conflict {
      return "the same clip is in the dataset already, labelled '\(conflict.label)'"
    } catch {
      return "cannot store it: \(error)"
    }
  }

  public func getDataset(_ request: AudioV1.GetDatasetRequest, context: ServerContext) async throws -> AudioV1.Dataset {
    try await dataset(id: request.datasetId, name: request.name, organization: request.organization)
  }

  func dataset(id: String, name: String, organization: String) async throws -> AudioV1.Dataset {
    let caller = CallerOrganization.current
    let found: AudioV1.Dataset?
    if !id.isEmpty {
      guard let number = Int64(id) else { throw RPCError(.invalidArgument, "dataset_id '\(id)' is not a dataset's id") }
      found = try await store.dataset(id: number, name: nil, organization: caller)
    } else if !name.isEmpty {
      let owner = try CallerOrganization.owner(named: organization, of: "datasets")
      found = try await store.dataset(id: nil, name: name, organization: owner)
    } else {
      throw RPCError(.invalidArgument, "give dataset_id or name")
    }
    guard let found else {
      throw RPCError(
        .notFound, "dataset '\(id.isEmpty ? name : id)' does not exist (see `shoal audio datasets`)")
    }
    return found
  }

  public func listDatasets(
    _ request: AudioV1.ListDatasetsRequest, context: ServerContext
  ) async throws -> AudioV1.ListDatasetsResponse {
    var response = AudioV1.ListDatasetsResponse()
    let organization = CallerOrganization.current ?? (request.organization.isEmpty ? nil : request.organization)
    response.datasets = try await store.datasets(organization: organization)
    return response
  }

  public func listClips(
    _ request: AudioV1.ListClipsRequest, context: ServerContext
  ) async throws -> AudioV1.ListClipsResponse {
    let dataset = try await dataset(id: request.datasetId, name: "", organization: "")
    guard (0...10_000).contains(request.pageSize) else {
      throw RPCError(.invalidArgument, "page_size must be 1–10,000")
    }
    let limit = request.pageSize == 0 ? 1000 : Int(request.pageSize)
    let label: String? = request.label.isEmpty ? nil : (request.label == "unlabelled" ? "" : request.label)
    var response = AudioV1.ListClipsResponse()
    response.clips = try await store.clips(
      of: Int64(dataset.datasetId)!, label: label, after: request.pageToken, limit: limit)
    if response.clips.count == limit { response.nextPageToken = response.clips.last!.digest }
    return response
  }

  // MARK: Features

  public func clipAudio(
    _ request: AudioV1.ClipAudioRequest, responses: RPCResponseWriter<AudioV1.ClipAudioChunk>, context: ServerContext
  ) async throws {
    let digest = try await visibleClip(request.digest)
    let bytes = try await blobs.read(digest)
    var offset = 0
    repeat {
      var chunk = AudioV1.ClipAudioChunk()
      if offset == 0 { chunk.size = Int64(bytes.count) }
      let end = min(bytes.count, offset + (1 << 20))
      chunk.data = Array(bytes[offset..<end])
      try await responses.send(chunk)
      offset = end
    } while offset < bytes.count
  }

  /// The clip of `hex` if the caller sees it.
  private func visibleClip(_ hex: String) async throws -> BlobDigest {
    let digest: BlobDigest
    do {
      digest = try BlobDigest(hex: hex)
    } catch {
      throw RPCError(.invalidArgument, "digest '\(hex)' is not 64 hex digits")
    }
    guard try await store.visible(digest.hex, organization: CallerOrganization.current) else {
      throw RPCError(.notFound, "clip \(digest.hex) is in no dataset of yours")
    }
    return digest
  }

  public func spectrogram(
    _ request: AudioV1.SpectrogramRequest, context: ServerContext
  ) async throws -> AudioV1.SpectrogramResponse {
    let digest = try await visibleClip(request.digest)
    let rate = request.sampleRate == 0 ? 22_050 : Int(request.sampleRate)
    guard Audio.sampleRates.contains(rate) else { throw RPCError(.invalidArgument, "sample_rate: give 8000–192000 Hz") }
    let mels = request.mels == 0 ? 128 : Int(request.mels)
    guard (1...512).contains(mels) else { throw RPCError(.invalidArgument, "mels: give 1–512 bands") }
    guard (0...600).contains(request.seconds) else { throw RPCError(.invalidArgument, "seconds: give 0–600") }
    let bytes = try await blobs.read(digest)
    var audio: Audio
    do {
      audio = try Audio(bytes: bytes, name: "clip \(digest.hex)").mono().resampled(to: rate)
    } catch {
      throw RPCError(.dataLoss, error.message)
    }
    if request.seconds > 0 { audio = audio.fitted(to: Int((request.seconds * Double(rate)).rounded())) }
    let spectrum = Spectrogram.features(audio.samples, sampleRate: rate, mels: mels, pcen: request.pcen)
    var response = AudioV1.SpectrogramResponse()
    response.bands = Int32(spectrum.rows)
    response.frames = Int32(spectrum.columns)
    if request.png {
      do {
        response.png = try spectrum.image().pngBytes()
      } catch {
        throw RPCError(.internal, "cannot draw the spectrogram: \(error.message)")
      }
    } else {
      response.values = spectrum.values
    }
    return response
  }
}
