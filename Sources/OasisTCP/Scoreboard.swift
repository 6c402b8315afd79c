// What the receiver has selectively acknowledged, for SACK-based loss recovery as a
// sender (RFC 6675).

import OasisWire

/// The SACK scoreboard (RFC 6675 §3): the ranges above SND.UNA the peer reported with
/// SACK blocks (RFC 2018), merged and kept in order, and the recovery state that reads
/// them — which holes count as lost (`IsLost`), how much is in the network (`pipe`,
/// `SetPipe`), and what to retransmit next (`NextSeg`).
///
/// ```swift
/// var board = Scoreboard()
/// board.update(una: una, blocks: segment.sackBlocks)
/// let pipe = board.pipe(una: una, nxt: nxt, mss: mss)
/// if let hole = board.nextLoss(una: una, nxt: nxt, mss: mss) { retransmit(hole) }
/// ```
public struct Scoreboard: Hashable, Sendable {
    /// SACKed ranges above SND.UNA, sorted, disjoint.
    public private(set) var ranges: [Range<UInt64>] = []
    /// HighRxt (RFC 6675 §2): the highest byte retransmitted in this recovery, as an
    /// offset from the base; holes below it were sent again.
    public private(set) var highRetransmitted: SequenceNumber?
    /// The most ranges kept (the oldest beyond it are forgotten: the peer reports
    /// again what matters).
    public static let maximumRanges = 64
    /// DupThresh (RFC 6675 §2; RFC 5681 §3.2): 3.
    public static let duplicateThreshold = 3

    /// Ranges are kept as 64-bit offsets from `base` (SND.UNA when they were last
    /// rebased), so that they compare without wrap-around.
    private var base = SequenceNumber(0)

    public init() {}

    /// Whether the peer has reported anything above SND.UNA.
    public var isEmpty: Bool { ranges.isEmpty }

    /// Forgets everything (a timeout: RFC 6675 §5.1 lets the scoreboard be cleared,
    /// and RFC 2018 §8 says SACKed data may be reneged).
    public mutating func reset() {
        ranges = []
        highRetransmitted = nil
    }

    /// Takes the SACK blocks of an acknowledgment with cumulative ACK `una` (the new
    /// SND.UNA): blocks at or below it are dropped, as are blocks beyond `nxt` (they
    /// acknowledge what was never sent: RFC 2018 §3 "bogus").
    public mutating func update(una: SequenceNumber, nxt: SequenceNumber, blocks: TCPSACKBlocks) {
        rebase(to: una)
        for block in blocks {
            let left = SequenceNumber.latest(SequenceNumber(block.left), una)
            let right = SequenceNumber(block.right)
            guard left < right, !(nxt < right) else { continue }
            add(UInt64(left - base)..<UInt64(right - base))
        }
        if ranges.count > Self.maximumRanges {
            ranges.removeFirst(ranges.count - Self.maximumRanges)
        }
    }

    /// Records a retransmission of `range` (NextSeg rule 1's HighRxt).
    public mutating func retransmitted(upTo end: SequenceNumber) {
        if let high = highRetransmitted, !(high < end) { return }
        highRetransmitted = end
    }

    /// A retransmission below `sequence` was lost (data sent after it was SACKed while
    /// its hole stayed open): HighRxt goes back so that NextSeg sends it again.
    public mutating func retransmissionLost(from sequence: SequenceNumber) {
        if let high = highRetransmitted, sequence < high { highRetransmitted = sequence }
    }

    /// The end of the SACKed range holding `sequence`, if one does; and where the next
    /// SACKed range above `sequence` starts, if any (what a go-back-N after a timeout
    /// skips and stops at).
    public func sackedRangeEnd(containing sequence: SequenceNumber) -> SequenceNumber? {
        let offset = sequence - base
        guard offset >= 0 else { return nil }
        for range in ranges where range.contains(UInt64(offset)) {
            return base + Int(range.upperBound)
        }
        return nil
    }

    public func nextSackedStart(after sequence: SequenceNumber) -> SequenceNumber? {
        let offset = sequence - base
        for range in ranges where Int(range.lowerBound) > offset {
            return base + Int(range.lowerBound)
        }
        return nil
    }

    /// Leaves recovery: HighRxt goes; the SACK information stays.
    public mutating func endRecovery() { highRetransmitted = nil }

    /// The highest byte SACKed (HighSACK), if any.
    public var highestSacked: SequenceNumber? {
        ranges.last.map { base + Int($0.upperBound) }
    }

    /// Bytes SACKed in all.
    public var sackedBytes: Int { ranges.reduce(0) { $0 + Int($1.count) } }

    /// Whether the byte at `sequence` has been SACKed.
    public func isSacked(_ sequence: SequenceNumber) -> Bool {
        let offset = sequence - base
        guard offset >= 0 else { return false }
        return ranges.contains { $0.contains(UInt64(offset)) }
    }

