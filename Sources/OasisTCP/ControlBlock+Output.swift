// What a connection sends next: handshake segments, data within the windows (Nagle,
// sender silly-window avoidance, limited transmit, SACK-based recovery), FIN, resets,
// probes and acknowledgments.

import OasisWire

extension TCPControlBlock {
    /// The next segment to send now, or nil when there is nothing (until an event or a
    /// timer). Call it in a loop after every event; each segment returned has changed
    /// the connection as if it were sent.
    public mutating func nextSegment(now: Int64) -> TCPOutgoingSegment? {
        if let ack = resetReply {
            resetReply = nil
            var header = bareHeader(sequence: ack, flags: .rst)
            header.window = 0
            return sent(
                TCPOutgoingSegment(header: header, payloadOffset: 0, payloadLength: 0), now: now)
        }
        switch state {
        case .closed, .listen:
            return nil
        case .synSent:
            return sendNext == initialSendSequence
                ? synSegment(now: now, acknowledging: false) : nil
        case .synReceived:
            if sendNext == initialSendSequence { return synSegment(now: now, acknowledging: true) }
            return nil
        default:
            break
        }
        if resetPending {
            resetPending = false
            let header = header(sequence: sendNext, flags: [.rst, .ack], now: now)
            close(reason: closeReasonOnReset ?? .normal)
            return sent(
                TCPOutgoingSegment(header: header, payloadOffset: 0, payloadLength: 0), now: now)
        }
        if state == .timeWait { return pureAck(now: now) }
        if retransmitOne {
            retransmitOne = false
            if let segment = retransmission(now: now) { return segment }
        }
        if tailProbeNow {
            tailProbeNow = false
            if let segment = tailProbe(now: now) { return segment }
        }
        if inRecovery && sackEnabled, let segment = recoverySegment(now: now) { return segment }
        if let segment = dataSegment(now: now) { return segment }
        if probeNow {
            probeNow = false
            // A probe (zero window, keepalive): an old sequence number, no data; the
            // peer answers with an ACK carrying its window (Linux's form).
            let header = header(sequence: sendUnacknowledged - 1, flags: .ack, now: now)
            return sent(
                TCPOutgoingSegment(header: header, payloadOffset: 0, payloadLength: 0), now: now)
        }
        return pureAck(now: now)
    }

    // MARK: Handshake

    /// SYN (active) or SYN-ACK (passive), with the options we offer or agreed.
    private mutating func synSegment(now: Int64, acknowledging: Bool) -> TCPOutgoingSegment {
        var header = TCPRepr(
            sourcePort: localPort, destinationPort: remotePort,
            sequenceNumber: initialSendSequence.rawValue,
            acknowledgmentNumber: acknowledging ? receiveNext.rawValue : 0,
            flags: acknowledging ? [.syn, .ack] : .syn,
            window: UInt16(min(receiveBuffer.window, 65535)))
        header.maximumSegmentSize = UInt16(clamping: pathMSS)
        if acknowledging {
            // Only what the peer offered (RFC 7323 §1.3, RFC 2018 §2).
            if windowScalingAgreed { header.windowScale = UInt8(receiveShift) }
            header.sackPermitted = sackEnabled
            if timestampsEnabled {
                header.timestamps = TCPTimestamps(value: clock(now), echoReply: timestampRecent)
            }
            lastAcknowledgmentSent = receiveNext
            advertisedEdge = receiveNext + Int(header.window)
        } else {
            if configuration.windowScaling { header.windowScale = UInt8(receiveShift) }
            header.sackPermitted = configuration.selectiveAcknowledgments
            if configuration.timestamps {
                header.timestamps = TCPTimestamps(value: clock(now), echoReply: 0)
            }
        }
        sendNext = initialSendSequence + 1
        if sendMaximum < sendNext { sendMaximum = sendNext }
        if retries == 0 { timedAt = now }
        if retransmissionDeadline == nil {
            retransmissionDeadline = now + retransmissionTimer.timeout
        }
        return sent(
            TCPOutgoingSegment(header: header, payloadOffset: 0, payloadLength: 0), now: now)
    }

    // MARK: Data

