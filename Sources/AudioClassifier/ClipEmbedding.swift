import Foundation
import ShoalAudio
import ShoalModel
import ShoalProto

/// What the classifier sees of a clip, and the fixed convolutional embedding a dense head is
/// trained on.
///
/// Front end: the clip mixed to mono, resampled to 22,050 Hz, cut or padded to 3 s, a 64-band
/// log-mel (or PCEN) spectrogram of 130 frames, standardised per clip (its own mean and
/// deviation: a quiet hydrophone and a loud one give the same input, and the gain of real
/// recordings varies far more than a synthetic set's).
///
/// Embedding: three 3×3 convolutions with ReLU (1→16, 16→32, 32→64 channels; the first two
/// followed by a 2×2 max pool), then each channel's mean and maximum over time and frequency (128
/// numbers), and each band's mean and deviation over time (2 × mels). Its weights are random (He-scaled, from a seed) and fixed: random convolutional
/// features under a trained head, so that training stays a HeadTrainer run on OpenBLAS and a
/// few dozen labels do not overfit a convolution.
struct ClipEmbedding: Sendable {
  static let sampleRate = 22_050
  static let seconds = 3.0
  /// The random convolutions' part of the embedding.
  static let convolutionFeatures = 128
  static let input = "spectrogram"
  static let output = "embedding"

  let mels: Int
  let pcen: Bool
  let seed: UInt64

  var frames: Int { 1 + Int((Self.seconds * Double(Self.sampleRate)).rounded()) / 512 }

  /// The embedding's length: the convolutions' 128, then each band's mean and deviation over time.
  var embeddingSize: Int { Self.convolutionFeatures + 2 * mels }

  /// The standardised spectrogram of one clip's bytes, [1, 1, mels, frames].
  func features(_ bytes: [UInt8], name: String) throws(AudioError) -> [Float] {
    features(samples: try samples(bytes, name: name))
  }

  /// A clip's samples as the front end takes them: mono, 22,050 Hz, cut or padded to 3 s.
  func samples(_ bytes: [UInt8], name: String) throws(AudioError) -> [Float] {
    try Audio(bytes: bytes, name: name).mono().resampled(to: Self.sampleRate)
      .fitted(to: Int((Self.seconds * Double(Self.sampleRate)).rounded())).samples
  }

  /// The standardised spectrogram of front-end samples.
  func features(samples: [Float]) -> [Float] {
    let spectrum = Spectrogram.features(samples, sampleRate: Self.sampleRate, mels: mels, pcen: pcen)
    let values = spectrum.values
    let mean = values.reduce(0, +) / Float(values.count)
    let deviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)).squareRoot()
    // A silent clip has no deviation: it stays all zeros.
    return values.map { deviation > 1e-6 ? ($0 - mean) / deviation : 0 }
  }

  /// The embedding as an ONNX graph from `spectrogram` [N, 1, mels, frames] to `embedding` [N, 128].
  func onnx() throws(ModelError) -> [UInt8] {
    var graph = OnnxGraphBuilder(name: "shoal-audio-embedding", opset: 13)
    graph.input(Self.input, .float32, [.symbolic("N"), .fixed(1), .fixed(mels), .fixed(frames)])
    var generator = SeededRandom(seed: seed)
    // Normal deviates by Box–Muller.
    func normal() -> Float {
      let (u, v) = (Double.random(in: 1e-12..<1, using: &generator), Double.random(in: 0..<1, using: &generator))
      return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
    var x = Self.input
    for (index, (inputs, outputs)) in [(1, 16), (16, 32), (32, 64)].enumerated() {
      let scale = (2 / Float(inputs * 9)).squareRoot()
      let weights = (0..<(outputs * inputs * 9)).map { _ in normal() * scale }
      graph.initializer("w\(index)", Tensor(shape: [outputs, inputs, 3, 3], elements: weights))
      graph.initializer("b\(index)", Tensor(shape: [outputs], elements: [Float](repeating: 0, count: outputs)))
      graph.node("Conv", [x, "w\(index)", "b\(index)"], ["c\(index)"], attributes: ["pads": .ints([1, 1, 1, 1])])
      graph.node("Relu", ["c\(index)"], ["r\(index)"])
      x = "r\(index)"
      if index < 2 {
        graph.node(
          "MaxPool", [x], ["p\(index)"], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        x = "p\(index)"
      }
    }
    graph.node("GlobalAveragePool", [x], ["mean"])
    graph.node("GlobalMaxPool", [x], ["max"])
    graph.node("Concat", ["mean", "max"], ["pooled"], attributes: ["axis": .int(1)])
    graph.node("Flatten", ["pooled"], ["convolved"], attributes: ["axis": .int(1)])
    // Each band's mean and deviation over time: the summary a linear model would be given.
    graph.node("ReduceMean", [Self.input], ["bandMean"], attributes: ["axes": .ints([3]), "keepdims": .int(0)])
    graph.node("Mul", [Self.input, Self.input], ["squared"])
    graph.node("ReduceMean", ["squared"], ["bandSquare"], attributes: ["axes": .ints([3]), "keepdims": .int(0)])
    graph.node("Mul", ["bandMean", "bandMean"], ["meanSquared"])
    graph.node("Sub", ["bandSquare", "meanSquared"], ["variance"])
    graph.node("Relu", ["variance"], ["nonNegative"])
    graph.node("Sqrt", ["nonNegative"], ["bandDeviation"])
    graph.node("Flatten", ["bandMean"], ["means"], attributes: ["axis": .int(1)])
    graph.node("Flatten", ["bandDeviation"], ["deviations"], attributes: ["axis": .int(1)])
    graph.node("Concat", ["convolved", "means", "deviations"], [Self.output], attributes: ["axis": .int(1)])
    graph.output(Self.output, .float32, [.symbolic("N"), .fixed(embeddingSize)])
    return try graph.bytes()
  }

  /// `model` with the front end's parameters in its ONNX metadata, so that whoever loads the
  /// file knows how to make its input.
  func withMetadata(_ model: [UInt8], classes: [String], positive: String) throws -> [UInt8] {
    var proto = try Onnx.ModelProto(serializedBytes: model)
    let entries = [
      "shoal.audio.sample_rate": "\(Self.sampleRate)", "shoal.audio.seconds": "\(Self.seconds)",
      "shoal.audio.n_fft": "2048", "shoal.audio.hop": "512", "shoal.audio.mels": "\(mels)",
      "shoal.audio.mel_scale": "slaney", "shoal.audio.features": pcen ? "pcen" : "log-mel",
      "shoal.audio.standardised": "per clip", "shoal.audio.classes": classes.joined(separator: ","),
      "shoal.audio.positive_class": positive, "shoal.audio.embedding_seed": "\(seed)",
    ]
    proto.metadataProps = entries.sorted { $0.key < $1.key }.map { key, value in
      var entry = Onnx.StringStringEntryProto()
      entry.key = key
      entry.value = value
      return entry
    }
    return try proto.serializedBytes()
  }
}
