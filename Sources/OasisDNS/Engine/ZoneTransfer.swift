import OasisBits

/// One outgoing zone transfer (RFC 5936 AXFR), written a message at a time.
///
/// The engine answers one message per query; a transfer is many, written on demand
/// so that a large zone is never held as messages: a TCP server makes one for a
/// transfer query from an allowed client, then asks for the next message each time
/// the connection can take more.
///
/// ```swift
/// if let transfer = ZoneTransfer(engine: engine, query: query) {
///     while let length = transfer.nextMessage(into: room) {
///         send(room[..<length])                      // prefixed by its length on TCP
///     }
/// } else {
///     // not a transfer (or one the engine refuses as usual): engine.respond(...)
/// }
/// ```
///
/// The zone goes out as NSD sends it: the SOA first, then every RRset of every name in
/// the order the zone file gave them (DNSSEC records included, each RRSIG with its own
/// TTL), then the SOA again; the question and, for an EDNS query, an OPT in the first
/// message only; each message holds as many whole records as fit in
/// ``defaultMessageSize`` bytes (an RRset may continue in the next, RFC 5936 §2.2),
/// with names compressed against the message's own. An IXFR is answered by the whole
/// zone (RFC 1995 §4 allows it: the engine keeps no history), unless the client's
/// serial is ours or newer (RFC 1982): then by our SOA alone (RFC 1995 §2, as NSD).
///
/// The transfer keeps the engine it was made from: a reload meanwhile does not change
/// the zone it sends.
public final class ZoneTransfer {
    /// 16 KiB: compression pointers reach 16 KiB into a message (RFC 1035 §4.1.4), so
    /// larger messages would compress worse; NSD's messages are this size too.
    public static let defaultMessageSize = 16384

    let engine: AuthoritativeEngine
    let store: StoreView
    /// The question as asked (its name's case kept), type and class included.
    let question: [UInt8]
    let id: UInt16
    let recursionDesired: Bool
    /// The query's EDNS DO bit, or nil without EDNS.
    let edns: Bool?
    /// Set when the transfer is one error message (the name is no zone we serve).
    let failure: ResponseCode?
    let zone: Int
    /// The zone's names that own records, apex first, in the zone file's order.
    let nodes: [UInt32]

    enum Phase { case firstSOA, body, lastSOA, done }
    var phase = Phase.firstSOA
    var nodeIndex = 0
    var rrsetIndex = 0
    var recordIndex = 0

    /// Messages and records written so far.
    public private(set) var messages = 0
    public private(set) var records = 0
    /// The zone's name as asked, for logs.
    public let zoneName: String

    /// Whether every message has been written.
    public var isFinished: Bool { phase == .done }

