import Foundation
import ShoalTestSupport
import Testing

/// The built `shoal` binary, run as a user would.
struct ShoalCommandTests {
  @Test func printsItsVersion() async throws {
    let result = try await Subprocess.run(try TestEnvironment.product("shoal"), ["--version"])
    #expect(result.status == 0)
    #expect(result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
  }

  @Test func helpListsTheCommands() async throws {
    let result = try await Subprocess.run(try TestEnvironment.product("shoal"), ["--help"])
    #expect(result.status == 0)
    #expect(result.stdoutText.contains("proto"))
  }

  @Test func encodesJSONAndDecodesItBack() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let json = #"{"payload":"aGVsbG8=","responseSize":12}"#
    let encoded = try await Subprocess.run(
      shoal, ["proto", "encode", "shoal.bench.v1.BenchRequest"], stdin: Array(json.utf8))
    #expect(encoded.status == 0, "\(encoded.stderrText)")
    #expect(encoded.stdout == [0x0A, 5] + Array("hello".utf8) + [0x10, 12])
    let decoded = try await Subprocess.run(
      shoal, ["proto", "decode", "shoal.bench.v1.BenchRequest"], stdin: encoded.stdout)
    #expect(decoded.stdoutText.trimmingCharacters(in: .newlines) == json)
  }

  @Test func badInputGetsAClearErrorAndAFailingStatus() async throws {
    let shoal = try TestEnvironment.product("shoal")
    let unknownType = try await Subprocess.run(shoal, ["proto", "decode", "shoal.nope.v1.Nothing"])
    #expect(unknownType.status != 0)
    #expect(unknownType.stderrText.contains("no message type named 'shoal.nope.v1.Nothing'"))
    let garbage = try await Subprocess.run(
      shoal, ["proto", "decode", "shoal.rpc.v1.Hello"], stdin: [0xFF, 0xFF, 0xFF])
    #expect(garbage.status != 0)
    #expect(garbage.stderrText.contains("not a valid encoding"))
    let badJSON = try await Subprocess.run(
      shoal, ["proto", "encode", "shoal.rpc.v1.Hello"], stdin: Array(#"{"peerName": 3}"#.utf8))
    #expect(badJSON.status != 0)
    #expect(badJSON.stderrText.contains("shoal.rpc.v1.Hello.peerName"))
  }
}
