import Foundation
import ShoalModel
import ShoalProto
import ShoalRPC

/// The best classes of each row of a classification model's scores.
enum TopClasses {
  /// The k best classes of each row of the scores output: the first floating-point output of
  /// shape [rows, classes], preferring one with as many columns as the version names classes.
  /// Scores already in [0, 1] (softmax or sigmoid outputs) are given as they are; logits go
  /// through a softmax first.
  static func rows(
    of outputs: [String: Tensor], outputNames: [String], classes: [RegistryV1.ClassLabel], k: Int
  ) throws(RPCError) -> [InferenceV1.TopClasses] {
    let candidates = outputNames.compactMap { name -> Tensor? in
      guard let tensor = outputs[name], tensor.rank == 2, tensor.dataType.isFloatingPoint else { return nil }
      return tensor
    }
    guard let scores = candidates.first(where: { $0.shape[1] == classes.count }) ?? candidates.first else {
      throw RPCError(
        .invalidArgument, "top_k needs a classification output of shape [rows, classes]; this model has none")
    }
    let columns = scores.shape[1]
    let values = scores.doubles()
    let probabilities = values.allSatisfy { $0 >= 0 && $0 <= 1 }
    return (0..<scores.shape[0]).map { row in
      var line = Array(values[(row * columns)..<((row + 1) * columns)])
      if !probabilities, let largest = line.max(), largest.isFinite {
        let exponentials = line.map { exp($0 - largest) }
        let total = exponentials.reduce(0, +)
        line = exponentials.map { $0 / total }
      }
      let best = line.indices.sorted { line[$0] > line[$1] || (line[$0] == line[$1] && $0 < $1) }.prefix(k)
      var top = InferenceV1.TopClasses()
      top.classes = best.map { index in
        var score = InferenceV1.ClassScore()
        score.index = Int32(index)
        score.score = Float(line[index])
        if index < classes.count {
          score.name = classes[index].name
          score.color = classes[index].color
        } else {
          score.name = "\(index)"
        }
        return score
      }
      return top
    }
  }
}
