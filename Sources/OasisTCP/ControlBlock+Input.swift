// SEGMENT ARRIVES (RFC 9293 §3.10.7.3–3.10.7.4), with RFC 5961's stricter checks,
// RFC 7323's timestamps and PAWS, and the acknowledgment processing of RFC 5681,
// RFC 6582 and RFC 6675.

import OasisWire

extension TCPControlBlock {
    /// Takes one segment for this connection: `header` parsed (checksum verified),
    /// `payload` its data. What to send in answer waits in ``nextSegment(now:)``.
    public mutating func receive(_ header: TCPRepr, payload: UnsafeRawBufferPointer, now: Int64) {
        statistics.segmentsReceived &+= 1
        switch state {
        case .closed, .listen:
            return  // the owner answers for closed and listening ports
        case .synSent:
            receiveInSynSent(header, payload: payload, now: now)
        default:
            receiveSynchronized(header, payload: payload, now: now)
        }
    }

    /// Whether `syn`, arriving in TIME-WAIT, may open a new incarnation of this
    /// connection (RFC 9293 §3.10.7.4's note, RFC 6191): a bare SYN whose timestamp
    /// is newer than TS.Recent or, without timestamps, whose sequence number is beyond
    /// RCV.NXT, so that no old duplicate can be taken for its data.
    public func acceptsNewIncarnation(_ syn: TCPRepr) -> Bool {
        guard state == .timeWait, syn.flags.contains(.syn),
            !syn.flags.contains(.ack), !syn.flags.contains(.rst)
        else { return false }
        if timestampsEnabled, let timestamps = syn.timestamps {
            return Int32(bitPattern: timestamps.value &- timestampRecent) > 0
        }
        return receiveNext < SequenceNumber(syn.sequenceNumber)
    }

    // MARK: SYN-SENT (§3.10.7.3)

    private mutating func receiveInSynSent(
        _ header: TCPRepr, payload: UnsafeRawBufferPointer, now: Int64
    ) {
        let flags = header.flags
        let ack = SequenceNumber(header.acknowledgmentNumber)
        var ackAcceptable = false
        if flags.contains(.ack) {
            // First: an ACK for something we did not send is answered with a reset.
            guard initialSendSequence < ack, !(sendMaximum < ack) else {
                if !flags.contains(.rst) { resetReply = ack }
                return
            }
            ackAcceptable = true
        }
        if flags.contains(.rst) {
            // RFC 5961 §3.2: in SYN-SENT a reset counts only if it acknowledges our SYN.
            if ackAcceptable { close(reason: .refused) }
            return
        }
        guard flags.contains(.syn) else { return }
        acceptSynOptions(header, now: now)
        initialReceiveSequence = SequenceNumber(header.sequenceNumber)
        receiveNext = initialReceiveSequence + 1
        advertisedEdge = receiveNext
        lastReceiveAt = now
        if ackAcceptable {
            sendUnacknowledged = ack
            acknowledgeSyn(now: now)
            state = .established
            events.insert(.established)
            sendWindow = Int(header.window)  // unscaled in a SYN
            maximumSendWindow = max(maximumSendWindow, sendWindow)
            sendWL1 = SequenceNumber(header.sequenceNumber)
            sendWL2 = ack
            acknowledgeNow = true
            armKeepalive(now: now)
            // Data on a SYN-ACK (unusual): taken like any other.
            // (The data follows the SYN's sequence number.)
            if payload.count > 0 {
                receiveData(
                    at: SequenceNumber(header.sequenceNumber) + 1, payload,
                    push: flags.contains(.psh), now: now)
            }
            if flags.contains(.fin) {
                receiveFin(at: SequenceNumber(header.sequenceNumber) + 1 + payload.count, now: now)
            }
        } else {
            // Simultaneous open: SYN-RECEIVED, our SYN sent again with an ACK.
            state = .synReceived
            sendWindow = Int(header.window)
            maximumSendWindow = sendWindow
            sendWL1 = SequenceNumber(header.sequenceNumber)
            sendWL2 = sendUnacknowledged
            sendNext = initialSendSequence
        }
    }

    /// Our SYN is acknowledged: it occupied one sequence number, and its round trip
    /// is a sample unless it was sent again (Karn).
    mutating func acknowledgeSyn(now: Int64) {
        if retries == 0 { retransmissionTimer.sample(now - timedAt) }
        retries = 0
        timedSequence = nil
        retransmissionDeadline = nil
        if sendNext < sendUnacknowledged { sendNext = sendUnacknowledged }
        if sendMaximum < sendNext { sendMaximum = sendNext }
    }

