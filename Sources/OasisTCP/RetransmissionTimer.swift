// The retransmission timeout (RFC 6298), from round-trip samples.

/// The round-trip estimate and the retransmission timeout it gives (RFC 6298 §2):
/// SRTT and RTTVAR from each sample, RTO = SRTT + max(G, 4·RTTVAR), bounded, doubled
/// on each timeout (§5.5) until a new sample resets it. Times in nanoseconds.
///
/// ```swift
/// var rto = RetransmissionTimer()
/// rto.sample(30_000_000)          // a 30 ms round trip
/// rto.timeout                     // 200 ms: 30 + 4·15 = 90 ms, raised to the minimum
/// rto.backOff()                   // 400 ms
/// ```
public struct RetransmissionTimer: Hashable, Sendable {
    /// The smoothed round-trip time, or nil before the first sample.
    public private(set) var smoothed: Int64? {
        get { _smoothed < 0 ? nil : _smoothed }
        set { _smoothed = newValue ?? -1 }
    }
    /// The smoothed round-trip time's storage: -1 before the first sample (samples
    /// are never negative), which keeps the timer at 48 bytes.
    private var _smoothed: Int64 = -1
    /// The round-trip time variation.
    public private(set) var variation: Int64 = 0
    /// The current timeout, backoff included.
    public private(set) var timeout: Int64
    /// The lowest timeout: RFC 6298 §2.4 says 1 s; Linux (and this default) uses 200 ms,
    /// which RFC 6298 allows a host that keeps to the spirit of the rule.
    public let minimum: Int64
    /// The highest timeout (RFC 6298 §2.5: at least 60 s).
    public let maximum: Int64
    /// The clock granularity G (RFC 6298 §2): one millisecond.
    public static let granularity: Int64 = 1_000_000
    /// Timeouts since the last sample (each doubles the timeout).
    public private(set) var backoffs: Int {
        get { Int(_backoffs) }
        set { _backoffs = Int32(clamping: newValue) }
    }
    private var _backoffs: Int32 = 0

    /// No sample yet: the initial timeout is 1 s (RFC 6298 §2.1).
    public init(
        initial: Int64 = 1_000_000_000, minimum: Int64 = 200_000_000,
        maximum: Int64 = 120_000_000_000
    ) {
        self.minimum = minimum
        self.maximum = max(maximum, minimum)
        timeout = min(max(initial, minimum), self.maximum)
    }

    /// Takes one round-trip measurement (RFC 6298 §2.2–2.3): only from a segment that
    /// was not retransmitted (Karn's rule, §3), or from a timestamp echo (RFC 7323 §4).
    public mutating func sample(_ roundTrip: Int64) {
        let sample = max(roundTrip, 0)
        if let srtt = smoothed {
            // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT = 7/8 SRTT + 1/8 R'.
            let deviation = srtt > sample ? srtt - sample : sample - srtt
            variation = variation - variation / 4 + deviation / 4
            smoothed = srtt - srtt / 8 + sample / 8
        } else {
            smoothed = sample
            variation = sample / 2
        }
        backoffs = 0
        timeout = Self.bounded(
            smoothed! + max(Self.granularity, 4 * variation), minimum: minimum, maximum: maximum)
    }

    /// After a retransmission timeout: doubles the timeout (RFC 6298 §5.5), up to the
    /// maximum.
    public mutating func backOff() {
        backoffs += 1
        timeout = min(timeout > maximum / 2 ? maximum : timeout * 2, maximum)
    }

    static func bounded(_ value: Int64, minimum: Int64, maximum: Int64) -> Int64 {
        min(max(value, minimum), maximum)
    }
}
