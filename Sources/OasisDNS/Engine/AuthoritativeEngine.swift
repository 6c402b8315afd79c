import CPrefetch
import OasisBits

/// How a query arrived, which bounds the size of its answer.
public enum Transport: Hashable, Sendable {
    /// A UDP datagram. `maximumPayload` is the largest answer this server sends over
    /// UDP to an EDNS client (NSD's `ipv4-edns-size`, 1232 by default, RFC 9715);
    /// the client's own EDNS size can lower it, never below 512 (RFC 6891 §6.2.5);
    /// without EDNS the limit is 512 (RFC 1035 §4.2.1).
    case udp(maximumPayload: Int)
    /// A TCP stream: up to 65535 bytes (RFC 1035 §4.2.2; the caller adds the length
    /// prefix).
    case tcp

    /// The EDNS payload size NSD and BIND use by default (RFC 9715 explains 1232).
    public static let defaultPayloadSize = 1232

    /// UDP with the 1232-byte EDNS ceiling that NSD and BIND use by default.
    public static let udp = Transport.udp(maximumPayload: defaultPayloadSize)
}

/// An authoritative DNS server's answering logic, for many zones at once.
///
/// The engine is built once from zones (``init(zones:)``), is immutable afterwards and
/// can be shared between threads. Each query is one call to
/// ``respond(to:transport:into:)``, which reads the query in place and writes the
/// answer straight into the caller's buffer — no allocation per query:
///
/// ```swift
/// let engine = try AuthoritativeEngine(zones: [Zone.load(file: path, origin: origin)])
/// var reply = try pool.allocate()                       // empty view, with tailroom
/// if let length = engine.respond(to: datagram, transport: .udp, into: &reply) {
///     send(reply)                                        // `length` == reply.count
/// }                                                      // nil: drop, send nothing
/// ```
///
/// Behaviour follows RFC 1034 §4.3.2 with RFC 2181, RFC 2308 (negative answers),
/// RFC 4592 (wildcards) and RFC 6891 (EDNS), and matches NSD wherever the RFCs leave
/// a choice (see README.md for the list, each checked by the differential test).
public final class AuthoritativeEngine: Sendable {
    let store: ZoneStore
    let chaos: ChaosTexts
    /// What the engine says of itself to CHAOS-class queries.
    public var identity: ServerIdentity { chaos.identity }

    /// The longest CNAME chain followed within the served zones; loops stop earlier,
    /// when a CNAME RRset would appear twice.
    public static let maximumChainLength = 16

    /// Compiles `zones`. Fails on a zone that `nsd-checkzone` would reject (no SOA,
    /// data outside the zone, CNAME beside other data) or on a zone served twice.
    /// (``ZoneCompiler`` compiles zone files without holding their records.)
    public convenience init(zones: [Zone]) throws(ZoneFileError) {
        var compiler = ZoneCompiler()
        for zone in zones { try compiler.add(zone) }
        self.init(store: compiler.finish().store)
    }

    init(store: ZoneStore, identity: ServerIdentity = .hidden) {
        self.store = store
        chaos = ChaosTexts(identity)
    }

    /// The same zones, answering CHAOS-class TXT queries about itself as `identity`
    /// says (NSD answers `version.bind` and `id.server` unless told to hide them):
    ///
    /// ```swift
    /// let engine = try AuthoritativeEngine(zones: zones)
    ///     .answering(as: ServerIdentity(version: "oasis 1.0", identity: "ns1"))
    /// ```
    public func answering(as identity: ServerIdentity) -> AuthoritativeEngine {
        AuthoritativeEngine(store: store, identity: identity)
    }

    /// The number of names (including empty non-terminals) and RRsets loaded, and the
    /// bytes of the name and RDATA arena.
    public var statistics: (names: Int, rrsets: Int, arenaBytes: Int) {
        (store.nodeCount, store.rrsetCount, store.arenaBytes)
    }

    /// Answers `query` (one DNS message, without the TCP length prefix) into
    /// `response`, which the caller gives empty (or with bytes to keep before the
    /// message) with enough tailroom: at least 512 bytes, 65535 for full TCP answers.
    ///
    /// Returns the length of the answer (also now `response.count`), or `nil` when
    /// the query must be dropped without an answer: shorter than a header, or with the
    /// QR bit set (a response sent to us — answering could loop; NSD drops these too).
    public func respond(to query: Bits, transport: Transport, into response: inout Bits) -> Int? {
        let reply = UnsafeMutableRawBufferPointer(
            start: response.buffer.baseAddress + response.offset + response.count,
            count: response.tailroom)
        guard
            let length = query.withUnsafeBytes({ message in
                respond(to: message, transport: transport, into: reply)
            })
        else { return nil }
        try? response.extend(by: length)
        return length
    }

    /// Answers the DNS message in `query` into the memory `reply` (at least 512
    /// bytes; 65535 for full TCP answers), which must not overlap it; as
    /// ``respond(to:transport:into:)-(Bits,_,_)`` over raw memory, for callers that
    /// hold their buffers alive themselves.
    public func respond(
        to query: UnsafeRawBufferPointer, transport: Transport,
        into reply: UnsafeMutableRawBufferPointer
    ) -> Int? {
        guard let base = reply.baseAddress else { return nil }
        return Responder.with(store: store.view, chaos: chaos.view) { responder, suffixes in
            var writer = MessageWriter(
                base: base, capacity: reply.count, limit: 65535, suffixes: suffixes)
            return responder.respond(to: query, transport: transport, writer: &writer)
        }
    }
}

// MARK: CHAOS

