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

    init(store: ZoneStore) {
        self.store = store
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
        let start = response.count
        var writer = MessageWriter(
            into: (try? response.shifted(by: start)) ?? response,
            limit: 65535)
        let view = store.view
        let length: Int? = withUnsafeTemporaryAllocation(
            byteCount: Responder.scratchBytes, alignment: 8
        ) { scratch in
            var responder = Responder(store: view, scratch: scratch)
            return responder.respond(to: query, transport: transport, writer: &writer)
        }
        guard let length else { return nil }
        try? response.truncate(to: start)
        try? response.extend(by: length)
        return length
    }
}
