import Foundation
import ShoalClient
import ShoalImage
import ShoalProto
import ShoalRPC
import ShoalServiceStubs
import ShoalTestSupport
import Testing

/// The audio classifier's datasets under `shoal up`, as real processes: a directory per class and
/// a manifest (paths, a URL on a local HTTP server, Orcasound-named clips), with the clips that
/// cannot be imported reported and the rest stored by digest; clips listed by label; their
/// spectrograms.
@Suite(.serialized)
struct AudioClassifierEndToEndTests {
  static let mesh = """
    { "services": [ { "name": "registry" },
      { "name": "audio-classifier", "listen": ["unix:audio-classifier.sock", "tcp://127.0.0.1:0"] } ] }
    """

  static let makeClips = #"""
    import sys
    import numpy as np, soundfile as sf
    out = sys.argv[1]
    rng = np.random.default_rng(5)
    sr = 48000
    t = np.arange(3 * sr) / sr
    def whistle(f): return (0.3 * np.sin(2 * np.pi * (f + 800 * t) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    def noise(): return (0.1 * rng.standard_normal(t.size)).astype(np.float32)
    for i in range(3):
        sf.write(f"{out}/set/calls/whistle{i}.wav", whistle(3000 + 500 * i), sr, subtype="PCM_16")
        sf.write(f"{out}/set/noise/noise{i}.flac", noise(), sr, subtype="PCM_16")
    sf.write(f"{out}/set/calls/whistle3.mp3", whistle(6000), sr, format="MP3")
    open(f"{out}/set/noise/broken.wav", "wb").write(b"RIFF\x10\x00\x00\x00WAVEnot really")
    sf.write(f"{out}/pool/orcasound_lab_1600000000.wav", whistle(4000), sr, subtype="PCM_16")
    sf.write(f"{out}/pool/short.wav", noise()[: sr], sr, subtype="PCM_16")
    sf.write(f"{out}/served.wav", noise(), 22050, subtype="PCM_16")
    """#

  @Test func datasetsFromADirectoryAndAManifest() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    for directory in ["set/calls", "set/noise", "pool"] {
      try FileManager.default.createDirectory(atPath: data.path(directory), withIntermediateDirectories: true)
    }
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeClips, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    let served = try Data(contentsOf: URL(fileURLWithPath: data.path("served.wav")))
    let server = try await TestHTTPServer { request in
      request.path == "/clips/served.wav"
        ? .init(headers: ["Content-Type": "audio/wav"], body: served) : .init(status: 404)
    }
    try Data(Self.mesh.utf8).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "registered audio-classifier", seconds: 60)
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    do {
      // A directory per class: the broken file is reported, the rest imported.
      let imported = try await run("audio", "import", data.path("set"), "--name", "orcas")
      #expect(imported.status == 1, "\(imported.stdoutText)\(imported.stderrText)")
      #expect(imported.stdoutText.contains("7 clips, calls 4, noise 3; 1 not imported"), "\(imported.stdoutText)")
      #expect(imported.stderrText.contains("broken.wav: cannot decode it"), "\(imported.stderrText)")

      // A manifest: a relative path, an Orcasound-named clip, a URL, a wrong duration, a missing
      // file, and a clip already in the dataset under another label.
      let manifest = """
        path,label,location,timestamp,duration
        pool/orcasound_lab_1600000000.wav,,,,3
        \(server.base)/clips/served.wav,,bush_point,1650000000,
        pool/short.wav,,,,3
        pool/missing.wav,,,,
        set/calls/whistle0.wav,calls,,,
        """
      try Data(manifest.utf8).write(to: data.url.appendingPathComponent("pool.csv"))
      let pooled = try await run("audio", "import", data.path("pool.csv"), "--name", "pool", "--json")
      #expect(pooled.status == 1)
      let pool = try AudioV1.Dataset(jsonString: pooled.stdoutText)
      #expect(pool.clips == 3 && pool.unlabelled == 2 && pool.labelCounts == ["calls": 1], "\(pool)")
      #expect(pooled.stderrText.contains("short.wav: its duration is 1.00 s, the manifest says 3.0 s"))
      #expect(pooled.stderrText.contains("missing.wav: no such file"), "\(pooled.stderrText)")
      let again = try await run("audio", "import", data.path("set/noise/noise0.flac"), "--name", "x")
      #expect(
        again.status != 0 && again.stderrText.contains("a manifest ending in .csv or .jsonl"), "\(again.stderrText)")
      try Data("path,label\nset/noise/noise0.flac,calls\n".utf8).write(
        to: data.url.appendingPathComponent("relabel.csv"))
      let relabel = try await run("audio", "import", data.path("relabel.csv"), "--name", "orcas")
      #expect(relabel.stderrText.contains("in the dataset already, labelled 'noise'"), "\(relabel.stderrText)")

      // Listed by label, with what the names and the manifest say.
      let rpc = RPCClient(address: try RPCAddress(parsing: "unix:audio-classifier.sock", relativeTo: data.url.path))
      defer { Task { await rpc.close() } }
      let client = AudioV1.AudioClassifier.Client(rpc)
      var clips = AudioV1.ListClipsRequest()
      clips.datasetId = pool.datasetId
      clips.label = "unlabelled"
      let unlabelled = try await client.listClips(clips).clips
      #expect(unlabelled.count == 2)
      let named = try #require(unlabelled.first { $0.name == "orcasound_lab_1600000000.wav" })
      #expect(named.location == "orcasound_lab" && named.timestamp == 1_600_000_000 && named.sampleRate == 48_000)
      let fetched = try #require(unlabelled.first { $0.name == "served.wav" })
      #expect(fetched.location == "bush_point" && fetched.sampleRate == 22_050 && fetched.source.hasPrefix("http://"))
      let listing = try await run("audio", "datasets")
      #expect(
        listing.stdoutText.contains("orcas") && listing.stdoutText.contains("calls:4 noise:3"), "\(listing.stdoutText)")

      // A stored clip's spectrogram, as values and as a picture.
      var spectrogram = AudioV1.SpectrogramRequest()
      spectrogram.digest = named.digest
      spectrogram.mels = 64
      spectrogram.seconds = 3
      let values = try await client.spectrogram(spectrogram)
      #expect(values.bands == 64 && values.frames == 130 && values.values.count == 64 * 130)
      spectrogram.png = true
      spectrogram.pcen = true
      let picture = try Image(decoding: try await client.spectrogram(spectrogram).png)
      #expect(picture.width == 130 * 4 && picture.height == 64 * 4)

      // Bad input names what is wrong.
      var nameless = AudioV1.ImportDatasetRequest()
      nameless.source = .directory(data.path("set"))
      await #expect {
        try await client.importDataset(nameless) { for try await _ in $0 {} }
      } throws: { ($0 as? RPCError)?.code == .invalidArgument && "\($0)".contains("name") }
      var relative = AudioV1.ImportDatasetRequest()
      relative.name = "relative"
      relative.source = .directory("set")
      await #expect {
        try await client.importDataset(relative) { for try await _ in $0 {} }
      } throws: { ($0 as? RPCError)?.code == .invalidArgument && "\($0)".contains("'set'") }
      var unknown = AudioV1.GetDatasetRequest()
      unknown.datasetId = "999"
      await #expect { _ = try await client.getDataset(unknown) } throws: { ($0 as? RPCError)?.code == .notFound }
      let stored = named.digest
      spectrogram.digest = String(repeating: "ab", count: 32)
      await #expect { _ = try await client.spectrogram(spectrogram) } throws: { ($0 as? RPCError)?.code == .notFound }

      // Over TCP, a token of another organisation sees none of these datasets or clips.
      let outsider = try await outsiderClient(service: "audio-classifier", shoal: shoal, data: data)
      let other = AudioV1.AudioClassifier.Client(outsider)
      #expect(try await other.listDatasets(AudioV1.ListDatasetsRequest()).datasets.isEmpty)
      var theirs = AudioV1.GetDatasetRequest()
      theirs.datasetId = pool.datasetId
      await #expect { _ = try await other.getDataset(theirs) } throws: { ($0 as? RPCError)?.code == .notFound }
      spectrogram.digest = stored
      await #expect { _ = try await other.spectrogram(spectrogram) } throws: { ($0 as? RPCError)?.code == .notFound }
      await outsider.close()
    } catch {
      _ = try? await up.stop()
      await server.close()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
    await server.close()
  }

  /// Whistles and pulsed calls against shipping-like noise (a low hum and broadband noise), 16
  /// clips a class, at varying gains; and a single-class dataset.
  static let makeTrainingSet = #"""
    import sys
    import numpy as np, soundfile as sf
    out = sys.argv[1]
    rng = np.random.default_rng(9)
    sr = 32000
    t = np.arange(3 * sr) / sr
    def noise():
        hum = 0.05 * np.sin(2 * np.pi * rng.uniform(40, 120) * t)
        return hum + rng.uniform(0.02, 0.08) * rng.standard_normal(t.size)
    for i in range(16):
        gain = rng.uniform(0.3, 1.5)
        f = rng.uniform(2000, 7000)
        call = 0.2 * np.sin(2 * np.pi * (f * t + rng.uniform(-300, 300) * t ** 2)) * (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > -0.2)
        sf.write(f"{out}/train/call/c{i:02d}.wav", (gain * (call + noise())).astype(np.float32), sr, subtype="PCM_16")
        sf.write(f"{out}/train/noise/n{i:02d}.wav", (gain * noise()).astype(np.float32), sr, subtype="PCM_16")
    for i in range(3):
        sf.write(f"{out}/one/call/c{i}.wav", noise().astype(np.float32), sr, subtype="PCM_16")
    # Unlabelled clips to predict: calls and noise named as Orcasound names them, and silence.
    for i in range(4):
        f = rng.uniform(2000, 7000)
        call = 0.2 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * 2 * t) > -0.2)
        sf.write(f"{out}/pool/orcasound_lab_{1600000000 + 3 * i}.wav", (call + noise()).astype(np.float32), sr, subtype="PCM_16")
        sf.write(f"{out}/pool/orcasound_lab_{1600001000 + 3 * i}.wav", noise().astype(np.float32), sr, subtype="PCM_16")
    sf.write(f"{out}/pool/silence_1600002000.wav", np.zeros(sr, np.float32), sr, subtype="PCM_16")
    """#

  /// Reads the pulled version with onnx and onnxruntime: its metadata, and probabilities for a
  /// spectrogram-shaped input.
  static let readModel = #"""
    import json, sys
    import numpy as np, onnx, onnxruntime as ort
    model = onnx.load(sys.argv[1])
    meta = {p.key: p.value for p in model.metadata_props}
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 1, 64, 130)).astype(np.float32)
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
    print(json.dumps({"meta": meta, "shape": list(y.shape), "sums": [float(v) for v in y.sum(axis=1)]}))
    """#

  @Test func trainingPushesAVersionAndRecordsTheRun() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    for directory in ["train/call", "train/noise", "one/call", "pool"] {
      try FileManager.default.createDirectory(atPath: data.path(directory), withIntermediateDirectories: true)
    }
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeTrainingSet, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    try Data(
      #"{ "services": [ { "name": "registry" }, { "name": "tracking" }, { "name": "audio-classifier" } ] }"#.utf8
    ).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    _ = try await up.waitForLines(containing: "registered audio-classifier", seconds: 60)
    _ = try await up.waitForLines(containing: "registered tracking", seconds: 60)
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    do {
      let imported = try await run("audio", "import", data.path("train"), "--name", "calls", "--json")
      let dataset = try AudioV1.Dataset(jsonString: imported.stdoutText)
      #expect(dataset.labelCounts == ["call": 16, "noise": 16], "\(imported.stderrText)")

      let trained = try await run(
        "audio", "train", dataset.datasetId, "--model", "orca", "--hidden", "32", "--hidden", "64", "--epochs", "80",
        "--json")
      #expect(trained.status == 0, "\(trained.stderrText)")
      let result = try AudioV1.TrainResult(jsonString: trained.stdoutText)
      #expect(result.model == "local/orca" && result.version == 1 && result.labeledFiles == 32)
      #expect(result.classes == ["noise", "call"] && result.positiveClass == "call" && result.cm.count == 4)
      #expect(result.modelAcc >= 0.85, "\(result)")
      #expect(!result.acc.isEmpty && result.acc.count == result.valLoss.count)
      #expect([32, 64].contains(result.hiddenSize))

      // The version in the registry, its file readable by onnx and onnxruntime with the front
      // end in its metadata; the run in tracking with its metrics and the dataset.
      let shown = try await run("models", "show", "orca/1", "--json")
      let version = try RegistryV1.ModelVersion(jsonString: shown.stdoutText)
      #expect(version.sourceRun == result.runId && version.tags["positive_class"] == "call")
      #expect(version.signature?.classes.map(\.name) == ["call", "noise"])
      #expect(try await run("models", "pull", "orca/1", "--out", data.path("orca.onnx")).status == 0)
      let read = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.readModel, data.path("orca.onnx")])
      #expect(read.status == 0, "\(read.stderrText)")
      #expect(read.stdoutText.contains(#""shoal.audio.mels": "64""#) && read.stdoutText.contains(#""shape": [2, 2]"#))
      let runShown = try await run("runs", "show", result.runId, "--json")
      #expect(runShown.stdoutText.contains("val_acc") && runShown.stdoutText.contains(result.datasetDigest))

      // Training on from version 1: its front end and head are the start, its hidden size kept.
      let onward = try await run("audio", "train", dataset.datasetId, "--model", "orca", "--base", "orca/1", "--json")
      #expect(onward.status == 0, "\(onward.stderrText)")
      let continued = try AudioV1.TrainResult(jsonString: onward.stdoutText)
      #expect(continued.version == 2 && continued.baseModel == "local/orca" && continued.baseVersion == 1)
      #expect(continued.hiddenSize == result.hiddenSize && continued.modelAcc >= 0.85, "\(continued)")
      // Augmented: two shifted copies of each training clip mixed with the dataset's noise; the
      // validation split (a fifth of the 32) has no copies.
      let augmented = try await run(
        "audio", "train", dataset.datasetId, "--model", "orca", "--augment", "2", "--hidden", "32", "--epochs", "60",
        "--json")
      #expect(augmented.status == 0, "\(augmented.stderrText)")
      let mixed = try AudioV1.TrainResult(jsonString: augmented.stdoutText)
      #expect(mixed.version == 3 && mixed.labeledFiles == 32 && mixed.validationFiles == 6, "\(mixed)")
      #expect(mixed.modelAcc >= 0.8, "\(mixed.modelAcc)")
      let baseless = try await run("audio", "train", dataset.datasetId, "--model", "orca", "--base", "nothing/1")
      #expect(baseless.status != 0 && baseless.stderrText.contains("NOT_FOUND"), "\(baseless.stderrText)")

      // Predictions on unlabelled clips: the calls above 0.5, the noise below, the silent clip
      // (1 s, padded) predicted too.
      let pool = try AudioV1.Dataset(
        jsonString: try await run("audio", "import", data.path("pool"), "--name", "pool", "--json").stdoutText)
      #expect(pool.unlabelled == 9)
      let predicted = try await run("audio", "predict", "orca", "--dataset", pool.datasetId, "--json")
      #expect(predicted.status == 0, "\(predicted.stderrText)")
      let answer = try AudioV1.PredictResponse(jsonString: predicted.stdoutText)
      #expect(answer.model == "local/orca" && answer.version == 3 && answer.positiveClass == "call")
      #expect(answer.predictions.count == 9)
      let right = answer.predictions.filter { prediction in
        let call = prediction.timestamp < 1_600_001_000
        return prediction.location == "orcasound_lab" && (prediction.predictedValue > 0.5) == call
      }
      #expect(right.count >= 7, "\(answer.predictions.map { ($0.timestamp, $0.predictedValue) })")
      let silent = try #require(answer.predictions.first { $0.location == "silence" })
      #expect(silent.duration == 1 && (0...1).contains(silent.predictedValue))
      #expect(answer.predictions.allSatisfy { abs(($0.scores["call"] ?? 0) + ($0.scores["noise"] ?? 0) - 1) < 1e-4 })

      let nowhere = try await run("audio", "predict", "nothing", "--dataset", pool.datasetId)
      #expect(nowhere.status != 0 && nowhere.stderrText.contains("NOT_FOUND"), "\(nowhere.stderrText)")

      // A dataset of one class cannot train.
      let one = try AudioV1.Dataset(
        jsonString: try await run("audio", "import", data.path("one"), "--name", "one", "--json").stdoutText)
      let refused = try await run("audio", "train", one.datasetId, "--model", "orca")
      #expect(refused.status != 0 && refused.stderrText.contains("at least 2 classes"), "\(refused.stderrText)")
      let unknown = try await run("audio", "train", "999", "--model", "orca")
      #expect(unknown.status != 0 && unknown.stderrText.contains("does not exist"), "\(unknown.stderrText)")
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }

  /// A full round of active learning under `shoal up` with feedback: train with
  /// `--retrain-after 3`, predict into a review set, two labellers over TCP given different clips
  /// (the least certain first, each locked to its labeller), labels with expertise (the third to
  /// validation) that start the automatic retraining, a second version trained on the new labels
  /// and predicting what is still unlabelled into a new review set, the marks in feedback under
  /// the labeller's name, and stats with their plot.
  @Test func activeLearningRoundTrip() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let data = try TemporaryDirectory()
    for directory in ["train/call", "train/noise", "one/call", "pool"] {
      try FileManager.default.createDirectory(atPath: data.path(directory), withIntermediateDirectories: true)
    }
    let made = try await Subprocess.run(try TestEnvironment.python(), ["-c", Self.makeTrainingSet, data.url.path])
    try #require(made.status == 0, "\(made.stderrText)")
    try Data(
      #"""
      { "services": [ { "name": "registry" }, { "name": "tracking" }, { "name": "feedback" },
        { "name": "audio-classifier", "listen": ["unix:audio-classifier.sock", "tcp://127.0.0.1:0"] } ] }
      """#.utf8
    ).write(to: data.url.appendingPathComponent("mesh.json"))
    let up = try ServerProcess(shoal, ["up", "--mesh", data.path("mesh.json"), "--data", data.url.path])
    for service in ["audio-classifier", "tracking", "feedback"] {
      _ = try await up.waitForLines(containing: "registered \(service)", seconds: 60)
    }
    func run(_ arguments: String...) async throws -> SubprocessResult {
      try await Subprocess.run(shoal, arguments + ["--data", data.url.path])
    }
    // The truth of a clip of the pool, from its name.
    func truth(_ clip: AudioV1.Clip) -> String {
      clip.location == "orcasound_lab" && clip.timestamp < 1_600_001_000 ? "call" : "noise"
    }
    do {
      _ = try await run("audio", "import", data.path("train"), "--name", "learn")
      let dataset = try AudioV1.Dataset(
        jsonString: try await run("audio", "import", data.path("pool"), "--name", "learn", "--json").stdoutText)
      #expect(dataset.unlabelled == 9 && dataset.clips == 41)
      let id = dataset.datasetId
      let early = try await run("audio", "next", id)
      #expect(early.status != 0 && early.stderrText.contains("no predictions to review"), "\(early.stderrText)")

      let trained = try await run(
        "audio", "train", id, "--model", "loop", "--hidden", "16", "--epochs", "30", "--retrain-after", "3",
        "--validation-every", "3", "--json")
      #expect(trained.status == 0, "\(trained.stderrText)")
      let predicted = try AudioV1.PredictResponse(
        jsonString: try await run("audio", "predict", "loop", "--dataset", id, "--review", "--json").stdoutText)
      #expect(predicted.version == 1 && predicted.predictions.count == 9 && !predicted.reviewSetId.isEmpty)

      // Two labellers over TCP: different clips, the least certain first, locked to each.
      let alice = AudioV1.AudioClassifier.Client(
        try await tokenClient(
          service: "audio-classifier", shoal: shoal, data: data, organization: "local", name: "alice"))
      let bob = AudioV1.AudioClassifier.Client(
        try await tokenClient(service: "audio-classifier", shoal: shoal, data: data, organization: "local", name: "bob")
      )
      var next = AudioV1.NextToLabelRequest()
      next.datasetId = id
      next.n = 4
      let hers = try await alice.nextToLabel(next)
      let his = try await bob.nextToLabel(next)
      #expect(hers.model == "local/loop" && hers.version == 1 && hers.reviewSetId == predicted.reviewSetId)
      #expect(hers.candidates.count == 4 && his.candidates.count == 4)
      let herClips = hers.candidates.compactMap(\.clip)
      #expect(Set(herClips.map(\.digest)).isDisjoint(with: his.candidates.compactMap(\.clip?.digest)))
      let uncertainty = hers.candidates.map(\.uncertainty)
      #expect(
        uncertainty == uncertainty.sorted(by: >) && uncertainty.min()! >= his.candidates.map(\.uncertainty).max()!)
      for candidate in hers.candidates {
        let p = candidate.prediction?.predictedValue ?? -1
        #expect(abs(candidate.uncertainty - (0.5 - abs(0.5 - p))) < 1e-6, "|0.5 - p| ranks: \(candidate)")
        #expect(candidate.lockedUntilMs > Int64(Date().timeIntervalSince1970 * 1000))
      }

      // Bad labels change nothing.
      var bad = AudioV1.SubmitLabelsRequest()
      bad.datasetId = id
      var label = AudioV1.ClipLabel()
      (label.digest, label.label) = (String(repeating: "0", count: 64), "call")
      bad.labels = [label]
      await #expect(throws: RPCError.self) { _ = try await alice.submitLabels(bad) }
      (label.digest, label.label) = (herClips[0].digest, "whale")
      bad.labels = [label]
      let refused = try await run("audio", "label", id, "\(herClips[0].digest)=whale")
      #expect(refused.status != 0 && refused.stderrText.contains("INVALID_ARGUMENT"), "\(refused.stderrText)")

      // Alice labels three of hers as an expert: the third goes to validation, and they start the
      // automatic retraining.
      var labels = AudioV1.SubmitLabelsRequest()
      labels.datasetId = id
      labels.labels = herClips.prefix(3).map { clip in
        var label = AudioV1.ClipLabel()
        (label.digest, label.label, label.expertise) = (clip.digest, truth(clip), .expert)
        return label
      }
      let submitted = try await alice.submitLabels(labels)
      #expect(submitted.accepted == 3 && submitted.validation == 1 && submitted.retraining, "\(submitted)")

      var stats = AudioV1.StatsResponse()
      for _ in 0..<240 {
        stats = try AudioV1.StatsResponse(jsonString: try await run("audio", "stats", id, "--json").stdoutText)
        if stats.rounds.count == 2 && !stats.retraining { break }
        try await Task.sleep(for: .milliseconds(500))
      }
      #expect(stats.rounds.count == 2 && !stats.retraining && stats.lastError.isEmpty, "\(stats)")
      let second = try #require(stats.rounds.last)
      #expect(second.automatic && second.version == 2 && second.labeledFiles == 35 && !second.runId.isEmpty)
      #expect(stats.rounds[0].labeledFiles == 32 && !stats.rounds[0].automatic)
      #expect(stats.labels == 3 && stats.labelsByExpertise == ["expert": 3] && stats.labelsSinceTraining == 0)
      #expect(stats.unlabelled == 6 && stats.cm.count == 4 && stats.reviewSetId != predicted.reviewSetId)

      // The new round: version 2's predictions of the six still unlabelled (Bob's locks were on
      // the first set), none of Alice's.
      let again = try AudioV1.NextToLabelResponse(
        jsonString: try await run("audio", "next", id, "-n", "10", "--json").stdoutText)
      #expect(again.version == 2 && again.candidates.count == 6)
      #expect(Set(again.candidates.compactMap(\.clip?.digest)).isDisjoint(with: herClips.prefix(3).map(\.digest)))
      let clips = try AudioV1.ListClipsResponse(
        jsonString: try await run("audio", "clips", id, "--label", "call", "--json").stdoutText
      ).clips.filter { !$0.labelledBy.isEmpty }
      #expect(clips.allSatisfy { $0.labelledBy == "alice@local" && $0.expertise == .expert })

      // Feedback has Alice's marks on the first set's items, under her name.
      let sdk = ShoalClient(location: try RegistryLocation(data: data.url.path, environment: [:]))
      var history = FeedbackV1.ValidityHistoryRequest()
      history.setId = predicted.reviewSetId
      let entries = try await FeedbackV1.Feedback.Client(sdk.channel(for: "feedback")).validityHistory(history).entries
      await sdk.close()
      #expect(entries.count == 6 && entries.allSatisfy { $0.by == "alice@local" })
      #expect(Set(entries.map(\.tileId)) == Set(herClips.prefix(3).map(\.digest)))

      let plotted = try await run("audio", "stats", id, "--plot", data.path("stats.png"))
      #expect(plotted.status == 0, "\(plotted.stderrText)")
      let png = try Data(contentsOf: URL(fileURLWithPath: data.path("stats.png")))
      #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 5000)
    } catch {
      _ = try? await up.stop()
      throw error
    }
    #expect(try await up.stop(signal: SIGTERM) == 0, "\(up.text)")
  }
}