    /// A transfer for `query` (one DNS message, without a TCP length prefix), or nil
    /// when it is no AXFR or IXFR the engine should not answer itself: a malformed
    /// query, a class other than IN, an AXFR with records in authority, an unknown EDNS
    /// version, a TSIG (the engine answers each of those as for any query). A name
    /// that is no zone we serve gets a transfer of one NOTAUTH message (NSD's answer);
    /// an IXFR without its SOA in authority, one FORMERR (NSD's).
    public init?(engine: AuthoritativeEngine, query: UnsafeRawBufferPointer) {
        typealias H = MessageHeader
        func load16(_ offset: Int) -> UInt16 {
            UInt16(bigEndian: query.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        }
        guard query.count >= H.size else { return nil }
        let flags = load16(2)
        guard H.value(of: H.isResponse, in: flags) == 0, H.value(of: H.opcode, in: flags) == 0,
            H.value(of: H.rcode, in: flags) == 0, load16(4) == 1, load16(6) == 0
        else { return nil }
        let store = engine.store.view
        let found = withUnsafeTemporaryAllocation(byteCount: 256 + StoreView.slack, alignment: 8) {
            name -> (
                question: [UInt8], zone: Int?, edns: Bool?, authority: Int, malformed: Bool,
                clientSerial: UInt32?
            )? in
            guard let (nameLength, afterName) = try? readWireName(query, at: H.size, into: name),
                afterName <= query.count - 4
            else { return nil }
            let type = load16(afterName)
            // Class IN; an AXFR of class ANY is served too, as NSD serves it.
            let queryClass = load16(afterName + 2)
            guard type == RecordType.axfr.rawValue || type == RecordType.ixfr.rawValue,
                queryClass == RecordClass.internet.rawValue
                    || (type == RecordType.axfr.rawValue && queryClass == 255)
            else { return nil }
            let authority = Int(load16(8))
            guard type == RecordType.ixfr.rawValue ? authority <= 1 : authority == 0 else {
                return nil
            }
            let question =
                Array(UnsafeRawBufferPointer(rebasing: name[0..<nameLength]))
                + Array(UnsafeRawBufferPointer(rebasing: query[afterName..<(afterName + 4)]))
            // The authority (an IXFR's SOA) is skipped; the additional section may hold
            // one OPT, of version 0. Anything else goes to the engine.
            var offset = afterName + 4
            var edns: Bool? = nil
            var malformed = false
            var clientSerial: UInt32? = nil
            let other = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 1)
            defer { other.deallocate() }
            for index in 0..<(authority + Int(load16(10))) {
                guard let (ownerLength, next) = try? readWireName(query, at: offset, into: other),
                    next <= query.count - 10
                else { return nil }
                let rdataLength = Int(load16(next + 8))
                guard rdataLength <= query.count - next - 10 else { return nil }
                offset = next + 10 + rdataLength
                if index < authority {
                    // RFC 1995 §3: the client's SOA; anything else is FORMERR (NSD's).
                    // Its SERIAL is the fourth-last of the five numbers ending the RDATA.
                    if load16(next) != RecordType.soa.rawValue || rdataLength < 22 {
                        malformed = true
                    } else {
                        let at = next + 10 + rdataLength - 20
                        clientSerial = UInt32(
                            bigEndian: query.loadUnaligned(fromByteOffset: at, as: UInt32.self))
                    }
                    continue
                }
                guard load16(next) == RecordType.opt.rawValue, edns == nil,
                    load16(next + 4) & 0xff == 0
                else { return nil }
                // RFC 6891 §6.1.2: the OPT's owner is the root; NSD says FORMERR.
                if ownerLength != 1 { malformed = true }
                edns = load16(next + 6) & 0x8000 != 0
            }
            for index in 0..<nameLength { name[index] = asciiLower(name[index]) }
            let hash = StoreView.hash(of: UnsafeRawPointer(name.baseAddress!))
            let zone = store.findZone(
                UnsafeRawBufferPointer(rebasing: name[0..<nameLength]), hash: hash)
            return (
                question, zone, edns, type == RecordType.ixfr.rawValue ? authority : 1, malformed,
                clientSerial
            )
        }
        guard let found else { return nil }
        self.engine = engine
        self.store = store
        question = found.question
        id = load16(0)
        recursionDesired = H.value(of: H.recursionDesired, in: flags) != 0
        edns = found.edns
        zoneName =
            (try? DomainName(wire: Array(found.question.dropLast(4))))?.description ?? "?"
        if found.authority == 0 || found.malformed {
            // RFC 1995 §3: an IXFR carries the client's SOA; NSD says FORMERR without.
            failure = .formatError
        } else if found.zone == nil {
            failure = .notAuthorized
        } else {
            failure = nil
        }
        zone = found.zone ?? -1
        guard let zone = found.zone else {
            nodes = []
            return
        }
        let info = store.zones[zone]
        if let clientSerial = found.clientSerial,
            !ZoneTransfer.serial(
                ZoneTransfer.serial(of: info, in: store), isNewerThan: clientSerial)
        {
            // RFC 1995 §2: the client is up to date (or ahead): our SOA alone.
            phase = .lastSOA
            nodes = []
            return
        }
        var nodes: [UInt32] = []
        for slot in Int(info.slotBase)...(Int(info.slotBase) + Int(info.slotMask)) {
            let entry = store.slots[slot]
            guard entry != 0 else { continue }
            let node = UInt32(truncatingIfNeeded: entry & 0xffff_ffff)
            if store.rrsetCount(Int(node)) > 0 { nodes.append(node) }
        }
        // Nodes were laid out in the zone file's order of their owners, apex first.
        nodes.sort()
        self.nodes = nodes
    }

