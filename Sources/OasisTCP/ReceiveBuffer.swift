// The bytes a connection has received: in order for the application, and ahead of a
// gap until the gap fills (RFC 9293 §3.10.7.4; the out-of-order queue SACK reports).

#if canImport(Glibc)
    import Glibc
#endif

/// The receive memory of many connections, shared: what their buffers hold allocated,
/// and the most that bytes arriving ahead of a gap may make them grow to. Bytes in
/// order are bounded by each window (the application reads them); bytes ahead are the
/// sender's choice, and one byte at the window's far edge made a connection allocate
/// its whole buffer: with many connections, a peer could make the host allocate all
/// their windows. A buffer that would grow past the budget for bytes ahead drops
/// them instead (the sender retransmits them once the gap fills).
///
/// ```swift
/// let memory = ReceiveMemory(budget: 64 << 20)
/// var buffer = ReceiveBuffer(limit: 256 << 10)
/// buffer.memory = memory          // its allocations now count in memory.allocated
/// ```
public final class ReceiveMemory {
    /// Bytes allocated by the buffers that count here.
    public fileprivate(set) var allocated = 0
    /// The most `allocated` may reach by growth for bytes ahead of a gap.
    public var budget: Int
    /// Segments (or parts) ahead of a gap dropped because the budget was spent.
    public fileprivate(set) var refusals: UInt64 = 0

    public init(budget: Int) { self.budget = budget }
}

/// A bounded receive buffer. The bytes received in order and not yet consumed are
/// contiguous (a parser sees a message whole, as ``ByteQueue`` gives it); bytes that
/// arrived ahead of a gap are kept at their place after them, so that when the gap
/// fills they are in order without a copy. Offsets are relative to the next byte
/// expected in order (RCV.NXT): offset 0 is that byte.
///
/// The window is what is left: ``limit`` minus the bytes held in order. Memory is
/// allocated on the first byte and grown as bytes need it, up to ``limit``.
public struct ReceiveBuffer: ~Copyable {
    private var storage: UnsafeMutableRawPointer?
    private var allocated = 0
    private var start = 0
    private var end = 0
    /// Byte ranges held beyond the in-order bytes, as offsets from RCV.NXT, sorted and
    /// disjoint, none starting at 0 (that would be in order); each with the tick it was
    /// last extended at, for the order SACK reports them in (RFC 2018 §4).
    public private(set) var ranges: [(range: Range<Int>, tick: UInt32)] = []
    private var tick: UInt32 = 0
    /// The most bytes held (in order and ahead).
    public var limit: Int
    /// The most separate ranges kept ahead of a gap; a segment that would start
    /// another is dropped (the sender retransmits it).
    public static let maximumRanges = 32
    /// The shared account its allocations count in, if any (see ``ReceiveMemory``).
    public var memory: ReceiveMemory? {
        willSet { memory?.allocated -= allocated }
        didSet { memory?.allocated += allocated }
    }

    public init(limit: Int) {
        self.limit = max(limit, 1)
    }

    deinit {
        storage?.deallocate()
        memory?.allocated -= allocated
    }

