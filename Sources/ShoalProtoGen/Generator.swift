/// Generates ShoalProto's Swift sources, ShoalProtoC's umbrella header and ShoalServiceStubs'
/// clients and server protocols from a descriptor set.
public enum Generator {
  /// One generated file: a path relative to its output directory, and its text.
  public struct OutputFile: Sendable, Equatable {
    /// The file's path relative to its output directory.
    public var path: String
    /// The file's text.
    public var contents: String
  }

  /// What one run produces.
  public struct Output: Sendable {
    /// Swift files for `Sources/ShoalProto/Generated/`.
    public var swiftFiles: [OutputFile]
    /// `ShoalProtoC.h`.
    public var cHeader: String
    /// Swift files for `Sources/ShoalServiceStubs/Generated/`: typed clients and server protocols.
    public var stubFiles: [OutputFile]
  }

  /// Maps every file in the set except those under `google/protobuf/` (which only describe options).
  public static func generate(descriptorSet bytes: [UInt8]) throws(GenerationError) -> Output {
    let all = try DescriptorSetDecoder.decode(bytes)
    let files = all.filter { !$0.name.hasPrefix("google/protobuf/") }
    for file in files {
      if let wellKnown = file.dependencies.first(where: {
        $0.hasPrefix("google/protobuf/") && $0 != "google/protobuf/descriptor.proto"
      }) {
        throw GenerationError(
          file: file.name,
          "imports \(wellKnown): well-known types are not supported; define the messages in the contract")
      }
    }
    let types = TypeTable(files: files)
    var swiftFiles: [OutputFile] = []
    var stubFiles: [OutputFile] = []
    for file in files {
      let emitter = SwiftFileEmitter(file: file, types: types)
      let base = file.name.dropLast(".proto".count).replacingSlashes
      swiftFiles.append(OutputFile(path: base + ".pb.swift", contents: try emitter.emit()))
      if let stubs = try StubEmitter(file: file, types: types).emit() {
        stubFiles.append(OutputFile(path: base + ".rpc.swift", contents: stubs))
      }
    }
    swiftFiles.append(
      OutputFile(path: "ProtoRegistry+Generated.swift", contents: RegistryEmitter.emit(files: files, types: types)))
    return Output(swiftFiles: swiftFiles, cHeader: CHeaderEmitter.emit(files: files), stubFiles: stubFiles)
  }
}

extension Substring {
  var replacingSlashes: String { String(map { $0 == "/" ? "_" : $0 }) }
}
