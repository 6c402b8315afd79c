internal import CSystem
import Glibc

/// The clock an ``EventLoop`` reads time from.
public enum LoopClock: Sendable, Hashable {
    /// `CLOCK_MONOTONIC`: real time that never jumps. The loop sleeps in `epoll_wait`
    /// until the next timer is due.
    case monotonic
    /// Virtual time that starts at zero and moves only when the loop has nothing
    /// ready: it then polls descriptors without blocking and jumps straight to the
    /// next timer's deadline. ``EventLoop/advance(by:)`` moves it by hand.
    /// Timer-driven code (retransmission, cache expiry) tests in microseconds.
    case virtual
}

@usableFromInline
enum Nanoseconds {
    /// Reads `CLOCK_MONOTONIC` (through the vDSO: no system call).
    @usableFromInline
    static func monotonic() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    /// A duration in whole nanoseconds, clamped to `0...Int64.max`: a timer in the
    /// past is due now, a timer beyond 292 years is due never-in-practice.
    @usableFromInline
    static func clamped(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return Int64.max }
        let (sum, overflow2) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? Int64.max : sum
    }

    /// `a + b` saturating at `Int64.max`.
    @usableFromInline
    static func adding(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int64.max : sum
    }
}