    // MARK: Synchronized states and SYN-RECEIVED (§3.10.7.4)

    private mutating func receiveSynchronized(
        _ header: TCPRepr, payload: UnsafeRawBufferPointer, now: Int64
    ) {
        let flags = header.flags
        let sequence = SequenceNumber(header.sequenceNumber)
        var length = payload.count
        if flags.contains(.syn) { length += 1 }
        if flags.contains(.fin) { length += 1 }

        // The peer's SYN again in SYN-RECEIVED: our SYN-ACK was lost; send it again.
        if state == .synReceived && flags.contains(.syn) && !flags.contains(.ack)
            && !flags.contains(.rst) && sequence == initialReceiveSequence
        {
            sendNext = initialSendSequence
            return
        }

        // Simultaneous open (RFC 9293 Figure 7; RFC 5961 §4.2's exception): the peer's
        // SYN-ACK in SYN-RECEIVED acknowledges our SYN; its SYN we already have.
        if state == .synReceived && flags.contains(.syn) && flags.contains(.ack)
            && !flags.contains(.rst) && payload.isEmpty && sequence + 1 == receiveNext
        {
            var rest = header
            rest.flags.remove(.syn)
            rest.sequenceNumber = receiveNext.rawValue
            receiveSynchronized(rest, payload: payload, now: now)
            return
        }

        // RFC 7323 §5.3 PAWS: an older timestamp than TS.Recent is a duplicate from a
        // previous use of the sequence space (TS.Recent older than 24 days is stale).
        if timestampsEnabled, !flags.contains(.rst), let timestamps = header.timestamps,
            Int32(bitPattern: timestamps.value &- timestampRecent) < 0,
            now - timestampRecentAt < 24 * 86_400 * 1_000_000_000
        {
            statistics.duplicateSegments &+= 1
            acknowledgeNow = true
            return
        }

        // First: is the segment in the window (§3.10.7.4, the four cases)?
        let window = receiveWindowToAdvertise
        let acceptable: Bool
        if length == 0 {
            acceptable =
                window == 0
                ? sequence == receiveNext
                : sequence.isIn(receiveNext, receiveNext + window)
        } else if window == 0 {
            acceptable = false
        } else {
            let last = sequence + (length - 1)
            acceptable =
                sequence.isIn(receiveNext, receiveNext + window)
                || last.isIn(receiveNext, receiveNext + window)
                || (sequence < receiveNext && receiveNext + window - 1 < last)
        }
        if !acceptable {
            if flags.contains(.syn) && !flags.contains(.rst) {
                // RFC 5961 §4.2: a SYN, whatever its sequence number, is challenged.
                wantsChallengeAck = true
                return
            }
            if !flags.contains(.rst) {
                // A duplicate or a segment beyond the window: acknowledge what we have,
                // at most twice a second (Linux's tcp_invalid_ratelimit: a stranger's
                // segments must not make us an ACK reflector).
                if sequence < receiveNext { statistics.duplicateSegments &+= 1 }
                if now - lastOutOfWindowAckAt >= 500_000_000 {
                    lastOutOfWindowAckAt = now
                    acknowledgeNow = true
                }
            }
            // The one allowance (§3.10.7.4): with our window at zero nothing is
            // acceptable, but the ACK of a segment at RCV.NXT (the peer's probe, or
            // its data we have no room for) is taken. Any other unacceptable segment's
            // ACK is not: its sequence number is not known to be the peer's.
            if window == 0 && sequence == receiveNext && flags.contains(.ack)
                && !flags.contains(.rst)
            {
                _ = processAcknowledgment(header, now: now, dataLength: payload.count)
            }
            return
        }

        // Second: RST (RFC 5961 §3.2): exactly at RCV.NXT resets, else a challenge.
        if flags.contains(.rst) {
            if sequence == receiveNext {
                if state == .synReceived && !events.contains(.established) {
                    // A passive open goes back to LISTEN: for us, the attempt is gone.
                    close(reason: .reset)
                } else {
                    close(reason: .reset)
                }
            } else {
                wantsChallengeAck = true
            }
            return
        }

        // Fourth: a SYN in a synchronized state (RFC 5961 §4.2): a challenge ACK.
        if flags.contains(.syn) {
            wantsChallengeAck = true
            return
        }

        // Fifth: the ACK field.
        guard flags.contains(.ack) else { return }
        if state == .synReceived {
            let ack = SequenceNumber(header.acknowledgmentNumber)
            guard sendUnacknowledged < ack, !(sendMaximum < ack) else {
                resetReply = ack
                return
            }
            sendUnacknowledged = ack
            acknowledgeSyn(now: now)
            state = .established
            events.insert(.established)
            updateSendWindow(header, force: true)
            armKeepalive(now: now)
        } else if !processAcknowledgment(header, now: now, dataLength: payload.count) {
            return
        }
        lastReceiveAt = now
        keepaliveProbesSent = 0
        if keepaliveDeadline != nil { armKeepalive(now: now) }

        // TS.Recent (RFC 7323 §4.3): from a segment that covers Last.ACK.sent.
        if timestampsEnabled, let timestamps = header.timestamps,
            !(lastAcknowledgmentSent < sequence),
            Int32(bitPattern: timestamps.value &- timestampRecent) >= 0
        {
            timestampRecent = timestamps.value
            timestampRecentAt = now
        }

        // Sixth: URG (§3.8.5): the urgent pointer moves forward; the data stays inline.
        if header.flags.contains(.urg) && state.canReceive {
            let pointer = sequence + Int(header.urgentPointer)
            if receiveUrgent == nil || receiveUrgent! < pointer { receiveUrgent = pointer }
        }

        // Seventh: the data.
        if payload.count > 0 {
            if !state.canReceive || applicationClosed || inputFinished {
                // Data after our close is lost for good: tell the peer (RFC 2525 §2.17).
                if applicationClosed && state.isSynchronized && state != .timeWait {
                    abort()
                }
                // After the peer's FIN there is no more data: ignore.
            } else {
                receiveData(at: sequence, payload, push: flags.contains(.psh), now: now)
            }
        }

        // Eighth: FIN.
        if flags.contains(.fin) {
            receiveFin(at: sequence + payload.count, now: now)
        }
    }

