import Glibc
import OasisBits
import OasisWire

/// Reassembles fragmented IPv4 datagrams (RFC 791 §3.2, RFC 815), sans I/O, with bounds.
///
/// ```swift
/// let view = try IPv4Packet(checking: packet.bytes)
/// let ip = try IPv4Repr.parse(view)
/// if ip.isFragment {
///     try packet.shift(by: view.headerLength)   // the fragment's data
///     switch reassembler.insert(ip, payload: packet, now: now) {
///     case .complete(let whole, let payload): deliver(whole, payload)
///     case .incomplete, .dropped: return      // drops are counted in reassembler.drops
///     }
/// }
/// reassembler.expire(now: now)                // at reassembler.nextDeadline
/// ```
///
/// - Datagrams are keyed by (source, destination, protocol, identification) (RFC 791
///   §3.2 "Identification").
/// - Each fragment's data is **copied** into the datagram's own buffer at once, so a
///   fragment never pins a device pool buffer; the completed datagram is delivered as
///   one contiguous view of that buffer (with 64 bytes of headroom in front).
/// - Memory: the bytes of the buffers held, across all datagrams, stay within
///   `maximumBytes`; the number of datagrams within `maximumDatagrams`. To take a new
///   one, the oldest datagrams are evicted (counted as `memoryBound`).
/// - A fragment that overlaps another, unless it is an exact duplicate, drops the whole
///   datagram (RFC 5722 §4, applied to IPv4 as Linux does since CVE-2018-5391). Exact
///   duplicates are dropped alone.
/// - A datagram not complete within `timeout` of its first fragment is dropped (RFC
///   1122 §3.3.2; no ICMP time exceeded is generated here).
public struct IPv4Reassembler {
    /// Tunables.
    public struct Configuration: Hashable, Sendable {
        /// Time allowed from the first fragment to completion (RFC 1122 §3.3.2 suggests
        /// 60 to 120 s; Linux uses 30 s).
        public var timeout: Duration = .seconds(30)
        /// Most datagrams in flight.
        public var maximumDatagrams: Int = 64
        /// Most buffer bytes held by incomplete datagrams.
        public var maximumBytes: Int = 1 << 20
        /// The defaults.
        public init() {}
    }

    /// What happened to a fragment.
    public enum Outcome: ~Copyable {
        /// The datagram is complete: the first fragment's header (with `payloadLength`
        /// the whole length and no fragment fields) and the contiguous payload, in a
        /// buffer of the reassembler's with ``IPv4Reassembler/headroom`` in front.
        case complete(IPv4Repr, payload: Packet)
        /// Held, waiting for more.
        case incomplete
        /// Dropped (and counted) for this reason.
        case dropped(ReassemblyDropReason)
    }

    @usableFromInline
    internal struct Key: Hashable {
        var source: IPv4Address
        var destination: IPv4Address
        var `protocol`: UInt8
        var identification: UInt16
    }

    @usableFromInline
    internal struct Datagram {
        var buffer: Buffer
        var createdAt: Duration
        /// Received ranges, sorted by start; never overlapping.
        var ranges: [Range<Int>]
        var received: Int
        /// The total payload length, once the last fragment (MF clear) has arrived.
        var totalLength: Int?
        /// The header of the fragment at offset 0, once it has arrived.
        var first: IPv4Repr?
    }

    /// Headroom left before a reassembled payload.
    public static let headroom = 64

    /// Tunables.
    public let configuration: Configuration
    /// What was dropped, and why.
    public private(set) var drops = DropCounters<ReassemblyDropReason>()
    /// Bytes of buffers held now.
    public private(set) var bytesHeld = 0

    @usableFromInline internal var datagrams: [Key: Datagram] = [:]

    /// An empty reassembler.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// The number of datagrams in flight.
    public var count: Int { datagrams.count }

