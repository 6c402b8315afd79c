// The transmission control block (RFC 9293 §3.3.1): one connection's state machine,
// sans I/O. Segments come in through `receive`, segments to send come out of
// `nextSegment`, time passes through `timerFired`; nothing here touches a clock, a
// socket or a buffer pool.

import OasisWire

/// One segment for the layer below to build and send: the header to write, and which
/// bytes of the send buffer ride in it (`payloadOffset` counts from SND.UNA as it
/// stands when the segment is handed out; copy them at once).
///
/// With ``TCPControlBlock/segmentationLimit`` set, a segment may carry several MSS of
/// data: ``segmentSize`` then names the MSS the device is to cut it at (TSO), and
/// the wire sees the segments that cutting makes (the same header on each, sequence
/// numbers counting on, FIN and PSH on the last only).
public struct TCPOutgoingSegment: Hashable, Sendable {
    public var header: TCPRepr
    public var payloadOffset: Int
    public var payloadLength: Int
    /// The data bytes of each segment the device cuts this one into; 0 when it goes
    /// as it is (its data fits in one MSS).
    public var segmentSize: Int = 0
}

/// A TCP connection's control block: sequence numbers, windows, buffers, timers,
/// congestion control and loss recovery (RFC 9293, RFC 5681, RFC 6298, RFC 6582,
/// RFC 6675, RFC 7323, RFC 2018, RFC 5961, RFC 9438).
///
/// The owner (the stack's TCP layer) feeds it and drains it:
///
/// ```swift
/// var tcb = TCPControlBlock(connectingFrom: 40000, to: 80, iss: isn, mss: 1460,
///                           configuration: .init(), now: now)
/// while let segment = tcb.nextSegment(now: now) { send(segment) }   // the SYN
/// tcb.receive(header, payload: bytes, now: now)                     // the SYN-ACK
/// if tcb.events.contains(.established) { ... }
/// if let deadline = tcb.nextDeadline { arm(deadline) }              // then timerFired
/// ```
///
/// Times are nanoseconds on the owner's clock.
public struct TCPControlBlock: ~Copyable {
    /// The settings; the socket-option-like ones change through ``setNoDelay(_:)``,
    /// ``setKeepalive(_:now:)`` and ``setCongestion(_:)``.
    public private(set) var configuration: TCPConfiguration
    public let localPort: UInt16
    public let remotePort: UInt16
    public internal(set) var state: TCPState

    // MARK: Sending (RFC 9293 §3.3.1)

    /// ISS, SND.UNA, SND.NXT, and the highest sequence number sent (after a timeout
    /// SND.NXT goes back to SND.UNA; what lies below the highest is sent again).
    public internal(set) var initialSendSequence: SequenceNumber
    public internal(set) var sendUnacknowledged: SequenceNumber
    public internal(set) var sendNext: SequenceNumber
    var sendMaximum: SequenceNumber
    /// SND.WND (scaled), SND.WL1, SND.WL2, and the largest window the peer offered.
    public internal(set) var sendWindow: Int {
        get { Int(_sendWindow) }
        set { _sendWindow = Int32(clamping: newValue) }
    }
    var sendWL1 = SequenceNumber(0)
    var sendWL2 = SequenceNumber(0)
    var maximumSendWindow: Int {
        get { Int(_maximumSendWindow) }
        set { _maximumSendWindow = Int32(clamping: newValue) }
    }
    /// The peer's window scale shift (RFC 7323 §2.3), ours, and whether both agreed
    /// (each side offered the option in its SYN).
    var sendShift: Int {
        get { Int(_sendShift) }
        set { _sendShift = UInt8(clamping: newValue) }
    }
    var receiveShift: Int {
        get { Int(_receiveShift) }
        set { _receiveShift = UInt8(clamping: newValue) }
    }
    var windowScalingAgreed = false
    /// The MSS the peer announced (536 without the option, RFC 9293 §3.7.1) and what
    /// our path allows.
    public internal(set) var peerMSS: Int {
        get { Int(_peerMSS) }
        set { _peerMSS = Int32(clamping: newValue) }
    }
    public internal(set) var pathMSS: Int {
        get { Int(_pathMSS) }
        set { _pathMSS = Int32(clamping: newValue) }
    }
    /// TCP segmentation offload: the most data bytes one segment handed out by
    /// ``nextSegment(now:)`` may carry, when the owner's device cuts segments at the
    /// MSS itself (the segment says so in ``TCPOutgoingSegment/segmentSize``). A
    /// segment then carries up to as many whole MSS as fit (a multiple of
    /// ``sendMSS``, but for the last data waiting). 0, the default: one MSS.
    ///
    /// ```swift
    /// tcb.segmentationLimit = 65_535 - 20 - 60   // a 64 KiB IP packet at most
    /// ```
    public var segmentationLimit: Int {
        get { Int(_segmentationLimit) }
        set { _segmentationLimit = Int32(clamping: newValue) }
    }