    /// RFC 6675 §4 `IsLost(SeqNum)`: DupThresh discontiguous SACKed ranges above it,
    /// or more than (DupThresh − 1)·SMSS bytes SACKed above it.
    public func isLost(_ sequence: SequenceNumber, mss: Int) -> Bool {
        let offset = UInt64(max(sequence - base, 0))
        var count = 0
        var bytes = 0
        for range in ranges.reversed() {
            guard range.lowerBound > offset else { break }
            count += 1
            bytes += Int(range.count)
            if count >= Self.duplicateThreshold
                || bytes > (Self.duplicateThreshold - 1) * mss
            {
                return true
            }
        }
        return false
    }

    /// RFC 6675 §4 `SetPipe`: the bytes still in the network between SND.UNA and
    /// SND.NXT — not SACKed and not lost, plus what was retransmitted (below HighRxt).
    public func pipe(una: SequenceNumber, nxt: SequenceNumber, mss: Int) -> Int {
        var total = 0
        forEachHole(una: una, nxt: nxt) { start, end in
            let length = end - start
            if !isLost(start, mss: mss) { total += length }
            if let high = highRetransmitted, start < high {
                total += SequenceNumber.earliest(end, high) - start
            }
        }
        return total
    }

    /// RFC 6675 §4 `NextSeg` rule 1: the first lost byte range not yet retransmitted,
    /// at most one MSS long — or `limit` bytes, for a sender whose device cuts a long
    /// segment at the MSS (every byte of a hole has the same SACKed ranges above it,
    /// so the whole hole is lost when its first byte is); nil when there is none.
    public func nextLoss(una: SequenceNumber, nxt: SequenceNumber, mss: Int, limit: Int = 0)
        -> Range<SequenceNumber>?
    {
        var found: Range<SequenceNumber>? = nil
        let longest = max(mss, limit)
        forEachHole(una: una, nxt: nxt) { start, end in
            guard found == nil else { return }
            var from = start
            if let high = highRetransmitted, from < high { from = high }
            guard from < end, isLost(from, mss: mss) else { return }
            found = from..<SequenceNumber.earliest(end, from + longest)
        }
        return found
    }

    /// RFC 6675 §4 `NextSeg` rule 3: the first byte range not SACKed and not yet
    /// retransmitted, though not judged lost; used when no new data may be sent.
    public func nextUnsacked(una: SequenceNumber, nxt: SequenceNumber, mss: Int)
        -> Range<SequenceNumber>?
    {
        var found: Range<SequenceNumber>? = nil
        forEachHole(una: una, nxt: nxt) { start, end in
            guard found == nil, let high = highestSacked, start < high else { return }
            var from = start
            if let retransmitted = highRetransmitted, from < retransmitted { from = retransmitted }
            guard from < end else { return }
            found = from..<SequenceNumber.earliest(end, from + mss)
        }
        return found
    }

    /// The byte ranges in `[una, nxt)` nobody has SACKed, in order.
    private func forEachHole(
        una: SequenceNumber, nxt: SequenceNumber,
        _ body: (SequenceNumber, SequenceNumber) -> Void
    ) {
        var cursor = una
        for range in ranges {
            let start = base + Int(range.lowerBound)
            let end = base + Int(range.upperBound)
            if cursor < start { body(cursor, SequenceNumber.earliest(start, nxt)) }
            if cursor < end { cursor = end }
            if !(cursor < nxt) { return }
        }
        if cursor < nxt { body(cursor, nxt) }
    }

    /// Moves the base to `una`: ranges at or below it go.
    private mutating func rebase(to una: SequenceNumber) {
        let shift = una - base
        if shift == 0 { return }
        base = una
        guard shift > 0 else {
            // Only on the first use, or if SND.UNA was reset: start over.
            ranges = []
            return
        }
        let delta = UInt64(shift)
        ranges = ranges.compactMap { range in
            guard range.upperBound > delta else { return nil }
            return (max(range.lowerBound, delta) - delta)..<(range.upperBound - delta)
        }
        if let high = highRetransmitted, high < una { highRetransmitted = una }
    }

    private mutating func add(_ range: Range<UInt64>) {
        var merged = range
        var kept: [Range<UInt64>] = []
        var placed = false
        for existing in ranges {
            if existing.upperBound < merged.lowerBound {
                kept.append(existing)
            } else if merged.upperBound < existing.lowerBound {
                if !placed {
                    kept.append(merged)
                    placed = true
                }
                kept.append(existing)
            } else {
                merged =
                    min(
                        merged.lowerBound, existing.lowerBound)..<max(
                        merged.upperBound, existing.upperBound)
            }
        }
        if !placed { kept.append(merged) }
        ranges = kept
    }
}
