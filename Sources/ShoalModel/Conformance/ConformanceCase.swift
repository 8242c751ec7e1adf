import ShoalProto

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One case of ONNX's backend test data, compared at the ONNX runner's tolerances (rtol 1e-3,
/// atol 1e-7 unless the case's `data.json` or the runner's table says otherwise). Either a
/// directory with `model.onnx` and `test_data_set_*` directories of `input_*.pb` and
/// `output_*.pb` tensors, or a "light" model (`light_NAME.onnx` beside `light_NAME_output_0.pb`),
/// whose input the runner makes as `arange(n) / n` in the declared shape.
public struct ConformanceCase: Sendable {
  /// How a case ended.
  public enum Outcome: Sendable, Equatable {
    case passed
    case failed(String)
    /// The model uses something the core does not support; the message names it.
    case skipped(String)
  }

  /// The case's name (its directory's name).
  public let name: String
  /// Its directory.
  public let directory: String
  /// For a light model: its file.
  public var lightModel: String? = nil

  /// The cases under `root`: every directory holding a `model.onnx`, sorted by path.
  public static func cases(under root: String) -> [ConformanceCase] {
    var found: [ConformanceCase] = []
    func walk(_ directory: String) {
      if access(directory + "/model.onnx", R_OK) == 0 {
        found.append(ConformanceCase(name: String(directory.split(separator: "/").last ?? ""), directory: directory))
        return
      }
      for entry in Self.entries(directory) { walk(directory + "/" + entry) }
      for file in Self.entries(directory, directoriesOnly: false)
      where file.hasPrefix("light_") && file.hasSuffix(".onnx") {
        let name = "test_" + file.dropFirst("light_".count).dropLast(".onnx".count)
        found.append(ConformanceCase(name: name, directory: directory, lightModel: directory + "/" + file))
      }
    }
    walk(root)
    return found.sorted { $0.directory < $1.directory }
  }

  /// The names in `directory` that are directories themselves, sorted.
  static func entries(_ directory: String, directoriesOnly: Bool = true) -> [String] {
    guard let handle = opendir(directory) else { return [] }
    defer { closedir(handle) }
    var names: [String] = []
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      guard name != ".", name != ".." else { continue }
      var info = stat()
      guard stat(directory + "/" + name, &info) == 0 else { continue }
      if !directoriesOnly || (info.st_mode & S_IFMT) == S_IFDIR { names.append(name) }
    }
    return names.sorted()
  }

  /// Loads the model and runs every data set, comparing each output.
  public func run() -> Outcome {
    let model: Model
    do {
      model = try Model(contentsOf: lightModel ?? directory + "/model.onnx")
    } catch {
      return error.code == .unsupported ? .skipped(error.message) : .failed("load: \(error.message)")
    }
    let (rtol, atol) = tolerances()
    if let lightModel { return runLight(model, lightModel, rtol: rtol, atol: atol) }
    let sets = Self.entries(directory).filter { $0.hasPrefix("test_data_set_") }
    guard !sets.isEmpty else { return .failed("no test_data_set_* directory") }
    for set in sets {
      let path = directory + "/" + set
      do throws(ModelError) {
        let files = Self.entries(path, directoriesOnly: false)
        var inputs: [String: Tensor] = [:]
        for (index, file) in files.filter({ $0.hasPrefix("input_") }).sorted(by: Self.numbered).enumerated() {
          let proto = try Self.tensorProto(path + "/" + file)
          let name =
            model.inputs.contains { $0.name == proto.name }
            ? proto.name : (index < model.inputs.count ? model.inputs[index].name : proto.name)
          inputs[name] = try Tensor(onnx: proto)
        }
        let outputs = try model.run(inputs)
        for (index, file) in files.filter({ $0.hasPrefix("output_") }).sorted(by: Self.numbered).enumerated() {
          let proto = try Self.tensorProto(path + "/" + file)
          let expected = try Tensor(onnx: proto)
          let name = index < model.outputs.count ? model.outputs[index].name : proto.name
          guard let actual = outputs[name] else { return .failed("\(set): output '\(name)' is missing") }
          if let difference = Self.difference(actual, expected, rtol: rtol, atol: atol) {
            return .failed("\(set): output '\(name)': \(difference)")
          }
        }
      } catch {
        return error.code == .unsupported ? .skipped(error.message) : .failed("\(set): \(error.message)")
      }
    }
    return .passed
  }

  /// A light model: inputs `arange(n) / n` in each input's declared shape (symbolic sizes 1), and
  /// the outputs stored beside the model.
  private func runLight(_ model: Model, _ path: String, rtol: Double, atol: Double) -> Outcome {
    do throws(ModelError) {
      var inputs: [String: Tensor] = [:]
      for input in model.inputs {
        let shape = (input.dimensions ?? []).map { dimension -> Int in
          if case .fixed(let size) = dimension { return size }
          return 1
        }
        let count = shape.elementCount
        inputs[input.name] = Tensor(shape: shape, elements: (0..<count).map { Float(Double($0) / Double(count)) })
      }
      let outputs = try model.run(inputs)
      for (index, spec) in model.outputs.enumerated() {
        let expected = try Tensor(onnx: try Self.tensorProto("\(path.dropLast(".onnx".count))_output_\(index).pb"))
        guard let actual = outputs[spec.name] else { return .failed("output '\(spec.name)' is missing") }
        if let difference = Self.difference(actual, expected, rtol: rtol, atol: atol) {
          return .failed("output '\(spec.name)': \(difference)")
        }
      }
      return .passed
    } catch {
      return error.code == .unsupported ? .skipped(error.message) : .failed(error.message)
    }
  }

  private static func numbered(_ a: String, _ b: String) -> Bool {
    func number(_ name: String) -> Int { Int(name.filter(\.isNumber)) ?? 0 }
    return number(a) < number(b)
  }

  private static func tensorProto(_ path: String) throws(ModelError) -> Onnx.TensorProto {
    do {
      return try Onnx.TensorProto(serializedBytes: try FileBytes.read(path))
    } catch let error as ModelError {
      throw error
    } catch {
      throw ModelError(.invalidModel, "\(path) is not a TensorProto: \(error)")
    }
  }

  /// The case's tolerances: `data.json`'s `rtol`/`atol` if given, else the runner's defaults.
  private func tolerances() -> (Double, Double) {
    // The runner's table gives DenseNet-121 a looser relative tolerance.
    var rtol = name == "test_densenet121" ? 2e-3 : 1e-3
    var atol = 1e-7
    if let bytes = try? FileBytes.read(directory + "/data.json") {
      let text = String(decoding: bytes, as: UTF8.self)
      func value(_ key: String) -> Double? {
        guard let range = text.firstRange(of: "\"\(key)\"") else { return nil }
        let rest = text[range.upperBound...].drop { $0 == ":" || $0 == " " }
        return Double(String(rest.prefix { "0123456789.eE-+".contains($0) }))
      }
      rtol = value("rtol") ?? rtol
      atol = value("atol") ?? atol
    }
    return (rtol, atol)
  }

  /// Why `actual` differs from `expected` (numpy's `assert_allclose`), or nil when it does not.
  static func difference(_ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double) -> String? {
    guard actual.dataType == expected.dataType else {
      return "element type \(actual.dataType), expected \(expected.dataType)"
    }
    guard actual.shape == expected.shape else { return "shape \(actual.shape), expected \(expected.shape)" }
    let (a, e) = (actual.doubles(), expected.doubles())
    var worst: (index: Int, error: Double)? = nil
    var mismatches = 0
    for index in a.indices {
      if a[index].isNaN && e[index].isNaN { continue }
      if a[index] == e[index] { continue }
      let error = Swift.abs(a[index] - e[index])
      if error.isNaN || error > atol + rtol * Swift.abs(e[index]) {
        mismatches += 1
        if worst == nil || error > worst!.error || error.isNaN { worst = (index, error) }
      }
    }
    guard let worst else { return nil }
    return
      "\(mismatches) of \(a.count) elements differ; worst at \(worst.index): \(a[worst.index]) vs \(e[worst.index])"
  }
}