    /// The most separate pieces a waiting datagram may be in: contiguous fragments
    /// merge into one piece, so a datagram arriving in order is one piece however many
    /// fragments it takes (a 64 KiB ping over a 576-byte MTU is 120), while fragments
    /// sent with gaps between them, to make the reassembler scan and hold more, are
    /// bounded.
    public static let maximumFragments = 64

    /// Takes one fragment: `header` is its parsed header, `payload` its data.
    public mutating func insert(_ header: IPv4Repr, payload: Bits, now: Duration) -> Outcome {
        payload.withUnsafeBytes { insert(header, payload: $0, now: now) }
    }

    /// Takes one fragment whose data is `payload`'s bytes.
    public mutating func insert(_ header: IPv4Repr, payload: borrowing Packet, now: Duration)
        -> Outcome
    {
        payload.withUnsafeBytes { insert(header, payload: $0, now: now) }
    }

    /// Takes one fragment whose data is `payload` (copied).
    public mutating func insert(
        _ header: IPv4Repr, payload: UnsafeRawBufferPointer, now: Duration
    ) -> Outcome {
        expire(now: now)
        let start = header.fragmentOffset
        let end = start + payload.count
        let key = Key(
            source: header.source, destination: header.destination,
            protocol: header.protocol.rawValue, identification: header.identification)
        // RFC 791: every fragment but the last carries a multiple of 8 bytes; the whole
        // datagram fits the 16-bit total length (the "ping of death" does not).
        guard end + IPv4Header.size <= Int(UInt16.max),
            !header.moreFragments || payload.count % 8 == 0,
            payload.count > 0 || !header.moreFragments
        else {
            return drop(key, .badFragment)
        }
        if datagrams[key] == nil {
            guard makeRoom(for: Self.capacity(for: end)) else { return drop(nil, .memoryBound) }
            let buffer = Buffer(byteCount: Self.capacity(for: end))
            bytesHeld += buffer.capacity
            datagrams[key] = Datagram(
                buffer: buffer, createdAt: now, ranges: [], received: 0, totalLength: nil,
                first: nil)
        }
        var datagram = datagrams[key]!
        // Consistency with the end of the datagram.
        if !header.moreFragments {
            if let total = datagram.totalLength, total != end { return drop(key, .badFragment) }
            if let last = datagram.ranges.last, last.upperBound > end {
                return drop(key, .badFragment)
            }
            datagram.totalLength = end
        } else if let total = datagram.totalLength, end > total {
            return drop(key, .badFragment)
        }
        // Overlaps (RFC 5722 §4): a duplicate (bytes we hold already, the same bytes)
        // is harmless, anything else is not. The ranges are the pieces held, in order,
        // contiguous fragments merged.
        var insertAt = datagram.ranges.count
        for (index, range) in datagram.ranges.enumerated() {
            if range.lowerBound <= start && end <= range.upperBound && start < end {
                guard let base = payload.baseAddress,
                    memcmp(datagram.buffer.baseAddress + Self.headroom + start, base, end - start)
                        == 0
                else { return drop(key, .overlap) }
                datagrams[key] = datagram
                drops.count(.duplicate)
                return .dropped(.duplicate)
            }
            if range.overlaps(start..<end) {
                return drop(key, .overlap)
            }
            if range.lowerBound >= start {
                insertAt = index
                break
            }
        }
        // A bounded number of pieces: each costs a scan, and they are not in
        // `bytesHeld`. A fragment that joins a piece adds none.
        let joinsBefore = insertAt > 0 && datagram.ranges[insertAt - 1].upperBound == start
        let joinsAfter =
            insertAt < datagram.ranges.count && datagram.ranges[insertAt].lowerBound == end
        guard joinsBefore || joinsAfter || datagram.ranges.count < Self.maximumFragments else {
            return drop(key, .badFragment)
        }
        // Grow the buffer if this fragment reaches past it (copying what is held).
        let needed = Self.capacity(for: end)
        if needed > datagram.buffer.capacity {
            let growth = needed - datagram.buffer.capacity
            datagrams[key] = datagram
            guard makeRoom(for: growth, sparing: key) else { return drop(key, .memoryBound) }
            let bigger = Buffer(byteCount: needed)
            bigger.baseAddress.copyMemory(
                from: datagram.buffer.baseAddress, byteCount: datagram.buffer.capacity)
            bytesHeld += bigger.capacity - datagram.buffer.capacity
            datagram.buffer = bigger
        }
        if let base = payload.baseAddress, payload.count > 0 {
            (datagram.buffer.baseAddress + Self.headroom + start).copyMemory(
                from: base, byteCount: payload.count)
        }
        switch (joinsBefore, joinsAfter) {
        case (true, true):
            datagram.ranges[insertAt - 1] =
                datagram.ranges[insertAt - 1].lowerBound..<datagram.ranges[insertAt].upperBound
            datagram.ranges.remove(at: insertAt)
        case (true, false):
            datagram.ranges[insertAt - 1] = datagram.ranges[insertAt - 1].lowerBound..<end
        case (false, true):
            datagram.ranges[insertAt] = start..<datagram.ranges[insertAt].upperBound
        case (false, false):
            datagram.ranges.insert(start..<end, at: insertAt)
        }
        datagram.received += payload.count
        if start == 0 { datagram.first = header }
        if let total = datagram.totalLength, datagram.received == total, var whole = datagram.first
        {
            // No overlaps and `received == total`: the ranges tile 0..<total.
            datagrams[key] = nil
            bytesHeld -= datagram.buffer.capacity
            whole.moreFragments = false
            whole.fragmentOffset = 0
            whole.payloadLength = total
            guard
                let view = try? Packet(buffer: datagram.buffer, offset: Self.headroom, count: total)
            else { return .dropped(.badFragment) }
            return .complete(whole, payload: view)
        }
        datagrams[key] = datagram
        return .incomplete
    }

