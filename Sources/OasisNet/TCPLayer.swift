// TCP over an IP layer: the Stream surface of the Oasis stack. The protocol itself is
// OasisTCP's control block (sans I/O); this layer keeps the connection table, answers
// for closed and listening ports (resets, SYN cookies), runs the timers on the loop,
// builds segments into the device's buffers and hands the application its bytes.

import DequeModule
import OasisBits
import OasisLoop
import OasisTCP
import OasisWire

/// The TCP layer's settings, and those every connection starts with.
public struct TCPLayerConfiguration: Sendable {
    /// Each connection's settings (buffers, no-delay, congestion control, timers).
    public var connection = TCPConfiguration()
    /// Connections in the table at once, TIME-WAIT included; beyond it a SYN is
    /// dropped (the peer retries).
    public var maximumConnections = 65_536
    /// Half-open connections (SYN-RECEIVED) per listener before the listener answers
    /// with SYN cookies and keeps no state (RFC 4987 §3.6).
    public var synBacklog = 256
    /// Connections in TIME-WAIT at once; beyond it the oldest goes early (as Linux's
    /// `tcp_max_tw_buckets`).
    public var maximumTimeWait = 16_384
    /// Challenge ACKs sent per second, all connections together (RFC 5961 §7).
    public var challengeAckRate = 1000
    /// Resets sent per second for segments to closed ports (not a reflector).
    public var resetRate = 1000
    /// The ephemeral port range (RFC 6056 §2.1: 49152–65535 at least; Linux's).
    public var ephemeralPorts: ClosedRange<UInt16> = 32768...60999
    /// The key of initial sequence numbers, SYN cookies and ephemeral ports.
    public var secret: SipHashKey = .random()
    /// Hand the device segments of up to 64 KiB to cut at the MSS, and leave it the
    /// checksums, where it can (``IPLayer/maximumSegmentationSize``, a TAP with
    /// offloads): fewer, larger writes. On by default; off, every segment is one MSS.
    public var segmentationOffload = true
    /// Receive memory of all connections together past which bytes arriving ahead of
    /// a gap are dropped rather than grow a buffer (``ReceiveMemory``; as Linux's
    /// `tcp_mem` pressure prunes its out-of-order queues). Bytes in order are bounded
    /// by each connection's window.
    public var receiveMemoryBudget = 64 << 20

    public init() {}
}

/// Why the TCP layer dropped a segment or refused a connection.
public enum TCPDropReason: Int, DropReason {
    /// Shorter than its header, or a data offset out of bounds, or a malformed option.
    case malformed
    /// The checksum did not verify.
    case badChecksum
    /// Sent from or to a broadcast or multicast address (RFC 1122 §4.2.3.10).
    case broadcast
    /// For a port nobody listens on (answered with a reset, if the rate allows).
    case noListener
    /// A SYN while the connection table was full.
    case tableFull
    /// An ACK for a listening port that was no valid SYN cookie.
    case badCookie
    /// A reset not sent: the rate limit (RFC 5961 §7 for challenge ACKs too).
    case rateLimited
    /// No buffer for a segment to send.
    case noBuffer
    /// An ICMP error quoting a sequence number not in flight (RFC 5927 §4.1).
    case staleIcmp
}

/// The four-tuple of a connection, for this host's one address: the peer's address
/// and port, and ours.
@usableFromInline
struct TCPConnectionKey: Hashable {
    @usableFromInline var remote: UInt32
    @usableFromInline var ports: UInt32

    @inlinable
    init(remote: IPv4Address, remotePort: UInt16, localPort: UInt16) {
        self.remote = remote.rawValue
        ports = UInt32(remotePort) << 16 | UInt32(localPort)
    }
}

/// TCP (RFC 9293) over an IP layer: the Oasis stack's ``StreamService``.
///
/// ```swift
/// let tcp = TCPLayer(ip: ip, on: loop)
/// let listener = try tcp.listen(port: 7) { connection in
///     connection.onReceive { input in
///         input.consume(input.withUnsafeBytes { (try? connection.write($0)) ?? 0 })
///     }
/// }
/// ```
public final class TCPLayer<IP: IPLayer>: StreamService {
    public let ip: IP
    public let loop: EventLoop
    public let configuration: TCPLayerConfiguration

