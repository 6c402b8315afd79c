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
    // The settings live in one shared, copy-on-write box: every connection of a layer
    // holds the layer's (8 bytes, not the settings' 184), and one that sets an option
    // of its own gets its own box.
    struct Values: Hashable, Sendable {
        var receiveBufferSize: Int = 256 * 1024
        var sendBufferSize: Int = 256 * 1024
        var noDelay: Bool = false
        var windowScaling: Bool = true
        var timestamps: Bool = true
        var selectiveAcknowledgments: Bool = true
        var congestion: CongestionAlgorithm = .cubic
        var delayedAcknowledgment: Duration = .milliseconds(40)
        var keepalive: TCPKeepalive? = nil
        var initialRetransmissionTimeout: Duration = .seconds(1)
        var minimumRetransmissionTimeout: Duration = .milliseconds(200)
        var maximumRetransmissionTimeout: Duration = .seconds(120)
        var synRetries: Int = 6
        var dataRetries: Int = 15
        var timeWait: Duration = .seconds(60)
        var finWait2Timeout: Duration = .seconds(60)
    }

    final class Storage: @unchecked Sendable {
        // Mutated only through `unique()`, when no other configuration shares it.
        var values: Values
        init(_ values: Values) { self.values = values }
    }

    private var storage: Storage

    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.values) }
        return storage
    }

    /// The receive buffer (the most the window offers) and the send buffer, bytes.
    public var receiveBufferSize: Int {
        get { storage.values.receiveBufferSize }
        set { unique().values.receiveBufferSize = newValue }
    }
    public var sendBufferSize: Int {
        get { storage.values.sendBufferSize }
        set { unique().values.sendBufferSize = newValue }
    }
    /// Send segments as soon as there is data, without Nagle's wait for the
    /// outstanding data's acknowledgment (RFC 9293 §3.7.4; TCP_NODELAY).
    public var noDelay: Bool {
        get { storage.values.noDelay }
        set { unique().values.noDelay = newValue }
    }
    /// Offer window scaling, timestamps and SACK (RFC 7323, RFC 2018).
    public var windowScaling: Bool {
        get { storage.values.windowScaling }
        set { unique().values.windowScaling = newValue }
    }
    public var timestamps: Bool {
        get { storage.values.timestamps }
        set { unique().values.timestamps = newValue }
    }
    public var selectiveAcknowledgments: Bool {
        get { storage.values.selectiveAcknowledgments }
        set { unique().values.selectiveAcknowledgments = newValue }
    }
    /// The congestion control algorithm (TCP_CONGESTION).
    public var congestion: CongestionAlgorithm {
        get { storage.values.congestion }
        set { unique().values.congestion = newValue }
    }
    /// How long an acknowledgment may wait for data to ride on, at most (RFC 9293
    /// §3.8.6.3: less than 0.5 s; RFC 5681 §4.2: an ACK at least every second full
    /// segment). Linux's least delay, 40 ms.
    public var delayedAcknowledgment: Duration {
        get { storage.values.delayedAcknowledgment }
        set { unique().values.delayedAcknowledgment = newValue }
    }
    /// Keepalive probes, or nil (the default, RFC 1122 §4.2.3.6: off unless asked).
    public var keepalive: TCPKeepalive? {
        get { storage.values.keepalive }
        set { unique().values.keepalive = newValue }
    }
    /// The retransmission timeout's bounds and start (RFC 6298).
    public var initialRetransmissionTimeout: Duration {
        get { storage.values.initialRetransmissionTimeout }
        set { unique().values.initialRetransmissionTimeout = newValue }
    }
    public var minimumRetransmissionTimeout: Duration {
        get { storage.values.minimumRetransmissionTimeout }
        set { unique().values.minimumRetransmissionTimeout = newValue }
    }
    public var maximumRetransmissionTimeout: Duration {
        get { storage.values.maximumRetransmissionTimeout }
        set { unique().values.maximumRetransmissionTimeout = newValue }
    }
    /// Retransmissions of a SYN before the connection attempt fails (R2 for SYNs,
    /// RFC 9293 §3.8.3: at least 3 minutes; with the backoff, 6 retries take 127 s).
    public var synRetries: Int {
        get { storage.values.synRetries }
        set { unique().values.synRetries = newValue }
    }
    /// Retransmissions of data before the connection fails (R2, RFC 9293 §3.8.3: at
    /// least 100 s; 15 with the backoff is about 15 minutes, as Linux).
    public var dataRetries: Int {
        get { storage.values.dataRetries }
        set { unique().values.dataRetries = newValue }
    }
    /// How long a connection stays in TIME-WAIT: 2·MSL (RFC 9293 §3.4.2; Linux's 60 s).
    public var timeWait: Duration {
        get { storage.values.timeWait }
        set { unique().values.timeWait = newValue }
    }
    /// How long FIN-WAIT-2 waits for the peer's FIN once the application has closed.
    public var finWait2Timeout: Duration {
        get { storage.values.finWait2Timeout }
        set { unique().values.finWait2Timeout = newValue }
    }

    public init() { storage = Storage(Values()) }

    public static func == (lhs: TCPConfiguration, rhs: TCPConfiguration) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.values == rhs.storage.values
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(storage.values) }
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
    // Bytes and segments count in 64 bits; the rarer events in 32 (wrapping), which
    // keeps the counters at 76 bytes of every connection, not 112.
    public var segmentsSent: UInt64 = 0
    public var segmentsReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var bytesAcknowledged: UInt64 = 0
    /// Segments sent again: by timeout, by fast retransmit or SACK recovery.
    public var retransmissions: UInt64 {
        get { UInt64(_retransmissions) }
        set { _retransmissions = UInt32(truncatingIfNeeded: newValue) }
    }
    public var timeouts: UInt64 {
        get { UInt64(_timeouts) }
        set { _timeouts = UInt32(truncatingIfNeeded: newValue) }
    }
    public var fastRetransmissions: UInt64 {
        get { UInt64(_fastRetransmissions) }
        set { _fastRetransmissions = UInt32(truncatingIfNeeded: newValue) }
    }
    /// Segments that arrived out of order, and duplicates.
    public var outOfOrderSegments: UInt64 {
        get { UInt64(_outOfOrderSegments) }
        set { _outOfOrderSegments = UInt32(truncatingIfNeeded: newValue) }
    }
    public var duplicateSegments: UInt64 {
        get { UInt64(_duplicateSegments) }
        set { _duplicateSegments = UInt32(truncatingIfNeeded: newValue) }
    }
    /// Challenge ACKs sent (RFC 5961).
    public var challengeAcks: UInt64 {
        get { UInt64(_challengeAcks) }
        set { _challengeAcks = UInt32(truncatingIfNeeded: newValue) }
    }
    public var zeroWindowProbes: UInt64 {
        get { UInt64(_zeroWindowProbes) }
        set { _zeroWindowProbes = UInt32(truncatingIfNeeded: newValue) }
    }
    /// Tail loss probes sent (RFC 8985 §7): a segment sent before the timeout, so
    /// that a loss at the end of a flight is repaired by fast recovery.
    public var tailLossProbes: UInt64 {
        get { UInt64(_tailLossProbes) }
        set { _tailLossProbes = UInt32(truncatingIfNeeded: newValue) }
    }
    /// Retransmissions found lost (data sent after them was SACKed) and sent again
    /// without waiting for the timeout.
    public var lostRetransmissions: UInt64 {
        get { UInt64(_lostRetransmissions) }
        set { _lostRetransmissions = UInt32(truncatingIfNeeded: newValue) }
    }

    private var _retransmissions: UInt32 = 0
    private var _timeouts: UInt32 = 0
    private var _fastRetransmissions: UInt32 = 0
    private var _outOfOrderSegments: UInt32 = 0
    private var _duplicateSegments: UInt32 = 0
    private var _challengeAcks: UInt32 = 0
    private var _zeroWindowProbes: UInt32 = 0
    private var _tailLossProbes: UInt32 = 0
    private var _lostRetransmissions: UInt32 = 0

    public init() {}
}
