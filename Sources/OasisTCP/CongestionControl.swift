// Congestion control: how much a sender may have in flight (RFC 5681, RFC 6582 with
// the loss recovery in Connection+Recovery.swift; RFC 9438 CUBIC, the default).

#if canImport(Glibc)
    import Glibc
#endif

/// Which algorithm grows and cuts the congestion window, per connection.
public enum CongestionAlgorithm: String, Hashable, Sendable, CaseIterable {
    /// RFC 5681 slow start and congestion avoidance with RFC 6582 NewReno recovery.
    case newReno = "newreno"
    /// RFC 9438 CUBIC (Linux's, Windows' and Apple's default, and ours).
    case cubic
}

/// The congestion window and the slow-start threshold, in bytes, and how they change
/// on acknowledgments, losses and timeouts. Sans I/O: the connection reports events,
/// with the time in nanoseconds; nothing here reads a clock.
///
/// ```swift
/// var cc = CongestionController(.cubic, mss: 1460)
/// cc.acknowledged(2920, now: t, roundTrip: 20_000_000)   // slow start: +2 MSS
/// cc.congestionEvent(now: t, inFlight: cc.window)         // loss: window × 0.7
/// ```
public struct CongestionController: Hashable, Sendable {
    public private(set) var algorithm: CongestionAlgorithm
    /// The sender's maximum segment size (SMSS).
    public private(set) var mss: Int
    /// The congestion window (cwnd), bytes.
    public private(set) var window: Int
    /// The slow-start threshold (ssthresh), bytes; "arbitrarily high" at first
    /// (RFC 5681 §3.1).
    public private(set) var slowStartThreshold: Int
    /// Bytes acknowledged in congestion avoidance not yet turned into window (Reno's
    /// byte counting: one MSS per window's worth acknowledged).
    private var avoidanceCredit = 0
    /// CUBIC's state (RFC 9438 §4), in segments and seconds as the RFC writes it.
    private var cubic = Cubic()

    /// The initial window (RFC 6928: min(10·MSS, max(2·MSS, 14 600 bytes))).
    public static func initialWindow(mss: Int) -> Int {
        min(10 * mss, max(2 * mss, 14_600))
    }

    public init(_ algorithm: CongestionAlgorithm, mss: Int) {
        self.algorithm = algorithm
        self.mss = max(mss, 1)
        window = Self.initialWindow(mss: self.mss)
        slowStartThreshold = Int(Int32.max)
    }

    /// Changes algorithm mid-connection (as `TCP_CONGESTION` does): the window and the
    /// threshold stay; the new algorithm's own state starts afresh.
    public mutating func switchAlgorithm(to newAlgorithm: CongestionAlgorithm) {
        guard newAlgorithm != algorithm else { return }
        algorithm = newAlgorithm
        cubic = Cubic()
        avoidanceCredit = 0
    }

    /// Whether the sender is in slow start (cwnd < ssthresh, RFC 5681 §3.1).
    public var inSlowStart: Bool { window < slowStartThreshold }

    /// The path's MSS changed (a smaller path MTU, RFC 1191): the window keeps its
    /// count of segments.
    public mutating func updateMSS(_ newMSS: Int) {
        let newMSS = max(newMSS, 1)
        guard newMSS != mss else { return }
        window = max(window / mss * newMSS, newMSS)
        mss = newMSS
    }

    /// New data acknowledged, outside loss recovery: `acked` bytes; `roundTrip` the
    /// smoothed round-trip time (CUBIC looks ahead by it); `limited` when the sender
    /// had less in flight than the window allowed (RFC 7661: the window does not grow
    /// then).
    public mutating func acknowledged(
        _ acked: Int, now: Int64, roundTrip: Int64?, limited: Bool = false
    ) {
        guard acked > 0, !limited else { return }
        if inSlowStart {
            // RFC 5681 §3.1 (with RFC 3465's L = 1 MSS per ACK): cwnd += min(N, SMSS).
            window += min(acked, mss)
            if window > slowStartThreshold && algorithm == .cubic {
                cubic.startEpoch(now: now, window: window, mss: mss)
            }
            return
        }
        switch algorithm {
        case .newReno:
            renoAvoidance(acked)
        case .cubic:
            cubicAvoidance(acked, now: now, roundTrip: roundTrip ?? 0)
        }
    }

    /// RFC 5681 §3.1 congestion avoidance, by byte counting: one MSS per window's
    /// worth of bytes acknowledged.
    private mutating func renoAvoidance(_ acked: Int) {
        avoidanceCredit += acked
        if avoidanceCredit >= window {
            avoidanceCredit -= window
            window += mss
        }
    }

