import ArgumentParser
import Foundation
import ShoalAudio
import ShoalClient
import ShoalModel
import ShoalProto
import ShoalRPC
import ShoalServiceStubs

/// Runs `body` with the audio classifier's client, reporting RPC errors as the CLI does.
func withAudio<T>(
  _ mesh: MeshOptions, command: String, _ body: (AudioV1.AudioClassifier.Client) async throws -> T
) async throws -> T {
  let shoal = ShoalClient(location: try mesh.location())
  return try await reportingRPCErrors(command: command, closing: { await shoal.close() }) {
    try await body(AudioV1.AudioClassifier.Client(shoal.channel(for: "audio-classifier")))
  }
}

/// `shoal audio …`: audio clips' features, as the audio classifier computes them.
struct AudioCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audio",
    abstract: "Audio clips: spectrograms, datasets, training, prediction and active learning.",
    subcommands: [
      SpectrogramCommand.self, Ingest.self, Import.self, Datasets.self, Clips.self, Train.self, Predict.self,
      Next.self, Label.self, Stats.self,
    ])

  struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Predict a dataset's unlabelled clips with a trained version.",
      discussion: """
        MODEL is a registry reference (name@alias, name/version or name) of a version `shoal audio \
        train` made. Prints each clip's probability of the model's positive class; --json gives the \
        Orcasound endpoint's shape (audio_url, duration, location, timestamp, predicted_value). \
        With --review the unlabelled clips' predictions also go to the feedback service as a set \
        of items to review, which `shoal audio next` draws from.
        """)
    @Argument(help: "The model reference.") var model: String
    @Option(help: "The dataset's id.") var dataset: String
    @Flag(help: "Also the labelled clips.") var all = false
    @Flag(help: "Send the predictions to feedback for review.") var review = false
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = AudioV1.PredictRequest()
      request.model = model
      request.datasetId = dataset
      request.all = all
      request.review = review
      let response = try await withAudio(mesh, command: "audio predict") { try await $0.predict(request) }
      if json { return emitJSON(response) }
      var table = TextTable("CLIP", "LOCATION", "TIME", "SECONDS", response.positiveClass.uppercased(), "LABEL")
      for prediction in response.predictions {
        table.add(
          (prediction.audioUrl as NSString).lastPathComponent, prediction.location.isEmpty ? "-" : prediction.location,
          prediction.timestamp == 0 ? "-" : formatTime(prediction.timestamp * 1000),
          String(format: "%.2f", prediction.duration), String(format: "%.3f", prediction.predictedValue),
          prediction.label.isEmpty ? "-" : prediction.label)
      }
      emit("\(response.model) v\(response.version), P(\(response.positiveClass)):\n" + table.rendered)
      if !response.reviewSetId.isEmpty { emit("sent to review: feedback set \(response.reviewSetId)") }
    }
  }

  struct Train: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Train a classifier on a dataset's labelled clips into a new registry version.",
      discussion: """
        Each clip becomes a 64-band log-mel (or --pcen) spectrogram of 3 s, standardised, through \
        a fixed convolutional embedding run by the model core; a dense head is trained for each \
        --hidden size and the best on the validation split is pushed to the registry (the model is \
        made, task audio, if it does not exist) and recorded in tracking. Shows a progress bar for \
        the clips, then one per candidate as its epochs go. --retrain-after N starts active \
        learning: after N new labels (`shoal audio label`) the dataset is trained again with these \
        settings and its unlabelled clips predicted into a new review set.
        """)
    @Argument(help: "The dataset's id.") var dataset: String
    @Option(help: "The registry model the version goes to.") var model: String
    @Option(help: "The most epochs per candidate.") var epochs: Int32 = 100
    @Option(name: .customLong("hidden"), help: "A hidden size to try (repeatable; default 128, 256 and 512).")
    var hidden: [Int32] = []
    @Option(help: "The share of clips held out for validation.") var validationSplit = 0.2
    @Option(help: "The seed of the embedding and of training.") var seed: UInt64 = 42
    @Flag(help: "PCEN instead of log-mel.") var pcen = false
    @Option(help: "Mel bands.") var mels: Int32 = 64
    @Option(help: "The class whose probability predictions give (default: the first not called noise).")
    var positive: String?
    @Option(help: "Train again by itself after this many new labels (0: never).") var retrainAfter: Int32 = 0
    @Option(help: "Every k-th label goes to the validation split.") var validationEvery: Int32 = 5
    @Flag(help: "Weigh labels by their labeller's expertise.") var weightByExpertise = false
    @Option(help: "A version to go on training from (its front end, embedding and head).") var base: String?
    @Option(help: "Augmented copies of each training clip: shifted, mixed with the dataset's background.")
    var augment: Int32 = 0
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print the result as JSON.") var json = false

    func run() async throws {
      var request = AudioV1.TrainRequest()
      request.datasetId = dataset
      request.model = model
      request.epochs = epochs
      request.hiddenSizes = hidden
      request.validationSplit = validationSplit
      request.seed = seed
      request.pcen = pcen
      request.mels = mels
      request.positiveClass = positive ?? ""
      request.retrainAfter = retrainAfter
      request.validationEvery = validationEvery
      request.weightByExpertise = weightByExpertise
      request.baseModel = base ?? ""
      request.augment = augment
      let (json, epochs) = (json, epochs)
      let result = try await withAudio(mesh, command: "audio train") { client in
        try await client.train(request) { answers -> AudioV1.TrainResult? in
          var bar: ProgressLine?
          // A bar per candidate as its epochs come, then its best epoch.
          var candidate: (size: Int32, bar: ProgressLine, best: AudioV1.EpochMetrics?)?
          let close = {
            guard let done = candidate else { return }
            done.bar.finish()
            if !json, let best = done.best {
              emit(
                String(
                  format: "hidden %d: best epoch %d  acc %.3f  loss %.4f  val_acc %.3f  val_loss %.4f", done.size,
                  best.epoch, best.acc, best.loss, best.valAcc, best.valLoss))
            }
          }
          for try await progress in answers {
            if let result = progress.result {
              close()
              return result
            }
            if let epoch = progress.epoch {
              if candidate?.size != epoch.hiddenSize {
                close()
                candidate = (
                  epoch.hiddenSize,
                  ProgressLine(label: "hidden \(epoch.hiddenSize)", total: Int(epochs), unit: "epochs"), nil
                )
              }
              candidate!.bar.update(Int(epoch.epoch))
              if candidate!.best.map({ epoch.valLoss < $0.valLoss }) ?? true { candidate!.best = epoch }
            } else {
              if bar == nil { bar = ProgressLine(label: "features", total: Int(progress.total), unit: "clips") }
              bar?.update(Int(progress.done))
              if progress.done == progress.total { bar?.finish() }
            }
          }
          return nil
        }
      }
      guard let result else { throw RPCError(.unavailable, "training ended without a result") }
      if json { return emitJSON(result) }
      emit(
        "\(result.model) v\(result.version): hidden \(result.hiddenSize), validation accuracy "
          + String(format: "%.3f", result.modelAcc) + ", loss " + String(format: "%.4f", result.modelLoss)
          + " on \(result.labeledFiles) clips; cm \(result.cm) (\(result.classes.joined(separator: ", "))); run \(result.runId)"
      )
    }
  }

  struct Next: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The clips to label next: the least certain of the dataset's review set, locked to you.",
      discussion: """
        Draws from the set `shoal audio predict --review` (or the automatic retraining) sent to \
        feedback. --strategy least-confidence ranks |0.5 − p| smallest first (1 − the top score for \
        more classes), margin the top two scores closest, entropy the most uncertain scores. Each \
        clip is locked to you for --lock seconds, so two labellers never get the same clip.
        """)
    @Argument(help: "The dataset's id.") var dataset: String
    @Option(help: "least-confidence, margin or entropy.") var strategy = "least-confidence"
    @Option(name: .short, help: "How many clips.") var n: Int32 = 10
    @Option(help: "Seconds the clips stay locked to you.") var lock: Int32 = 300
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = AudioV1.NextToLabelRequest()
      request.datasetId = dataset
      switch strategy {
      case "least-confidence": request.strategy = .leastConfidence
      case "margin": request.strategy = .margin
      case "entropy": request.strategy = .entropy
      default: throw ValidationError("--strategy: give least-confidence, margin or entropy")
      }
      request.n = n
      request.lockSeconds = lock
      let response = try await withAudio(mesh, command: "audio next") { try await $0.nextToLabel(request) }
      if json { return emitJSON(response) }
      var table = TextTable("DIGEST", "CLIP", "LOCATION", "P", "UNCERTAINTY")
      for candidate in response.candidates {
        let clip = candidate.clip ?? AudioV1.Clip()
        table.add(
          clip.digest, clip.name, clip.location.isEmpty ? "-" : clip.location,
          String(format: "%.3f", candidate.prediction?.predictedValue ?? 0),
          String(format: "%.3f", candidate.uncertainty))
      }
      emit(
        "\(response.model) v\(response.version), review set \(response.reviewSetId), \(response.candidates.count) clips:\n"
          + table.rendered)
    }
  }

  struct Label: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Label clips of a dataset: DIGEST=LABEL each.",
      discussion: """
        Each label is recorded with you and your --expertise; every k-th label of the dataset \
        goes to the validation split; the clip's review item is marked and its lock released. \
        When the labels since the last training reach the dataset's --retrain-after, it is trained \
        again and its unlabelled clips predicted by the new version (see `shoal audio stats`).
        """)
    @Argument(help: "The dataset's id.") var dataset: String
    @Argument(help: "DIGEST=LABEL, one per clip.") var labels: [String]
    @Option(help: "beginner, competent, proficient or expert.") var expertise: String?
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      let level: AudioV1.Expertise
      switch expertise {
      case nil: level = .unspecified
      case "beginner": level = .beginner
      case "competent": level = .competent
      case "proficient": level = .proficient
      case "expert": level = .expert
      default: throw ValidationError("--expertise: give beginner, competent, proficient or expert")
      }
      var request = AudioV1.SubmitLabelsRequest()
      request.datasetId = dataset
      request.labels = try labels.map { pair in
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
          throw ValidationError("'\(pair)': give DIGEST=LABEL")
        }
        var label = AudioV1.ClipLabel()
        label.digest = parts[0]
        label.label = parts[1]
        label.expertise = level
        return label
      }
      let response = try await withAudio(mesh, command: "audio label") { try await $0.submitLabels(request) }
      if json { return emitJSON(response) }
      var line =
        "\(response.accepted) labels (\(response.validation) to validation); \(response.labelsSinceTraining) since the last training"
      if response.retrainAfter > 0 { line += " of \(response.retrainAfter) for the next" }
      if response.retraining { line += "; retraining started (shoal audio stats \(dataset))" }
      emit(line)
    }
  }

  struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A dataset's trainings: accuracy per version against labelled clips, and the latest confusion.",
      discussion: "--plot draws validation accuracy against the number of labelled clips, as PNG or SVG.")
    @Argument(help: "The dataset's id.") var dataset: String
    @Option(help: "Draw accuracy against labels into this .png or .svg.") var plot: String?
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = AudioV1.StatsRequest()
      request.datasetId = dataset
      let response = try await withAudio(mesh, command: "audio stats") { try await $0.stats(request) }
      if let plot {
        let chart = MetricPlot(
          title: "validation accuracy against labelled clips", metric: "val_acc",
          series: [
            MetricPlot.Series(
              label: response.rounds.last.map { "\(($0.model as NSString).lastPathComponent)" } ?? "model",
              points: response.rounds.map { ($0.labeledFiles, $0.modelAcc) })
          ], xLabel: "labelled clips")
        if plot.hasSuffix(".png") {
          try chart.writePNG(to: plot)
        } else {
          try Data(chart.svg.utf8).write(to: URL(fileURLWithPath: plot), options: .atomic)
        }
      }
      if json { return emitJSON(response) }
      var table = TextTable("MODEL", "VERSION", "LABELLED", "VALIDATION", "VAL_ACC", "VAL_LOSS", "HOW")
      for round in response.rounds {
        table.add(
          round.model, "\(round.version)", "\(round.labeledFiles)", "\(round.validationFiles)",
          String(format: "%.3f", round.modelAcc), String(format: "%.4f", round.modelLoss),
          round.automatic ? "automatic" : "asked")
      }
      var lines = [table.rendered]
      if !response.cm.isEmpty {
        lines.append("latest confusion (true by row, \(response.classes.joined(separator: ", "))): \(response.cm)")
      }
      let experts = response.labelsByExpertise.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
      lines.append(
        "\(response.labels) labels submitted (\(experts.joined(separator: ", "))); \(response.labelsSinceTraining) since "
          + "the last training\(response.retrainAfter > 0 ? " of \(response.retrainAfter)" : ""); "
          + "\(response.unlabelled) clips unlabelled")
      if response.retraining { lines.append("retraining now") }
      if !response.lastError.isEmpty { lines.append("the last automatic retraining failed: \(response.lastError)") }
      if let plot { lines.append("plot: \(plot)") }
      emit(lines.joined(separator: "\n"))
    }
  }

  struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Import clips into a dataset of the audio classifier, stored by digest.",
      discussion: """
        SOURCE is a directory (a subdirectory per class, named by its label; or clips directly, \
        unlabelled), or a .csv or .jsonl manifest with path or url, and optionally label, location, \
        timestamp and duration. Paths are read by the service, on this host. A clip that cannot be \
        read or decoded is reported with the reason, and the rest go on; the command then exits 1.
        """)
    @Argument(help: "A directory or a manifest.") var source: String
    @Option(help: "The dataset's name (a new one, or one to add to).") var name: String
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print the dataset as JSON at the end.") var json = false

    func run() async throws {
      var request = AudioV1.ImportDatasetRequest()
      request.name = name
      let path = URL(fileURLWithPath: source).standardizedFileURL.path
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ValidationError("\(source): no such file or directory")
      }
      if isDirectory.boolValue {
        request.source = .directory(path)
      } else {
        guard [".csv", ".jsonl", ".json"].contains(where: { path.lowercased().hasSuffix($0) }) else {
          throw ValidationError("\(source): give a directory, or a manifest ending in .csv or .jsonl")
        }
        request.source = .manifest(try textFile(path))
        request.baseDirectory = (path as NSString).deletingLastPathComponent
      }
      let json = json
      let (dataset, failed) = try await withAudio(mesh, command: "audio import") { client in
        try await client.importDataset(request) { answers -> (AudioV1.Dataset?, Int64) in
          var bar: ProgressLine?
          var last: AudioV1.ImportProgress?
          for try await progress in answers {
            if bar == nil { bar = ProgressLine(label: "importing", total: Int(progress.total), unit: "clips") }
            bar?.update(Int(progress.done))
            if let failure = progress.failure {
              logLine("shoal audio import", "\(failure.source): \(failure.message)")
            }
            last = progress
          }
          bar?.finish()
          return (last?.dataset, last?.failed ?? 0)
        }
      }
      guard let dataset else { throw RPCError(.unavailable, "the import ended without the dataset") }
      if json {
        emitJSON(dataset)
      } else {
        let labels = dataset.labelCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        emit(
          "dataset \(dataset.name) (\(dataset.datasetId)): \(dataset.clips) clips, "
            + (labels + (dataset.unlabelled > 0 ? ["unlabelled \(dataset.unlabelled)"] : [])).joined(separator: ", ")
            + (failed > 0 ? "; \(failed) not imported" : ""))
      }
      if failed > 0 { throw ExitCode(1) }
    }
  }

  struct Datasets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the audio classifier's datasets.")
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      let response = try await withAudio(mesh, command: "audio datasets") {
        try await $0.listDatasets(AudioV1.ListDatasetsRequest())
      }
      if json { return emitJSON(response) }
      var table = TextTable("ID", "NAME", "CLIPS", "LABELS", "UNLABELLED", "HOURS", "CREATED")
      for dataset in response.datasets {
        table.add(
          dataset.datasetId, dataset.name, "\(dataset.clips)",
          dataset.labelCounts.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " "),
          "\(dataset.unlabelled)", String(format: "%.2f", dataset.seconds / 3600), formatTime(dataset.createdAtMs))
      }
      emit(table.rendered)
    }
  }

  struct Clips: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a dataset's clips.")
    @Argument(help: "The dataset's id.") var dataset: String
    @Option(help: "Only this label (unlabelled: those without).") var label: String?
    @Option(help: "At most this many.") var limit: Int32 = 1000
    @OptionGroup var mesh: MeshOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
      var request = AudioV1.ListClipsRequest()
      request.datasetId = dataset
      request.label = label ?? ""
      request.pageSize = limit
      let response = try await withAudio(mesh, command: "audio clips") { try await $0.listClips(request) }
      if json { return emitJSON(response) }
      var table = TextTable("DIGEST", "NAME", "LABEL", "SECONDS", "RATE", "LOCATION", "TIME")
      for clip in response.clips {
        table.add(
          String(clip.digest.prefix(12)), clip.name, clip.label.isEmpty ? "-" : clip.label,
          String(format: "%.2f", clip.duration), "\(clip.sampleRate)", clip.location.isEmpty ? "-" : clip.location,
          clip.timestamp == 0 ? "-" : formatTime(clip.timestamp * 1000))
      }
      emit(table.rendered)
    }
  }

  struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Cut an HLS stream (Orcasound's live input) into clips named LOCATION_UNIXTIME.wav.",
      discussion: """
        SOURCE is an .m3u8 URL or file, or a directory of a stream's .ts segments (its playlist if \
        it has one). The stream is decoded by ffmpeg (Debian's) to mono at --sr and cut into clips \
        of --seconds, 16-bit WAV; the start time comes from --start, else from a Unix time in \
        SOURCE's path (Orcasound's …/hls/1600000000/live.m3u8). A last piece of at least a second \
        is padded to a whole clip.
        """)
    @Argument(help: "The stream: a URL, a playlist or a directory of segments.") var source: String
    @Option(help: "The hydrophone's name (orcasound_lab).") var location: String
    @Option(help: "The stream's start, Unix seconds.") var start: Int?
    @Option(help: "Seconds per clip.") var seconds = 3.0
    @Option(help: "The clips' sample rate.") var sr = 48_000
    @Option(help: "The directory the clips go to.") var out: String

    func run() async throws {
      guard let start = start ?? HLSIngest.startTime(in: source) else {
        throw ValidationError("--start: SOURCE's path holds no Unix time; give the stream's start")
      }
      guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds: give 0–600") }
      guard Audio.sampleRates.contains(sr) else { throw ValidationError("--sr: give 8000–192000 Hz") }
      var ingest = HLSIngest(location: location, start: start)
      ingest.clipSeconds = seconds
      ingest.sampleRate = sr
      do {
        let clips = try ingest.run(source, into: out)
        emit(
          "wrote \(clips.count) clips of \(seconds) s into \(out)\(clips.first.map { ", from \(($0 as NSString).lastPathComponent)" } ?? "")"
        )
      } catch {
        logLine("shoal audio ingest", error.message)
        throw ExitCode(1)
      }
    }
  }

  struct SpectrogramCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "spectrogram", abstract: "A clip's log-mel (or PCEN) spectrogram, as .npy or a viridis .png.",
      discussion: """
        The clip (WAV, FLAC, OGG, MP3) is mixed to mono and resampled with soxr's HQ resampler, as \
        librosa.load does; then the mel spectrogram with librosa's defaults (periodic Hann window, \
        centred frames padded with zeros, Slaney's mel scale and area normalisation), in dB \
        (power_to_db: amin 1e-10, top 80 dB) or, with --pcen, PCEN of the magnitude mel spectrogram \
        scaled by 2^31 (librosa's example). The .npy is [mels, frames] float32; the .png has time \
        across and low frequencies at the bottom.
        """)
    @Argument(help: "The clip.") var clip: String
    @Option(help: "The sample rate it is resampled to.") var sr = 22_050
    @Option(help: "FFT size.") var nFFT = 2048
    @Option(help: "Samples between frames.") var hop = 512
    @Option(help: "Mel bands.") var mels = 128
    @Option(help: "The lowest frequency, Hz.") var fmin = 0.0
    @Option(help: "The highest frequency, Hz (default: half the sample rate).") var fmax: Double?
    @Flag(help: "HTK's mel scale instead of Slaney's.") var htk = false
    @Flag(help: "PCEN instead of dB.") var pcen = false
    @Option(help: "Cut or pad the clip to this many seconds first.") var seconds: Double?
    @Option(help: "PNG pixels per frame and band.") var scale = 4
    @Option(help: "The file to write: .npy or .png.") var out: String

    func run() async throws {
      guard Audio.sampleRates.contains(sr) else { throw ValidationError("--sr: give 8000–192000 Hz") }
      guard nFFT >= 16, nFFT % 2 == 0, hop >= 1, mels >= 1 else {
        throw ValidationError("--n-fft must be even and at least 16, --hop and --mels at least 1")
      }
      let lower = out.lowercased()
      guard lower.hasSuffix(".npy") || lower.hasSuffix(".png") else {
        throw ValidationError("--out: name a .npy or .png")
      }
      let audio: Audio
      do {
        var loaded = try Audio(contentsOf: clip).mono().resampled(to: sr)
        if let seconds { loaded = loaded.fitted(to: Int((seconds * Double(sr)).rounded())) }
        audio = loaded
      } catch {
        logLine("shoal audio spectrogram", error.message)
        throw ExitCode(1)
      }
      let melScale: Spectrogram.MelScale = htk ? .htk : .slaney
      let spectrum = Spectrogram.features(
        audio.samples, sampleRate: sr, nFFT: nFFT, hop: hop, mels: mels, fmin: fmin, fmax: fmax, scale: melScale,
        pcen: pcen)
      if lower.hasSuffix(".npy") {
        try Tensor(shape: [spectrum.rows, spectrum.columns], elements: spectrum.values).writeNpy(to: out)
      } else {
        try Data(try spectrum.image(scale: max(1, scale)).pngBytes()).write(to: URL(fileURLWithPath: out))
      }
      emit(
        "wrote \(out): \(spectrum.rows) \(pcen ? "PCEN" : "log-mel") bands × \(spectrum.columns) frames "
          + "(\(String(format: "%.2f", audio.duration)) s at \(sr) Hz)")
    }
  }
}
