public import Hummingbird
import NIOCore

/// The request context of the gateway: Hummingbird's, plus whether the peer is on this host.
public struct GatewayContext: RequestContext {
  public var coreContext: CoreRequestContextStorage
  /// Whether the peer connected from a loopback address, where a call without a token is the
  /// mesh's own (as a peer on a service's Unix socket is).
  public let isLoopbackPeer: Bool

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    isLoopbackPeer = Self.isLoopback(source.channel.remoteAddress)
  }

  static func isLoopback(_ address: SocketAddress?) -> Bool {
    guard let ip = address?.ipAddress else { return false }
    return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
  }
}