    /// New data (or data sent again after a timeout) within the windows, with FIN on
    /// the last segment once the application has finished.
    private mutating func dataSegment(now: Int64) -> TCPOutgoingSegment? {
        guard state.canSend || state == .finWait1 || state == .closing || state == .lastAck
        else { return nil }
        // After a timeout, what is sent again skips what the peer has SACKed
        // (RFC 6675 §5.1: the scoreboard is kept and used).
        if sackEnabled && sendNext < sendMaximum,
            let end = scoreboard.sackedRangeEnd(containing: sendNext)
        {
            sendNext = SequenceNumber.earliest(end, sendMaximum)
        }
        let offset = sendNext - sendUnacknowledged
        var unsent = sendBuffer.count - offset
        if sackEnabled && sendNext < sendMaximum,
            let next = scoreboard.nextSackedStart(after: sendNext), next < sendMaximum
        {
            unsent = min(unsent, next - sendNext)
        }
        let finDue = finishQueued && (finSequence == nil || sendNext == finSequence!)
        guard unsent > 0 || (finDue && unsent == 0) else {
            return nil
        }
        // RFC 5681 §4.1: after an idle period longer than RTO, start over from the
        // initial window.
        if bytesInFlight == 0 && now - lastSendAt > retransmissionTimer.timeout {
            congestion.restartAfterIdle()
        }
        let inFlight =
            inRecovery && sackEnabled
            ? scoreboard.pipe(una: sendUnacknowledged, nxt: sendMaximum, mss: sendMSS)
            : bytesInFlight
        var congestionRoom = congestion.window - inFlight
        if limitedTransmit {
            // RFC 3042: one segment beyond cwnd for each of the first two duplicates.
            congestionRoom = max(congestionRoom, sendMSS)
        }
        let windowRoom = sendWindow - offset
        let room = dataRoom
        var length = min(unsent, largestSegment, max(min(congestionRoom, windowRoom), 0))
        if unsent > 0 && length <= 0 {
            if sendWindow == 0 || windowRoom <= 0 { armPersist(now: now) }
            return nil
        }
        let isRetransmission = sendNext < sendMaximum
        if unsent > 0 && length < room && !isRetransmission {
            // Nagle (RFC 9293 §3.7.4) and sender SWS avoidance (§3.8.6.2.1): a short
            // segment goes only if it carries everything waiting and nothing is
            // outstanding (or no-delay is on), or it is half the largest window seen.
            let everything = length == unsent
            let nagleAllows = configuration.noDelay || bytesInFlight == 0
            let halfWindow = length >= maximumSendWindow / 2 && maximumSendWindow > 0
            guard (everything && nagleAllows) || halfWindow || overrideSilly else {
                // Held back by a window too small to fill a segment: if nothing is
                // outstanding no acknowledgment will come to open it, so the persist
                // timer sends what fits when it runs out (RFC 9293 §3.8.6.2.1's
                // override timeout).
                if bytesInFlight == 0 && windowRoom < unsent { armPersist(now: now) }
                return nil
            }
        }
        if length > room && length % room != 0 {
            // Several segments at once (TSO): the device cuts them at `room`, so a
            // short last one goes only where a short segment would (Nagle, as
            // above: it carries everything waiting and nothing is outstanding, or
            // no-delay); otherwise the segment ends at the last whole piece.
            let everything = length == unsent
            let nagleAllows = configuration.noDelay || bytesInFlight == 0
            if !(everything && nagleAllows) && !isRetransmission {
                length -= length % room
            }
        }
        overrideSilly = false
        limitedTransmit = false
        var flags: TCPFlags = .ack
        let carriesFin = finishQueued && offset + length == sendBuffer.count
        if carriesFin { flags.insert(.fin) }
        if length > 0 && length == unsent { flags.insert(.psh) }
        if length == 0 && !carriesFin { return nil }
        let sequence = sendNext
        let header = header(sequence: sequence, flags: flags, now: now)
        sendNext = sequence + length
        if carriesFin {
            finSequence = sendNext
            sendNext += 1
            switch state {
            case .established: state = .finWait1
            case .closeWait: state = .lastAck
            default: break
            }
        }
        if sendMaximum < sendNext {
            sendMaximum = sendNext
        }
        if isRetransmission {
            statistics.retransmissions &+= 1
        } else if !timestampsEnabled && timedSequence == nil && length > 0 {
            timedSequence = sequence
            timedAt = now
        }
        if retransmissionDeadline == nil {
            retransmissionDeadline = now + retransmissionTimer.timeout
        }
        if !isRetransmission && length > 0 { armTailProbe(now: now) }
        statistics.bytesSent &+= UInt64(length)
        length = max(length, 0)
        return sent(
            TCPOutgoingSegment(
                header: header, payloadOffset: offset, payloadLength: length,
                segmentSize: length > room ? room : 0),
            now: now)
    }

