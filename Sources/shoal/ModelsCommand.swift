import ArgumentParser
import Foundation
import ShoalModel
import ShoalProto
import ShoalServiceStubs
import ShoalStore

/// `shoal models …`: models, versions, files and aliases in the registry.
struct ModelsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "models",
    abstract: "Create models, push and pull their versions, move their aliases.",
    subcommands: [
      Create.self, List.self, Search.self, Show.self, Versions.self, Push.self, Pull.self, Alias.self, History.self,
    ]
  )

  /// Options every models command shares.
  struct Common: ParsableArguments {
    @Option(help: "The organisation (default: yours).") var org = ""
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var mesh: MeshOptions
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a model.")
    @Argument(help: "Its name: letters, digits, '_', '.' and '-'.") var name: String
    @Option(help: "classification, detection, segmentation or audio.") var task = "classification"
    @Option(help: "What it is for.") var description = ""
    @Flag(help: "Visible to every organisation (default: private).") var `public` = false
    @Option(name: .customLong("tag"), help: "A tag key=value (repeatable).") var tags: [String] = []
    @OptionGroup var common: Common

    func run() async throws {
      var request = RegistryV1.CreateModelRequest()
      request.organization = common.org
      request.name = name
      request.description = description
      request.visibility = `public` ? .public : .private
      request.tags = try parsePairs(tags, option: "--tag")
      guard let task = RegistryV1.ModelTask.knownValues.first(where: { $0.protoName == task.uppercased() }),
        task != .unspecified
      else { throw ValidationError("--task must be classification, detection, segmentation or audio") }
      request.task = task
      let model = try await withModelRegistry(common.mesh, command: "models create") {
        try await $0.createModel(request)
      }
      if common.json { emitJSON(model) } else { emit("created model \(model.organization)/\(model.name)") }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the models you can see.")
    @OptionGroup var common: Common

    func run() async throws {
      try await Search.printAll(RegistryV1.SearchModelsRequest(), common)
    }
  }

  struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Search models by text, task, visibility and tags.")
    @Argument(help: "Text to find in names and descriptions.") var query = ""
    @Option(help: "Only this task.") var task: String?
    @Option(help: "public or private.") var visibility: String?
    @Option(name: .customLong("tag"), help: "A tag key=value every result has (repeatable).") var tags: [String] = []
    @OptionGroup var common: Common

    func run() async throws {
      var request = RegistryV1.SearchModelsRequest()
      request.query = query
      request.tags = try parsePairs(tags, option: "--tag")
      if let task {
        guard let value = RegistryV1.ModelTask.knownValues.first(where: { $0.protoName == task.uppercased() }) else {
          throw ValidationError("--task must be classification, detection, segmentation or audio")
        }
        request.task = value
      }
      if let visibility {
        guard let value = RegistryV1.Visibility.knownValues.first(where: { $0.protoName == visibility.uppercased() })
        else { throw ValidationError("--visibility must be public or private") }
        request.visibility = value
      }
      try await Self.printAll(request, common)
    }

    /// Every page of a search, as one table (or one JSON object per model).
    static func printAll(_ request: RegistryV1.SearchModelsRequest, _ common: Common) async throws {
      var request = request
      if !common.org.isEmpty { request.organization = common.org }
      let first = request
      let models = try await withModelRegistry(common.mesh, command: "models") { client in
        try await allPages { token in
          var request = first
          request.pageToken = token
          let page = try await client.searchModels(request)
          return (page.models, page.nextPageToken)
        }
      }
      if common.json {
        var response = RegistryV1.SearchModelsResponse()
        response.models = models
        return emitJSON(response)
      }
      var table = TextTable("MODEL", "TASK", "VISIBILITY", "LATEST", "ALIASES", "DESCRIPTION")
      for model in models {
        table.add(
          "\(model.organization)/\(model.name)", model.task.protoName?.lowercased() ?? "-",
          model.visibility.protoName?.lowercased() ?? "-", model.latestVersion == 0 ? "-" : "v\(model.latestVersion)",
          model.aliases.sorted { $0.key < $1.key }.map { "\($0.key)→v\($0.value)" }.joined(separator: " "),
          model.description)
      }
      emit(table.rendered)
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model, or one version with @ALIAS or /VERSION.")
    @Argument(help: "NAME, NAME@ALIAS or NAME/VERSION.") var reference: String
    @OptionGroup var common: Common

    func run() async throws {
      let target = try ModelReference(reference)
      if target.selectsVersion {
        let version = try await withModelRegistry(common.mesh, command: "models show") {
          try await $0.getVersion(target.request(common.org))
        }
        return common.json ? emitJSON(version) : Versions.describe(version)
      }
      var request = RegistryV1.GetModelRequest()
      request.organization = common.org
      request.name = target.name
      let model = try await withModelRegistry(common.mesh, command: "models show") { try await $0.getModel(request) }
      if common.json { return emitJSON(model) }
      emit("model        \(model.organization)/\(model.name)")
      emit("task         \(model.task.protoName?.lowercased() ?? "-")")
      emit("visibility   \(model.visibility.protoName?.lowercased() ?? "-")")
      emit("description  \(model.description.isEmpty ? "-" : model.description)")
      emit(
        "tags         \(model.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
      emit("latest       \(model.latestVersion == 0 ? "-" : "v\(model.latestVersion)")")
      emit(
        "aliases      \(model.aliases.sorted { $0.key < $1.key }.map { "\($0.key)→v\($0.value)" }.joined(separator: " "))"
      )
      emit("created      \(formatTime(model.createdAtMs)) by \(model.createdBy)")
    }
  }

  struct Versions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a model's versions, newest first.")
    @Argument(help: "The model.") var name: String
    @OptionGroup var common: Common

    func run() async throws {
      var request = RegistryV1.ListVersionsRequest()
      request.organization = common.org
      request.model = name
      let first = request
      let versions = try await withModelRegistry(common.mesh, command: "models versions") { client in
        try await allPages { token in
          var request = first
          request.pageToken = token
          let page = try await client.listVersions(request)
          return (page.versions, page.nextPageToken)
        }
      }
      if common.json {
        var response = RegistryV1.ListVersionsResponse()
        response.versions = versions
        return emitJSON(response)
      }
      var table = TextTable("VERSION", "SEMVER", "STATUS", "SIZE", "ALIASES", "CREATED", "BY")
      for version in versions {
        table.add(
          "v\(version.version)", version.semver.isEmpty ? "-" : version.semver,
          version.status.protoName?.lowercased() ?? "-", "\(version.size)", version.aliases.joined(separator: " "),
          formatTime(version.createdAtMs), version.createdBy)
      }
      emit(table.rendered)
    }

    static func describe(_ version: RegistryV1.ModelVersion) {
      func tensors(_ specs: [RegistryV1.TensorSpec]) -> String {
        specs.map { spec in
          let shape = spec.shape.enumerated().map { index, size in
            size >= 0 ? "\(size)" : (spec.dimensionNames.indices.contains(index) ? spec.dimensionNames[index] : "?")
          }
          return "\(spec.name) \(spec.dtype.lowercased())[\(shape.joined(separator: ", "))]"
        }.joined(separator: "; ")
      }
      emit("version      \(version.organization)/\(version.model) v\(version.version)")
      emit("semver       \(version.semver.isEmpty ? "-" : version.semver)")
      if !version.sourceRun.isEmpty { emit("source       run \(version.sourceRun), artifact \(version.sourcePath)") }
      emit("aliases      \(version.aliases.isEmpty ? "-" : version.aliases.joined(separator: " "))")
      emit("status       \(version.status.protoName?.lowercased() ?? "-") \(version.statusMessage)")
      emit("file         \(version.artifact) (\(version.size) bytes, \(version.format))")
      emit("inputs       \(tensors(version.signature?.inputs ?? []))")
      emit("outputs      \(tensors(version.signature?.outputs ?? []))")
      let preprocessing = version.signature?.preprocessing ?? RegistryV1.Preprocessing()
      var steps: [String] = []
      if preprocessing.tileSize > 0 { steps.append("tile \(preprocessing.tileSize)") }
      if !preprocessing.channelOrder.isEmpty { steps.append(preprocessing.channelOrder) }
      if !preprocessing.mean.isEmpty { steps.append("mean \(preprocessing.mean)") }
      if !preprocessing.std.isEmpty { steps.append("std \(preprocessing.std)") }
      emit("preprocess   \(steps.joined(separator: ", "))")
      let classes = (version.signature?.classes ?? []).map { $0.color.isEmpty ? $0.name : "\($0.name) \($0.color)" }
      emit("classes      \(classes.joined(separator: ", "))")
      emit(
        "metrics      \(version.metrics.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
      )
      emit("created      \(formatTime(version.createdAtMs)) by \(version.createdBy)")
    }
  }

  struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Upload an ONNX file as the model's next version.")
    @Argument(help: "The model.") var name: String
    @Argument(help: "The .onnx file (with --from-run: the artifact's path in the run).") var file: String
    @Option(help: "Copy the file from this tracking run's artifacts, recording the run as its source.")
    var fromRun: String?
    @Option(help: "Point this alias at the new version.") var alias: String?
    @Option(help: "A semantic version label (1.4.0).") var semver = ""
    @Option(name: .customLong("metric"), help: "A metric key=value (repeatable).") var metrics: [String] = []
    @Option(name: .customLong("tag"), help: "A tag key=value (repeatable).") var tags: [String] = []
    @Option(
      name: .customLong("class"), help: "A class name, optionally with a colour: road:#ff8800 (repeatable, in order).")
    var classes: [String] = []
    @Option(help: "The tile size the model expects, in pixels.") var tileSize: Int32?
    @Option(help: "RGB or BGR.") var channelOrder: String?
    @Option(help: "Per-channel means to subtract, comma-separated (0.485,0.456,0.406).") var mean: String?
    @Option(help: "Per-channel standard deviations to divide by, comma-separated.") var std: String?
    @Option(
      help: """
        A sample of training inputs (.npy, as the model takes them): the model runs on it here, and \
        its inputs' and outputs' distributions become the version's drift reference (tag shoal.drift).
        """)
    var driftReference: String?
    @Option(help: "The input the drift sample is for (default: the model's first).") var driftInput: String?
    @OptionGroup var common: Common

    /// The drift reference of `sample` run through the model `bytes`, as the tag's JSON.
    static func driftTag(_ bytes: [UInt8], sample path: String, input: String?) throws -> String {
      let model: Model
      let sample: Tensor
      do {
        model = try Model(onnx: bytes)
        sample = try Tensor(npyFile: path)
      } catch {
        throw ValidationError("--drift-reference: \(error)")
      }
      guard let name = input ?? model.inputs.first?.name, let first = model.outputs.first?.name else {
        throw ValidationError("--drift-reference: the model has no inputs or outputs")
      }
      let outputs: [String: Tensor]
      do {
        outputs = try model.run([name: sample])
      } catch {
        throw ValidationError("--drift-reference: the model does not run on \(path): \(error)")
      }
      let reference = DriftReference.of(inputs: [name: sample], outputs: outputs, firstOutput: first)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      return String(decoding: try encoder.encode(reference), as: UTF8.self)
    }

    /// The preprocessing and classes given on the command line.
    private func signatureExtras() throws -> (RegistryV1.Preprocessing?, [RegistryV1.ClassLabel]) {
      func numbers(_ text: String?, _ option: String) throws -> [Float] {
        guard let text else { return [] }
        return try text.split(separator: ",").map { part in
          guard let value = Float(part.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("\(option): '\(part)' is not a number")
          }
          return value
        }
      }
      var preprocessing = RegistryV1.Preprocessing()
      preprocessing.tileSize = tileSize ?? 0
      if let channelOrder {
        guard ["RGB", "BGR"].contains(channelOrder.uppercased()) else {
          throw ValidationError("--channel-order must be RGB or BGR")
        }
        preprocessing.channelOrder = channelOrder.uppercased()
      }
      preprocessing.mean = try numbers(mean, "--mean")
      preprocessing.std = try numbers(std, "--std")
      let labels = try classes.map { text -> RegistryV1.ClassLabel in
        var label = RegistryV1.ClassLabel()
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        label.name = parts.first ?? ""
        if parts.count == 2 {
          let colour = parts[1]
          guard colour.count == 7, colour.first == "#", colour.dropFirst().allSatisfy(\.isHexDigit) else {
            throw ValidationError("--class \(text): the colour must be #rrggbb")
          }
          label.color = colour.lowercased()
        }
        guard !label.name.isEmpty else { throw ValidationError("--class needs a name") }
        return label
      }
      let empty = preprocessing == RegistryV1.Preprocessing()
      return (empty ? nil : preprocessing, labels)
    }

    func run() async throws {
      let bytes: [UInt8]
      var header = RegistryV1.UploadHeader()
      if let fromRun {
        // Lineage: the version records the run and the artifact it came from.
        (_, bytes) = try await withTracking(common.mesh, command: "models push") { client in
          try await ArtifactsCommand.download(client, run: fromRun, path: file)
        }
        header.sourceRun = fromRun
        header.sourcePath = file
      } else {
        do {
          bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
          throw ValidationError("cannot read \(file): \(error.localizedDescription)")
        }
      }
      header.organization = common.org
      header.model = name
      header.semver = semver
      header.sha256 = BlobDigest.of(bytes).hex
      header.tags = try parsePairs(tags, option: "--tag")
      (header.preprocessing, header.classes) = try signatureExtras()
      for (key, value) in try parsePairs(metrics, option: "--metric") {
        guard let number = Double(value) else { throw ValidationError("--metric \(key)=\(value): not a number") }
        header.metrics[key] = number
      }
      if let driftReference {
        header.tags[DriftReference.tag] = try Self.driftTag(bytes, sample: driftReference, input: driftInput)
      }
      let progress = ProgressLine(label: "pushing \(name)", total: bytes.count)
      let alias = alias
      let version = try await withModelRegistry(common.mesh, command: "models push") { client in
        let version = try await client.uploadVersion { sender in
          var first = RegistryV1.UploadVersionRequest()
          first.part = .header(header)
          try await sender.send(first)
          try await progress.sendChunks(of: bytes) { piece in
            var message = RegistryV1.UploadVersionRequest()
            message.part = .chunk(piece)
            try await sender.send(message)
          }
        }
        if let alias {
          var request = RegistryV1.SetAliasRequest()
          request.organization = version.organization
          request.model = version.model
          request.alias = alias
          request.version = version.version
          _ = try await client.setAlias(request)
        }
        return version
      }
      if common.json { return emitJSON(version) }
      emit(
        "pushed \(version.organization)/\(version.model) v\(version.version) (\(version.size) bytes, \(version.artifact))"
          + (alias.map { "; \($0) → v\(version.version)" } ?? ""))
    }
  }

  struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a version's file (default: the latest).")
    @Argument(help: "NAME, NAME@ALIAS or NAME/VERSION.") var reference: String
    @Option(help: "Where to write the file.") var out: String
    @OptionGroup var common: Common

    func run() async throws {
      let target = try ModelReference(reference)
      let url = URL(fileURLWithPath: out)
      let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).part")
      let (version, digest) = try await withModelRegistry(common.mesh, command: "models pull") { client in
        try await client.downloadVersion(target.request(common.org)) { responses in
          _ = FileManager.default.createFile(atPath: temporary.path, contents: nil)
          let handle = try FileHandle(forWritingTo: temporary)
          defer { try? handle.close() }
          var version: RegistryV1.ModelVersion?
          var hash = SHA256()
          var received = 0
          var progress: ProgressLine?
          for try await response in responses {
            switch response.part {
            case .version(let header):
              version = header
              progress = ProgressLine(label: "pulling \(header.model) v\(header.version)", total: Int(header.size))
            case .chunk(let chunk):
              hash.update(chunk)
              try handle.write(contentsOf: chunk)
              received += chunk.count
              progress?.update(received)
            case nil: break
            }
          }
          progress?.finish()
          return (version, "blob:sha256:" + hash.finish())
        }
      }
      guard let version, digest == version.artifact else {
        try? FileManager.default.removeItem(at: temporary)
        logLine(
          "shoal models pull", "DATA_LOSS: the received file has digest \(digest), not \(version?.artifact ?? "?")")
        throw ExitCode(1)
      }
      _ = try? FileManager.default.removeItem(at: url)
      try FileManager.default.moveItem(at: temporary, to: url)
      if common.json { return emitJSON(version) }
      emit(
        "pulled \(version.organization)/\(version.model) v\(version.version) → \(out) (\(version.size) bytes, verified)"
      )
    }
  }

  struct Alias: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Point an alias at a version (or remove it with --delete); every move is recorded.")
    @Argument(help: "The model.") var name: String
    @Argument(help: "The alias: letters, digits, '_' and '-' ('latest' and 'v<N>' are reserved).") var alias: String
    @Argument(help: "The version number.") var version: Int64?
    @Flag(help: "Remove the alias.") var delete = false
    @OptionGroup var common: Common

    func validate() throws {
      if delete == (version != nil) { throw ValidationError("give a VERSION, or --delete") }
    }

    func run() async throws {
      let move = try await withModelRegistry(common.mesh, command: "models alias") { client in
        if delete {
          var request = RegistryV1.DeleteAliasRequest()
          request.organization = common.org
          request.model = name
          request.alias = alias
          return try await client.deleteAlias(request)
        }
        var request = RegistryV1.SetAliasRequest()
        request.organization = common.org
        request.model = name
        request.alias = alias
        request.version = version ?? 0
        return try await client.setAlias(request)
      }
      if common.json { return emitJSON(move) }
      let from = move.previousVersion == 0 ? "(new)" : "v\(move.previousVersion)"
      let to = move.version == 0 ? "(deleted)" : "v\(move.version)"
      emit("\(name) \(alias): \(from) → \(to)")
    }
  }

  struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every move of a model's aliases, oldest first.")
    @Argument(help: "The model.") var name: String
    @Argument(help: "Only this alias.") var alias = ""
    @OptionGroup var common: Common

    func run() async throws {
      var request = RegistryV1.AliasHistoryRequest()
      request.organization = common.org
      request.model = name
      request.alias = alias
      let response = try await withModelRegistry(common.mesh, command: "models history") {
        try await $0.aliasHistory(request)
      }
      if common.json { return emitJSON(response) }
      var table = TextTable("WHEN", "ALIAS", "FROM", "TO", "BY")
      for move in response.moves {
        table.add(
          formatTime(move.movedAtMs), move.alias, move.previousVersion == 0 ? "-" : "v\(move.previousVersion)",
          move.version == 0 ? "(deleted)" : "v\(move.version)", move.movedBy)
      }
      emit(table.rendered)
    }
  }
}

