// A connection's timers (RFC 9293 §3.8): retransmission (RFC 6298), delayed ACK,
// persist, keepalive, FIN-WAIT-2 and TIME-WAIT. One deadline out, one call in.

extension TCPControlBlock {
    /// The earliest time a timer of this connection runs out, if any is armed.
    public var nextDeadline: Int64? {
        let earliest = min(
            min(
                min(_retransmissionDeadline, _probeDeadline),
                min(_lostRetransmitDeadline, _delayedAckDeadline)),
            min(
                min(_persistDeadline, _keepaliveDeadline),
                min(_timeWaitDeadline, _finWait2Deadline)))
        return earliest == .max ? nil : earliest
    }

    /// Runs the timers that have run out by `now`. What they want sent waits in
    /// ``nextSegment(now:)``.
    public mutating func timerFired(now: Int64) {
        if let deadline = timeWaitDeadline, deadline <= now {
            timeWaitDeadline = nil
            state = .closed
            closeReason = closeReason ?? .normal
            events.insert(.closed)
            return
        }
        if let deadline = finWait2Deadline, deadline <= now {
            finWait2Deadline = nil
            close(reason: .normal)
            return
        }
        if let deadline = delayedAckDeadline, deadline <= now {
            delayedAckDeadline = nil
            acknowledgeNow = true
        }
        if let deadline = retransmissionDeadline, deadline <= now {
            retransmissionDeadline = nil
            retransmissionTimeout(now: now)
            if state == .closed { return }
        }
        if let deadline = lostRetransmitDeadline, deadline <= now {
            lostRetransmitDeadline = nil
            if firstHoleResentBelow != nil && bytesInFlight > 0 {
                firstHoleResentBelow = nil
                scoreboard.retransmissionLost(from: sendUnacknowledged)
                statistics.lostRetransmissions &+= 1
                retransmitOne = true
            }
        }
        if let deadline = probeDeadline, deadline <= now {
            probeDeadline = nil
            if bytesInFlight > 0 && !inRecovery && state.isSynchronized {
                tailProbeNow = true
                tailProbeOutstanding = true
                statistics.tailLossProbes &+= 1
            }
        }
        if let deadline = persistDeadline, deadline <= now {
            persistDeadline = nil
            if sendWindow > 0 && bytesUnsent > 0 && bytesInFlight == 0 {
                // A small window, held back from: send what fits now.
                overrideSilly = true
            } else if sendWindow == 0 && bytesUnsent > 0 {
                statistics.zeroWindowProbes &+= 1
                probesUnanswered += 1
                persistBackoff += 1
                if probesUnanswered > configuration.dataRetries {
                    close(reason: .timedOut)
                    return
                }
                probeNow = true
                armPersist(now: now)
            }
        }
        if let deadline = keepaliveDeadline, deadline <= now {
            keepaliveDeadline = nil
            keepaliveExpired(now: now)
        }
    }

    /// RFC 6298 §5.4–5.7: the oldest unacknowledged segment goes again, the timer
    /// backs off, and (RFC 5681 §3.1) the window falls to one segment; after too many
    /// tries the connection fails.
    private mutating func retransmissionTimeout(now: Int64) {
        retries += 1
        statistics.timeouts &+= 1
        switch state {
        case .synSent, .synReceived:
            guard retries <= configuration.synRetries else {
                close(reason: .timedOut)
                return
            }
            retransmissionTimer.backOff()
            sendNext = initialSendSequence  // the SYN (or SYN-ACK) goes again
            statistics.retransmissions &+= 1
        default:
            guard retries <= configuration.dataRetries else {
                // Give up, telling the peer (as Linux does not, but RFC 9293 §3.8.3
                // lets the application be told; the reset frees the peer too).
                resetPending = state.isSynchronized && state != .timeWait
                if !resetPending { close(reason: .timedOut) }
                closeReasonOnReset = .timedOut
                return
            }
            guard bytesInFlight > 0 || finSequence != nil else { return }
            probeDeadline = nil
            tailProbeOutstanding = false
            retransmissionTimer.backOff()
            congestion.retransmissionTimeout(now: now, inFlight: sendMaximum - sendUnacknowledged)
            // RFC 6582 §3.2 step 1 after a timeout: recover = the highest sent.
            recoveryPoint = sendMaximum
            inRecovery = false
            duplicateAcks = 0
            // The SACK information stays (RFC 6675 §5.1); what it holds is not sent
            // again. HighRxt goes: everything not SACKed is sent again.
            scoreboard.endRecovery()
            firstHoleResentBelow = nil
            lostRetransmitDeadline = nil
            timedSequence = nil
            // Go back to SND.UNA: what follows is sent again as the window allows.
            sendNext = sendUnacknowledged
        }
        retransmissionDeadline = now + retransmissionTimer.timeout
    }

    // MARK: Tail loss probe

    /// Arms the tail loss probe (RFC 8985 §7.2) while data is in flight outside
    /// recovery, with SACK (which tells what the probe's ACK found) and an RTT sample:
    /// PTO = 2·SRTT, plus the peer's worst delayed ACK when one segment is in flight;
    /// only if that is sooner than the retransmission timeout.
    mutating func armTailProbe(now: Int64) {
        probeDeadline = nil
        guard sackEnabled, !tailProbeOutstanding, !inRecovery, bytesInFlight > 0,
            state.isSynchronized, let smoothed = retransmissionTimer.smoothed,
            let rto = retransmissionDeadline
        else { return }
        var timeout = max(2 * smoothed, 10_000_000)
        if bytesInFlight <= sendMSS { timeout += 200_000_000 }
        if now + timeout < rto { probeDeadline = now + timeout }
    }

    // MARK: Keepalive

    /// Arms keepalive for an idle connection, if configured (RFC 1122 §4.2.3.6).
    mutating func armKeepalive(now: Int64) {
        guard let keepalive = configuration.keepalive, state.isSynchronized else { return }
        keepaliveDeadline = now + nanoseconds(keepalive.idle)
    }

    private mutating func keepaliveExpired(now: Int64) {
        guard let keepalive = configuration.keepalive, state.isSynchronized,
            state != .timeWait
        else { return }
        if keepaliveProbesSent >= keepalive.count {
            resetPending = true
            closeReasonOnReset = .timedOut
            return
        }
        keepaliveProbesSent += 1
        probeNow = true
        keepaliveDeadline = now + nanoseconds(keepalive.interval)
    }
}