    /// One segment from SND.UNA again (fast retransmit, a partial ACK), or NextSeg's
    /// first lost hole with SACK.
    private mutating func retransmission(now: Int64) -> TCPOutgoingSegment? {
        if sackEnabled,
            let hole = scoreboard.nextLoss(
                una: sendUnacknowledged, nxt: sendMaximum, mss: sendMSS,
                limit: lostHoleLimit)
        {
            return resend(hole.lowerBound, length: hole.upperBound - hole.lowerBound, now: now)
        }
        let available = min(sendBuffer.count, sendMSS)
        if available > 0 {
            return resend(sendUnacknowledged, length: available, now: now)
        }
        if let fin = finSequence, fin == sendUnacknowledged {
            // Only the FIN is outstanding.
            let header = header(sequence: fin, flags: [.fin, .ack], now: now)
            statistics.retransmissions &+= 1
            return sent(
                TCPOutgoingSegment(header: header, payloadOffset: 0, payloadLength: 0), now: now)
        }
        return nil
    }

    /// The tail loss probe (RFC 8985 §7.3): a new segment if the peer's window has
    /// room (beyond the congestion window, as limited transmit), else the last segment
    /// sent, again.
    private mutating func tailProbe(now: Int64) -> TCPOutgoingSegment? {
        if bytesUnsent > 0 && sendWindow - (sendNext - sendUnacknowledged) > 0 {
            limitedTransmit = true
            if let segment = dataSegment(now: now) { return segment }
        }
        let data = min(sendBuffer.count, sendMaximum - sendUnacknowledged)
        guard data > 0 else { return nil }
        let length = min(data, sendMSS)
        return resend(sendUnacknowledged + (data - length), length: length, now: now)
    }

    /// RFC 6675 §5 step (C): while the pipe leaves room for a segment, NextSeg —
    /// lost holes first, then new data (returned nil: the caller sends it), then holes
    /// not yet judged lost.
    private mutating func recoverySegment(now: Int64) -> TCPOutgoingSegment? {
        let pipe = scoreboard.pipe(una: sendUnacknowledged, nxt: sendMaximum, mss: sendMSS)
        guard congestion.window - pipe >= sendMSS else { return nil }
        if let hole = scoreboard.nextLoss(
            una: sendUnacknowledged, nxt: sendMaximum, mss: sendMSS, limit: lostHoleLimit)
        {
            return resend(hole.lowerBound, length: hole.upperBound - hole.lowerBound, now: now)
        }
        if bytesUnsent > 0 && sendWindow - (sendNext - sendUnacknowledged) > 0 { return nil }
        if let hole = scoreboard.nextUnsacked(
            una: sendUnacknowledged, nxt: sendMaximum, mss: sendMSS)
        {
            return resend(hole.lowerBound, length: hole.upperBound - hole.lowerBound, now: now)
        }
        return nil
    }

    /// With segmentation offload, the most of a lost hole one retransmission carries:
    /// as many segments' room (``dataRoom``) as the pipe leaves room for (each MSS-sized piece would pass NextSeg's
    /// test in turn, and the whole hole is lost when its first byte is, since the same
    /// SACKed ranges lie above every byte of it); one MSS without offload.
    private var lostHoleLimit: Int {
        let piece = dataRoom
        guard segmentationLimit > piece else { return sendMSS }
        let pipe = scoreboard.pipe(una: sendUnacknowledged, nxt: sendMaximum, mss: sendMSS)
        let room = congestion.window - pipe
        return max(piece, min(largestSegment, room / piece * piece))
    }

    /// Sends `length` bytes from `sequence` again (bounded by what the buffer holds).
    private mutating func resend(_ sequence: SequenceNumber, length: Int, now: Int64)
        -> TCPOutgoingSegment?
    {
        let offset = sequence - sendUnacknowledged
        let length = min(length, sendBuffer.count - offset, largestSegment)
        guard offset >= 0, length > 0 else { return nil }
        var flags: TCPFlags = .ack
        if let fin = finSequence, sequence + length == fin { flags.insert(.fin) }
        let header = header(sequence: sequence, flags: flags, now: now)
        scoreboard.retransmitted(upTo: sequence + length)
        if sequence == sendUnacknowledged && sackEnabled {
            firstHoleResentBelow = sendMaximum
            firstHoleResentAt = now
            let roundTrip = retransmissionTimer.smoothed ?? retransmissionTimer.timeout
            lostRetransmitDeadline = now + roundTrip + roundTrip / 4 + 2_000_000
        }
        statistics.retransmissions &+= 1
        statistics.bytesSent &+= UInt64(length)
        timedSequence = nil
        if retransmissionDeadline == nil {
            retransmissionDeadline = now + retransmissionTimer.timeout
        }
        return sent(
            TCPOutgoingSegment(
                header: header, payloadOffset: offset, payloadLength: length,
                segmentSize: length > dataRoom ? dataRoom : 0),
            now: now)
    }

