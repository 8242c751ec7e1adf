public import ShoalClient
public import ShoalProto
public import ShoalRPC
public import ShoalServiceStubs

/// The services the gateway calls, through the SDK, and the options that carry a caller's token.
///
/// The gateway keeps nothing of its own: every request becomes calls into the mesh with the
/// caller's `Authorization` header passed on, so the services check the token and apply the
/// organisation isolation as they do over RPC.
public struct GatewayMesh: Sendable {
  /// Experiments, runs, metrics and artifacts.
  public let tracking: TrackingV1.Tracking.Client
  /// Models, versions and aliases.
  public let models: RegistryV1.ModelRegistry.Client
  /// Loaded models and predictions.
  public let inference: InferenceV1.Inference.Client
  /// Prediction sets, validity and review.
  public let feedback: FeedbackV1.Feedback.Client
  /// Clips, labels and active learning.
  public let audio: AudioV1.AudioClassifier.Client
  /// Train-evaluate-promote pipelines.
  public let pipelines: PipelineV1.Pipelines.Client

  /// The services of the mesh `client` reaches.
  public init(_ client: ShoalClient) {
    self.init(
      tracking: client.channel(for: "tracking"), registry: client.registry, inference: client.channel(for: "inference"),
      feedback: client.channel(for: "feedback"), audio: client.channel(for: "audio-classifier"),
      pipelines: client.channel(for: "pipeline"))
  }

  /// The services on these channels (tests give each its own).
  public init(
    tracking: any RPCChannel, registry: any RPCChannel, inference: any RPCChannel, feedback: any RPCChannel,
    audio: any RPCChannel, pipelines: any RPCChannel
  ) {
    self.tracking = TrackingV1.Tracking.Client(tracking)
    self.models = RegistryV1.ModelRegistry.Client(registry)
    self.inference = InferenceV1.Inference.Client(inference)
    self.feedback = FeedbackV1.Feedback.Client(feedback)
    self.audio = AudioV1.AudioClassifier.Client(audio)
    self.pipelines = PipelineV1.Pipelines.Client(pipelines)
  }
}

/// Who a request calls the mesh as: its bearer token, or none (the mesh's own, from loopback).
public struct GatewayCaller: Sendable {
  /// `Bearer …`, as it came.
  public let authorization: String?

  /// Options for one call into the mesh on the caller's behalf.
  public func options(timeout: Duration = .seconds(30)) -> CallOptions {
    var options = CallOptions(timeout: timeout)
    if let authorization { options.metadata.add("authorization", authorization) }
    return options
  }
}
