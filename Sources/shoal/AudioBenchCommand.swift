import ArgumentParser
import Foundation
import ShoalAudio
import Synchronization

/// `shoal bench-audio-features`: Shoal's side of scripts/bench-audio's spectrogram throughput. Each
/// clip is decoded, mixed to mono, resampled to `--sr` and turned into a log-mel spectrogram with
/// librosa's defaults, as `librosa.load` + `melspectrogram` + `power_to_db` do; `--threads`
/// clips at once, with large buffers kept for reuse (`AudioMemory`). Prints `clips=… seconds=… clips_per_s=…`.
struct AudioBenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-audio-features", abstract: "Time log-mel spectrograms of clips (scripts/bench-audio).",
    shouldDisplay: false)

  @Argument(help: "The clips.") var clips: [String]
  @Option(help: "The sample rate clips are resampled to.") var sr = 22_050
  @Option(help: "Clips computed at once.") var threads = 1
  @Option(help: "Passes over the clips.") var passes = 1

  func run() async throws {
    AudioMemory.keepLargeBuffers()
    let work = (0..<passes).flatMap { _ in clips }
    let shared = Shared()
    let started = ContinuousClock.now
    let sr = sr
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<max(1, threads) {
        group.addTask {
          while true {
            let index = shared.next.withLock { value in
              defer { value += 1 }
              return value
            }
            guard index < work.count else { return }
            do {
              let y = try Audio(contentsOf: work[index]).mono().resampled(to: sr).samples
              _ = Spectrogram.powerToDB(Spectrogram.mel(y, sampleRate: sr))
            } catch {
              shared.failures.withLock { $0.append("\(error)") }
            }
          }
        }
      }
    }
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    for failure in shared.failures.withLock({ $0 }) { logLine("bench-audio-features", failure) }
    emit(
      "clips=\(work.count) seconds=\(String(format: "%.3f", seconds)) "
        + "clips_per_s=\(String(format: "%.1f", Double(work.count) / seconds)) threads=\(threads)")
  }

  /// The next clip to take and the failures, shared by the workers.
  private final class Shared: Sendable {
    let next = Mutex(0)
    let failures = Mutex<[String]>([])
  }
}