    /// The SERIAL of a zone's SOA.
    static func serial(of info: ZoneStore.ZoneInfo, in view: StoreView) -> UInt32 {
        let rdata = view.rdata(Int(info.soa))
        let serialAt = rdata + 2 + view.rdataLength(at: rdata) - 20
        var serial: UInt32 = 0
        for offset in 0..<4 { serial = serial << 8 | UInt32(view.byte(serialAt + offset)) }
        return serial
    }

    /// Whether serial `a` is newer than `b` (RFC 1982 §3.2).
    static func serial(_ a: UInt32, isNewerThan b: UInt32) -> Bool {
        a != b && (a &- b) < 0x8000_0000
    }

    /// Writes the next message into `buffer` (at least 512 bytes; a record that does
    /// not fit in `limit` bytes goes alone in a message of up to 65535, as far as the
    /// buffer holds) and returns its length; nil once the transfer is complete.
    public func nextMessage(
        into buffer: UnsafeMutableRawBufferPointer, limit: Int = ZoneTransfer.defaultMessageSize
    ) -> Int? {
        guard phase != .done, let base = buffer.baseAddress, buffer.count >= 512 else {
            return nil
        }
        return withUnsafeTemporaryAllocation(
            of: UInt16.self, capacity: MessageWriter.suffixCapacity
        ) { suffixes in
            var writer = MessageWriter(
                base: base, capacity: buffer.count, limit: min(limit, buffer.count, 65535),
                suffixes: suffixes.baseAddress!)
            return write(into: &writer)
        }
    }

    private func write(into writer: inout MessageWriter) -> Int {
        typealias H = MessageHeader
        let first = messages == 0
        messages += 1
        _ = try? writer.append(id)
        var flags = H.flag(H.isResponse, 1) | H.flag(H.recursionDesired, recursionDesired ? 1 : 0)
        if failure == nil { flags |= H.flag(H.authoritative, 1) }
        _ = try? writer.append(flags)
        for _ in 0..<4 { _ = try? writer.append(UInt16(0)) }
        if failure == .formatError {
            // Header only, as the engine answers every FORMERR.
            writer.patch(flags | H.flag(H.rcode, UInt8(ResponseCode.formatError.rawValue)), at: 2)
            phase = .done
            return writer.count
        }
        let withOPT = first && edns != nil
        if first {
            question.withUnsafeBytes { _ = try? writer.append(bytes: $0) }
            writer.remember(nameAt: H.size)
            writer.patch(1, at: 4)
        }
        if withOPT { writer.limit -= 11 }
        var written = 0
        if let failure {
            writer.patch(flags | H.flag(H.rcode, UInt8(failure.rawValue & 0xf)), at: 2)
            phase = .done
        } else {
            while phase != .done {
                let mark = writer.mark
                do {
                    try writeRecord(into: &writer)
                } catch {
                    writer.rollBack(to: mark)
                    if written == 0 && writer.limit < min(writer.capacity, 65535) - 11 {
                        // One record larger than a message of `limit`: alone in a
                        // larger one.
                        writer.limit = min(writer.capacity, 65535) - (withOPT ? 11 : 0)
                        continue
                    }
                    if written == 0 {
                        // Larger than any message: the transfer cannot go on.
                        writer.patch(
                            flags | H.flag(H.rcode, UInt8(ResponseCode.serverFailure.rawValue)),
                            at: 2)
                        phase = .done
                    }
                    break
                }
                written += 1
                advance()
            }
        }
        records += written
        writer.patch(UInt16(written), at: 6)
        if withOPT {
            // RFC 6891 §6.1.3: our UDP size, version 0, DO copied back (RFC 3225 §3).
            writer.limit += 11
            _ = try? writer.append(UInt8(0))
            _ = try? writer.append(RecordType.opt.rawValue)
            _ = try? writer.append(UInt16(Transport.defaultPayloadSize))
            _ = try? writer.append(UInt32(edns == true ? 0x8000 : 0))
            _ = try? writer.append(UInt16(0))
            writer.patch(1, at: 10)
        }
        return writer.count
    }