    /// The data one segment carries now: the MSS less the SACK blocks the header will
    /// carry (2 NOPs, kind and length, 8 bytes a block), so that a segment with them
    /// still fits the path (without this it went out 44 bytes over and was fragmented).
    var dataRoom: Int {
        guard sackEnabled && receiveBuffer.hasGap else { return sendMSS }
        let blocks = min(receiveBuffer.ranges.count, timestampsEnabled ? 3 : 4)
        return max(sendMSS - (4 + 8 * blocks), 1)
    }

    // MARK: Acknowledgments

    /// A bare ACK, if one is owed now (asked for, or its delay has run out).
    private mutating func pureAck(now: Int64) -> TCPOutgoingSegment? {
        let due = acknowledgeNow || (delayedAckDeadline.map { $0 <= now } ?? false)
        guard due, state != .synSent || receiveNext != SequenceNumber(0) else { return nil }
        guard state.isSynchronized || state == .synReceived else {
            acknowledgeNow = false
            return nil
        }
        let header = header(sequence: sendNext, flags: .ack, now: now)
        return sent(
            TCPOutgoingSegment(header: header, payloadOffset: 0, payloadLength: 0), now: now)
    }

    // MARK: Headers

    /// A header with the ACK field, window, timestamps and SACK blocks of now. Sending
    /// it acknowledges everything received so far.
    private mutating func header(sequence: SequenceNumber, flags: TCPFlags, now: Int64) -> TCPRepr {
        let window = receiveWindowToAdvertise
        var header = TCPRepr(
            sourcePort: localPort, destinationPort: remotePort, sequenceNumber: sequence.rawValue,
            acknowledgmentNumber: receiveNext.rawValue, flags: flags,
            window: UInt16(truncatingIfNeeded: window >> receiveShift))
        if timestampsEnabled {
            header.timestamps = TCPTimestamps(value: clock(now), echoReply: timestampRecent)
        }
        if sackEnabled && receiveBuffer.hasGap {
            var blocks = TCPSACKBlocks()
            for range in receiveBuffer.recentRanges(limit: timestampsEnabled ? 3 : 4) {
                blocks.append(
                    TCPSACKBlock(
                        left: (receiveNext + range.lowerBound).rawValue,
                        right: (receiveNext + range.upperBound).rawValue))
            }
            header.sackBlocks = blocks
        }
        if flags.contains(.ack) {
            lastAcknowledgmentSent = receiveNext
            let edge = receiveNext + ((window >> receiveShift) << receiveShift)
            if advertisedEdge < edge { advertisedEdge = edge }
            acknowledgeNow = false
            delayedAckDeadline = nil
            bytesSinceAck = 0
        }
        return header
    }

    /// A header without the ACK field (a reset answering a stray ACK).
    private func bareHeader(sequence: SequenceNumber, flags: TCPFlags) -> TCPRepr {
        TCPRepr(
            sourcePort: localPort, destinationPort: remotePort, sequenceNumber: sequence.rawValue,
            acknowledgmentNumber: 0, flags: flags, window: 0)
    }

    /// Our timestamp clock (RFC 7323 §5.4): milliseconds, from a random offset.
    func clock(_ now: Int64) -> UInt32 {
        UInt32(truncatingIfNeeded: now / 1_000_000) &+ timestampOffset
    }

    /// Counts a segment as sent.
    private mutating func sent(_ segment: TCPOutgoingSegment, now: Int64) -> TCPOutgoingSegment {
        statistics.segmentsSent &+= 1
        if segment.payloadLength > 0 || segment.header.flags.contains(.syn)
            || segment.header.flags.contains(.fin)
        {
            lastSendAt = now
        }
        return segment
    }

    // MARK: Persist

    /// The send window is zero with data waiting: probe it from time to time
    /// (RFC 9293 §3.8.6.1), backing off as for retransmissions, at most a minute apart.
    mutating func armPersist(now: Int64) {
        guard persistDeadline == nil, bytesInFlight == 0 else { return }
        let interval = min(retransmissionTimer.timeout << min(persistBackoff, 10), 60_000_000_000)
        persistDeadline = now + max(interval, retransmissionTimer.minimum)
    }
}
