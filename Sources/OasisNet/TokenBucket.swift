// A rate limiter for what a host sends on its own: ICMP errors now, TCP challenge
// ACKs and resets next.

/// A token bucket (RFC 1812 §4.3.2.8 asks routers to rate-limit ICMP errors; RFC 1122
/// §3.2.2 allows hosts to): `burst` tokens, refilled at `rate` per second.
///
/// ```swift
/// var limiter = TokenBucket(ratePerSecond: 100, burst: 50, now: now)
/// if limiter.take(now: now) { send(portUnreachable) } else { drops.icmp.count(.rateLimited) }
/// ```
public struct TokenBucket: Hashable, Sendable {
    /// Tokens added per second.
    public let ratePerSecond: Int
    /// Most tokens held.
    public let burst: Int
    /// Tokens now, in millionths (so slow rates refill smoothly).
    private var microTokens: Int64
    private var lastRefill: Duration

    /// A full bucket at `now`.
    public init(ratePerSecond: Int, burst: Int, now: Duration) {
        self.ratePerSecond = max(0, ratePerSecond)
        self.burst = max(0, burst)
        self.microTokens = Int64(self.burst) * 1_000_000
        self.lastRefill = now
    }

    /// Takes a token if there is one.
    public mutating func take(now: Duration) -> Bool {
        if now > lastRefill {
            let elapsed = now - lastRefill
            let (seconds, attoseconds) = elapsed.components
            let micro = seconds.multipliedReportingOverflow(by: 1_000_000)
            let elapsedMicro =
                micro.overflow ? Int64.max : micro.partialValue &+ attoseconds / 1_000_000_000_000
            let added = elapsedMicro.multipliedReportingOverflow(by: Int64(ratePerSecond))
            let cap = Int64(burst) * 1_000_000
            microTokens = added.overflow ? cap : min(cap, microTokens &+ added.partialValue)
            lastRefill = now
        }
        guard microTokens >= 1_000_000 else { return false }
        microTokens -= 1_000_000
        return true
    }
}