    /// The RRset and record the cursor is at, once moved past names and RRsets that
    /// have nothing to send (the apex's SOA in the body).
    private func advance() {
        switch phase {
        case .firstSOA:
            phase = .body
            nodeIndex = 0
            rrsetIndex = 0
            recordIndex = 0
        case .body:
            recordIndex += 1
        case .lastSOA:
            phase = .done
            return
        case .done:
            return
        }
        settle()
    }

    /// Moves the cursor to the next record to send in the body, or to the last SOA.
    private func settle() {
        while nodeIndex < nodes.count {
            let node = Int(nodes[nodeIndex])
            if rrsetIndex < store.rrsetCount(node) {
                let rrset = store.firstRRSet(node) + 12 * rrsetIndex
                let skip = nodeIndex == 0 && store.type(rrset) == RecordType.soa.rawValue
                if !skip && recordIndex < store.count(rrset) { return }
                rrsetIndex += 1
                recordIndex = 0
                continue
            }
            nodeIndex += 1
            rrsetIndex = 0
            recordIndex = 0
        }
        phase = .lastSOA
    }

    /// Writes the record at the cursor.
    private func writeRecord(into writer: inout MessageWriter) throws(MessageFull) {
        let node: Int
        let rrset: Int
        let index: Int
        if phase == .body {
            node = Int(nodes[nodeIndex])
            rrset = store.firstRRSet(node) + 12 * rrsetIndex
            index = recordIndex
        } else {
            let info = store.zones[zone]
            node = Int(info.apex)
            rrset = Int(info.soa)
            index = 0
        }
        try writer.appendName(
            store.bytes(store.name(node), count: store.nameLength(node)), compress: true)
        let type = store.type(rrset)
        try writer.append(type)
        try writer.append(RecordClass.internet.rawValue)
        if type == RecordType.rrsig.rawValue {
            try writer.append(
                store.arena.loadUnaligned(
                    fromByteOffset: store.recordTTLs(of: rrset) + 4 * index, as: UInt32.self))
        } else {
            try writer.append(store.ttl(rrset))
        }
        var rdata = store.rdata(rrset)
        for _ in 0..<index { rdata += 2 + store.rdataLength(at: rdata) }
        let length = store.rdataLength(at: rdata)
        let lengthAt = writer.count
        try writer.append(UInt16(0))
        try writer.appendRecordData(
            store.bytes(rdata + 2, count: length), type: RecordType(rawValue: type))
        writer.patch(UInt16(writer.count - lengthAt - 2), at: lengthAt)
    }
}

// MARK: Zones and serials

/// A zone the engine serves, by name and SOA serial: what a primary tells its
/// secondaries about (RFC 1996 NOTIFY) when a reload changes it.
public struct ServedZone: Hashable, Sendable {
    /// The zone's apex.
    public var name: DomainName
    /// The SOA's SERIAL (RFC 1035 §3.3.13).
    public var serial: UInt32

    public init(name: DomainName, serial: UInt32) {
        self.name = name
        self.serial = serial
    }
}

extension AuthoritativeEngine {
    /// Every zone served, with its serial:
    ///
    /// ```swift
    /// for zone in engine.servedZones { print(zone.name, zone.serial) }
    /// ```
    public var servedZones: [ServedZone] {
        let view = store.view
        return (0..<store.zoneCount).compactMap { zone in
            let info = view.zones[zone]
            let apex = Int(info.apex)
            let serial = ZoneTransfer.serial(of: info, in: view)
            let wire = Array(view.bytes(view.name(apex), count: view.nameLength(apex)))
            guard let name = try? DomainName(wire: wire) else { return nil }
            return ServedZone(name: name, serial: serial)
        }
    }
}