/// What a server says of itself to CHAOS-class TXT queries, as NSD does: its version
/// to `version.bind` and `version.server`, its identity to `id.server` and
/// `hostname.bind` (RFC 4892). nil: such queries are REFUSED, as with NSD's
/// `hide-version` and `hide-identity`.
public struct ServerIdentity: Hashable, Sendable {
    /// The version string, e.g. `NSD 4.6.1`; nil hides it.
    public var version: String?
    /// The server's name, e.g. its host name; nil hides it.
    public var identity: String?

    public init(version: String? = nil, identity: String? = nil) {
        self.version = version
        self.identity = identity
    }

    /// Nothing said: every CHAOS query REFUSED.
    public static let hidden = ServerIdentity()
}

/// The TXT RDATA of the version and the identity (a length byte and up to 255 bytes
/// each: longer strings are cut), in memory of their own that a query reads through
/// ``ChaosView`` without reference counting.
final class ChaosTexts: @unchecked Sendable {
    // @unchecked: written once in `init`, only read afterwards.
    let identity: ServerIdentity
    private let base: UnsafeMutableRawPointer
    let view: ChaosView

    init(_ identity: ServerIdentity) {
        self.identity = identity
        func rdata(_ text: String?) -> [UInt8]? {
            text.map { text in
                let bytes = Array(text.utf8.prefix(255))
                return [UInt8(bytes.count)] + bytes
            }
        }
        let version = rdata(identity.version)
        let name = rdata(identity.identity)
        let count = (version?.count ?? 0) + (name?.count ?? 0)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(1, count), alignment: 1)
        var offset = 0
        func place(_ bytes: [UInt8]?) -> UnsafeRawBufferPointer? {
            guard let bytes else { return nil }
            let start = memory + offset
            bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            offset += bytes.count
            return UnsafeRawBufferPointer(start: start, count: bytes.count)
        }
        let versionView = place(version)
        base = memory
        view = ChaosView(version: versionView, identity: place(name))
    }

    deinit { base.deallocate() }
}

/// ``ChaosTexts`` as plain pointers, for the length of one query.
struct ChaosView {
    let version: UnsafeRawBufferPointer?
    let identity: UnsafeRawBufferPointer?
}

// MARK: Batches

/// Where a query's name sits in the engine's tables, from
/// ``AuthoritativeEngine/prefetchSlot(for:)``: what ``AuthoritativeEngine/prefetchRecord(_:)``
/// needs to start loading the name's data.
@frozen
public struct PrefetchToken: Sendable {
    /// The slot's index among the store's slots, or -1 when the query names no zone
    /// we serve. An index, not an address: a token kept too long, or given to another
    /// engine, is checked against that engine's slots and at worst hints wrongly.
    @usableFromInline let slot: Int
    @usableFromInline let tag: UInt64

    @inlinable init(slot: Int, tag: UInt64) {
        self.slot = slot
        self.tag = tag
    }

    /// A token that prefetches nothing.
    @inlinable public static var none: PrefetchToken { PrefetchToken(slot: -1, tag: 0) }
}

extension AuthoritativeEngine {
    /// Whether prefetching pays: the store is larger than a core's own caches hold
    /// (a few MiB), so a query's slot and record are likely not cached. Below that the
    /// hints cost more than they save.
    public var benefitsFromPrefetch: Bool { store.arenaBytes + store.slotBytes > 2 << 20 }

    /// Starts loading the hash slot of the name `query` asks about, and returns where
    /// it is. For a batch of queries: ``prefetchSlot(for:)`` on each, then
    /// ``prefetchRecord(_:)`` on each token, then ``respond(to:transport:into:)`` on
    /// each. The batch's cache misses (two per query in a large zone: the slot, then
    /// the name's record) then overlap instead of following one another. Only hints:
    /// answers are the same without them, and a malformed query costs nothing more.
    public func prefetchSlot(for query: Bits) -> PrefetchToken {
        query.withUnsafeBytes { prefetchSlot(for: $0) }
    }

    /// ``prefetchSlot(for:)-(Bits)`` for a query in raw memory.
    public func prefetchSlot(for message: UnsafeRawBufferPointer) -> PrefetchToken {
        let view = store.view
        return withUnsafeTemporaryAllocation(byteCount: 256 + StoreView.slack, alignment: 8) {
            name in
            guard message.count > MessageHeader.size,
                let (length, _) = try? readWireName(message, at: MessageHeader.size, into: name)
            else { return .none }
            for index in 0..<length { name[index] = asciiLower(name[index]) }
            return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 128) { hashes in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { starts in
                    let labelCount = StoreView.labels(
                        of: UnsafeRawPointer(name.baseAddress!), starts: starts.baseAddress!,
                        hashes: hashes.baseAddress!, lowercase: true)
                    for label in 0...labelCount {
                        let start = Int(starts[label])
                        guard
                            let zone = view.findZone(
                                UnsafeRawBufferPointer(rebasing: name[start..<length]),
                                hash: hashes[label])
                        else { continue }
                        let (slot, tag) = view.slot(zone, hash: hashes[0])
                        oasis_prefetch(view.slots + slot)
                        return PrefetchToken(slot: slot, tag: tag)
                    }
                    return .none
                }
            }
        }
    }

    /// Starts loading the record of the name whose slot `token` gives, if the slot
    /// holds it (the slot is read: call this after ``prefetchSlot(for:)`` has had time
    /// to bring it in, as the second pass over a batch).
    public func prefetchRecord(_ token: PrefetchToken) {
        let view = store.view
        guard token.slot >= 0 && token.slot < view.slotCount else { return }
        let entry = view.slots[token.slot]
        guard entry != 0, entry >> 32 == token.tag else { return }
        let record = view.arena + Int(truncatingIfNeeded: entry & 0xffff_ffff)
        oasis_prefetch(record)
        oasis_prefetch(record + 63)
    }
}
