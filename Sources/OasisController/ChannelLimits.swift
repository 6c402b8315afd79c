// The bounds and timers of a controller's channel to each switch.

/// How long a channel waits and how much it holds for one switch.
///
/// ```swift
/// var limits = ChannelLimits()
/// limits.echoInterval = .seconds(2)
/// limits.deadTimeout = .seconds(6)
/// let controller = try OpenFlowController(service: tcp, port: 6633, limits: limits)
/// ```
public struct ChannelLimits: Sendable {
    /// HELLO and FEATURES_REPLY must both arrive within this time of the connection,
    /// or the channel is closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// After this long without any message from the switch the controller sends an
    /// ECHO_REQUEST.
    public var echoInterval: Duration = .seconds(5)
    /// After this long without any message from the switch (echo replies included), or
    /// with its output blocked because the switch does not read, the channel is closed.
    public var deadTimeout: Duration = .seconds(15)
    /// A request (stats, barrier, features, echo...) unanswered this long fails with
    /// ``ControllerError/timedOut``.
    public var requestTimeout: Duration = .seconds(30)
    /// Requests awaiting their reply at once, per switch; more fail at once with
    /// ``ControllerError/tooManyOutstanding``.
    public var outstandingRequests = 4096
    /// Messages handled from one switch per loop turn before the others get theirs
    /// (a switch that floods cannot stall the rest).
    public var messagesPerTurn = 256
    /// Bytes queued towards one switch beyond what its connection's send buffer holds.
    /// A message that does not fit fails with ``ControllerError/sendQueueFull``; while
    /// anything waits here the switch's own messages are not read (backpressure).
    public var sendQueueLimit = 1 << 20
    /// The connection's send buffer.
    public var sendBuffer = 256 * 1024
    /// The connection's receive buffer.
    public var receiveBuffer = 128 * 1024
    /// Stats entries reassembled for one request (a switch sending endless
    /// `OFPSF_REPLY_MORE` replies fails the request instead of filling memory).
    public var statsEntries = 1 << 20
    /// The `miss_send_len` the controller sets on each switch (SET_CONFIG at join).
    public var missSendLength: UInt16 = 128

    /// The defaults above.
    public init() {}
}
