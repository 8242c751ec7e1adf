import Foundation
import Inference
import ShoalAudio
import ShoalModel
public import ShoalProto
public import ShoalRPC
import ShoalService
import ShoalServiceStubs
import ShoalStore

/// Prediction with a version Train made: the file from the registry, its front end from its
/// metadata, every clip through it and the model core.
extension AudioClassifierService {
  public func predict(_ request: AudioV1.PredictRequest, context: ServerContext) async throws -> AudioV1.PredictResponse
  {
    guard let registry else {
      throw RPCError(.unimplemented, "this audio classifier has no registry to take models from")
    }
    let dataset = try await self.dataset(id: request.datasetId, name: "", organization: "")
    let reference = try ModelReference(parsing: request.model).qualified(defaultOrganization: dataset.organization)
    var get = RegistryV1.GetVersionRequest()
    get.organization = reference.organization ?? dataset.organization
    get.model = reference.model
    switch reference.selector {
    case .alias(let alias): get.alias = alias
    case .version(let number): get.version = number
    case .latest: break
    }
    // The file, as the registry sends it after the version.
    let (version, file) = try await registry.downloadVersion(get, options: Self.call) {
      responses -> (RegistryV1.ModelVersion?, [UInt8]) in
      var version: RegistryV1.ModelVersion?
      var file: [UInt8] = []
      for try await response in responses {
        switch response.part {
        case .version(let header): version = header
        case .chunk(let chunk): file += chunk
        case nil: break
        }
      }
      return (version, file)
    }
    guard let version else { throw RPCError(.unavailable, "the registry sent no version for \(reference)") }
    let front = try FrontEnd(file, name: "\(version.organization)/\(version.model) v\(version.version)")
    let model: Model
    do {
      model = try Model(onnx: file)
    } catch {
      throw RPCError(.failedPrecondition, "\(version.model) v\(version.version) does not load: \(error)")
    }
    guard let input = model.inputs.first?.name, let output = model.outputs.first?.name else {
      throw RPCError(.failedPrecondition, "\(version.model) v\(version.version) has no input or output")
    }

    let embedding = ClipEmbedding(mels: front.mels, pcen: front.pcen, seed: 0)
    var response = AudioV1.PredictResponse()
    response.model = "\(version.organization)/\(version.model)"
    response.version = version.version
    response.positiveClass = front.positive
    var after = ""
    while true {
      let page = try await store.clips(
        of: Int64(dataset.datasetId)!, label: request.all ? nil : "", after: after, limit: 1000)
      for clip in page {
        let bytes = try await blobs.read(try BlobDigest(hex: clip.digest))
        let spectrogram: [Float]
        do {
          spectrogram = try embedding.features(bytes, name: clip.name)
        } catch {
          throw RPCError(.dataLoss, "stored clip \(clip.digest) (\(clip.name)) no longer decodes: \(error.message)")
        }
        let probabilities = try model.run([
          input: Tensor(shape: [1, 1, front.mels, embedding.frames], elements: spectrogram)
        ])[
          output]!.doubles()
        var prediction = AudioV1.Prediction()
        prediction.audioUrl = clip.source
        prediction.duration = clip.duration
        prediction.location = clip.location
        prediction.timestamp = clip.timestamp
        prediction.digest = clip.digest
        prediction.label = clip.label
        for (index, name) in front.classes.enumerated() where index < probabilities.count {
          prediction.scores[name] = probabilities[index]
        }
        prediction.predictedValue = prediction.scores[front.positive] ?? 0
        response.predictions.append(prediction)
      }
      guard page.count == 1000, let last = page.last else { break }
      after = last.digest
    }
    return response
  }

  /// A trained file's front end, from its ONNX metadata.
  struct FrontEnd {
    var mels: Int
    var pcen: Bool
    var classes: [String]
    var positive: String

    init(_ file: [UInt8], name: String) throws(RPCError) {
      let metadata: [String: String]
      do {
        let proto = try Onnx.ModelProto(serializedBytes: file)
        metadata = Dictionary(proto.metadataProps.map { ($0.key, $0.value) }) { first, _ in first }
      } catch {
        throw RPCError(.failedPrecondition, "\(name) is not an ONNX file: \(error)")
      }
      guard let mels = metadata["shoal.audio.mels"].flatMap(Int.init), let classes = metadata["shoal.audio.classes"],
        let positive = metadata["shoal.audio.positive_class"]
      else {
        throw RPCError(
          .failedPrecondition,
          "\(name) has no shoal.audio front end in its metadata: predict with a version `shoal audio train` made")
      }
      self.mels = mels
      pcen = metadata["shoal.audio.features"] == "pcen"
      self.classes = classes.split(separator: ",").map(String.init)
      self.positive = positive
    }
  }
}
