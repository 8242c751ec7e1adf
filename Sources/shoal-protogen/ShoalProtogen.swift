import ArgumentParser
import Foundation
import ShoalProtoGen

/// Generates ShoalProto's Swift sources from a `protoc --include_imports --descriptor_set_out`
/// file. `scripts/gen-protos` runs it; nobody edits its output by hand.
@main
struct ShoalProtogen: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shoal-protogen",
    abstract: "Generate Swift types, service descriptors and JSON mapping from a protobuf descriptor set."
  )

  @Option(help: "The FileDescriptorSet written by protoc --include_imports --descriptor_set_out.")
  var descriptorSet: String

  @Option(help: "The directory to write the Swift files into (replaced).")
  var swiftOut: String

  @Option(help: "The path of the C umbrella header with the descriptor accessors.")
  var cHeader: String

  @Option(help: "The directory to write the typed clients and server protocols into (replaced).")
  var stubsOut: String

  func run() throws {
    guard let data = FileManager.default.contents(atPath: descriptorSet) else {
      throw ValidationError("cannot read the descriptor set at \(descriptorSet)")
    }
    let output: Generator.Output
    do {
      output = try Generator.generate(descriptorSet: [UInt8](data))
    } catch {
      FileHandle.standardError.write(Data("shoal-protogen: \(error)\n".utf8))
      throw ExitCode(1)
    }
    try FileManager.default.createDirectory(atPath: swiftOut, withIntermediateDirectories: true)
    for file in output.swiftFiles {
      try Data(file.contents.utf8).write(to: URL(fileURLWithPath: swiftOut).appendingPathComponent(file.path))
    }
    try Data(output.cHeader.utf8).write(to: URL(fileURLWithPath: cHeader))
    try? FileManager.default.removeItem(atPath: stubsOut)
    try FileManager.default.createDirectory(atPath: stubsOut, withIntermediateDirectories: true)
    for file in output.stubFiles {
      try Data(file.contents.utf8).write(to: URL(fileURLWithPath: stubsOut).appendingPathComponent(file.path))
    }
  }
}
