/// Settings of one side of a connection, with gRPC's defaults where gRPC has one.
public struct ConnectionConfig: Sendable {
  /// Compression of outgoing messages.
  public struct Compression: Sendable {
    /// Whether to compress at all (and to accept compressed messages from the peer).
    public var enabled: Bool
    /// Messages smaller than this are sent as they are.
    public var threshold: Int
    /// The zstd level (1 is fastest).
    public var level: Int32

    /// On, from 512 bytes, level 1.
    public static var defaults: Compression { Compression(enabled: true, threshold: 512, level: 1) }
  }

  /// Keepalive pings on an idle connection.
  public struct Keepalive: Sendable {
    /// Send a PING after this long without reading anything; nil disables keepalive.
    public var interval: Duration?
    /// Close the connection if the PONG has not come back after this long.
    public var timeout: Duration

    /// A ping after 30 s of silence, 20 s to answer (gRPC's keepalive timeout).
    public static var defaults: Keepalive { Keepalive(interval: .seconds(30), timeout: .seconds(20)) }
  }

  /// The largest message this side accepts (and tells the peer in HELLO); larger ones fail
  /// their call with RESOURCE_EXHAUSTED.
  public var maxMessageSize: Int
  /// The largest CALL, STATUS or GOAWAY payload this side accepts.
  public var maxFrameSize: Int
  /// Bytes the peer may send on a new stream before this side grants more with WINDOW.
  public var initialWindow: Int
  /// Streams a peer may have open at once; more are refused with RESOURCE_EXHAUSTED.
  public var maxConcurrentStreams: Int
  /// Outgoing compression.
  public var compression: Compression
  /// Keepalive pings.
  public var keepalive: Keepalive
  /// The name this side gives in HELLO.
  public var peerName: String
  /// Certificates for `tls://` addresses, and whether tokens may cross plaintext TCP.
  public var security: TransportSecurity = .process

  /// 4 MiB messages (gRPC's default), 64 KiB header frames, a 1 MiB stream window, 1,000
  /// concurrent streams, zstd from 512 bytes, pings after 30 s idle, and the process's
  /// `TransportSecurity`.
  public static var defaults: ConnectionConfig {
    ConnectionConfig(
      maxMessageSize: 4 << 20, maxFrameSize: 64 << 10, initialWindow: 1 << 20, maxConcurrentStreams: 1000,
      compression: .defaults, keepalive: .defaults, peerName: "shoal"
    )
  }
}
