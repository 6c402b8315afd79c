// The authoritative DNS server's UDP side, written once against the Datagram surface:
// it runs on the Oasis stack (TAP, pcap) and on kernel sockets unchanged. The TCP side,
// written against the Stream surface, is DNSOverTCP.swift.

import OasisBits
import OasisDNS
import OasisLoop
import OasisNet

/// What a DNS server has done, for the report on exit.
public struct DNSStatistics {
    /// Queries received (datagrams, or complete TCP messages).
    public var queries: UInt64 = 0
    /// Answers sent (FORMERR and REFUSED included).
    public var responses: UInt64 = 0
    /// Queries left unanswered because the engine drops them: shorter than a header,
    /// or a response (QR set).
    public var dropsUnanswerable: UInt64 = 0
    /// Queries left unanswered because no reply buffer was free.
    public var dropsNoBuffer: UInt64 = 0
    /// Answers the transport refused to send.
    public var dropsSendFailed: UInt64 = 0

    public init() {}

    public var drops: UInt64 { dropsUnanswerable &+ dropsNoBuffer &+ dropsSendFailed }

    public var summary: String {
        "queries \(queries), responses \(responses), drops \(drops) "
            + "(unanswerable \(dropsUnanswerable), no buffer \(dropsNoBuffer), "
            + "send failed \(dropsSendFailed))"
    }
}

/// An authoritative DNS server over UDP: every datagram on its port goes to the
/// engine, and the answer is built after the query in the query's buffer (or, when it
/// may not fit there, in a buffer of the server's own pool with room in front for the
/// headers), so the Oasis stack prepends UDP, IPv4 and Ethernet in place. With an
/// `AnswerCache` (the default), a query asked before is answered by a copy.
public final class DNSService {
    /// The zones answered from; ``replace(engine:)`` swaps them (a reload).
    public private(set) var engine: AuthoritativeEngine
    /// The ceiling of UDP answers to EDNS clients (the engine's default: 1232, like NSD).
    public let maximumUDPPayload: Int
    public var udp: DNSStatistics { _udp }
    @exclusivity(unchecked) @usableFromInline internal var _udp = DNSStatistics()
    /// Answers are at most `maximumUDPPayload` bytes: one page with 128 bytes of
    /// headroom holds any of them. The limit bounds what a slow device can hold.
    private let pool = BufferPool(headroom: BufferPool.defaultHeadroom, limit: 512)

    /// The most bytes a UDP answer can take: the payload ceiling (at least 512), the
    /// OPT record and an Extended DNS Error option.
    private let replyRoom: Int
    /// Whether the engine's store is large enough for prefetching to pay.
    @usableFromInline internal var prefetch: Bool

    /// UDP queries by type, answers by rcode, truncated answers (loop-confined: no
    /// dynamic exclusivity check per query, as for `_udp`).
    @exclusivity(unchecked) public private(set) var counters = QueryCounters()

    /// Whole UDP answers kept by their queries, or nil for none (`--answer-cache 0`).
    public let cache: AnswerCache?

    /// The UDP statistics and the answer cache's, for the report on exit.
    public var udpSummary: String {
        guard let cache else { return udp.summary + "; no answer cache" }
        return udp.summary
            + "; answer cache \(cache.slotCount) slots: \(cache.hits) hits, "
            + "\(cache.misses) misses, \(cache.bypassed) passed by"
    }

    public init(
        engine: AuthoritativeEngine, maximumUDPPayload: Int = Transport.defaultPayloadSize,
        answerCache: Int = 1024
    ) {
        self.engine = engine
        self.maximumUDPPayload = maximumUDPPayload
        cache = answerCache > 0 ? AnswerCache(slots: answerCache) : nil
        replyRoom = max(512, min(maximumUDPPayload, 65535)) + 64
        prefetch = engine.benefitsFromPrefetch
    }

    /// Answers from `engine` from now on (zones reloaded): the answer cache is emptied,
    /// so nothing answered from the old zones is served again. On the loop's thread,
    /// between batches.
    public func replace(engine: AuthoritativeEngine) {
        self.engine = engine
        prefetch = engine.benefitsFromPrefetch
        cache?.removeAll()
    }