    /// Drops the datagrams whose time is up (counted as `timeout`).
    public mutating func expire(now: Duration) {
        guard !datagrams.isEmpty else { return }
        for (key, datagram) in datagrams where now - datagram.createdAt >= configuration.timeout {
            remove(key)
            drops.count(.timeout)
        }
    }

    /// When ``expire(now:)`` next has something to do, if ever.
    public var nextDeadline: Duration? {
        datagrams.values.map(\.createdAt).min().map { $0 + configuration.timeout }
    }

    private static func capacity(for end: Int) -> Int {
        let bytes = headroom + end
        return max(1, (bytes + Buffer.pageSize - 1) / Buffer.pageSize) * Buffer.pageSize
    }

    private mutating func drop(_ key: Key?, _ reason: ReassemblyDropReason) -> Outcome {
        if let key { remove(key) }
        drops.count(reason)
        return .dropped(reason)
    }

    private mutating func remove(_ key: Key) {
        if let datagram = datagrams.removeValue(forKey: key) {
            bytesHeld -= datagram.buffer.capacity
        }
    }

    /// Evicts the oldest datagrams (other than `sparing`) until `bytes` more fit and,
    /// for a new datagram, the count allows one more. False if it cannot fit at all.
    private mutating func makeRoom(for bytes: Int, sparing: Key? = nil) -> Bool {
        guard bytes <= configuration.maximumBytes, configuration.maximumDatagrams > 0 else {
            return false
        }
        let needsSlot = sparing == nil
        while bytesHeld + bytes > configuration.maximumBytes
            || (needsSlot && datagrams.count >= configuration.maximumDatagrams)
        {
            var oldest: (Key, Duration)? = nil
            for (key, datagram) in datagrams
            where key != sparing && (oldest == nil || datagram.createdAt < oldest!.1) {
                oldest = (key, datagram.createdAt)
            }
            guard let (key, _) = oldest else { return false }
            remove(key)
            drops.count(.memoryBound)
        }
        return true
    }
}