    var connections: [TCPConnectionKey: Connection] = [:]
    var listeners: [UInt16: Listener] = [:]
    /// Connections that changed since they last sent: flushed at the end of a device
    /// batch (one ACK for a batch of segments) or, for the application's calls, at
    /// the end of the loop turn.
    private var dirty: [Connection] = []
    /// The connections being serviced this round (kept, with its storage, between rounds).
    private var servicing: [Connection] = []
    private var flushSource: LoopSource?
    /// The connections' deadlines, and the one loop timer at the earliest of them
    /// (TCPTimers.swift).
    var timerQueue = TimerQueue()
    var loopTimer: (id: TimerID, deadline: Int64)?
    /// Inside the handling of a device batch: flushes wait for its end.
    private var inBatch = false
    private var challengeAcks: TokenBucket
    private var resets: TokenBucket
    /// Connections in TIME-WAIT, oldest first (lazily: closed ones are skipped).
    private var timeWaitQueue = Deque<Connection>()
    private var timeWaitCount = 0
    private var nextEphemeral: UInt32 = 0

    @usableFromInline var ownDrops = DropCounters<TCPDropReason>()
    /// Connections opened each way, and SYN cookies sent and accepted.
    public private(set) var activeOpens: UInt64 = 0
    public private(set) var passiveOpens: UInt64 = 0
    public private(set) var cookiesSent: UInt64 = 0
    public private(set) var cookiesAccepted: UInt64 = 0
    private var lastCookieSentAt = Int64.min / 2
    public private(set) var resetsSent: UInt64 = 0
    /// Connections ended, by why (TIME-WAIT ended early by the table bound counts as
    /// normal), and what they sent again in all.
    public private(set) var closedNormally: UInt64 = 0
    public private(set) var closedByReset: UInt64 = 0
    public private(set) var closedByTimeout: UInt64 = 0
    public private(set) var closedRefusedOrUnreachable: UInt64 = 0
    public private(set) var retransmissions: UInt64 = 0
    public private(set) var fastRetransmissions: UInt64 = 0
    public private(set) var timeouts: UInt64 = 0
    /// Segments received for connections, and sent.
    public private(set) var segmentsReceived: UInt64 = 0
    public private(set) var segmentsSent: UInt64 = 0
    /// Of those sent, the ones handed to the device to cut at the MSS (TSO), and
    /// their data bytes; of those received, the ones the device had coalesced (GRO).
    public private(set) var largeSegmentsSent: UInt64 = 0
    public private(set) var largeSegmentBytesSent: UInt64 = 0
    public private(set) var coalescedSegmentsReceived: UInt64 = 0
    /// The most data one segment carries when the device segments (0: one MSS): a
    /// 64 KiB IP packet less its header and the longest TCP header.
    let segmentationLimit: Int
    /// Whether segments leave with a partial checksum the device finishes.
    private let checksumOffload: Bool
    /// The receive buffers' shared account and its budget for bytes ahead of a gap.
    public let receiveMemory: ReceiveMemory

    public init(ip: IP, on loop: EventLoop, configuration: TCPLayerConfiguration = .init()) {
        self.ip = ip
        self.loop = loop
        self.configuration = configuration
        let now = ip.now
        challengeAcks = TokenBucket(
            ratePerSecond: configuration.challengeAckRate, burst: configuration.challengeAckRate,
            now: now)
        resets = TokenBucket(
            ratePerSecond: configuration.resetRate, burst: configuration.resetRate, now: now)
        nextEphemeral = UInt32(truncatingIfNeeded: configuration.secret.k1)
        let offload = configuration.segmentationOffload
        let largest = ip.maximumSegmentationSize - IPv4Header.size - 60
        segmentationLimit = offload && largest > 0 ? largest : 0
        checksumOffload = offload && ip.transmitChecksums.contains(.tcp)
        receiveMemory = ReceiveMemory(budget: configuration.receiveMemoryBudget)
    }

    /// What was dropped, and why.
    public var drops: DropCounters<TCPDropReason> { ownDrops }