    // MARK: Receiving

    /// IRS and RCV.NXT, and the right edge of the window last advertised (never moved
    /// back: RFC 9293 §3.8.6.2.2).
    public internal(set) var initialReceiveSequence = SequenceNumber(0)
    public internal(set) var receiveNext = SequenceNumber(0)
    var advertisedEdge = SequenceNumber(0)
    /// The receive urgent pointer (RFC 9293 §3.8.5): urgent data is delivered inline.
    public internal(set) var receiveUrgent: SequenceNumber?

    // MARK: Buffers

    public var sendBuffer: SendBuffer
    public var receiveBuffer: ReceiveBuffer

    // MARK: Options agreed

    public internal(set) var timestampsEnabled = false
    public internal(set) var sackEnabled = false
    /// TS.Recent and when it was set; Last.ACK.sent (RFC 7323 §4.3); our clock's offset.
    var timestampRecent: UInt32 = 0
    var timestampRecentAt: Int64 = 0
    var lastAcknowledgmentSent = SequenceNumber(0)
    let timestampOffset: UInt32

    // MARK: Closing

    /// The application has finished sending (FIN to go once the data has), and the
    /// sequence number our FIN takes once sent.
    var finishQueued = false
    var finSequence: SequenceNumber?
    /// The peer's FIN, when it arrived ahead of a gap.
    var peerFinSequence: SequenceNumber?
    /// The peer has finished sending, in order: end of stream.
    public internal(set) var inputFinished = false
    /// The application closed: nothing more is delivered; data arriving now is answered
    /// with a reset (RFC 9293 §3.10.4's abort semantics on data after close).
    public internal(set) var applicationClosed = false
    /// A reset to send (the application aborted, or data came after close).
    var resetPending = false
    /// A reset answering an unacceptable acknowledgment in SYN-SENT or SYN-RECEIVED
    /// (RFC 9293 §3.10.7.3–4: `<SEQ=SEG.ACK><CTL=RST>`).
    var resetReply: SequenceNumber?
    /// Why the connection closes once the pending reset is sent (a timeout gives up
    /// with a reset; an abort is normal).
    var closeReasonOnReset: TCPCloseReason?

    // MARK: Acknowledgments

    var acknowledgeNow = false
    /// When an unacceptable segment was last answered (at most one ACK per 500 ms).
    var lastOutOfWindowAckAt = Int64.min / 2
    var delayedAckDeadline: Int64? {
        get { Self.deadline(_delayedAckDeadline) }
        set { _delayedAckDeadline = newValue ?? .max }
    }
    /// Bytes received in order since the last acknowledgment, and the peer's segment
    /// size as seen (starts at RFC 9293's default 536, grows with what arrives).
    var bytesSinceAck: Int {
        get { Int(_bytesSinceAck) }
        set { _bytesSinceAck = Int32(clamping: newValue) }
    }
    var receiveMSS: Int {
        get { Int(_receiveMSS) }
        set { _receiveMSS = Int32(clamping: newValue) }
    }

    // MARK: Retransmission

    public internal(set) var retransmissionTimer: RetransmissionTimer
    var retransmissionDeadline: Int64? {
        get { Self.deadline(_retransmissionDeadline) }
        set { _retransmissionDeadline = newValue ?? .max }
    }
    var retries: Int {
        get { Int(_retries) }
        set { _retries = Int32(clamping: newValue) }
    }
    /// A segment being timed for RTT without timestamps (Karn's rule).
    var timedSequence: SequenceNumber?
    var timedAt: Int64 = 0