    /// The prefetch tokens of the batch being answered.
    @usableFromInline internal let tokens = UnsafeMutablePointer<PrefetchToken>.allocate(
        capacity: 64)

    deinit { tokens.deallocate() }

    /// Answers every datagram arriving on `port` of `service`, a batch at a time: for a
    /// store larger than the caches, the engine first starts loading what each query
    /// of the batch will read (its hash slot, then its name's record), then answers
    /// them one after the other. The closure holds neither `self` nor `service`
    /// (``Unretained``: no reference count per batch): `service` owns the closure, and
    /// this service must outlive the listener, as `oasis dns` arranges. Inlinable, so
    /// that it is specialised with `service` where that is known: the replies go down
    /// the stack with no witness table between the answer and the device.
    @inlinable
    public func serveUDP(on service: some DatagramService, port: UInt16) throws(DatagramError) {
        let server = Unretained(self)
        let transport = Unretained(service)
        try service.listen(port: port) { (batch: inout DatagramBatch) in
            server.call { server in
                transport.call { transport in server.serve(&batch, on: transport, port: port) }
            }
        }
    }

    /// One batch: prefetch (for a large store), then answer and send each datagram.
    @inlinable
    internal func serve(
        _ batch: inout DatagramBatch, on service: some DatagramService, port: UInt16
    ) {
        if batch.count > 1 && batch.count <= 64 && prefetch {
            for index in batch.indices {
                tokens[index] =
                    batch.withElement(at: index) { datagram in
                        datagram.payload.withUnsafeBytes { engine.prefetchSlot(for: $0) }
                    } ?? .none
            }
            for index in batch.indices { engine.prefetchRecord(tokens[index]) }
        }
        for index in batch.indices {
            guard let datagram = batch.take(at: index) else { continue }
            let source = datagram.source
            guard let reply = answer(datagram.payload) else { continue }
            do {
                try service.send(reply, to: source, from: port)
                _udp.responses &+= 1
            } catch {
                _udp.dropsSendFailed &+= 1
            }
        }
    }

    /// The answer to one query, read in place: built after the query in the query's
    /// own buffer (the query is read once, before anything is written; the stack
    /// prepends the reply's headers over the query), or in a buffer of ours when the
    /// largest answer does not fit there; nil (counted) when there is none to send.
    /// Not generic, so that it is compiled once, with nothing between the engine and
    /// the packet it returns.
    @usableFromInline
    internal func answer(_ query: consuming Packet) -> Packet? {
        _udp.queries &+= 1
        let offset = query.offset
        let count = query.count
        let question = UnsafeRawBufferPointer(
            start: query.buffer.baseAddress + offset, count: count)
        let start = offset + ((count + 15) & ~15)
        var reply: Packet
        if query.buffer.capacity - start >= replyRoom {
            reply = query
            // `start` is inside the buffer: checked just above.
            try? reply.move(toOffset: start, count: 0)
        } else if let own = try? pool.allocatePacket() {
            reply = own
            // The query's buffer stays alive (`query` is consumed below) while the
            // engine reads it.
            return respond(to: question, into: reply, keeping: query)
        } else {
            _udp.dropsNoBuffer &+= 1
            return nil
        }
        return respond(to: question, into: reply, keeping: nil)
    }

    /// Writes the answer to `question` into `reply`'s tailroom.
    private func respond(
        to question: UnsafeRawBufferPointer, into reply: consuming Packet,
        keeping query: consuming Packet?
    ) -> Packet? {
        var reply = reply
        let room = UnsafeMutableRawBufferPointer(
            start: reply.buffer.baseAddress + reply.offset, count: reply.tailroom)
        let transport = Transport.udp(maximumPayload: maximumUDPPayload)
        let length =
            if let cache {
                cache.respond(with: engine, to: question, transport: transport, into: room)
            } else {
                engine.respond(to: question, transport: transport, into: room)
            }
        _ = consume query
        guard let length, (try? reply.extend(by: length)) != nil else {
            _udp.dropsUnanswerable &+= 1
            return nil
        }
        counters.count(query: question, answer: UnsafeRawBufferPointer(rebasing: room[..<length]))
        return reply
    }
}