/// Every item of a paged listing: `fetch` gets a page token ("" first) and returns the page's
/// items and the next token ("" at the end).
func allPages<Item>(_ fetch: (String) async throws -> ([Item], String)) async throws -> [Item] {
  var items: [Item] = []
  var token = ""
  repeat {
    let (page, next) = try await fetch(token)
    items += page
    token = next
  } while !token.isEmpty
  return items
}

/// `NAME`, `NAME@ALIAS` or `NAME/VERSION`.
struct ModelReference {
  var name: String
  var alias = ""
  var version: Int64 = 0

  init(_ text: String) throws {
    if let at = text.firstIndex(of: "@") {
      name = String(text[..<at])
      alias = String(text[text.index(after: at)...])
    } else if let slash = text.firstIndex(of: "/") {
      name = String(text[..<slash])
      guard let number = Int64(text[text.index(after: slash)...]), number > 0 else {
        throw ValidationError("'\(text)': the part after '/' must be a version number")
      }
      version = number
    } else {
      name = text
    }
    guard !name.isEmpty, text.last != "@" else {
      throw ValidationError("'\(text)' is not NAME, NAME@ALIAS or NAME/VERSION")
    }
  }

  var selectsVersion: Bool { !alias.isEmpty || version > 0 }

  func request(_ organization: String) -> RegistryV1.GetVersionRequest {
    var request = RegistryV1.GetVersionRequest()
    request.organization = organization
    request.model = name
    request.alias = alias
    request.version = version
    return request
  }
}