    // MARK: Loss recovery and congestion

    public internal(set) var congestion: CongestionController
    var duplicateAcks: Int {
        get { Int(_duplicateAcks) }
        set { _duplicateAcks = Int32(clamping: newValue) }
    }
    public internal(set) var inRecovery = false
    var recoveryPoint = SequenceNumber(0)
    public internal(set) var scoreboard = Scoreboard()
    var lastSendAt: Int64
    /// One retransmission to send now (fast retransmit, a NewReno partial ACK).
    var retransmitOne = false
    /// The highest sequence number sent when the hole at SND.UNA was last sent again:
    /// data above it SACKed while that hole stays open means the retransmission was
    /// lost too (what RACK finds by time, found here by order).
    var firstHoleResentBelow: SequenceNumber?
    var firstHoleResentAt: Int64 = 0
    /// When that retransmission counts as lost if no ACK has covered it (RACK's
    /// reordering timer, RFC 8985 §6.3, for this one hole).
    var lostRetransmitDeadline: Int64? {
        get { Self.deadline(_lostRetransmitDeadline) }
        set { _lostRetransmitDeadline = newValue ?? .max }
    }
    /// The tail loss probe's timer (RFC 8985 §7.2), whether a probe is due now, and
    /// whether one went since the last acknowledgment of new data.
    var probeDeadline: Int64? {
        get { Self.deadline(_probeDeadline) }
        set { _probeDeadline = newValue ?? .max }
    }
    var tailProbeNow = false
    var tailProbeOutstanding = false
    /// One new segment allowed beyond the window (RFC 3042 limited transmit).
    var limitedTransmit = false
    /// A zero-window or keepalive probe to send now.
    var probeNow = false
    /// Unanswered zero-window probes.
    var probesUnanswered: Int {
        get { Int(_probesUnanswered) }
        set { _probesUnanswered = Int32(clamping: newValue) }
    }
    /// The persist timer ran out on a window too small for a full segment: the next
    /// data segment goes though short (sender SWS avoidance's override).
    var overrideSilly = false

    // MARK: Other timers

    var persistDeadline: Int64? {
        get { Self.deadline(_persistDeadline) }
        set { _persistDeadline = newValue ?? .max }
    }
    var persistBackoff: Int {
        get { Int(_persistBackoff) }
        set { _persistBackoff = Int32(clamping: newValue) }
    }
    var keepaliveDeadline: Int64? {
        get { Self.deadline(_keepaliveDeadline) }
        set { _keepaliveDeadline = newValue ?? .max }
    }
    var keepaliveProbesSent: Int {
        get { Int(_keepaliveProbesSent) }
        set { _keepaliveProbesSent = Int32(clamping: newValue) }
    }
    var lastReceiveAt: Int64
    var timeWaitDeadline: Int64? {
        get { Self.deadline(_timeWaitDeadline) }
        set { _timeWaitDeadline = newValue ?? .max }
    }
    var finWait2Deadline: Int64? {
        get { Self.deadline(_finWait2Deadline) }
        set { _finWait2Deadline = newValue ?? .max }
    }

    // MARK: Reporting

    /// What happened since the owner last cleared it.
    public var events: TCPEvents = []
    /// Why the connection closed, once it has.
    public internal(set) var closeReason: TCPCloseReason?
    /// A challenge ACK (RFC 5961) the connection would send; the owner grants it under
    /// its global rate limit by calling ``grantChallengeAck()``.
    public internal(set) var wantsChallengeAck = false
    public var statistics = TCPStatistics()

    // Bounded counts and sizes, stored small and together (as Ints they took 8 bytes
    // each and the padding around them).
    var _sendWindow: Int32 = 0
    var _maximumSendWindow: Int32 = 0
    var _peerMSS: Int32 = 536
    var _pathMSS: Int32 = 0
    var _segmentationLimit: Int32 = 0
    var _bytesSinceAck: Int32 = 0
    var _receiveMSS: Int32 = 536
    var _retries: Int32 = 0
    var _duplicateAcks: Int32 = 0
    var _probesUnanswered: Int32 = 0
    var _persistBackoff: Int32 = 0
    var _keepaliveProbesSent: Int32 = 0
    var _sendShift: UInt8 = 0
    var _receiveShift: UInt8 = 0

