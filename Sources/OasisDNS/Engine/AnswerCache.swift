#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whole answers kept by the query that asked for them, in front of an
/// ``AuthoritativeEngine`` (what PowerDNS calls a packet cache).
///
/// The engine's answer is a function of the query's bytes and the transport alone: the
/// zones never change once compiled, and the only bytes of the answer taken from the
/// query that the key leaves out are its ID. So an answer is kept under the query's
/// bytes after the ID (and the transport's size limit), and a query with the same
/// bytes gets a copy of it with its own ID: one hash, one comparison and one copy,
/// instead of parsing, lookups and name compression. Mixed case, EDNS sizes, the DO
/// bit, RD: each is in the key, so each gets exactly the answer the engine gives it.
/// (A name in the query may be a compression pointer to the ID itself, which then
/// spells part of the name: such a query, found by the bytes C0 00 or C0 01 anywhere
/// in it, is answered by the engine and not kept.)
///
/// The cache is direct-mapped, `slotCount` slots made once (a slot holds a query of
/// up to ``maximumQuery`` bytes and an answer of up to ``maximumAnswer``), so its
/// memory is bounded and a lookup touches one slot. Where queries rarely repeat (a
/// large zone asked at random) a cache costs a lookup and a copy per query and pays
/// nothing back: when fewer than one lookup in 16 hits over a window, the cache steps
/// aside for the next `bypassLength` queries and then tries again.
///
/// Not `Sendable`: one cache per thread, like the buffers it answers into.
public final class AnswerCache {
    /// The longest query kept (bytes after the ID): a question, an OPT and a cookie.
    public static let maximumQuery = 110
    /// The longest answer kept: the most a client without EDNS may get.
    public static let maximumAnswer = 512

    public let slotCount: Int
    /// Queries answered from the cache, answered by the engine (and kept when they
    /// fit), and answered by the engine while the cache stood aside.
    /// (Counted without dynamic exclusivity checks: a cache is confined to a thread.)
    @exclusivity(unchecked) public private(set) var hits: UInt64 = 0
    @exclusivity(unchecked) public private(set) var misses: UInt64 = 0
    @exclusivity(unchecked) public private(set) var bypassed: UInt64 = 0

    // A slot: [hash: UInt64][query length: UInt16][answer length: UInt16][limit: UInt32]
    // [query bytes after the ID, maximumQuery][answer, maximumAnswer]. Length 0: empty.
    private static let queryAt = 16
    private static let answerAt = queryAt + maximumQuery
    private static let slotSize = (answerAt + maximumAnswer + 63) & ~63
    private let slots: UnsafeMutableRawPointer
    private let mask: Int

    /// Lookups per window, and how long the cache stands aside after a poor one.
    private static let window: UInt32 = 8192
    private let bypassLength: UInt32
    private var windowLookups: UInt32 = 0
    private var windowHits: UInt32 = 0
    private var bypassLeft: UInt32 = 0

    /// A cache of `slots` answers (rounded up to a power of two, at least 16); each
    /// slot takes ``maximumQuery`` + ``maximumAnswer`` + 16 bytes, on 64-byte lines.
    public init(slots: Int = 1024, bypassLength: Int = 1 << 16) {
        var count = 16
        while count < slots { count <<= 1 }
        slotCount = count
        mask = count - 1
        self.bypassLength = UInt32(clamping: max(1, bypassLength))
        // Zeroed pages: every slot starts empty, and untouched slots cost no memory.
        self.slots = calloc(count, AnswerCache.slotSize)!
    }

    deinit { free(slots) }

    /// Forgets every answer (the zones they came from were replaced); the counters
    /// stay.
    public func removeAll() {
        // Length 0 marks a slot empty; zeroing whole slots also returns nothing stale.
        memset(slots, 0, slotCount * AnswerCache.slotSize)
    }

    /// The bytes the cache holds.
    public var byteCount: Int { slotCount * AnswerCache.slotSize }

