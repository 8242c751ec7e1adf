import ArgumentParser
import Foundation
import ShoalProto

/// `shoal proto …`: the message types compiled into this binary, and conversion between their
/// binary and JSON forms (for debugging captures and writing payloads by hand).
struct ProtoCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "proto",
    abstract: "List message types and convert messages between binary and JSON.",
    subcommands: [Types.self, Encode.self, Decode.self]
  )

  struct Types: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every message type and service this binary knows.")

    func run() {
      for type in ProtoRegistry.messageTypes { print(type.protoMessageName) }
      for service in ProtoRegistry.services {
        for method in service.methods {
          print("\(method.path) (\(method.kind.rawValue)\(method.idempotent ? ", idempotent" : ""))")
        }
      }
    }
  }

  struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Read a message as JSON on standard input; write it in the binary format to standard output."
    )

    @Argument(help: "The fully qualified message type, e.g. shoal.bench.v1.BenchRequest.")
    var type: String

    func run() throws {
      let messageType = try ProtoCommand.lookUp(type)
      let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
      let message = try messageType.init(jsonString: text)
      FileHandle.standardOutput.write(Data(try message.serializedBytes()))
    }
  }

  struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Read a message in the binary format on standard input; print it as JSON."
    )

    @Argument(help: "The fully qualified message type, e.g. onnx.ModelProto.")
    var type: String

    @Flag(help: "Print one member per line.")
    var pretty = false

    func run() throws {
      let messageType = try ProtoCommand.lookUp(type)
      let bytes = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
      print(try messageType.init(serializedBytes: bytes).jsonString(pretty: pretty))
    }
  }

  static func lookUp(_ name: String) throws -> any ProtoMessage.Type {
    guard let type = ProtoRegistry.messageType(named: name) else {
      throw ValidationError("no message type named '\(name)'; `shoal proto types` lists them")
    }
    return type
  }
}