    // The deadlines' storage: Int64.max for none (an optional Int64 took 16 bytes).
    var _delayedAckDeadline: Int64 = .max
    var _retransmissionDeadline: Int64 = .max
    var _lostRetransmitDeadline: Int64 = .max
    var _probeDeadline: Int64 = .max
    var _persistDeadline: Int64 = .max
    var _keepaliveDeadline: Int64 = .max
    var _timeWaitDeadline: Int64 = .max
    var _finWait2Deadline: Int64 = .max

    @inline(__always)
    static func deadline(_ stored: Int64) -> Int64? { stored == .max ? nil : stored }

    // MARK: Opening

    /// An active open (RFC 9293 §3.10.1): SYN-SENT, the SYN waiting in ``nextSegment``.
    public init(
        connectingFrom localPort: UInt16, to remotePort: UInt16, iss: SequenceNumber, mss: Int,
        timestampOffset: UInt32 = 0, configuration: TCPConfiguration, now: Int64
    ) {
        self.configuration = configuration
        self.localPort = localPort
        self.remotePort = remotePort
        state = .synSent
        initialSendSequence = iss
        sendUnacknowledged = iss
        sendNext = iss
        sendMaximum = iss
        recoveryPoint = iss
        _pathMSS = Int32(clamping: max(mss, 64))
        sendBuffer = SendBuffer(limit: configuration.sendBufferSize)
        receiveBuffer = ReceiveBuffer(limit: configuration.receiveBufferSize)
        self.timestampOffset = timestampOffset
        retransmissionTimer = Self.timer(configuration)
        congestion = CongestionController(configuration.congestion, mss: max(mss, 64))
        lastSendAt = now
        lastReceiveAt = now
        receiveShift =
            configuration.windowScaling ? Self.shift(for: configuration.receiveBufferSize) : 0
    }

    /// A passive open answering `syn` (RFC 9293 §3.10.7.2): SYN-RECEIVED, the SYN-ACK
    /// waiting in ``nextSegment``. Options are agreed from the SYN's.
    public init(
        answering syn: TCPRepr, localPort: UInt16, iss: SequenceNumber, mss: Int,
        timestampOffset: UInt32 = 0, configuration: TCPConfiguration, now: Int64
    ) {
        self.init(
            connectingFrom: localPort, to: syn.sourcePort, iss: iss, mss: mss,
            timestampOffset: timestampOffset, configuration: configuration, now: now)
        state = .synReceived
        acceptSynOptions(syn, now: now)
        initialReceiveSequence = SequenceNumber(syn.sequenceNumber)
        receiveNext = initialReceiveSequence + 1
        advertisedEdge = receiveNext
        sendWindow = Int(syn.window)  // a SYN's window is never scaled (RFC 7323 §2.2)
        maximumSendWindow = sendWindow
        sendWL1 = initialReceiveSequence
        sendWL2 = iss
    }

    /// For a connection rebuilt from a SYN cookie: the SYN-ACK went out (statelessly).
    public mutating func assumeSynAckSent() {
        sendNext = initialSendSequence + 1
        sendMaximum = sendNext
        retries = 1  // no round-trip sample from a handshake we did not time (Karn)
    }

    /// The smallest MSS taken from a peer's SYN, and the smallest a path MTU message
    /// may lower ours to.
    public static let minimumPeerMSS = 48
    public static let minimumPathMSS = 552 - 40

    static func timer(_ configuration: TCPConfiguration) -> RetransmissionTimer {
        RetransmissionTimer(
            initial: nanoseconds(configuration.initialRetransmissionTimeout),
            minimum: nanoseconds(configuration.minimumRetransmissionTimeout),
            maximum: nanoseconds(configuration.maximumRetransmissionTimeout))
    }

    /// The smallest shift that lets a 16-bit window field cover `buffer` bytes
    /// (RFC 7323 §2.3: at most 14).
    static func shift(for buffer: Int) -> Int {
        var shift = 0
        while shift < 14 && (65535 << shift) < buffer { shift += 1 }
        return shift
    }