    /// RFC 9438 §4.2–4.5: the window follows W_cubic(t + RTT), or the Reno-friendly
    /// estimate W_est when that is higher.
    private mutating func cubicAvoidance(_ acked: Int, now: Int64, roundTrip: Int64) {
        if !cubic.hasEpoch { cubic.startEpoch(now: now, window: window, mss: mss) }
        let segments = Double(window) / Double(mss)
        // §4.3: W_est grows by α_cubic per window of segments acknowledged (α = 1 once
        // W_est has passed W_max).
        let alpha = cubic.estimate >= cubic.maximum ? 1.0 : Cubic.alpha
        cubic.estimate += alpha * (Double(acked) / Double(mss)) / segments
        let elapsed = Double(now - cubic.epochStart) / 1e9
        let ahead = Cubic.window(
            at: elapsed + Double(roundTrip) / 1e9, k: cubic.k, maximum: cubic.maximum)
        if Cubic.window(at: elapsed, k: cubic.k, maximum: cubic.maximum) < cubic.estimate {
            // §4.3: the Reno-friendly region.
            window = max(window, Int(cubic.estimate * Double(mss)))
            return
        }
        // §4.4–4.5: cwnd += (target − cwnd) / cwnd per acknowledged segment, with the
        // target between cwnd and 1.5·cwnd.
        let target = min(max(ahead, segments), 1.5 * segments)
        let growth = (target - segments) / segments * (Double(acked) / Double(mss))
        cubic.fraction += growth
        if cubic.fraction >= 1 {
            let whole = Int(cubic.fraction)
            cubic.fraction -= Double(whole)
            window += whole * mss
        }
    }

    /// A loss detected by duplicate acknowledgments or SACK (entering fast recovery),
    /// or an ECN echo: the multiplicative decrease (RFC 5681 §3.2 step 2: ssthresh =
    /// max(FlightSize / 2, 2·SMSS); RFC 9438 §4.6: cwnd × β_cubic with fast convergence,
    /// §4.7). The window becomes ssthresh.
    public mutating func congestionEvent(now: Int64, inFlight: Int) {
        switch algorithm {
        case .newReno:
            slowStartThreshold = max(inFlight / 2, 2 * mss)
        case .cubic:
            let segments = Double(window) / Double(mss)
            // §4.7 fast convergence: a flow that lost before reaching the last W_max
            // releases bandwidth for newer flows.
            cubic.maximum = segments < cubic.maximum ? segments * (1 + Cubic.beta) / 2 : segments
            let reduced = Double(max(inFlight, window)) * Cubic.beta
            slowStartThreshold = max(Int(reduced), 2 * mss)
            cubic.epochStart = Int64.min  // a new epoch at the next ACK in avoidance
        }
        window = slowStartThreshold
        avoidanceCredit = 0
    }

    /// A retransmission timeout (RFC 5681 §3.1 eq. 4; RFC 9438 §4.8): ssthresh as for a
    /// loss, the window down to one segment (the loss window), slow start again.
    public mutating func retransmissionTimeout(now: Int64, inFlight: Int) {
        if algorithm == .cubic {
            let segments = Double(window) / Double(mss)
            cubic.maximum = segments < cubic.maximum ? segments * (1 + Cubic.beta) / 2 : segments
            slowStartThreshold = max(Int(Double(max(inFlight, window)) * Cubic.beta), 2 * mss)
            cubic.epochStart = Int64.min
        } else {
            slowStartThreshold = max(inFlight / 2, 2 * mss)
        }
        window = mss
        avoidanceCredit = 0
    }

    /// Leaving fast recovery (RFC 6582 §3.2 step 3: "deflate" to ssthresh; with the
    /// pipe-based recovery of RFC 6675 the window simply stays at ssthresh).
    public mutating func recoveryEnded(now: Int64) {
        window = max(min(window, slowStartThreshold), mss)
    }

    /// During loss recovery, the window the recovery algorithm sets (NewReno's
    /// inflation and deflation, RFC 6582 §3.2).
    public mutating func setRecoveryWindow(_ bytes: Int) {
        window = max(bytes, mss)
    }

    /// After an idle period longer than the retransmission timeout (RFC 5681 §4.1):
    /// the window restarts from min(initial window, cwnd).
    public mutating func restartAfterIdle() {
        window = min(window, Self.initialWindow(mss: mss))
        if algorithm == .cubic { cubic.epochStart = Int64.min }
    }
}

/// CUBIC's state and formulas (RFC 9438 §4.1–4.2), windows in segments, times in
/// seconds.
struct Cubic: Hashable, Sendable {
    /// C (§5: 0.4) and β_cubic (§4.6: 0.7), and α_cubic = 3(1 − β)/(1 + β) (§4.3).
    static let c = 0.4
    static let beta = 0.7
    static let alpha = 3 * (1 - beta) / (1 + beta)

    /// W_max: the window before the last reduction (segments).
    var maximum = 0.0
    /// K: the time to get back to W_max (seconds).
    var k = 0.0
    /// When the current congestion-avoidance stage began (ns), or Int64.min: none.
    var epochStart = Int64.min
    /// W_est, the Reno-friendly estimate (segments).
    var estimate = 0.0
    /// Growth not yet a whole segment.
    var fraction = 0.0

    var hasEpoch: Bool { epochStart != Int64.min }

    /// §4.2: K = ∛((W_max − cwnd_epoch) / C), from the window at the epoch's start; W_est
    /// starts there too (§4.3).
    mutating func startEpoch(now: Int64, window: Int, mss: Int) {
        let start = Double(window) / Double(mss)
        if maximum < start { maximum = start }
        k = Cubic.k(maximum: maximum, epochWindow: start)
        epochStart = now
        estimate = start
        fraction = 0
    }

    /// §4.2 Figure 2: K = ∛((W_max − cwnd_epoch) / C).
    static func k(maximum: Double, epochWindow: Double) -> Double {
        cbrt(max(maximum - epochWindow, 0) / c)
    }

    /// §4.2 Figure 1: W_cubic(t) = C·(t − K)³ + W_max.
    static func window(at t: Double, k: Double, maximum: Double) -> Double {
        let x = t - k
        return c * x * x * x + maximum
    }
}