    /// One line for the report on exit.
    public var summary: String {
        var text =
            "connections \(connections.count) (opened \(activeOpens) active, "
            + "\(passiveOpens) passive), segments in \(segmentsReceived) out \(segmentsSent), "
            + "resets sent \(resetsSent); closed \(closedNormally) normally, "
            + "\(closedByReset) by reset, \(closedByTimeout) timed out, "
            + "\(closedRefusedOrUnreachable) refused or unreachable; "
            + "retransmissions \(retransmissions) (\(fastRetransmissions) fast, "
            + "\(timeouts) timeouts)"
        if cookiesSent > 0 { text += ", SYN cookies \(cookiesSent) sent \(cookiesAccepted) taken" }
        if receiveMemory.refusals > 0 {
            text +=
                ", receive memory budget spent \(receiveMemory.refusals) times"
                + " (\(receiveMemory.budget >> 10) KiB; bytes ahead of a gap dropped)"
        }
        if largeSegmentsSent > 0 || coalescedSegmentsReceived > 0 {
            text +=
                ", offloads: \(largeSegmentsSent) segments cut by the device "
                + "(\(largeSegmentBytesSent) B), \(coalescedSegmentsReceived) coalesced in"
        }
        let dropped = TCPDropReason.allCases.filter { ownDrops[$0] > 0 }
            .map { "\($0)=\(ownDrops[$0])" }
        if !dropped.isEmpty { text += ", drops " + dropped.joined(separator: " ") }
        return text
    }
    /// Connections in the table (TIME-WAIT included).
    public var connectionCount: Int { connections.count }

    var nowNanoseconds: Int64 { nanoseconds(ip.now) }

    // MARK: Receiving