    // MARK: Acknowledgments (fifth step, ESTABLISHED and after)

    /// Processes the ACK field; false when the segment is to be dropped.
    mutating func processAcknowledgment(_ header: TCPRepr, now: Int64, dataLength: Int) -> Bool {
        let ack = SequenceNumber(header.acknowledgmentNumber)
        // RFC 5961 §5.2: acceptable between SND.UNA − MAX.SND.WND and SND.MAX.
        if sendMaximum < ack {
            acknowledgeNow = true  // acknowledges what we never sent
            return false
        }
        if ack < sendUnacknowledged - max(maximumSendWindow, 1) {
            wantsChallengeAck = true
            return false
        }
        let windowBefore = sendWindow
        probesUnanswered = 0
        if sendUnacknowledged < ack {
            acknowledged(upTo: ack, header: header, now: now)
        } else if ack == sendUnacknowledged {
            // A duplicate ACK: with SACK (RFC 6675 §2), one that reports newly SACKed
            // data, whatever else it carries (data of its own, a new window: in a
            // transfer both ways most ACKs ride on data); without, RFC 5681 §2's: no
            // data, window unchanged, data outstanding, no SYN or FIN.
            let window = Int(header.window) << sendShift
            if sackEnabled && !header.sackBlocks.isEmpty {
                let sackedBefore = scoreboard.sackedBytes
                scoreboard.update(
                    una: sendUnacknowledged, nxt: sendMaximum, blocks: header.sackBlocks)
                if scoreboard.sackedBytes > sackedBefore && bytesInFlight > 0 {
                    duplicateAcknowledgment(header, now: now)
                }
            } else if dataLength == 0 && window == windowBefore && bytesInFlight > 0
                && !header.flags.contains(.fin)
            {
                duplicateAcknowledgment(header, now: now)
            }
        }
        updateSendWindow(header, force: false)
        // A window that opened ends the persist phase.
        if sendWindow > 0 { persistDeadline = nil; persistBackoff = 0 }
        // Our FIN acknowledged: the closing states move on.
        if let fin = finSequence, !(ack < fin + 1) {
            switch state {
            case .finWait1:
                state = .finWait2
                if applicationClosed {
                    finWait2Deadline = now + nanoseconds(configuration.finWait2Timeout)
                }
            case .closing:
                enterTimeWait(now: now)
            case .lastAck:
                close(reason: .normal)
                return false
            default:
                break
            }
        }
        return true
    }

