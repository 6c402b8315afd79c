// What a TCP connection is set up with: buffers, options, timers, congestion control.

/// The states of a TCP connection (RFC 9293 §3.3.2).
public enum TCPState: String, Hashable, Sendable {
    case closed = "CLOSED"
    case listen = "LISTEN"
    case synSent = "SYN-SENT"
    case synReceived = "SYN-RECEIVED"
    case established = "ESTABLISHED"
    case finWait1 = "FIN-WAIT-1"
    case finWait2 = "FIN-WAIT-2"
    case closeWait = "CLOSE-WAIT"
    case closing = "CLOSING"
    case lastAck = "LAST-ACK"
    case timeWait = "TIME-WAIT"

    /// Whether the connection is synchronized (RFC 9293 §3.10.7.4's "other states").
    public var isSynchronized: Bool {
        switch self {
        case .closed, .listen, .synSent, .synReceived: return false
        default: return true
        }
    }

    /// Whether this side may still send data.
    public var canSend: Bool { self == .established || self == .closeWait }

    /// Whether data from the peer is still accepted.
    public var canReceive: Bool {
        self == .established || self == .finWait1 || self == .finWait2
    }
}

/// Keepalive probes (RFC 9293 §3.8.4; RFC 1122 §4.2.3.6): off by default.
public struct TCPKeepalive: Hashable, Sendable {
    /// Idle time before the first probe (at least two hours by default, RFC 1122).
    public var idle: Duration = .seconds(7200)
    /// Time between unanswered probes.
    public var interval: Duration = .seconds(75)
    /// Unanswered probes before the connection is dropped.
    public var count = 9

    public init(idle: Duration = .seconds(7200), interval: Duration = .seconds(75), count: Int = 9)
    {
        self.idle = idle
        self.interval = interval
        self.count = count
    }
}

/// A connection's settings, socket-option like.
///
/// ```swift
/// var configuration = TCPConfiguration()
/// configuration.noDelay = true                  // TCP_NODELAY
/// configuration.congestion = .newReno           // TCP_CONGESTION
/// configuration.keepalive = TCPKeepalive(idle: .seconds(60))
/// ```
public struct TCPConfiguration: Hashable, Sendable {
    /// The receive buffer (the most the window offers) and the send buffer, bytes.
    public var receiveBufferSize = 256 * 1024
    public var sendBufferSize = 256 * 1024
    /// Send segments as soon as there is data, without Nagle's wait for the
    /// outstanding data's acknowledgment (RFC 9293 §3.7.4; TCP_NODELAY).
    public var noDelay = false
    /// Offer window scaling, timestamps and SACK (RFC 7323, RFC 2018).
    public var windowScaling = true
    public var timestamps = true
    public var selectiveAcknowledgments = true
    /// The congestion control algorithm (TCP_CONGESTION).
    public var congestion: CongestionAlgorithm = .cubic
    /// How long an acknowledgment may wait for data to ride on, at most (RFC 9293
    /// §3.8.6.3: less than 0.5 s; RFC 5681 §4.2: an ACK at least every second full
    /// segment). Linux's least delay, 40 ms.
    public var delayedAcknowledgment: Duration = .milliseconds(40)
    /// Keepalive probes, or nil (the default, RFC 1122 §4.2.3.6: off unless asked).
    public var keepalive: TCPKeepalive? = nil
    /// The retransmission timeout's bounds and start (RFC 6298).
    public var initialRetransmissionTimeout: Duration = .seconds(1)
    public var minimumRetransmissionTimeout: Duration = .milliseconds(200)
    public var maximumRetransmissionTimeout: Duration = .seconds(120)
    /// Retransmissions of a SYN before the connection attempt fails (R2 for SYNs,
    /// RFC 9293 §3.8.3: at least 3 minutes; with the backoff, 6 retries take 127 s).
    public var synRetries = 6
    /// Retransmissions of data before the connection fails (R2, RFC 9293 §3.8.3: at
    /// least 100 s; 15 with the backoff is about 15 minutes, as Linux).
    public var dataRetries = 15
    /// How long a connection stays in TIME-WAIT: 2·MSL (RFC 9293 §3.4.2; Linux's 60 s).
    public var timeWait: Duration = .seconds(60)
    /// How long FIN-WAIT-2 waits for the peer's FIN once the application has closed.
    public var finWait2Timeout: Duration = .seconds(60)

    public init() {}
}

/// What a connection tells its owner since it was last asked (the layer drains these
/// after every call into the connection).
public struct TCPEvents: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The handshake completed.
    public static let established = TCPEvents(rawValue: 1)
    /// Bytes arrived in order, or the peer finished sending.
    public static let readable = TCPEvents(rawValue: 2)
    /// Room opened in the send buffer.
    public static let writable = TCPEvents(rawValue: 4)
    /// The connection closed (see ``TCPControlBlock/closeReason``).
    public static let closed = TCPEvents(rawValue: 8)
}

/// Why a connection closed, as the transport sees it.
public enum TCPCloseReason: Hashable, Sendable {
    /// Both sides finished (or this side aborted: the application asked).
    case normal
    /// A reset answered our SYN: nothing listens there.
    case refused
    /// The peer reset the connection.
    case reset
    /// Retransmissions or keepalive probes went unanswered.
    case timedOut
    /// ICMP said the destination is unreachable while connecting.
    case unreachable
}

/// Counters of one connection, as `ss -ti` shows them.
public struct TCPStatistics: Hashable, Sendable {
    public var segmentsSent: UInt64 = 0
    public var segmentsReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var bytesAcknowledged: UInt64 = 0
    /// Segments sent again: by timeout, by fast retransmit or SACK recovery.
    public var retransmissions: UInt64 = 0
    public var timeouts: UInt64 = 0
    public var fastRetransmissions: UInt64 = 0
    /// Segments that arrived out of order, and duplicates.
    public var outOfOrderSegments: UInt64 = 0
    public var duplicateSegments: UInt64 = 0
    /// Challenge ACKs sent (RFC 5961).
    public var challengeAcks: UInt64 = 0
    public var zeroWindowProbes: UInt64 = 0
    /// Tail loss probes sent (RFC 8985 §7): a segment sent before the timeout, so
    /// that a loss at the end of a flight is repaired by fast recovery.
    public var tailLossProbes: UInt64 = 0
    /// Retransmissions found lost (data sent after them was SACKed) and sent again
    /// without waiting for the timeout.
    public var lostRetransmissions: UInt64 = 0

    public init() {}
}
