import Foundation
public import ShoalModel

/// A classifier's per-image class scores as probabilities, whatever its last layer was.
public enum ClassScores {
  /// The rows of a [B, C] (or [C]) output, each as `C` probabilities:
  /// - rows already in [0, 1] are kept as they are: a softmax's (summing to 1) or sigmoids'
  ///   (one probability per class, for multi-label models);
  /// - other rows are logits: a softmax over them, or a sigmoid for a single class.
  public static func probabilities(_ output: Tensor) throws(DetectionOutputError) -> [[Double]] {
    let shape = output.rank == 1 ? [1, output.count] : output.shape
    guard shape.count == 2, shape[1] >= 1 else {
      throw DetectionOutputError(message: "the class scores have shape \(output.shape); expected [batch, classes]")
    }
    let values = output.doubles()
    let classes = shape[1]
    let rows = (0..<shape[0]).map { Array(values[($0 * classes)..<(($0 + 1) * classes)]) }
    guard rows.allSatisfy({ $0.allSatisfy(\.isFinite) }) else {
      throw DetectionOutputError(message: "the class scores hold NaN or infinity")
    }
    let probabilities = rows.allSatisfy { $0.allSatisfy { (0...1).contains($0) } }
    guard !probabilities else { return rows }
    return rows.map { row in
      if classes == 1 { return [1 / (1 + exp(-row[0]))] }
      let top = row.max()!
      let exponentials = row.map { exp($0 - top) }
      let sum = exponentials.reduce(0, +)
      return exponentials.map { $0 / sum }
    }
  }
}