    /// SND.UNA advances to `ack`: data released, RTT sampled, the window grown or the
    /// recovery moved on, the retransmission timer restarted.
    private mutating func acknowledged(upTo ack: SequenceNumber, header: TCPRepr, now: Int64) {
        var acked = ack - sendUnacknowledged
        // Our FIN takes a sequence number but no buffer byte.
        let finAcked = finSequence.map { !(ack < $0 + 1) } ?? false
        if finAcked { acked -= 1 }
        let released = min(acked, sendBuffer.count)
        let roomBefore = sendBuffer.room
        sendBuffer.release(released)
        statistics.bytesAcknowledged &+= UInt64(released)
        if roomBefore == 0 && sendBuffer.room > 0 { events.insert(.writable) }
        if sendBuffer.room > 0 && released > 0 { events.insert(.writable) }
        let inFlightBefore = sendMaximum - sendUnacknowledged
        sendUnacknowledged = ack
        if sendNext < ack { sendNext = ack }

        // RTT (RFC 7323 §4.1 with timestamps; else Karn's rule on the timed segment).
        if timestampsEnabled, let timestamps = header.timestamps, timestamps.echoReply != 0 {
            let sent = Int64(UInt32(truncatingIfNeeded: timestamps.echoReply &- timestampOffset))
            let nowMilliseconds = Int64(UInt32(truncatingIfNeeded: now / 1_000_000))
            let roundTrip = (nowMilliseconds - sent) & 0xffff_ffff
            if roundTrip < 1 << 30 { retransmissionTimer.sample(max(roundTrip, 1) * 1_000_000) }
        } else if let timed = timedSequence, timed < ack {
            retransmissionTimer.sample(now - timedAt)
            timedSequence = nil
        }
        retries = 0

        if sackEnabled {
            scoreboard.update(una: ack, nxt: sendMaximum, blocks: header.sackBlocks)
        }
        // An ACK that moves SND.UNA can still report, by its SACK blocks, that the
        // next hole is lost (Linux looks at every ACK so): checked below, once the
        // window has grown for what it acknowledged.
        let checkLoss = sackEnabled && !inRecovery && !scoreboard.isEmpty
        if inRecovery {
            if !(ack < recoveryPoint) {
                // Full acknowledgment (RFC 6582 §3.2 step 3; RFC 6675 §5 end).
                inRecovery = false
                scoreboard.endRecovery()
                congestion.recoveryEnded(now: now)
            } else if !sackEnabled {
                // NewReno partial acknowledgment (RFC 6582 §3.2 step 5): the next hole
                // goes at once; the window deflates by what was acknowledged.
                sendNext = sendUnacknowledged
                retransmitOne = true
                let deflated = congestion.window - acked + (acked >= sendMSS ? sendMSS : 0)
                congestion.setRecoveryWindow(deflated)
                retransmissionDeadline = now + retransmissionTimer.timeout
            }
        } else {
            let limited = inFlightBefore < congestion.window - sendMSS
            congestion.acknowledged(
                acked, now: now, roundTrip: retransmissionTimer.smoothed, limited: limited)
        }
        duplicateAcks = 0
        // RFC 6298 §5.2–5.3: restart the timer while data is outstanding.
        retransmissionDeadline =
            bytesInFlight > 0 || (finSequence != nil && !finAcked)
            ? now + retransmissionTimer.timeout : nil
        tailProbeOutstanding = false
        firstHoleResentBelow = nil
        lostRetransmitDeadline = nil
        armTailProbe(now: now)
        if checkLoss && bytesInFlight > 0 { detectLoss(now: now) }
    }

    /// One more duplicate acknowledgment: limited transmit on the first two (RFC 3042),
    /// fast retransmit and recovery on the third (RFC 5681 §3.2, RFC 6582, RFC 6675).
    private mutating func duplicateAcknowledgment(_ header: TCPRepr, now: Int64) {
        duplicateAcks += 1
        if sackEnabled {
            scoreboard.update(una: sendUnacknowledged, nxt: sendMaximum, blocks: header.sackBlocks)
            // The hole at SND.UNA was sent again, and data sent after that has been
            // SACKed (as much as would mark a loss): the retransmission was lost too.
            // Or (RACK's test, RFC 8985 §6.2, for this one hole) it went more than a
            // round trip and a quarter ago, and ACKs keep coming without it.
            let roundTrip = retransmissionTimer.smoothed ?? retransmissionTimer.timeout
            if let mark = firstHoleResentBelow, inRecovery || sendUnacknowledged < recoveryPoint,
                scoreboard.isLost(mark, mss: sendMSS)
                    || now - firstHoleResentAt > roundTrip + roundTrip / 4 + 1_000_000
            {
                firstHoleResentBelow = nil
                scoreboard.retransmissionLost(from: sendUnacknowledged)
                statistics.lostRetransmissions &+= 1
                retransmitOne = true
            }
        }
        if inRecovery {
            if !sackEnabled {
                // RFC 6582 §3.2 step 4: inflate by one segment per duplicate.
                congestion.setRecoveryWindow(congestion.window + sendMSS)
            }
            return
        }
        detectLoss(now: now)
    }

