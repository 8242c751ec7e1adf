import ArgumentParser
import Foundation
import ShoalClient
import ShoalMesh

/// `shoal up`: starts the mesh a mesh file describes and keeps it running until Ctrl-C.
struct UpCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "up",
    abstract: "Start the mesh: the registry, then every other service of the mesh file; restart crashed ones.",
    discussion: """
      Services run as child processes of this one. A second `shoal up` on the same data directory
      refuses to start. Ctrl-C (or SIGTERM) stops every service gracefully.
      """
  )

  @Option(help: "The mesh file (default: mesh/local.json beside the binary's checkout, else the built-in mesh).")
  var mesh: String?

  @Option(help: "The data directory (default: $SHOAL_DATA, else ~/.shoal).")
  var data: String?

  func run() async throws {
    let location = try RegistryLocation(data: data)
    let (meshFile, meshPath) = try loadMesh()
    try FileManager.default.createDirectory(
      atPath: location.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let lock: DataDirectoryLock
    do {
      lock = try DataDirectoryLock(dataDirectory: location.dataDirectory)
    } catch {
      logLine("shoal up", "\(error)")
      throw ExitCode(1)
    }
    defer { lock.release() }

    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    let config = Supervisor.Config(
      executable: Self.executablePath(executable), meshPath: meshPath, mesh: meshFile,
      dataDirectory: location.dataDirectory, availableServices: Set(ServeCommand.services))
    let supervisor = try Supervisor(config: config) { logLine("shoal up", $0) }
    logLine("shoal up", "data directory \(location.dataDirectory), mesh \(meshPath), pid \(getpid())")

    let running = Task { try await supervisor.run() }
    let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
      Foundation.signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number)
      source.setEventHandler { running.cancel() }
      source.resume()
      return source
    }
    defer { for source in sources { source.cancel() } }
    do {
      try await running.value
    } catch {
      logLine("shoal up", "\(error)")
      throw ExitCode(1)
    }
  }

  /// The mesh file given, else `mesh/local.json` in the current directory, else the built-in one.
  private func loadMesh() throws -> (MeshFile, String) {
    do {
      if let mesh { return (try MeshFile(contentsOf: mesh), mesh) }
      if FileManager.default.fileExists(atPath: "mesh/local.json") {
        return (try MeshFile(contentsOf: "mesh/local.json"), "mesh/local.json")
      }
      return (try MeshFile(json: Data(MeshFile.builtIn.utf8), file: "(built-in)"), "(built-in)")
    } catch {
      throw ValidationError("\(error)")
    }
  }

  /// The running binary's path, absolute (children are started with it).
  private static func executablePath(_ candidate: String) -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    return candidate
  }
}