    /// Takes the options of the peer's SYN: MSS, window scale (only if we offer it
    /// too), SACK-permitted, timestamps (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    mutating func acceptSynOptions(_ syn: TCPRepr, now: Int64) {
        // A peer's MSS below 48 bytes (Linux's tcp_min_snd_mss) is raised to it: a
        // tiny one would make us send a segment per byte (CVE-2019-11479).
        if let mss = syn.maximumSegmentSize, mss > 0 {
            peerMSS = max(Int(mss), Self.minimumPeerMSS)
        }
        if configuration.windowScaling, let shift = syn.windowScale {
            // RFC 7323 §2.3: a shift above 14 is taken as 14.
            sendShift = min(Int(shift), 14)
            windowScalingAgreed = true
        } else {
            sendShift = 0
            receiveShift = 0
            windowScalingAgreed = false
        }
        sackEnabled = configuration.selectiveAcknowledgments && syn.sackPermitted
        if configuration.timestamps, let timestamps = syn.timestamps {
            timestampsEnabled = true
            timestampRecent = timestamps.value
            timestampRecentAt = now
        } else {
            timestampsEnabled = false
        }
        congestion.updateMSS(sendMSS)
    }

    // MARK: Derived values

    /// The most data bytes one segment carries: the smaller of the peer's MSS and our
    /// path's, less the options every data segment carries (timestamps: 12 bytes).
    public var sendMSS: Int {
        max(min(peerMSS, pathMSS) - (timestampsEnabled ? 12 : 0), 1)
    }

    /// The most data one segment carries now: one segment's room (``sendMSS``, less
    /// the SACK blocks its header carries while our receive queue has a gap), or as
    /// many of those as ``segmentationLimit`` allows, each piece the device cuts
    /// carrying the same header.
    public var largestSegment: Int {
        let piece = dataRoom
        return segmentationLimit > piece ? segmentationLimit / piece * piece : piece
    }

    /// Bytes sent and not acknowledged.
    public var bytesInFlight: Int { sendNext - sendUnacknowledged }
    /// Bytes written by the application and not yet sent.
    public var bytesUnsent: Int { max(sendBuffer.count - (sendNext - sendUnacknowledged), 0) }

    /// The window we offer now: what the receive buffer has room for, in the field's
    /// scaled units, never moving the advertised right edge back.
    var receiveWindowToAdvertise: Int {
        let room = receiveBuffer.window
        let edge = receiveNext + room
        let kept = advertisedEdge < edge ? edge : advertisedEdge
        return min(max(kept - receiveNext, 0), 65535 << receiveShift)
    }

    /// The round-trip time the owner reports (`ss -ti`'s rtt), nanoseconds.
    public var smoothedRoundTrip: Int64? { retransmissionTimer.smoothed }

    // MARK: The application's side

    /// Copies what fits of `bytes` into the send buffer; returns how many bytes it took.
    public mutating func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard !finishQueued, state.canSend || state == .synSent || state == .synReceived
        else { return 0 }
        return sendBuffer.append(bytes)
    }

    /// The application consumed `count` received bytes: the window opens (an update is
    /// sent once it has opened by enough, RFC 9293 §3.8.6.2.2).
    public mutating func consume(_ count: Int) {
        let before = receiveWindowToAdvertise
        receiveBuffer.consume(count)
        let after = receiveWindowToAdvertise
        // Receiver SWS avoidance: advertise again once the window grew by min(half the
        // buffer, one MSS) — or opened from zero.
        let threshold = min(configuration.receiveBufferSize / 2, sendMSS)
        if state.isSynchronized && (after - before >= threshold || (before == 0 && after > 0)) {
            acknowledgeNow = true
        }
    }

    /// The application has finished sending (a half-close): FIN once the data is out.
    public mutating func shutdownWrite() {
        switch state {
        case .synSent:
            // Nothing sent yet: the connection closes (RFC 9293 §3.10.4).
            close(reason: .normal)
        case .synReceived, .established, .closeWait:
            finishQueued = true
        default:
            break
        }
    }

    /// The application closes: no more input is delivered (what waits unread is
    /// dropped, as a kernel socket's owner that reads it away first); the data and
    /// a FIN go out. Data arriving later is answered with a reset (RFC 2525 §2.17:
    /// it would be lost).
    public mutating func applicationClose(now: Int64) {
        applicationClosed = true
        receiveBuffer.removeAll()
        shutdownWrite()
        // Nobody will read the peer's data: FIN-WAIT-2 is not kept open for it forever.
        if state == .finWait2 {
            finWait2Deadline = now + nanoseconds(configuration.finWait2Timeout)
        }
    }

    /// Aborts (RFC 9293 §3.10.5): a reset to the peer in a synchronized state, the
    /// buffers dropped, closed.
    public mutating func abort() {
        switch state {
        case .synReceived, .established, .finWait1, .finWait2, .closeWait:
            resetPending = true
        default:
            close(reason: .normal)
        }
        sendBuffer.removeAll()
        receiveBuffer.removeAll()
    }

    // MARK: Options (socket-option like)

    /// TCP_NODELAY: short segments go without waiting for outstanding data's
    /// acknowledgment (Nagle off).
    public mutating func setNoDelay(_ on: Bool) {
        configuration.noDelay = on
    }

    /// SO_KEEPALIVE with its times, or nil: off. Takes effect from now.
    public mutating func setKeepalive(_ keepalive: TCPKeepalive?, now: Int64) {
        configuration.keepalive = keepalive
        keepaliveProbesSent = 0
        if keepalive == nil {
            keepaliveDeadline = nil
        } else {
            armKeepalive(now: now)
        }
    }

    /// TCP_CONGESTION: the algorithm from now on; the window carries over.
    public mutating func setCongestion(_ algorithm: CongestionAlgorithm) {
        configuration.congestion = algorithm
        congestion.switchAlgorithm(to: algorithm)
    }

    /// Sends the challenge ACK the connection asked for (RFC 5961 §3.2, §4.2, §5.2),
    /// once the owner's global rate limit allows it.
    public mutating func grantChallengeAck() {
        guard wantsChallengeAck else { return }
        wantsChallengeAck = false
        acknowledgeNow = true
        statistics.challengeAcks &+= 1
    }

    /// The owner's rate limit refused the challenge ACK: none is sent.
    public mutating func declineChallengeAck() {
        wantsChallengeAck = false
    }

    /// The path MTU fell (RFC 1191, an ICMP "fragmentation needed"): the MSS follows.
    public mutating func pathMTUChanged(mss: Int) {
        // Never below Linux's floor (min_pmtu 552 less 40 bytes of headers): an ICMP
        // message from anyone on the path must not make every segment tiny.
        let mss = max(mss, Self.minimumPathMSS)
        guard mss < pathMSS else { return }
        pathMSS = mss
        congestion.updateMSS(sendMSS)
        // What was sent too large is sent again, cut to the new size (RFC 1191 §6.5).
        if bytesInFlight > 0 { sendNext = sendUnacknowledged }
    }

    /// ICMP says the destination cannot be reached (a hard error, RFC 1122 §4.2.3.9):
    /// a connection attempt fails; an established connection carries on (the error may
    /// be stale, and its retransmissions will tell).
    public mutating func unreachable(refused: Bool) {
        guard state == .synSent || state == .synReceived else { return }
        close(reason: refused ? .refused : .unreachable)
    }

    /// Gives back both buffers' memory, dropping what they hold: for the owner, once
    /// the application has been told the connection is over (closed, or in TIME-WAIT,
    /// where bytes it read after the FIN had kept the receive buffer allocated).
    public mutating func releaseBuffers() {
        sendBuffer.removeAll()
        sendBuffer.releaseMemory()
        receiveBuffer.removeAll()
        receiveBuffer.releaseMemory()
    }

    /// Closes now, for `reason`: buffers dropped, timers stopped, ``events`` told.
    mutating func close(reason: TCPCloseReason) {
        guard state != .closed else { return }
        state = .closed
        closeReason = reason
        events.insert(.closed)
        sendBuffer.removeAll()
        sendBuffer.releaseMemory()
        receiveBuffer.removeAll()
        receiveBuffer.releaseMemory()
        retransmissionDeadline = nil
        probeDeadline = nil
        lostRetransmitDeadline = nil
        delayedAckDeadline = nil
        persistDeadline = nil
        keepaliveDeadline = nil
        timeWaitDeadline = nil
        finWait2Deadline = nil
        acknowledgeNow = false
        resetPending = false
    }
}

@inline(__always)
func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
}