    /// Whether what the duplicates and the scoreboard say marks a loss at SND.UNA; if
    /// so, recovery begins (or, after a timeout, the hole goes again).
    private mutating func detectLoss(now: Int64) {
        // RFC 5827 early retransmit: with fewer than four segments outstanding and
        // nothing new to send, three duplicates cannot come; one fewer than the
        // segments outstanding will do.
        let outstanding = (bytesInFlight + sendMSS - 1) / sendMSS
        let threshold =
            bytesUnsent == 0 && outstanding < 4
            ? max(outstanding - 1, 1) : Scoreboard.duplicateThreshold
        // With SACK (RFC 5827 §3.2) counted in segments SACKed, since one ACK may
        // report several (an ACK per batch of segments received).
        let sackedSegments = (scoreboard.sackedBytes + sendMSS - 1) / sendMSS
        let lossIndicated =
            duplicateAcks >= threshold
            || (sackEnabled && scoreboard.isLost(sendUnacknowledged, mss: sendMSS))
            || (sackEnabled && threshold < Scoreboard.duplicateThreshold
                && sackedSegments >= threshold)
        if lossIndicated {
            // RFC 6582 §3.2 step 1 (and RFC 6675 §5): only once the cumulative ACK has
            // passed the last recovery's (or timeout's) highest sequence number.
            // With SACK, RFC 6675 §5.1: once HighACK ≥ RecoveryPoint. NewReno (RFC 6582
            // §3.2 step 1): once the cumulative ACK has passed `recover`.
            if sackEnabled {
                guard !(sendUnacknowledged < recoveryPoint) else {
                    // After a timeout, before the ACK reaches RecoveryPoint: no new
                    // recovery (the window was cut already), but the hole at SND.UNA
                    // goes again now rather than at the next timeout (RFC 6675 §5.1:
                    // the scoreboard keeps being used).
                    if firstHoleResentBelow == nil { retransmitOne = true }
                    return
                }
            } else {
                guard recoveryPoint < sendUnacknowledged else { return }
            }
            enterRecovery(now: now)
        } else if duplicateAcks <= 2 {
            limitedTransmit = true
        }
    }

    /// Fast retransmit: the window halves (or × 0.7), the first hole goes again.
    mutating func enterRecovery(now: Int64) {
        inRecovery = true
        recoveryPoint = sendMaximum
        congestion.congestionEvent(now: now, inFlight: bytesInFlight)
        statistics.fastRetransmissions &+= 1
        if sackEnabled {
            retransmitOne = true  // NextSeg finds the hole
        } else {
            // RFC 6582 §3.2 step 2: retransmit SND.UNA's segment; cwnd = ssthresh + 3·MSS.
            retransmitOne = true
            congestion.setRecoveryWindow(congestion.slowStartThreshold + 3 * sendMSS)
        }
        timedSequence = nil
    }

    /// SND.WND from a segment, if it is newer than the last that set it (§3.10.7.4).
    mutating func updateSendWindow(_ header: TCPRepr, force: Bool) {
        let sequence = SequenceNumber(header.sequenceNumber)
        let ack = SequenceNumber(header.acknowledgmentNumber)
        guard force || sendWL1 < sequence || (sendWL1 == sequence && !(ack < sendWL2)) else {
            return
        }
        sendWindow = Int(header.window) << sendShift
        maximumSendWindow = max(maximumSendWindow, sendWindow)
        sendWL1 = sequence
        sendWL2 = ack
    }

    // MARK: Data and FIN (seventh and eighth steps)

