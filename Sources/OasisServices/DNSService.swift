// The authoritative DNS server's UDP side, written once against the Datagram surface:
// it runs on the Oasis stack (TAP, pcap) and on kernel sockets unchanged. The TCP side,
// written against the Stream surface, is DNSOverTCP.swift.

import OasisBits
import OasisDNS
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
    public let engine: AuthoritativeEngine
    /// The ceiling of UDP answers to EDNS clients (the engine's default: 1232, like NSD).
    public let maximumUDPPayload: Int
    @exclusivity(unchecked) public private(set) var udp = DNSStatistics()
    /// Answers are at most `maximumUDPPayload` bytes: one page with 128 bytes of
    /// headroom holds any of them. The limit bounds what a slow device can hold.
    private let pool = BufferPool(headroom: BufferPool.defaultHeadroom, limit: 512)

    /// The most bytes a UDP answer can take: the payload ceiling (at least 512), the
    /// OPT record and an Extended DNS Error option.
    private let replyRoom: Int
    /// Whether the engine's store is large enough for prefetching to pay.
    private let prefetch: Bool

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

    /// The prefetch tokens of the batch being answered.
    private let tokens = UnsafeMutablePointer<PrefetchToken>.allocate(capacity: 64)

    deinit { tokens.deallocate() }

    /// Answers every datagram arriving on `port` of `service`, a batch at a time: for a
    /// store larger than the caches, the engine first starts loading what each query
    /// of the batch will read (its hash slot, then its name's record), then answers
    /// them one after the other. The closure holds neither `self` nor `service` (no
    /// reference count per batch): `service` owns the closure, and this service must
    /// outlive the listener, as `oasis dns` arranges.
    public func serveUDP(on service: some DatagramService, port: UInt16) throws(DatagramError) {
        try service.listen(port: port) {
            [unowned(unsafe) self, unowned(unsafe) service] (batch: UnsafeBufferPointer<Datagram>)
            in
            self.serve(batch, on: service, port: port)
        }
    }

    /// One batch: prefetch (for a large store), then answer and send each datagram.
    /// A method rather than the closure's body, so that `self` and `service` are
    /// borrowed for the whole batch instead of retained around every call.
    private func serve(
        _ batch: UnsafeBufferPointer<Datagram>, on service: some DatagramService, port: UInt16
    ) {
        guard let first = batch.baseAddress else { return }
        if batch.count > 1 && batch.count <= 64 && prefetch {
            for index in batch.indices {
                let payload = UnsafeRawBufferPointer(
                    start: (first + index).pointee.payload.buffer.baseAddress
                        + (first + index).pointee.payload.offset,
                    count: (first + index).pointee.payload.count)
                tokens[index] = engine.prefetchSlot(for: payload)
            }
            for index in batch.indices { engine.prefetchRecord(tokens[index]) }
        }
        for index in batch.indices {
            let datagram = first + index
            guard let reply = answer(datagram) else { continue }
            do {
                try service.send(reply, to: datagram.pointee.source, from: port)
                udp.responses &+= 1
            } catch {
                udp.dropsSendFailed &+= 1
            }
        }
    }

    /// The answer to one datagram of a batch, read in place: a view after the query
    /// in its own buffer (no copy of the query's view is made), or in a buffer of
    /// ours; nil (counted) when there is none to send. Not generic, so that it is
    /// compiled once, with nothing between the engine and the view it returns.
    private func answer(_ datagram: UnsafePointer<Datagram>) -> Bits? {
        udp.queries &+= 1
        let offset = datagram.pointee.payload.offset
        let count = datagram.pointee.payload.count
        let capacity = datagram.pointee.payload.buffer.capacity
        let base = datagram.pointee.payload.buffer.baseAddress
        let query = UnsafeRawBufferPointer(start: base + offset, count: count)
        // The answer goes in the query's own buffer, after the query, when the largest
        // answer fits there (a query is read once, before anything is written; the
        // stack prepends the reply's headers over the query). Else a buffer of ours.
        let start = offset + ((count + 15) & ~15)
        var reply: Bits
        if capacity - start >= replyRoom,
            let after = try? Bits(buffer: datagram.pointee.payload.buffer, offset: start, count: 0)
        {
            reply = after
        } else if let own = try? pool.allocate() {
            reply = own
        } else {
            udp.dropsNoBuffer &+= 1
            return nil
        }
        let room = UnsafeMutableRawBufferPointer(
            start: reply.buffer.baseAddress + reply.offset, count: reply.tailroom)
        let transport = Transport.udp(maximumPayload: maximumUDPPayload)
        let length =
            if let cache {
                cache.respond(with: engine, to: query, transport: transport, into: room)
            } else {
                engine.respond(to: query, transport: transport, into: room)
            }
        guard let length, (try? reply.extend(by: length)) != nil else {
            udp.dropsUnanswerable &+= 1
            return nil
        }
        return reply
    }
}
