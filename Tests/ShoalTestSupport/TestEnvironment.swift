import Foundation

/// Where the repository, the built binaries and the test tools are.
public enum TestEnvironment {
  /// The repository root (the directory holding Package.swift).
  public static let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
      url.deleteLastPathComponent()
      if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
    }
    fatalError("no Package.swift above \(#filePath)")
  }()

  /// The directory the test binary was built into; the package's executables are beside it.
  public static let productsDirectory: String = {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var url = executable
    while url.path != "/" {
      url.deleteLastPathComponent()
      if url.pathExtension != "xctest" && !url.path.contains(".xctest/") { return url.path }
    }
    return executable.deletingLastPathComponent().path
  }()

  /// A built executable of this package, such as `shoal` or `shoal-protogen`.
  public static func product(_ name: String) throws -> String {
    let path = "\(productsDirectory)/\(name)"
    guard FileManager.default.isExecutableFile(atPath: path) else {
      throw TestEnvironmentError("\(path) is not built; run `swift build` (scripts/test does) before `swift test`")
    }
    return path
  }

  /// A program the tests need on PATH.
  public static func tool(_ name: String) throws -> String {
    guard let path = Subprocess.which(name) else {
      throw TestEnvironmentError("\(name) is not on PATH; scripts/test installs it")
    }
    return path
  }

  /// The Python interpreter with `protobuf` and `onnx` installed: `SHOAL_PYTHON`, or the venv
  /// scripts/test creates in `.build-py/venv`.
  public static func python() throws -> String {
    try python(variable: "SHOAL_PYTHON", venv: "venv", holding: "protobuf and onnx")
  }

  /// The Python interpreter with the peers' own clients (`mlflow`, `tritonclient`):
  /// `SHOAL_PEERS_PYTHON`, or the venv scripts/test creates in `.build-py/peers`.
  public static func peersPython() throws -> String {
    try python(variable: "SHOAL_PEERS_PYTHON", venv: "peers", holding: "mlflow and tritonclient")
  }

  /// Label Studio 1.23's `label-studio` command (its venv's Python, beside it, has `requests`):
  /// `SHOAL_LABEL_STUDIO`, or the venv scripts/test creates in `.build-py/labelstudio`.
  public static func labelStudio() throws -> String {
    if let command = ProcessInfo.processInfo.environment["SHOAL_LABEL_STUDIO"], !command.isEmpty { return command }
    let venv = "\(repositoryRoot)/.build-py/labelstudio/bin/label-studio"
    guard FileManager.default.isExecutableFile(atPath: venv) else {
      throw TestEnvironmentError(
        "no Label Studio: run scripts/test once (it creates \(venv)) or set SHOAL_LABEL_STUDIO")
    }
    return venv
  }

  /// The Python `variable` names, else the one of the venv scripts/test creates in `.build-py/VENV`.
  private static func python(variable: String, venv name: String, holding packages: String) throws -> String {
    if let python = ProcessInfo.processInfo.environment[variable], !python.isEmpty { return python }
    let venv = "\(repositoryRoot)/.build-py/\(name)/bin/python"
    guard FileManager.default.isExecutableFile(atPath: venv) else {
      throw TestEnvironmentError(
        "no Python with \(packages): run scripts/test once (it creates \(venv)) or set \(variable)")
    }
    return venv
  }
}

/// A missing tool or binary the tests need, with what to do about it.
public struct TestEnvironmentError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}