    /// Stores a segment's data (which starts at `start`; what came before RCV.NXT is
    /// trimmed), moves RCV.NXT over what is now in order, and decides how soon to
    /// acknowledge.
    private mutating func receiveData(
        at start: SequenceNumber, _ payload: UnsafeRawBufferPointer, push: Bool, now: Int64
    ) {
        let trimmed = max(receiveNext - start, 0)
        guard trimmed < payload.count else {
            statistics.duplicateSegments &+= 1
            acknowledgeNow = true
            return
        }
        var data = UnsafeRawBufferPointer(rebasing: payload[trimmed...])
        let sequence = start + trimmed
        // Nothing exists after the peer's FIN (one that came ahead of a gap): bytes
        // past it are not taken.
        if let fin = peerFinSequence {
            let room = max(fin - sequence, 0)
            guard room > 0 else { return }
            if data.count > room { data = UnsafeRawBufferPointer(rebasing: data[..<room]) }
        }
        let offset = sequence - receiveNext
        let hadGap = receiveBuffer.hasGap
        let (advanced, stored) = receiveBuffer.store(at: offset, data)
        if !stored {
            acknowledgeNow = true  // beyond the window, or too many pieces: say where we are
            return
        }
        statistics.bytesReceived &+= UInt64(data.count)
        if advanced > 0 {
            receiveNext += advanced
            events.insert(.readable)
            if let fin = peerFinSequence, fin == receiveNext {
                peerFinSequence = nil
                finishInput(now: now)
            }
        }
        if offset > 0 || hadGap {
            // Out of order, or filling a gap: acknowledge at once (RFC 5681 §4.2), with
            // SACK blocks saying what we hold.
            if offset > 0 { statistics.outOfOrderSegments &+= 1 }
            acknowledgeNow = true
            return
        }
        // In order: an ACK for every second full-sized segment, else after a delay.
        // "Full-sized" is the peer's segment size as seen (Linux's rcv_mss): the
        // largest segment received, within what our MSS allows; the ACK goes once two
        // of them have arrived unacknowledged (RFC 5681 §4.2; RFC 9293 §3.8.6.3). A
        // segment the peer's TSO never cut, or that the device coalesced (GRO), counts
        // as the full segments it holds.
        if data.count > receiveMSS { receiveMSS = min(data.count, pathMSS) }
        bytesSinceAck += data.count
        if bytesSinceAck >= 2 * receiveMSS || (push && bytesSinceAck >= receiveMSS) {
            acknowledgeNow = true
        } else if delayedAckDeadline == nil {
            delayedAckDeadline = now + nanoseconds(configuration.delayedAcknowledgment)
        }
    }

    /// The peer's FIN at `sequence`: end of stream once everything before it arrived.
    private mutating func receiveFin(at sequence: SequenceNumber, now: Int64) {
        guard state != .closed else { return }
        if state == .timeWait {
            // A retransmitted FIN: acknowledge it and wait 2·MSL again (§3.10.7.4).
            acknowledgeNow = true
            timeWaitDeadline = now + nanoseconds(configuration.timeWait)
            return
        }
        if inputFinished { acknowledgeNow = true; return }
        guard sequence == receiveNext else {
            if receiveNext < sequence {
                // The first FIN seen fixes the end of the stream; bytes held beyond it
                // are dropped (Linux's tcp_fin purges its out-of-order queue too).
                if peerFinSequence == nil || sequence < peerFinSequence! {
                    peerFinSequence = sequence
                    receiveBuffer.dropAhead(from: sequence - receiveNext)
                }
            }
            acknowledgeNow = true
            return
        }
        finishInput(now: now)
    }

    private mutating func finishInput(now: Int64) {
        receiveNext += 1
        inputFinished = true
        acknowledgeNow = true
        events.insert(.readable)
        switch state {
        case .synReceived, .established:
            state = .closeWait
        case .finWait1:
            if let fin = finSequence, !(sendUnacknowledged < fin + 1) {
                enterTimeWait(now: now)
            } else {
                state = .closing
            }
        case .finWait2:
            enterTimeWait(now: now)
        default:
            break
        }
    }

    mutating func enterTimeWait(now: Int64) {
        state = .timeWait
        timeWaitDeadline = now + nanoseconds(configuration.timeWait)
        retransmissionDeadline = nil
        persistDeadline = nil
        keepaliveDeadline = nil
        finWait2Deadline = nil
        delayedAckDeadline = nil
        sendBuffer.releaseMemory()
        receiveBuffer.releaseMemory()
        events.insert(.closed)
        closeReason = .normal
    }
}
