import Foundation
import NIOCore
import Pipeline
import ShoalAudio
import ShoalGeo
import ShoalImage
import ShoalModel
import ShoalProto
import ShoalRPC
import Tracking

#if canImport(Glibc)
  import Glibc
#endif

/// The readers of untrusted bytes, one fuzz target each. Built with `--sanitize=fuzzer` and
/// `-DSHOAL_FUZZING` (scripts/fuzz), it is a libFuzzer binary running the target SHOAL_FUZZ_TARGET
/// names. Built plainly, `shoal-fuzz TARGET FILES…` runs the target once on each file (or each
/// file of each directory) given, which is how the tests replay the corpora and the crashes found.
///
/// A target may throw (bad input is refused, as it should be); it must not crash, hang, or read
/// or write out of bounds.
enum Fuzz {
  static let targets: [String: @Sendable ([UInt8]) -> Void] = [
    "frames": frames, "messages": messages, "json": json, "filter": filter, "onnx": onnx, "image": image,
    "audio": audio, "geojson": geojson, "pipeline": pipeline,
  ]

  /// RPC framing: frames cut from a byte stream arriving in two pieces, compressed payloads
  /// decompressed under the limit, and each payload read as the call's opening message.
  static func frames(_ bytes: [UInt8]) {
    var decoder = FrameDecoder(maxMessageSize: 1 << 16, maxFrameSize: 1 << 16)
    let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    let decompressor = ZstdDecompressor()
    for piece in [bytes[..<cut], bytes[cut...]] {
      var buffer = ByteBuffer(bytes: piece)
      while true {
        guard let decoded = try? decoder.next(from: &buffer) else { return }
        guard case .frame(let frame) = decoded else { continue }
        var payload = frame.payload
        if frame.flags.contains(.compressed) {
          guard let plain = try? decompressor.decompress(payload, limit: 1 << 16) else { continue }
          payload = plain
        }
        _ = try? RpcV1.CallHeader(serializedBytes: Array(payload.readableBytesView))
      }
    }
  }

  /// protobuf-c decoding of requests from several services; what decoded must encode, and its
  /// encoding decode again. (Equality is not asked: NaN metrics are not equal to themselves.)
  static func messages(_ bytes: [UInt8]) {
    func roundTrip<M: ProtoMessage>(_ type: M.Type) {
      guard let message = try? M(serializedBytes: bytes) else { return }
      guard let again = try? message.serializedBytes(), (try? M(serializedBytes: again)) != nil else {
        fatalError("\(M.protoMessageName) decoded but its own encoding does not decode")
      }
    }
    roundTrip(TrackingV1.LogBatchRequest.self)
    roundTrip(InferenceV1.PredictRequest.self)
    roundTrip(FeedbackV1.PutPredictionsRequest.self)
    roundTrip(RegistryV1.RegisterRequest.self)
  }

  /// The proto3 JSON mapping: text to messages, and what was read written and read back.
  static func json(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    func roundTrip<M: ProtoMessage>(_ type: M.Type) {
      guard let message = try? M(jsonString: text) else { return }
      guard (try? M(jsonString: message.jsonString())) != nil else {
        fatalError("\(M.protoMessageName) read from JSON, but its own JSON does not read back")
      }
    }
    _ = try? JSONValue(parsing: text)
    roundTrip(TrackingV1.LogBatchRequest.self)
    roundTrip(InferenceV1.PredictRequest.self)
    roundTrip(FeedbackV1.QueryTilesRequest.self)
  }

  /// Tracking's search filters, over runs and over experiments.
  static func filter(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    try? RunFilterSyntax.check(text)
    try? RunFilterSyntax.check(text, experiments: true)
  }

  /// The ONNX loader and planner (no run: a valid graph may be arbitrarily large).
  static func onnx(_ bytes: [UInt8]) {
    _ = try? Model(onnx: bytes)
  }

  /// The PNG and JPEG decoders, and the conversions a decoded image goes through.
  static func image(_ bytes: [UInt8]) {
    guard let image = try? Image(decoding: bytes), image.width * image.height <= 1 << 22 else { return }
    _ = image.rgb()
    _ = image.gray()
  }

  /// libsndfile through ShoalAudio (WAV, FLAC, OGG, Opus, MP3), mixed down to mono.
  static func audio(_ bytes: [UInt8]) {
    guard let audio = try? Audio(bytes: bytes, name: "the input") else { return }
    _ = audio.mono()
  }

  /// GeoJSON, with validation and without.
  static func geojson(_ bytes: [UInt8]) {
    _ = try? GeoJSON.features(from: Data(bytes))
    _ = try? GeoJSON.features(from: Data(bytes), validate: false)
  }

  /// Pipeline files.
  static func pipeline(_ bytes: [UInt8]) {
    _ = try? PipelineFile(json: Data(bytes), file: "fuzz.json")
  }

}

#if !SHOAL_FUZZING
  @main
  enum Replay {
    /// Runs the target once on each file given, or each file of each directory given.
    static func main() {
      let arguments = CommandLine.arguments
      guard arguments.count >= 2, let target = Fuzz.targets[arguments[1]] else {
        let names = Fuzz.targets.keys.sorted().joined(separator: ", ")
        FileHandle.standardError.write(
          Data("usage: shoal-fuzz TARGET [files or directories…]; targets: \(names)\n".utf8))
        exit(2)
      }
      var count = 0
      for path in arguments.dropFirst(2) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
          FileHandle.standardError.write(Data("shoal-fuzz: no such file or directory: \(path)\n".utf8))
          exit(2)
        }
        let files =
          isDirectory.boolValue
          ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" }
          : [path]
        for file in files {
          guard let data = FileManager.default.contents(atPath: file) else { continue }
          target([UInt8](data))
          count += 1
        }
      }
      print("shoal-fuzz: \(count) inputs ran")
    }
  }
#endif

#if SHOAL_FUZZING
  /// The target libFuzzer drives, named by SHOAL_FUZZ_TARGET (scripts/fuzz sets it).
  let fuzzTarget: @Sendable ([UInt8]) -> Void = {
    let name = ProcessInfo.processInfo.environment["SHOAL_FUZZ_TARGET"] ?? ""
    guard let target = Fuzz.targets[name] else {
      FileHandle.standardError.write(
        Data("shoal-fuzz: set SHOAL_FUZZ_TARGET to one of \(Fuzz.targets.keys.sorted())\n".utf8))
      exit(2)
    }
    return target
  }()

  @_cdecl("LLVMFuzzerTestOneInput")
  public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzTarget(data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
  }
#endif