    /// Handles one TCP segment (`segment` is the IP payload).
    public func receive(_ segment: consuming Packet, info: IPv4Info) {
        let header: TCPRepr
        let payloadOffset: Int
        do throws(TCPError) {
            let view = try TCPSegment(checking: segment.bytes)
            header = try TCPRepr.parse(
                view, source: info.source, destination: info.destination,
                verifyChecksum: !segment.offload.checksumVerified
                    && !ip.receiveChecksums.contains(.tcp))
            payloadOffset = view.headerLength
        } catch {
            switch error {
            case .badChecksum: ownDrops.count(.badChecksum)
            default: ownDrops.count(.malformed)
            }
            return
        }
        // RFC 1122 §4.2.3.10: no connection to or from a broadcast or multicast address.
        guard !info.isBroadcast, !info.source.isMulticast, info.source != .broadcast,
            !info.destination.isMulticast
        else {
            ownDrops.count(.broadcast)
            return
        }
        segmentsReceived &+= 1
        if segment.offload.coalesced { coalescedSegmentsReceived &+= 1 }
        let key = TCPConnectionKey(
            remote: info.source, remotePort: header.sourcePort, localPort: header.destinationPort)
        let now = nowNanoseconds
        segment.withUnsafeBytes { bytes in
            let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadOffset...])
            if let connection = connections[key],
                !(connection.inTimeWait && connection.tcb.acceptsNewIncarnation(header)
                    && listeners[header.destinationPort] != nil && endTimeWait(connection))
            {
                connection.tcb.receive(header, payload: payload, now: now)
                grantChallenge(connection, now: now)
                changed(connection)
            } else if let listener = listeners[header.destinationPort] {
                segmentForListener(listener, header: header, payload: payload, info: info, now: now)
            } else {
                ownDrops.count(.noListener)
                replyReset(to: header, payloadLength: payload.count, from: info)
            }
        }
        if !inBatch { flush() }
    }

    /// The end of a device batch: every connection that changed sends (one ACK for
    /// the segments of a batch) and tells its application.
    public func endOfBatch() {
        flush()
    }

    /// A batch is being handled: sends wait for ``endOfBatch()``.
    public func beginBatch() {
        inBatch = true
    }

    /// An ICMP error about one of our segments (RFC 1122 §4.2.3.9, RFC 5927 §4.1: only
    /// if it quotes a sequence number in flight): a smaller path MTU (RFC 1191), or an
    /// unreachable destination while connecting. False if no connection matches.
    public func icmpError(_ report: ICMPErrorReport) -> Bool {
        let key = TCPConnectionKey(
            remote: report.destination, remotePort: report.destinationPort,
            localPort: report.sourcePort)
        guard let connection = connections[key] else { return false }
        let sequence = SequenceNumber(report.transportWord)
        let una = connection.tcb.sendUnacknowledged
        guard !(sequence < una), !(connection.tcb.sendNext < sequence) else {
            ownDrops.count(.staleIcmp)
            return true
        }
        switch report.message {
        case .destinationUnreachable(.fragmentationNeeded, let mtu):
            // RFC 1191 §4: no MTU in the message (an old router): the next size down.
            let nextMTU = mtu >= 68 ? Int(mtu) : 576
            connection.tcb.pathMTUChanged(mss: nextMTU - IPv4Header.size - TCPHeader.size)
        case .destinationUnreachable(let code, _):
            // Hard errors abort a connection attempt (RFC 1122 §4.2.3.9); soft ones
            // (network, host) wait for the timeout.
            switch code {
            case .portUnreachable, .protocolUnreachable, .administrativelyProhibited:
                connection.tcb.unreachable(refused: code == .portUnreachable)
            default:
                break
            }
        default:
            break
        }
        changed(connection)
        if !inBatch { scheduleFlush() }
        return true
    }

    // MARK: Listening ports

    /// A segment for a listening port with no connection yet (RFC 9293 §3.10.7.2).
    private func segmentForListener(
        _ listener: Listener, header: TCPRepr, payload: UnsafeRawBufferPointer, info: IPv4Info,
        now: Int64
    ) {
        let flags = header.flags
        if flags.contains(.rst) { return }  // RFC 9293 §3.10.7.2: ignored
        if flags.contains(.ack) {
            // An ACK to a listening port: the end of a SYN-cookie handshake, or a
            // stray (answered with a reset).
            if flags.contains(.syn)
                || !acceptCookie(listener, header: header, payload: payload, info: info, now: now)
            {
                replyReset(to: header, payloadLength: payload.count, from: info)
            }
            return
        }
        // A SYN with FIN set is nonsense: dropped, as Linux does.
        guard flags.contains(.syn), !flags.contains(.fin) else { return }
        if connections.count >= configuration.maximumConnections && !recycleTimeWait() {
            ownDrops.count(.tableFull)
            return
        }
        if listener.halfOpen >= configuration.synBacklog || listener.closed {
            sendCookie(for: header, info: info, now: now)
            return
        }
        var tcbConfiguration = configuration.connection
        tcbConfiguration.receiveBufferSize =
            listener.receiveCapacity ?? tcbConfiguration.receiveBufferSize
        let tcb = TCPControlBlock(
            answering: header, localPort: header.destinationPort,
            iss: initialSequence(
                remote: info.source, remotePort: header.sourcePort,
                localPort: header.destinationPort, now: now),
            mss: mss(to: info.source),
            timestampOffset: timestampOffset(info.source, header.sourcePort),
            configuration: tcbConfiguration, now: now)
        let connection = Connection(
            layer: self, tcb: tcb,
            local: StreamEndpoint(address: ip.address, port: header.destinationPort),
            remote: StreamEndpoint(address: info.source, port: header.sourcePort))
        connection.listener = listener
        listener.halfOpen += 1
        connections[connection.key] = connection
        passiveOpens &+= 1
        // Data on the SYN is kept only once the connection is established (RFC 9293
        // §3.10.7.2: it may be queued; without TFO there is none worth keeping).
        changed(connection)
    }

    // MARK: Connecting

    public func connect(to remote: StreamEndpoint) -> Promise<Connection> {
        let promise = Promise<Connection>(on: loop)
        guard remote.address != .any, remote.address != .broadcast, !remote.address.isMulticast,
            remote.port != 0
        else {
            promise.settle(.failure(StreamError.unreachable(remote.address)))
            return promise
        }
        guard connections.count < configuration.maximumConnections || recycleTimeWait(),
            let port = ephemeralPort(to: remote)
        else {
            // EADDRNOTAVAIL, as a kernel socket says when no port is left.
            promise.settle(.failure(StreamError.system(operation: "connect", errno: 99)))
            return promise
        }
        let now = nowNanoseconds
        let tcb = TCPControlBlock(
            connectingFrom: port, to: remote.port,
            iss: initialSequence(
                remote: remote.address, remotePort: remote.port, localPort: port, now: now),
            mss: mss(to: remote.address),
            timestampOffset: timestampOffset(remote.address, remote.port),
            configuration: configuration.connection, now: now)
        let connection = Connection(
            layer: self, tcb: tcb, local: StreamEndpoint(address: ip.address, port: port),
            remote: remote)
        connection.connectPromise = promise
        connections[connection.key] = connection
        activeOpens &+= 1
        // A strong capture: the promise lets its callbacks go when it settles, which it
        // does when the handshake completes or fails (a weak one cost the connection a
        // side table, an allocation).
        promise.onCancel { [connection] in
            guard connection.connectPromise != nil else { return }
            connection.connectPromise = nil
            connection.reset()
        }
        changed(connection)
        if !inBatch { scheduleFlush() }
        return promise
    }

    public func listen(port: UInt16, backlog: Int, _ accept: @escaping (Connection) -> Void)
        throws(StreamError) -> Listener
    {
        let chosen: UInt16
        if port == 0 {
            guard let free = configuration.ephemeralPorts.first(where: { listeners[$0] == nil })
            else { throw .system(operation: "listen", errno: 98) }
            chosen = free
        } else {
            chosen = port
        }
        guard listeners[chosen] == nil else {
            throw .addressInUse(StreamEndpoint(address: ip.address, port: chosen))
        }
        let listener = Listener(
            layer: self, local: StreamEndpoint(address: ip.address, port: chosen),
            backlog: max(backlog, 1), accept: accept)
        listeners[chosen] = listener
        return listener
    }

    // MARK: Connection events

    /// Marks `connection` as having something to send or to tell.
    func changed(_ connection: Connection) {
        guard !connection.isDirty else { return }
        connection.isDirty = true
        dirty.append(connection)
    }

    /// Flushes at the end of this loop turn (an application's call outside a batch).
    func scheduleFlush() {
        if flushSource == nil {
            let layer = Unretained(self)
            flushSource = loop.makeSource { layer.call { $0.flush() } }
        }
        flushSource?.wake()
    }

    /// Every changed connection sends what it has and tells its application, until
    /// none changes (an application answering in its handler changes it again).
    func flush() {
        inBatch = false
        var rounds = 0
        while !dirty.isEmpty && rounds < 16 {
            rounds += 1
            // Two arrays swapped, both keeping their storage: copying `dirty` and
            // emptying it cost a fresh buffer every batch.
            swap(&dirty, &servicing)
            for connection in servicing {
                connection.isDirty = false
                service(connection)
            }
            servicing.removeAll(keepingCapacity: true)
        }
    }

    /// One connection's turn: segments out, events to the application, the timer.
    private func service(_ connection: Connection) {
        let now = nowNanoseconds
        transmitAll(connection, now: now)
        let events = connection.tcb.events
        connection.tcb.events = []
        connection.handle(events)
        // The application may have written, consumed or closed in its handlers.
        transmitAll(connection, now: now)
        retire(connection)
        armTimer(connection)
    }

    private func transmitAll(_ connection: Connection, now: Int64) {
        var sent = 0
        while sent < 512, let segment = connection.tcb.nextSegment(now: now) {
            transmit(segment, on: connection)
            sent += 1
        }
    }

    /// Builds one segment in a buffer of the device's pool and sends it.
    private func transmit(_ segment: TCPOutgoingSegment, on connection: Connection) {
        guard var packet = ip.allocatePacket() else {
            ownDrops.count(.noBuffer)
            return
        }
        let length = segment.payloadLength
        if length > 0 {
            guard packet.tailroom >= length else {
                ownDrops.count(.noBuffer)
                return
            }
            packet.withUnsafeMutableTailroom { room in
                connection.tcb.sendBuffer.copy(
                    at: segment.payloadOffset, length: length, to: room.baseAddress!)
                return length
            }
        }
        do {
            try segment.header.emit(
                prependingTo: &packet, source: ip.address, destination: connection.remote.address,
                checksum: checksumOffload ? .offload : .compute)
        } catch {
            ownDrops.count(.noBuffer)
            return
        }
        if checksumOffload {
            // The device sums the segment from the header on, and cuts it at the MSS
            // when it is longer.
            packet.offload = PacketOffload(
                checksumSpan: UInt16(truncatingIfNeeded: packet.count), checksumField: 16,
                segmentSize: UInt16(truncatingIfNeeded: segment.segmentSize))
            if segment.segmentSize > 0 {
                largeSegmentsSent &+= 1
                largeSegmentBytesSent &+= UInt64(length)
            }
        }
        segmentsSent &+= 1
        ip.send(packet, protocol: .tcp, to: connection.remote.address)
    }

    /// Takes a closed connection out of the table; a TIME-WAIT one stays, bounded.
    private func retire(_ connection: Connection) {
        let state = connection.tcb.state
        if state == .closed || state == .timeWait { connection.tcb.releaseBuffers() }
        switch state {
        case .closed:
            if connections[connection.key] === connection {
                connections[connection.key] = nil
                if connection.inTimeWait { timeWaitCount -= 1 }
                count(closed: connection)
            }
            releaseTimer(connection)
        case .timeWait:
            if !connection.inTimeWait {
                connection.inTimeWait = true
                timeWaitCount += 1
                timeWaitQueue.append(connection)
                if timeWaitCount > configuration.maximumTimeWait { _ = recycleTimeWait() }
            }
        default:
            break
        }
    }

    /// Ends one connection's TIME-WAIT at once (a new incarnation of it is opening):
    /// true, for the caller's condition.
    private func endTimeWait(_ connection: Connection) -> Bool {
        connections[connection.key] = nil
        connection.inTimeWait = false
        timeWaitCount -= 1
        releaseTimer(connection)
        count(closed: connection)
        return true
    }

    private func count(closed connection: Connection) {
        retransmissions &+= connection.tcb.statistics.retransmissions
        fastRetransmissions &+= connection.tcb.statistics.fastRetransmissions
        timeouts &+= connection.tcb.statistics.timeouts
        switch connection.tcb.closeReason ?? .normal {
        case .normal: closedNormally &+= 1
        case .reset: closedByReset &+= 1
        case .timedOut: closedByTimeout &+= 1
        case .refused, .unreachable: closedRefusedOrUnreachable &+= 1
        }
    }

    /// Ends the oldest TIME-WAIT early, freeing its slot; false if there is none.
    @discardableResult
    private func recycleTimeWait() -> Bool {
        while !timeWaitQueue.isEmpty {
            let oldest = timeWaitQueue.removeFirst()
            guard oldest.inTimeWait, connections[oldest.key] === oldest else { continue }
            connections[oldest.key] = nil
            oldest.inTimeWait = false
            timeWaitCount -= 1
            count(closed: oldest)
            releaseTimer(oldest)
            return true
        }
        return false
    }

    // MARK: Challenge ACKs and resets

    /// Challenge ACKs go at most one per connection per half second, and within the
    /// global budget: a global budget alone is a side channel (CVE-2016-5696, Cao et
    /// al. 2016: an off-path attacker who spends it on a victim's connection with a
    /// guessed sequence number sees whether his own connection still gets one).
    private func grantChallenge(_ connection: Connection, now: Int64) {
        guard connection.tcb.wantsChallengeAck else { return }
        guard now - connection.lastChallengeAt >= 500_000_000,
            challengeAcks.take(now: .nanoseconds(now))
        else {
            connection.tcb.declineChallengeAck()
            ownDrops.count(.rateLimited)
            return
        }
        connection.lastChallengeAt = now
        connection.tcb.grantChallengeAck()
    }

    /// A reset for a segment nobody takes (RFC 9293 §3.10.7.1): never for a reset;
    /// `<SEQ=SEG.ACK><CTL=RST>` for one with an ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    /// <CTL=RST,ACK>`.
    private func replyReset(to header: TCPRepr, payloadLength: Int, from info: IPv4Info) {
        guard !header.flags.contains(.rst) else { return }
        guard resets.take(now: ip.now) else {
            ownDrops.count(.rateLimited)
            return
        }
        var reply: TCPRepr
        if header.flags.contains(.ack) {
            reply = TCPRepr(
                sourcePort: header.destinationPort, destinationPort: header.sourcePort,
                sequenceNumber: header.acknowledgmentNumber, acknowledgmentNumber: 0,
                flags: .rst, window: 0)
        } else {
            var length = payloadLength
            if header.flags.contains(.syn) { length += 1 }
            if header.flags.contains(.fin) { length += 1 }
            reply = TCPRepr(
                sourcePort: header.destinationPort, destinationPort: header.sourcePort,
                sequenceNumber: 0,
                acknowledgmentNumber: header.sequenceNumber &+ UInt32(truncatingIfNeeded: length),
                flags: [.rst, .ack], window: 0)
        }
        sendStateless(reply, to: info.source)
        resetsSent &+= 1
    }

    private func sendStateless(_ header: TCPRepr, to destination: IPv4Address) {
        guard var packet = ip.allocatePacket(),
            (try? header.emit(prependingTo: &packet, source: ip.address, destination: destination))
                != nil
        else {
            ownDrops.count(.noBuffer)
            return
        }
        segmentsSent &+= 1
        ip.send(packet, protocol: .tcp, to: destination)
    }

    // MARK: Numbers

    /// RFC 6528: ISN = M + F(local address, local port, remote address, remote port,
    /// secret key), M a clock ticking every 4 µs, F SipHash-2-4.
    private func initialSequence(
        remote: IPv4Address, remotePort: UInt16, localPort: UInt16, now: Int64
    ) -> SequenceNumber {
        let tuple =
            UInt64(ip.address.rawValue) << 32 | UInt64(remote.rawValue)
        let ports = UInt64(localPort) << 16 | UInt64(remotePort)
        let hash = SipHash.hash([tuple, ports], key: configuration.secret)
        let clock = UInt32(truncatingIfNeeded: now / 4000)
        return SequenceNumber(UInt32(truncatingIfNeeded: hash) &+ clock)
    }

    /// A timestamp clock offset per peer (RFC 7323 §5.4: randomised per connection, so
    /// that timestamps reveal no host clock).
    private func timestampOffset(_ remote: IPv4Address, _ port: UInt16) -> UInt32 {
        UInt32(
            truncatingIfNeeded: SipHash.hash(
                [UInt64(remote.rawValue) << 16 | UInt64(port), 0x7473], key: configuration.secret))
    }

    /// The MSS our side offers toward `destination`: its path MTU less 40 bytes.
    private func mss(to destination: IPv4Address) -> Int {
        ip.maximumPayload(to: destination) - TCPHeader.size
    }

    /// RFC 6056 §3.3.3 (Algorithm 3, "Simple Hash-Based Port Selection"): a free port
    /// from a starting point keyed by the destination, then a counter.
    private func ephemeralPort(to remote: StreamEndpoint) -> UInt16? {
        let range = configuration.ephemeralPorts
        let count = UInt32(range.upperBound) - UInt32(range.lowerBound) + 1
        let offset = UInt32(
            truncatingIfNeeded: SipHash.hash(
                [UInt64(remote.address.rawValue) << 16 | UInt64(remote.port)],
                key: configuration.secret))
        for _ in 0..<min(count, 4096) {
            let port = UInt16(UInt32(range.lowerBound) + (offset &+ nextEphemeral) % count)
            nextEphemeral &+= 1
            let key = TCPConnectionKey(
                remote: remote.address, remotePort: remote.port, localPort: port)
            if connections[key] == nil && listeners[port] == nil { return port }
        }
        return nil
    }

    // MARK: SYN cookies (RFC 4987 §3.6)

    /// The MSS values a cookie can name (as Linux's table).
    private static var cookieMSS: [UInt16] { [536, 1300, 1440, 1460] }

    /// A SYN-ACK whose ISN encodes the handshake, with no state kept: time (64 s
    /// ticks, 5 bits), the MSS (2 bits) and a keyed hash of the four-tuple, the
    /// time and the peer's ISN (25 bits).
    private func sendCookie(for syn: TCPRepr, info: IPv4Info, now: Int64) {
        let peerMSS = syn.maximumSegmentSize ?? 536
        let index = Self.cookieMSS.lastIndex { $0 <= peerMSS } ?? 0
        let tick = UInt32(truncatingIfNeeded: now / 64_000_000_000) & 31
        let cookie = cookieValue(
            remote: info.source, remotePort: syn.sourcePort, localPort: syn.destinationPort,
            peerISN: syn.sequenceNumber, tick: tick, mssIndex: UInt32(index))
        var reply = TCPRepr(
            sourcePort: syn.destinationPort, destinationPort: syn.sourcePort,
            sequenceNumber: cookie,
            acknowledgmentNumber: syn.sequenceNumber &+ 1, flags: [.syn, .ack],
            window: UInt16(min(configuration.connection.receiveBufferSize, 65535)))
        reply.maximumSegmentSize = UInt16(clamping: mss(to: info.source))
        sendStateless(reply, to: info.source)
        cookiesSent &+= 1
        lastCookieSentAt = now
    }

    private func cookieValue(
        remote: IPv4Address, remotePort: UInt16, localPort: UInt16, peerISN: UInt32, tick: UInt32,
        mssIndex: UInt32
    ) -> UInt32 {
        let hash = SipHash.hash(
            [
                UInt64(remote.rawValue) << 32 | UInt64(remotePort) << 16 | UInt64(localPort),
                UInt64(peerISN) << 8 | UInt64(tick), 0x636f_6f6b_6965,
            ], key: configuration.secret)
        return tick << 27 | mssIndex << 25 | UInt32(truncatingIfNeeded: hash) & 0x01ff_ffff
    }

    /// An ACK completing a cookie handshake: the cookie checked (this tick or the last
    /// two), a connection made in ESTABLISHED with the MSS it names.
    private func acceptCookie(
        _ listener: Listener, header: TCPRepr, payload: UnsafeRawBufferPointer, info: IPv4Info,
        now: Int64
    ) -> Bool {
        // Only while cookies are being sent, or were within their lifetime (Linux:
        // a SYN queue overflow in the last two minutes): otherwise an ACK to a
        // listening port is a stray, not a guess at a cookie to be checked.
        guard cookiesSent > 0, now - lastCookieSentAt < 128_000_000_000, !listener.closed,
            connections.count < configuration.maximumConnections
        else { return false }
        let cookie = header.acknowledgmentNumber &- 1
        let peerISN = header.sequenceNumber &- 1
        let tick = cookie >> 27
        let current = UInt32(truncatingIfNeeded: now / 64_000_000_000) & 31
        guard (current &- tick) & 31 <= 2 else {
            ownDrops.count(.badCookie)
            return false
        }
        let mssIndex = (cookie >> 25) & 3
        guard
            cookieValue(
                remote: info.source, remotePort: header.sourcePort,
                localPort: header.destinationPort,
                peerISN: peerISN, tick: tick, mssIndex: mssIndex) == cookie
        else {
            ownDrops.count(.badCookie)
            return false
        }
        // The SYN as it must have been: no options but the MSS.
        var syn = TCPRepr(
            sourcePort: header.sourcePort, destinationPort: header.destinationPort,
            sequenceNumber: peerISN, acknowledgmentNumber: 0, flags: .syn, window: header.window)
        syn.maximumSegmentSize = Self.cookieMSS[Int(mssIndex)]
        var connectionConfiguration = configuration.connection
        connectionConfiguration.windowScaling = false
        connectionConfiguration.timestamps = false
        connectionConfiguration.selectiveAcknowledgments = false
        var tcb = TCPControlBlock(
            answering: syn, localPort: header.destinationPort, iss: SequenceNumber(cookie),
            mss: mss(to: info.source), configuration: connectionConfiguration, now: now)
        tcb.assumeSynAckSent()
        let connection = Connection(
            layer: self, tcb: tcb,
            local: StreamEndpoint(address: ip.address, port: header.destinationPort),
            remote: StreamEndpoint(address: info.source, port: header.sourcePort))
        connection.listener = listener
        listener.halfOpen += 1
        connections[connection.key] = connection
        passiveOpens &+= 1
        cookiesAccepted &+= 1
        connection.tcb.receive(header, payload: payload, now: now)
        changed(connection)
        return true
    }
}

@inline(__always)
func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
}