    /// Bytes received in order and not yet consumed.
    public var count: Int { end - start }
    /// The bytes received in order, not yet consumed; valid until the buffer changes.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.map { $0 + start }, count: count)
    }
    /// The receive window: room from RCV.NXT on.
    public var window: Int { max(0, limit - count) }
    /// Bytes of memory held.
    public var allocatedBytes: Int { allocated }
    /// Whether bytes wait beyond a gap.
    public var hasGap: Bool { !ranges.isEmpty }
    /// How far past RCV.NXT the highest byte held ahead reaches.
    var aheadExtent: Int { ranges.last?.range.upperBound ?? 0 }

    /// Stores the bytes of a segment that start `offset` bytes after RCV.NXT (the
    /// caller trimmed what came before RCV.NXT). Keeps what fits in the window and
    /// returns how many bytes moved RCV.NXT forward (0 for a segment ahead of a gap,
    /// or past the window), and whether the bytes were stored at all.
    public mutating func store(at offset: Int, _ bytes: UnsafeRawBufferPointer)
        -> (advanced: Int, stored: Bool)
    {
        guard offset >= 0, let source = bytes.baseAddress, bytes.count > 0 else {
            return (0, false)
        }
        let length = min(bytes.count, window - offset)
        guard length > 0 else { return (0, false) }
        let range = offset..<offset + length
        if offset > 0 {
            // A new separate range, if it touches none held: bounded.
            let touches = ranges.contains {
                $0.range.overlaps(range) || $0.range.upperBound == range.lowerBound
                    || range.upperBound == $0.range.lowerBound
            }
            if !touches && ranges.count >= Self.maximumRanges { return (0, false) }
        }
        if offset > 0, !mayGrow(upTo: end + range.upperBound) { return (0, false) }
        makeRoom(upTo: end + range.upperBound)
        (storage! + end + offset).copyMemory(from: source, byteCount: length)
        if offset == 0 && ranges.isEmpty {
            // In order with nothing held ahead (the usual case): no range to merge.
            end += length
            return (length, true)
        }
        tick &+= 1
        insert(range)
        // Whatever now starts at RCV.NXT is in order.
        guard let first = ranges.first, first.range.lowerBound == 0 else { return (0, true) }
        let advanced = first.range.upperBound
        ranges.removeFirst()
        for index in ranges.indices {
            let shifted = ranges[index].range
            ranges[index].range = (shifted.lowerBound - advanced)..<(shifted.upperBound - advanced)
        }
        end += advanced
        return (advanced, true)
    }

    /// Forgets what is held ahead from `offset` bytes past RCV.NXT on.
    public mutating func dropAhead(from offset: Int) {
        ranges = ranges.compactMap { entry in
            guard entry.range.lowerBound < offset else { return nil }
            var entry = entry
            entry.range = entry.range.lowerBound..<min(entry.range.upperBound, offset)
            return entry
        }
    }

    /// Merges `range` into the sorted, disjoint list (adjacent ranges join).
    private mutating func insert(_ range: Range<Int>) {
        var merged = range
        var kept: [(range: Range<Int>, tick: UInt32)] = []
        kept.reserveCapacity(ranges.count + 1)
        var placed = false
        for entry in ranges {
            if entry.range.upperBound < merged.lowerBound {
                kept.append(entry)
            } else if merged.upperBound < entry.range.lowerBound {
                if !placed {
                    kept.append((merged, tick))
                    placed = true
                }
                kept.append(entry)
            } else {
                merged =
                    min(
                        merged.lowerBound, entry.range.lowerBound)..<max(
                        merged.upperBound, entry.range.upperBound)
            }
        }
        if !placed { kept.append((merged, tick)) }
        ranges = kept
    }

    /// Drops `byteCount` bytes from the front of the in-order bytes (consumed).
    public mutating func consume(_ byteCount: Int) {
        precondition(byteCount >= 0 && byteCount <= count, "ReceiveBuffer: consumed too much")
        start += byteCount
        if start == end && ranges.isEmpty {
            start = 0
            end = 0
        }
    }

    /// Drops everything held (a reset connection).
    public mutating func removeAll() {
        start = 0
        end = 0
        ranges = []
    }

    /// Frees the memory if nothing is held.
    public mutating func releaseMemory() {
        guard count == 0, ranges.isEmpty, let storage else { return }
        storage.deallocate()
        self.storage = nil
        memory?.allocated -= allocated
        allocated = 0
        start = 0
        end = 0
    }

    /// The ranges held ahead, most recently extended first (the order of SACK blocks,
    /// RFC 2018 §4), at most `limit` of them.
    public func recentRanges(limit: Int) -> [Range<Int>] {
        ranges.sorted { tick &- $0.tick < tick &- $1.tick }.prefix(limit).map(\.range)
    }

    /// Whether storage up to `needed` can be had for bytes ahead of a gap: without
    /// growing, or within the shared budget (a refusal is counted there).
    private func mayGrow(upTo needed: Int) -> Bool {
        guard let memory, needed - start > allocated else { return true }
        if memory.allocated + grownSize(for: needed - start) - allocated <= memory.budget {
            return true
        }
        memory.refusals &+= 1
        return false
    }

    /// The allocation that holds `wanted` bytes: doubling, from 16 KiB, up to the limit.
    private func grownSize(for wanted: Int) -> Int {
        min(max(limit, wanted), max(wanted, allocated * 2, 16 * 1024))
    }

    /// Storage up to index `needed` (from the allocation's start), made by moving the
    /// held bytes to the front or by growing.
    private mutating func makeRoom(upTo needed: Int) {
        if needed <= allocated { return }
        let held = end - start + aheadExtent
        let wanted = needed - start
        if wanted <= allocated, let storage {
            // Move the in-order bytes and those ahead to the front.
            if held > 0 { memmove(storage, storage + start, held) }
            end -= start
            start = 0
            return
        }
        let size = grownSize(for: wanted)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        if let storage {
            if held > 0 { fresh.copyMemory(from: storage + start, byteCount: held) }
            storage.deallocate()
        }
        storage = fresh
        memory?.allocated += size - allocated
        allocated = size
        end -= start
        start = 0
    }
}