    /// ``AuthoritativeEngine/respond(to:transport:into:)-(UnsafeRawBufferPointer,_,_)``
    /// through the cache: the same answer, byte for byte, into `reply` (which must not
    /// overlap `query`), or nil when the query gets none.
    public func respond(
        with engine: AuthoritativeEngine, to query: UnsafeRawBufferPointer, transport: Transport,
        into reply: UnsafeMutableRawBufferPointer
    ) -> Int? {
        if bypassLeft > 0 {
            bypassLeft &-= 1
            bypassed &+= 1
            return engine.respond(to: query, transport: transport, into: reply)
        }
        guard let source = query.baseAddress, let target = reply.baseAddress,
            query.count >= MessageHeader.size, query.count - 2 <= AnswerCache.maximumQuery
        else {
            misses &+= 1
            return engine.respond(to: query, transport: transport, into: reply)
        }
        let key = source + 2
        let keyLength = query.count - 2
        guard !AnswerCache.mayPointAtTheID(key, count: keyLength) else {
            misses &+= 1
            return engine.respond(to: query, transport: transport, into: reply)
        }
        let limit: UInt32
        // The most an answer may take: the reply's room must hold it for the answer
        // to be kept, or it could have been cut short by the room, not the transport.
        let most: Int
        switch transport {
        case .tcp:
            limit = 0
            most = 65535
        case .udp(let maximum):
            limit = UInt32(clamping: maximum)
            most = max(512, min(maximum, 65535))
        }
        let hash = AnswerCache.hash(key, count: keyLength, seed: UInt64(limit))
        let slot = slots + (Int(truncatingIfNeeded: hash) & mask) * AnswerCache.slotSize
        windowLookups &+= 1
        if slot.load(as: UInt64.self) == hash,
            Int(slot.load(fromByteOffset: 8, as: UInt16.self)) == keyLength,
            slot.load(fromByteOffset: 12, as: UInt32.self) == limit,
            memcmp(slot + AnswerCache.queryAt, key, keyLength) == 0
        {
            // Kept from a room the transport's limit bounded, so any room it fits in
            // would give the engine the same choices.
            let length = Int(slot.load(fromByteOffset: 10, as: UInt16.self))
            if length <= reply.count {
                target.copyMemory(from: slot + AnswerCache.answerAt, byteCount: length)
                // The one byte pair of the answer the key does not cover: the ID.
                target.copyMemory(from: source, byteCount: 2)
                hits &+= 1
                windowHits &+= 1
                endOfLookup()
                return length
            }
        }
        misses &+= 1
        let answer = engine.respond(to: query, transport: transport, into: reply)
        if let length = answer, length >= MessageHeader.size, length <= AnswerCache.maximumAnswer,
            reply.count >= most
        {
            slot.storeBytes(of: hash, as: UInt64.self)
            slot.storeBytes(of: UInt16(keyLength), toByteOffset: 8, as: UInt16.self)
            slot.storeBytes(of: UInt16(length), toByteOffset: 10, as: UInt16.self)
            slot.storeBytes(of: limit, toByteOffset: 12, as: UInt32.self)
            (slot + AnswerCache.queryAt).copyMemory(from: key, byteCount: keyLength)
            (slot + AnswerCache.answerAt).copyMemory(from: target, byteCount: length)
        }
        endOfLookup()
        return answer
    }

    /// At the end of a window: stand aside for a while if it hit too rarely.
    @inline(__always)
    private func endOfLookup() {
        guard windowLookups >= AnswerCache.window else { return }
        if windowHits < windowLookups / 16 { bypassLeft = bypassLength }
        windowLookups = 0
        windowHits = 0
    }

    /// Whether the bytes may hold a compression pointer to offset 0 or 1 of the
    /// message (C0 00 or C0 01): a name that reads the ID.
    @inline(__always)
    static func mayPointAtTheID(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
        // A byte loop: the key is a hundred bytes at most, shorter than what a call to
        // memchr costs to set up (which perf showed as 4 % of the server on AF_XDP).
        var index = 0
        while index &+ 1 < count {
            if bytes.load(fromByteOffset: index, as: UInt8.self) == 0xc0,
                bytes.load(fromByteOffset: index &+ 1, as: UInt8.self) <= 1
            {
                return true
            }
            index &+= 1
        }
        return false
    }

    /// A hash of `count` bytes at `bytes`, eight at a time.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawPointer, count: Int, seed: UInt64) -> UInt64 {
        var hash = 0x9e37_79b9_7f4a_7c15 ^ seed ^ UInt64(count)
        var offset = 0
        while offset + 8 <= count {
            let word = UInt64(
                littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            hash = (hash ^ word) &* 0xff51_afd7_ed55_8ccd
            hash ^= hash >> 32
            offset &+= 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while offset < count {
            tail |= UInt64(bytes.load(fromByteOffset: offset, as: UInt8.self)) << shift
            shift &+= 8
            offset &+= 1
        }
        hash = (hash ^ tail) &* 0xc4ce_b9fe_1a85_ec53
        return hash ^ (hash >> 29) | 1  // never 0: an empty slot's hash
    }
}
