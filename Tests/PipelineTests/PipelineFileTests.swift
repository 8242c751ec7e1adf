import Foundation
import ShoalProto
import Testing

@testable import Pipeline

/// Pipeline files: a whole one read as written, and each kind of mistake refused naming its field.
struct PipelineFileTests {
  static let complete = """
    { "model": "orca", "source": { "audio_dataset": "calls" }, "test": { "audio_dataset": "calls-test" },
      "triggers": { "labels": 20, "every_seconds": 3600 },
      "steps": [
        { "step": "load" }, { "step": "validate", "min_per_class": 4, "max_imbalance": 5 },
        { "step": "tune", "hidden_sizes": [32, 64] }, { "step": "train", "epochs": 40, "seed": 7 },
        { "step": "evaluate" }, { "step": "decide", "margin": 0.02, "max_class_regression": 0.1 },
        { "step": "promote", "canary": true },
        { "step": "notify", "webhook": "https://hooks.slack.com/services/x", "format": "slack" } ] }
    """

  func parse(_ text: String) throws -> PipelineFile {
    try PipelineFile(json: Data(text.utf8), file: "/p/loop.json")
  }

  @Test func aCompleteFileIsReadAsWritten() throws {
    let pipeline = try parse(Self.complete)
    #expect(pipeline.name == "loop" && pipeline.model == "orca" && pipeline.organization == "local")
    #expect(pipeline.steps.map(\.kind) == PipelineFile.stepKinds)
    #expect(pipeline.triggerLabels == 20 && pipeline.triggerEverySeconds == 3600)
    #expect(pipeline.minPerClass == 4 && pipeline.maxImbalance == 5 && pipeline.hiddenSizes == [32, 64])
    #expect(pipeline.epochs == 40 && pipeline.seed == 7 && pipeline.margin == 0.02 && pipeline.canary)
    #expect(pipeline.webhookFormat == "slack" && pipeline.testDataset == "calls-test")
  }

  @Test(arguments: [
    (#"{ "source": { "audio_dataset": "a" }, "steps": [ { "step": "load" } ] }"#, "key 'model' is missing"),
    (#"{ "model": "m", "steps": [ { "step": "load" } ] }"#, "key 'source' is missing"),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load" }, { "step": "deploy" } ] }"#,
      "key 'steps[1].step' 'deploy' is not a step"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load", "after": ["train"] }, { "step": "train", "after": ["load"] } ] }"#,
      "have a cycle"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load" }, { "step": "train" }, { "step": "evaluate" } ] }"#,
      "key 'test.audio_dataset' is missing"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load" }, { "step": "promote" } ] }"#,
      "'promote' needs a 'decide' step before it"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load" }, { "step": "train", "epochs": 0 } ] }"#,
      "key 'steps[1].epochs' must be a whole number from 1"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load", "retries": 3 } ] }"#,
      "key 'steps[0].retries' is not known"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "test": { "audio_dataset": "a" }, "steps": [ { "step": "load" } ] }"#,
      "is the training set"
    ),
    (
      #"{ "model": "m", "source": { "audio_dataset": "a" }, "steps": [ { "step": "load" }, { "step": "load" } ] }"#,
      "'load' is listed twice"
    ),
    (
      #"{ "model": "m", "source": { "feedback_set": "3" }, "steps": [ { "step": "load" } ] }"#,
      "key 'source.backbone' is missing"
    ),
    (
      #"{ "model": "m", "source": { "feedback_set": "3", "backbone": "b@production", "embedding_output": "f" }, "test": { "audio_dataset": "t" }, "steps": [ { "step": "load" } ] }"#,
      "key 'test.audio_dataset' is not known"
    ),
    ("[1, 2]", "must be a JSON object"),
    ("{ not json", "is not valid JSON"),
  ])
  func mistakesAreRefusedNamingTheField(_ text: String, _ expected: String) {
    do {
      _ = try parse(text)
      Issue.record("accepted: \(text)")
    } catch {
      #expect("\(error)".hasPrefix("pipeline file /p/loop.json") && "\(error)".contains(expected), "\(error)")
    }
  }

  @Test func stepsRunInTheOrderTheirAfterSays() throws {
    let pipeline = try parse(
      #"""
      { "model": "m", "source": { "audio_dataset": "a" },
        "steps": [ { "step": "train", "after": ["validate"] }, { "step": "validate", "after": ["load"] },
          { "step": "load", "after": [] } ] }
      """#)
    #expect(pipeline.steps.map(\.kind) == ["load", "validate", "train"])
  }

  @Test func scoresAreAccuracyPrecisionRecallAndCalibration() {
    let examples: [(label: String, scores: [String: Double])] = [
      ("call", ["call": 0.9, "noise": 0.1]), ("call", ["call": 0.3, "noise": 0.7]),
      ("noise", ["call": 0.2, "noise": 0.8]), ("noise", ["call": 0.15, "noise": 0.85]),
    ]
    let evaluation = PipelineRunner.score(examples)
    #expect(evaluation.accuracy == 0.75 && evaluation.clips == 4)
    #expect(evaluation.recall == ["call": 0.5, "noise": 1] && evaluation.precision["noise"] == 2.0 / 3)
    // Bins: 0.7 (wrong), 0.8 and 0.85 (right), 0.9 (right): |0 − 0.7| + |1 − 0.825|·2 + |1 − 0.9|.
    #expect(abs(evaluation.calibrationError - (0.7 + 0.35 + 0.1) / 4) < 1e-9)
  }

  @Test func theDecisionNeedsTheMarginAndNoClassFallingPastTheLimit() throws {
    let pipeline = try parse(Self.complete)
    var production = PipelineV1.Evaluation()
    production.version = 3
    production.accuracy = 0.80
    production.recall = ["call": 0.8, "noise": 0.8]
    var better = production
    better.accuracy = 0.85
    better.recall = ["call": 0.9, "noise": 0.8]
    #expect(PipelineRunner.decide(pipeline, better, production).0 == "promote")
    var barely = better
    barely.accuracy = 0.81
    let (decision, reasons) = PipelineRunner.decide(pipeline, barely, production)
    #expect(decision == "reject" && reasons[0].contains("does not beat it by the margin 0.020"))
    var lopsided = better
    lopsided.recall = ["call": 1, "noise": 0.6]
    let (lopsidedDecision, lopsidedReasons) = PipelineRunner.decide(pipeline, lopsided, production)
    #expect(lopsidedDecision == "reject" && lopsidedReasons.contains { $0.contains("class noise recall falls") })
    #expect(PipelineRunner.decide(pipeline, barely, nil).0 == "promote")
  }
}
