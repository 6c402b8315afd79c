import OasisBits

/// One RRset chosen for the response: where it goes and under which owner name.
/// 16 bytes: `Responder.planCapacity` of them fill the 1 KiB Swift keeps on the stack.
struct PlannedRRSet {
    /// 0 answer, 1 authority, 2 optional authority (the zone's NS), 3 additional A,
    /// 4 additional AAAA, 5 other additional: NSD's sections, written in that order.
    var section: UInt8
    /// 0 a stored RRset, 1 the SOA of a negative answer (RFC 2308 §3: TTL capped by
    /// MINIMUM), 2 a CNAME synthesised from a DNAME (RFC 6672 §3.1).
    var kind: UInt8
    var ownerLength: UInt8
    /// For a synthesised CNAME, the bytes of its owner below the DNAME's owner: NSD
    /// writes those labels whole (they are names it made up for the query, which it
    /// does not compress against), the rest compressed.
    var literalLength: UInt8
    /// The owner's wire bytes in the arena, or -1: the question's name (written as a
    /// pointer to offset 12, as NSD does, so the answer echoes the query's case); -2
    /// and below: a name in `Responder.synthesized`, at `-2 - ownerOffset`.
    var ownerOffset: Int32
    /// The RRset's descriptor in the store's arena (for a synthesised CNAME, its
    /// DNAME's, whose TTL it takes).
    var rrset: Int32
    /// A stored RRset: the RRSIG RRset at its node, whose records covering its type go
    /// with it (DO, signed zone), or 0. A synthesised CNAME: its target's offset in
    /// `Responder.synthesized` (high bits) and length (low 8 bits).
    var extra: Int32

    init(
        section: UInt8, negative: Bool, ownerLength: UInt8, ownerOffset: Int32, rrset: Int32,
        signatures: Int32, synthesizedTarget: Int16, synthesizedLength: UInt8,
        literalLength: UInt8 = 0
    ) {
        self.section = section
        self.ownerLength = ownerLength
        self.literalLength = literalLength
        self.ownerOffset = ownerOffset
        self.rrset = rrset
        if synthesizedTarget >= 0 {
            kind = 2
            extra = Int32(synthesizedTarget) << 8 | Int32(synthesizedLength)
        } else {
            kind = negative ? 1 : 0
            extra = signatures
        }
    }

    var negative: Bool { kind == 1 }
    var signatures: Int32 { kind == 2 ? 0 : extra }
    /// The synthesised CNAME's target in `Responder.synthesized`, or -1.
    var synthesizedTarget: Int16 { kind == 2 ? Int16(truncatingIfNeeded: extra >> 8) : -1 }
    var synthesizedLength: UInt8 { UInt8(truncatingIfNeeded: extra & 0xff) }
}

/// The state of answering one query: the plan of RRsets, then the encoding. Lives on
/// the stack for the duration of one `respond` call.
struct Responder {
    let store: StoreView
    /// What the server says of itself to CHAOS-class queries.
    let chaos: ChaosView
    /// [0, 256): the name being looked up, lowercased; [256, 512): a second name; then
    /// `StoreView.slack` bytes that lookups may read past a name's end.
    /// `labelStarts` and `suffixHashes` (128 each: a name has at most 127 labels) are
    /// those of the name being looked up.
    let scratch: UnsafeMutableRawBufferPointer
    let labelStarts: UnsafeMutablePointer<UInt8>
    let suffixHashes: UnsafeMutablePointer<UInt64>
    /// The RRsets chosen, in order; at most `Responder.planCapacity`.
    let plan: UnsafeMutablePointer<PlannedRRSet>
    var planCount = 0
    /// Bit n set: the plan has an RRset in section n (encoding skips the others).
    var sections: UInt8 = 0
    var authoritative = true
    var rcode: UInt8 = 0
    var qtype: UInt16 = 0
    /// The name is in none of our zones: with EDNS, say so with an Extended DNS Error.
    var notAuthoritative = false
    /// A zone transfer refused: with EDNS, Extended DNS Error 18, "Prohibited" (NSD).
    var prohibited = false
    /// A class other than IN refused: with EDNS, Extended DNS Error 21, "Not
    /// Supported" (NSD).
    var notSupported = false
    /// QCLASS ANY: NSD leaves the authority section out.
    var classAny = false
    /// The query's EDNS DO bit (RFC 3225): DNSSEC records with the answer.
    var dnssecOK = false
    /// The answer is a referral (TC when not one glue address fits, as NSD).
    var referral = false
    /// A DNAME substitution made a name over 255 bytes: YXDOMAIN, with EDE 0 (NSD).
    var dnameTooLong = false
    /// Names made by DNAME substitution, kept until the answer is written.
    let synthesized: UnsafeMutableRawBufferPointer
    var synthesizedCount = 0
    /// The nodes from the apex down to the name or its closest encloser, of the name
    /// being resolved.
    let path: UnsafeMutablePointer<Int32>
    var pathCount = 0

    /// Room for the largest answer we plan: a 16-link CNAME chain, its answer, the
    /// authority section, and the addresses of a dozen name servers.
    static let planCapacity = 64

    /// Runs `body` with a responder over `store`, and a compression table for the
    /// writer, whose scratch memory is on the stack (each piece at most 1 KiB, the size
    /// Swift always places on the stack).
    static func with<Result>(
        store: StoreView, chaos: ChaosView,
        _ body: (inout Responder, UnsafeMutablePointer<UInt16>) -> Result
    ) -> Result {
        withUnsafeTemporaryAllocation(byteCount: 512 + StoreView.slack, alignment: 8) { names in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 128) { hashes in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { starts in
                    withUnsafeTemporaryAllocation(of: PlannedRRSet.self, capacity: planCapacity) {
                        plan in
                        withUnsafeTemporaryAllocation(
                            of: UInt16.self, capacity: MessageWriter.suffixCapacity
                        ) { suffixes in
                            withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 8) {
                                synthesized in
                                withUnsafeTemporaryAllocation(of: Int32.self, capacity: 128) {
                                    path in
                                    var responder = Responder(
                                        store: store, chaos: chaos, scratch: names,
                                        labelStarts: starts.baseAddress!,
                                        suffixHashes: hashes.baseAddress!, plan: plan.baseAddress!,
                                        synthesized: synthesized, path: path.baseAddress!)
                                    return body(&responder, suffixes.baseAddress!)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    init(
        store: StoreView, chaos: ChaosView, scratch: UnsafeMutableRawBufferPointer,
        labelStarts: UnsafeMutablePointer<UInt8>, suffixHashes: UnsafeMutablePointer<UInt64>,
        plan: UnsafeMutablePointer<PlannedRRSet>, synthesized: UnsafeMutableRawBufferPointer,
        path: UnsafeMutablePointer<Int32>
    ) {
        self.synthesized = synthesized
        self.path = path
        self.store = store
        self.chaos = chaos
        self.scratch = scratch
        self.labelStarts = labelStarts
        self.suffixHashes = suffixHashes
        self.plan = plan
    }

    // MARK: The query

    /// Answers the DNS message `query` through `writer` (empty, at the reply's first
    /// byte). Returns the answer's length, or nil when the query gets no answer.
    mutating func respond(
        to query: UnsafeRawBufferPointer, transport: Transport, writer: inout MessageWriter
    ) -> Int? {
        typealias H = MessageHeader
        // Shorter than a header, or a response: drop (RFC 1035 §4.1.1; NSD does).
        guard query.count >= H.size, (try? writer.reserve(H.size)) != nil else { return nil }
        func load16(_ offset: Int) -> UInt16 {
            UInt16(bigEndian: query.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        }
        let flags = load16(2)
        guard H.value(of: H.isResponse, in: flags) == 0 else { return nil }
        let opcode = H.value(of: H.opcode, in: flags)
        // The ID is copied; QR set, the opcode and RD as asked, every count 0 for now.
        writer.patch(load16(0), at: 0)
        var replyFlags =
            H.flag(H.isResponse, 1) | H.flag(H.opcode, opcode)
            | H.flag(H.recursionDesired, H.value(of: H.recursionDesired, in: flags))
        writer.patch(replyFlags, at: 2)
        for field in 0..<4 { writer.patch(0, at: 4 + 2 * field) }
        func headerOnly(_ code: ResponseCode) -> Int {
            writer.patch(replyFlags | H.flag(H.rcode, UInt8(code.rawValue & 0xf)), at: 2)
            return writer.count
        }
        let nameBuffer = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<256])
        // RFC 1996 NOTIFY: we are no secondary. As NSD with no `allow-notify`: REFUSED
        // for a zone we serve, NXDOMAIN for any other name; header only, AA as asked.
        if opcode == 4 {
            guard load16(4) == 1, H.value(of: H.rcode, in: flags) == 0,
                let (nameLength, _) = try? readWireName(query, at: H.size, into: nameBuffer)
            else { return headerOnly(.formatError) }
            // NSD answers with the query's AA bit (a primary's NOTIFY sets it).
            replyFlags |= H.flag(H.authoritative, H.value(of: H.authoritative, in: flags))
            return headerOnly(servesZone(named: nameLength) ? .refused : .nameError)
        }
        // RFC 1035 §4.1.1: only QUERY (and NOTIFY, above) is implemented.
        guard opcode == 0 else { return headerOnly(.notImplemented) }
        // A query has one question and nothing in the answer and authority sections;
        // NSD also rejects a query with a response code set. FORMERR, header only.
        guard load16(4) == 1, load16(6) == 0, load16(8) == 0, H.value(of: H.rcode, in: flags) == 0
        else { return headerOnly(.formatError) }
        guard
            let (nameLength, afterName) = try? readWireName(
                query, at: H.size, into: nameBuffer),
            afterName <= query.count - 4
        else { return headerOnly(.formatError) }
        let type = load16(afterName)
        let qclass = load16(afterName + 2)
        qtype = type
        // The additional section may hold one OPT (RFC 6891 §6.1.1) and, last, a TSIG
        // (RFC 8945 §5.1); anything else is FORMERR, as NSD has it.
        var edns: (size: UInt16, version: UInt8, dnssecOK: Bool)?
        var offset = afterName + 4
        let otherName = UnsafeMutableRawBufferPointer(rebasing: scratch[256..<512])
        let additional = Int(load16(10))
        for index in 0..<additional {
            guard let (ownerLength, next) = try? readWireName(query, at: offset, into: otherName),
                next <= query.count - 10
            else { return headerOnly(.formatError) }
            let rdataLength = Int(load16(next + 8))
            guard rdataLength <= query.count - next - 10 else { return headerOnly(.formatError) }
            offset = next + 10 + rdataLength
            if load16(next) == Responder.tsig {
                guard index == additional - 1 else { return headerOnly(.formatError) }
                let payload: Int
                switch transport {
                case .tcp: payload = Transport.defaultPayloadSize
                case .udp(let maximum): payload = max(512, min(maximum, 65535))
                }
                return unknownKey(
                    query, owner: UnsafeRawBufferPointer(rebasing: otherName[0..<ownerLength]),
                    rdata: (next + 10)..<offset, flags: replyFlags,
                    opt: edns.map { (UInt16(payload), $0.dnssecOK) }, writer: &writer)
                    ?? headerOnly(.formatError)
            }
            guard load16(next) == RecordType.opt.rawValue else { return headerOnly(.formatError) }
            guard edns == nil, ownerLength == 1,
                validOptions(UnsafeRawBufferPointer(rebasing: query[(next + 10)..<offset]))
            else { return headerOnly(.formatError) }
            let ttl = UInt32(load16(next + 4)) << 16 | UInt32(load16(next + 6))
            edns = (load16(next + 2), UInt8((ttl >> 16) & 0xff), ttl & 0x8000 != 0)
        }
        // The question, echoed as asked (RFC 1035 §7.3 — the query's case).
        let questionMark = writer.mark
        _ = try? writer.append(bytes: UnsafeRawBufferPointer(rebasing: nameBuffer[0..<nameLength]))
        _ = try? writer.append(type)
        _ = try? writer.append(qclass)
        writer.remember(nameAt: H.size)
        var questions: UInt16 = 1
        for index in 0..<nameLength { nameBuffer[index] = asciiLower(nameBuffer[index]) }

        let serverPayload: Int
        switch transport {
        case .tcp:
            // The OPT still advertises the UDP size (NSD), the answer may use 64 KiB.
            serverPayload = Transport.defaultPayloadSize
            writer.limit = min(writer.limit, 65535)
        case .udp(let maximum):
            serverPayload = max(512, min(maximum, 65535))
            let clientPayload = edns.map { max(512, Int($0.size)) } ?? 512
            writer.limit = min(writer.limit, min(clientPayload, serverPayload))
        }
        let optSize = edns == nil ? 0 : 11
        func withOPT(_ code: ResponseCode, records: (answer: Int, authority: Int, additional: Int))
            -> Int
        {
            writer.patch(replyFlags | H.flag(H.rcode, UInt8(code.rawValue & 0xf)), at: 2)
            writer.patch(questions, at: 4)
            writer.patch(UInt16(records.answer), at: 6)
            writer.patch(UInt16(records.authority), at: 8)
            writer.patch(UInt16(records.additional + (edns == nil ? 0 : 1)), at: 10)
            if let edns {
                // RFC 6891 §6.1.3: our payload size, the high rcode bits, version 0;
                // DO copied back (RFC 3225 §3).
                writer.limit += optSize
                _ = try? writer.append(UInt8(0))
                _ = try? writer.append(RecordType.opt.rawValue)
                _ = try? writer.append(UInt16(min(serverPayload, 65535)))
                _ = try? writer.append(
                    UInt32(code.rawValue >> 4) << 24 | (edns.dnssecOK ? 0x8000 : 0))
                if notAuthoritative {
                    // RFC 8914 §4.21: Extended DNS Error 20, "Not Authoritative" (NSD).
                    writer.limit += 6
                    _ = try? writer.append(UInt16(6))
                    _ = try? writer.append(UInt16(15))
                    _ = try? writer.append(UInt16(2))
                    _ = try? writer.append(UInt16(20))
                } else if notSupported {
                    // RFC 8914 §4.22: Extended DNS Error 21, "Not Supported" (NSD, for
                    // a class it does not serve).
                    writer.limit += 6
                    _ = try? writer.append(UInt16(6))
                    _ = try? writer.append(UInt16(15))
                    _ = try? writer.append(UInt16(2))
                    _ = try? writer.append(UInt16(21))
                } else if dnameTooLong {
                    // RFC 8914 §4.1: Extended DNS Error 0, "Other", with NSD's text.
                    let text = "DNAME expansion became too large"
                    writer.limit += 6 + text.utf8.count
                    _ = try? writer.append(UInt16(6 + text.utf8.count))
                    _ = try? writer.append(UInt16(15))
                    _ = try? writer.append(UInt16(2 + text.utf8.count))
                    _ = try? writer.append(UInt16(0))
                    for byte in text.utf8 { _ = try? writer.append(byte) }
                } else if prohibited {
                    // RFC 8914 §4.19: Extended DNS Error 18, "Prohibited" (NSD, for a
                    // transfer it does not provide).
                    writer.limit += 6
                    _ = try? writer.append(UInt16(6))
                    _ = try? writer.append(UInt16(15))
                    _ = try? writer.append(UInt16(2))
                    _ = try? writer.append(UInt16(18))
                } else {
                    _ = try? writer.append(UInt16(0))
                }
            }
            return writer.count
        }
        writer.limit -= optSize
        // RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS, nothing else.
        if let edns, edns.version != 0 { return withOPT(.badVersion, records: (0, 0, 0)) }
        // Only class IN is served. As NSD: QCLASS ANY is answered as IN without AA
        // and without an authority section; CH TXT for version.bind, id.server and
        // their kin are answered as the engine's ``ServerIdentity`` says, other CH
        // queries are REFUSED with the question; any other class is REFUSED without
        // it; with EDNS, both say Extended DNS Error 21.
        if qclass == RecordClass.any.rawValue {
            authoritative = false
            classAny = true
        } else if qclass == RecordClass.chaos.rawValue,
            type == RecordType.txt.rawValue || type == RecordType.any.rawValue,
            let text = chaosText(UnsafeRawBufferPointer(rebasing: nameBuffer[0..<nameLength]))
        {
            // RFC 4892: what the server says of itself, as NSD answers it: TTL 0, no AA.
            _ = try? writer.appendPointer(to: H.size)
            _ = try? writer.append(RecordType.txt.rawValue)
            _ = try? writer.append(RecordClass.chaos.rawValue)
            _ = try? writer.append(UInt32(0))
            _ = try? writer.append(UInt16(text.count))
            guard (try? writer.append(bytes: text)) != nil else {
                writer.rollBack(to: questionMark)
                questions = 0
                return withOPT(.serverFailure, records: (0, 0, 0))
            }
            return withOPT(.noError, records: (1, 0, 0))
        } else if qclass != RecordClass.internet.rawValue {
            notSupported = true
            if qclass != RecordClass.chaos.rawValue {
                writer.rollBack(to: questionMark)
                questions = 0
            }
            return withOPT(.refused, records: (0, 0, 0))
        }
        // Zone transfers are not served: AXFR over UDP is NOTIMP (RFC 5936 §4.2 says
        // UDP AXFR is not defined), otherwise REFUSED, as NSD without `provide-xfr`.
        if type == RecordType.axfr.rawValue || type == RecordType.ixfr.rawValue {
            if case .udp = transport, type == RecordType.axfr.rawValue {
                return withOPT(.notImplemented, records: (0, 0, 0))
            }
            prohibited = true
            return withOPT(.refused, records: (0, 0, 0))
        }

        dnssecOK = edns?.dnssecOK ?? false
        resolve(nameLength: nameLength, ownerOffset: -1, depth: 0)
        addAdditionalAddresses()
        let (counts, truncated) = encode(into: &writer)
        if truncated { replyFlags |= H.flag(H.truncated, 1) }
        if authoritative && rcode != ResponseCode.refused.rawValue {
            replyFlags |= H.flag(H.authoritative, 1)
        }
        return withOPT(ResponseCode(rawValue: UInt16(rcode)), records: counts)
    }

    // MARK: NOTIFY, TSIG, CHAOS

    /// TSIG's type (RFC 8945).
    static let tsig: UInt16 = 250

    /// Whether the lowercased name in `scratch[0..<nameLength]` is the apex of a zone
    /// we serve.
    mutating func servesZone(named nameLength: Int) -> Bool {
        for index in 0..<nameLength { scratch[index] = asciiLower(scratch[index]) }
        _ = StoreView.labels(
            of: UnsafeRawPointer(scratch.baseAddress!), starts: labelStarts, hashes: suffixHashes,
            lowercase: true)
        return store.findZone(
            UnsafeRawBufferPointer(rebasing: scratch[0..<nameLength]), hash: suffixHashes[0])
            != nil
    }

    /// RFC 8945 §5.2.1: a query signed with a key we do not have (we have none) is
    /// answered NOTAUTH, unsigned, its TSIG echoed with error BADKEY and no MAC — the
    /// header and that record alone, as NSD answers. nil if the TSIG is malformed.
    func unknownKey(
        _ query: UnsafeRawBufferPointer, owner: UnsafeRawBufferPointer, rdata: Range<Int>,
        flags: UInt16, opt: (payload: UInt16, dnssecOK: Bool)?, writer: inout MessageWriter
    ) -> Int? {
        typealias H = MessageHeader
        func load16(_ offset: Int) -> UInt16 {
            UInt16(bigEndian: query.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        }
        let algorithm = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<256])
        // Algorithm, time signed (48 bits), fudge, MAC size, MAC, original ID, error,
        // other length, other data.
        guard
            let (algorithmLength, afterAlgorithm) = try? readWireName(
                query, at: rdata.lowerBound, into: algorithm),
            afterAlgorithm <= rdata.upperBound - 10
        else { return nil }
        let macSize = Int(load16(afterAlgorithm + 8))
        let afterMAC = afterAlgorithm + 10 + macSize
        guard afterMAC <= rdata.upperBound - 6,
            afterMAC + 6 + Int(load16(afterMAC + 4)) == rdata.upperBound
        else { return nil }
        do throws(MessageFull) {
            if let opt {
                // The OPT before the TSIG, which is always last (RFC 8945 §5.1).
                try writer.append(UInt8(0))
                try writer.append(RecordType.opt.rawValue)
                try writer.append(opt.payload)
                try writer.append(UInt32(opt.dnssecOK ? 0x8000 : 0))
                try writer.append(UInt16(0))
            }
            try writer.append(bytes: owner)
            try writer.append(Responder.tsig)
            try writer.append(RecordClass.any.rawValue)
            try writer.append(UInt32(0))
            try writer.append(UInt16(algorithmLength + 16))
            try writer.append(
                bytes: UnsafeRawBufferPointer(rebasing: algorithm[0..<algorithmLength]))
            try writer.append(
                bytes: UnsafeRawBufferPointer(
                    rebasing: query[afterAlgorithm..<afterAlgorithm + 8]))  // time, fudge
            try writer.append(UInt16(0))  // no MAC
            try writer.append(load16(afterMAC))  // original ID
            try writer.append(UInt16(17))  // BADKEY
            try writer.append(UInt16(0))
        } catch {
            return nil
        }
        writer.patch(flags | H.flag(H.rcode, UInt8(ResponseCode.notAuthorized.rawValue)), at: 2)
        writer.patch(opt == nil ? 1 : 2, at: 10)
        return writer.count
    }

    /// The TXT RDATA that answers a CHAOS query for `name` (lowercased wire form):
    /// the version for `version.bind` and `version.server`, the identity for
    /// `id.server` and `hostname.bind`; nil if hidden or another name.
    func chaosText(_ name: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        func named(_ labels: [String]) -> Bool {
            var wire: [UInt8] = []
            for label in labels { wire += [UInt8(label.utf8.count)] + Array(label.utf8) }
            return name.elementsEqual(wire + [0])
        }
        if named(["version", "bind"]) || named(["version", "server"]) { return chaos.version }
        if named(["id", "server"]) || named(["hostname", "bind"]) { return chaos.identity }
        return nil
    }

    // MARK: RFC 1034 §4.3.2, with NSD's DNSSEC answers

    /// Looks up the lowercased name in `scratch[0..<nameLength]`, adding to the plan.
    /// `ownerOffset` is how to write this name as an owner (-1: the question; -2 and
    /// below: a name in `synthesized`, see ``PlannedRRSet``).
    mutating func resolve(nameLength: Int, ownerOffset: Int32, depth: Int) {
        let labelCount = StoreView.labels(
            of: UnsafeRawPointer(scratch.baseAddress!), starts: labelStarts, hashes: suffixHashes,
            lowercase: true)
        let name = UnsafeRawBufferPointer(rebasing: scratch[0..<nameLength])
        let ownerLength = UInt8(nameLength)
        // Step 2: the closest enclosing zone, longest suffix first.
        var zone = -1
        var apexLabel = 0
        for label in 0...labelCount {
            let start = Int(labelStarts[label])
            if let found = store.findZone(
                UnsafeRawBufferPointer(rebasing: name[start...]), hash: suffixHashes[label])
            {
                zone = found
                apexLabel = label
                // RFC 4035 §3.1.4.1: DS at a child's apex is the parent's data; if we
                // serve the parent too, it answers (NSD does the same).
                if label == 0 && qtype == RecordType.ds.rawValue && labelCount > 0 { continue }
                break
            }
        }
        guard zone >= 0 else {
            // RFC 1034 §4.3.2 step 2 would refer the client upward; an authoritative-only
            // server refuses instead (NSD). A CNAME leaving our zones just ends the chain.
            if depth == 0 {
                rcode = UInt8(ResponseCode.refused.rawValue)
                authoritative = false
                notAuthoritative = true
            }
            return
        }
        // Step 3: down from the apex, one label at a time, to the name or the closest
        // encloser, stopping at a zone cut or a DNAME above the name. `path` keeps the
        // nodes passed, for the NSEC3 proofs about the name's ancestors.
        var node = Int(store.zones[zone].apex)
        path[0] = Int32(node)
        pathCount = 1
        var label = apexLabel - 1
        while label >= 0 {
            let start = Int(labelStarts[label])
            guard
                let child = store.findNode(
                    zone, UnsafeRawBufferPointer(rebasing: name[start...]),
                    hash: suffixHashes[label])
            else { break }
            node = child
            path[pathCount] = Int32(child)
            pathCount += 1
            // RFC 6672 §2.3: a DNAME above the name substitutes its target for the
            // owner (NSD: a DNAME above a cut wins over the cut; one at the cut itself,
            // beside its NS, does not: the name is delegated, and referred).
            if label > 0, store.flags(child) & StoreView.delegation == 0,
                let dname = store.rrset(of: child, type: RecordType.dname.rawValue)
            {
                substitute(
                    dname: dname, at: child, zone: zone, nameLength: nameLength,
                    sourceStart: start, ownerOffset: ownerOffset, depth: depth)
                return
            }
            // A cut: refer (step 3b), unless the question is DS at the cut itself,
            // which the parent answers (RFC 4035 §3.1.4.1).
            if store.flags(child) & StoreView.delegation != 0
                && !(label == 0 && qtype == RecordType.ds.rawValue),
                let ns = store.rrset(of: child, type: RecordType.ns.rawValue)
            {
                refer(ns: ns, cut: child, zone: zone, depth: depth)
                return
            }
            label -= 1
        }
        var exact = label < 0
        if exact && pathCount > 1 && store.flags(node) & StoreView.onlyNSEC3 != 0 {
            // NSD answers a name holding only NSEC3 (and RRSIGs) as if it did not exist;
            // its parent is the closest encloser.
            exact = false
            pathCount -= 1
            node = Int(path[pathCount - 1])
            label = 0
        }
        // From here `node` is the match (exact) or the closest encloser, and
        // `labelStarts[label]` starts the next closer name (RFC 5155 §1.3).
        let nsec3 = dnssecOK ? store.nsec3Parameters(zone) : nil
        let useNSEC = dnssecOK && nsec3 == nil && store.zones[zone].secure != 0
        var match: Int? = nil
        var original = node
        var wildcard = false
        if exact {
            match = node
        } else if pathCount == 1, let dname = store.rrset(of: node, type: RecordType.dname.rawValue)
        {
            // A DNAME at the apex (one below it was met on the way down).
            substitute(
                dname: dname, at: node, zone: zone, nameLength: nameLength,
                sourceStart: Int(labelStarts[label + 1]), ownerOffset: ownerOffset, depth: depth)
            return
        } else if store.flags(node) & StoreView.wildcardChild != 0 {
            // Step 3c. RFC 4592 §3.3.1: a wildcard child of the closest encloser
            // answers; an empty non-terminal closest encloser has none (its existence
            // blocks synthesis from above).
            let encloser = Int(labelStarts[label + 1])
            let wildcardName = UnsafeMutableRawBufferPointer(rebasing: scratch[256..<512])
            wildcardName[0] = 1
            wildcardName[1] = UInt8(ascii: "*")
            let suffixLength = nameLength - encloser
            UnsafeMutableRawBufferPointer(rebasing: wildcardName[2..<(2 + suffixLength)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: name[encloser..<nameLength]))
            let hash = StoreView.extend(
                suffixHashes[label + 1], label: UnsafeRawPointer(wildcardName.baseAddress!),
                at: 0, lowercase: true)
            if let source = store.findNode(
                zone, UnsafeRawBufferPointer(rebasing: wildcardName[0..<(2 + suffixLength)]),
                hash: hash)
            {
                match = source
                original = source
                wildcard = true
                // RFC 5155 §7.2.6: the next closer name does not exist.
                if let nsec3 { proveNonexistence(zone, nsec3, from: label, nameLength: nameLength) }
            }
        }
        if let nsec3 {
            if match == nil {
                // RFC 5155 §7.2.2: the closest encloser proof, and no wildcard.
                proveNonexistence(zone, nsec3, from: label, nameLength: nameLength)
                if hashable(node) {
                    let (cover, isExact) = nsec3Cover(zone, nsec3, node: node)
                    if isExact { addNSEC3(cover) }
                    addNSEC3(nsec3WildcardCover(zone, nsec3, encloser: node))
                }
            } else if exact, let match, store.rrsetCount(match) == 0 {
                // An empty non-terminal: NODATA (NSD proves it before the SOA).
                nsec3NoData(zone, nsec3, original: match, wildcard: false)
            }
        } else if useNSEC {
            // RFC 4035 §3.1.3.2 and §3.1.3.3: the NSEC covering the name, and the one
            // covering where a wildcard would be.
            if !exact { addNSEC(zone, covering: name) }
            if match == nil {
                let encloser = Int(labelStarts[label + 1])
                withUnsafeTemporaryAllocation(byteCount: 258 + StoreView.slack, alignment: 8) {
                    buffer in
                    buffer[0] = 1
                    buffer[1] = UInt8(ascii: "*")
                    let suffix = nameLength - encloser
                    UnsafeMutableRawBufferPointer(rebasing: buffer[2..<(2 + suffix)]).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: name[encloser..<nameLength]))
                    addNSEC(
                        zone, covering: UnsafeRawBufferPointer(rebasing: buffer[0..<(2 + suffix)]))
                }
            }
        }
        guard rcode == 0 else { return }  // an NSEC3 hash collision: SERVFAIL
        if let match {
            answer(
                node: match, original: original, wildcard: wildcard, zone: zone,
                ownerOffset: ownerOffset, ownerLength: ownerLength, depth: depth)
        } else {
            // Name error (RFC 2308 §2.1): NXDOMAIN with the zone's SOA.
            rcode = UInt8(ResponseCode.nameError.rawValue)
            addNegativeSOA(zone)
        }
    }

    /// A referral (step 3b): the cut's NS in authority, AA clear; with DO, its DS or
    /// the proof that it has none (RFC 4035 §3.1.4).
    mutating func refer(ns: Int, cut: Int, zone: Int, depth: Int) {
        if depth == 0 { authoritative = false }
        referral = true
        add(
            section: 1, ownerOffset: nodeOwner(cut), ownerLength: UInt8(store.nameLength(cut)),
            rrset: ns, node: cut)
        guard dnssecOK, store.zones[zone].secure != 0 else { return }
        if let ds = store.rrset(of: cut, type: RecordType.ds.rawValue) {
            add(
                section: 1, ownerOffset: nodeOwner(cut), ownerLength: UInt8(store.nameLength(cut)),
                rrset: ds, node: cut)
        } else if let nsec3 = store.nsec3Parameters(zone) {
            proveNoDS(zone, nsec3, at: pathCount - 1, delegation: true)
        } else if store.rrset(of: cut, type: RecordType.nsec.rawValue) != nil {
            addNSECRRSet(at: cut)
        }
    }

    /// Step 3a (or the synthesis of 3c): `node` holds the data for the name; `original`
    /// is the node a NODATA proof is about (the wildcard, when synthesised).
    mutating func answer(
        node: Int, original: Int, wildcard: Bool, zone: Int, ownerOffset: Int32,
        ownerLength: UInt8, depth: Int
    ) {
        if qtype == RecordType.any.rawValue {
            // RFC 8482 §4.1: one RRset is enough for ANY. NSD's choice: the first of
            // A, AAAA, SOA, MX, PTR; else the last other one; else the last of DNSKEY,
            // RRSIG, NSEC; never NSEC3, and not RRSIG when it adds them itself.
            var preferred: Int? = nil
            var normal: Int? = nil
            var nonPreferred: Int? = nil
            let skipSignatures = dnssecOK && store.zones[zone].secure != 0
            var descriptor = store.firstRRSet(node)
            for _ in 0..<store.rrsetCount(node) {
                defer { descriptor += 12 }
                let type = RecordType(rawValue: store.type(descriptor))
                if type == .nsec3 || (skipSignatures && type == .rrsig) { continue }
                switch type {
                case .a, .aaaa, .soa, .mx, .ptr: preferred = descriptor
                case .dnskey, .rrsig, .nsec: nonPreferred = descriptor
                default: normal = descriptor
                }
                if preferred != nil { break }
            }
            guard let chosen = preferred ?? normal ?? nonPreferred else {
                noData(zone, original: original, wildcard: wildcard)
                return
            }
            add(
                section: 0, ownerOffset: ownerOffset, ownerLength: ownerLength, rrset: chosen,
                node: node)
            return
        }
        if qtype == RecordType.nsec3.rawValue {
            // NSD never answers NSEC3 by name (it is not in the zone's tree of names).
            noData(zone, original: original, wildcard: wildcard)
            return
        }
        // A DS at the zone's own apex belongs to the parent's side of the cut: NSD
        // ignores it and answers NODATA (RFC 4035 §2.4 puts DS in the parent).
        if qtype == RecordType.ds.rawValue && node == Int(store.zones[zone].apex) {
            noData(zone, original: original, wildcard: wildcard)
            return
        }
        if let found = store.rrset(of: node, type: qtype) {
            add(
                section: 0, ownerOffset: ownerOffset, ownerLength: ownerLength, rrset: found,
                node: node)
            // NSD puts the zone's NS RRset in the authority section of positive answers,
            // but not for DNSKEY and DS, whose answers are large already.
            let ns = Int(store.zones[zone].ns)
            if ns != 0 && qtype != RecordType.dnskey.rawValue && qtype != RecordType.ds.rawValue
                && !planned(ns)
            {
                let apex = Int(store.zones[zone].apex)
                add(
                    section: 2, ownerOffset: nodeOwner(apex),
                    ownerLength: UInt8(store.nameLength(apex)), rrset: ns, node: apex)
            }
            return
        }
        if let cname = store.rrset(of: node, type: RecordType.cname.rawValue) {
            // RFC 1034 §4.3.2 step 3a / RFC 2181 §10.1: the CNAME, then its target.
            // A CNAME already in the answer is a loop: stop there.
            guard !planned(cname),
                add(
                    section: 0, ownerOffset: ownerOffset, ownerLength: ownerLength, rrset: cname,
                    node: node)
            else { return }
            guard depth + 1 < AuthoritativeEngine.maximumChainLength else { return }
            let targetOffset = store.rdata(cname) + 2
            let targetLength = store.wireNameLength(at: targetOffset)
            for index in 0..<targetLength {
                scratch[index] = asciiLower(store.byte(targetOffset + index))
            }
            resolve(nameLength: targetLength, ownerOffset: Int32(targetOffset), depth: depth + 1)
            return
        }
        noData(zone, original: original, wildcard: wildcard)
    }

    /// No data (RFC 2308 §2.2): NOERROR, the SOA in authority; with DO, the NSEC or
    /// NSEC3 records that prove it.
    mutating func noData(_ zone: Int, original: Int, wildcard: Bool) {
        addNegativeSOA(zone)
        guard dnssecOK else { return }
        if let nsec3 = store.nsec3Parameters(zone) {
            nsec3NoData(zone, nsec3, original: original, wildcard: wildcard)
        } else if store.zones[zone].secure != 0 {
            addNSEC(
                zone, covering: store.bytes(store.name(original), count: store.nameLength(original))
            )
        }
    }

    mutating func addNegativeSOA(_ zone: Int) {
        let apex = Int(store.zones[zone].apex)
        let soa = Int(store.zones[zone].soa)
        guard !planned(soa) else { return }
        _ = add(
            section: 1, ownerOffset: nodeOwner(apex), ownerLength: UInt8(store.nameLength(apex)),
            rrset: soa, node: apex, negative: true)
    }

    // MARK: RFC 6672: DNAME

    /// Substitutes the DNAME at `source` (whose name starts at `sourceStart` of the
    /// name being resolved) and follows the new name: the DNAME, a CNAME synthesised
    /// from it (TTL the DNAME's, unsigned), then the answer for the new name. A new name
    /// over 255 bytes is YXDOMAIN (RFC 6672 §2.2).
    mutating func substitute(
        dname: Int, at source: Int, zone: Int, nameLength: Int, sourceStart: Int,
        ownerOffset: Int32, depth: Int
    ) {
        let sourceLength = UInt8(store.nameLength(source))
        let added =
            !planned(dname)
            && add(
                section: 0, ownerOffset: nodeOwner(source), ownerLength: sourceLength,
                rrset: dname, node: source)
        let targetOffset = store.rdata(dname) + 2
        let targetLength = store.wireNameLength(at: targetOffset)
        if !added {
            // The DNAME again: a loop if its target is below its owner (NSD stops).
            let target = store.bytes(targetOffset, count: targetLength)
            let owner = store.bytes(store.name(source), count: Int(sourceLength))
            if target.count >= owner.count,
                canonicalCompare(
                    UnsafeRawBufferPointer(rebasing: target[(target.count - owner.count)...]), owner
                ) == 0
            {
                return
            }
        }
        let newLength = sourceStart + targetLength
        guard newLength <= 255 else {
            rcode = UInt8(ResponseCode.yxDomain.rawValue)
            dnameTooLong = true
            return
        }
        guard synthesizedCount + newLength <= synthesized.count,
            depth + 1 < AuthoritativeEngine.maximumChainLength
        else { return }
        let at = synthesizedCount
        for index in 0..<sourceStart { synthesized[at + index] = scratch[index] }
        for index in 0..<targetLength {
            synthesized[at + sourceStart + index] = store.byte(targetOffset + index)
        }
        // A name synthesised before: the chain is a loop (one chain per answer, so the
        // same target twice means it came round; each synthesised owner lives at its own
        // offset, so comparing owners never saw it).
        for index in 0..<planCount where plan[index].synthesizedTarget >= 0 {
            let other = plan[index]
            if Int(other.synthesizedLength) == newLength
                && canonicalCompare(
                    UnsafeRawBufferPointer(
                        rebasing: synthesized[
                            Int(other.synthesizedTarget)..<Int(other.synthesizedTarget) + newLength]
                    ),
                    UnsafeRawBufferPointer(rebasing: synthesized[at..<(at + newLength)])) == 0
            {
                return
            }
        }
        synthesizedCount += newLength
        guard planCount < Responder.planCapacity else { return }
        sections |= 1
        plan[planCount] = PlannedRRSet(
            section: 0, negative: false, ownerLength: UInt8(nameLength), ownerOffset: ownerOffset,
            rrset: Int32(dname), signatures: 0, synthesizedTarget: Int16(at),
            synthesizedLength: UInt8(newLength),
            literalLength: ownerOffset == -1 ? 0 : UInt8(sourceStart))
        planCount += 1
        if qtype == RecordType.cname.rawValue { return }
        for index in 0..<newLength { scratch[index] = asciiLower(synthesized[at + index]) }
        resolve(nameLength: newLength, ownerOffset: -2 - Int32(at), depth: depth + 1)
    }

    // MARK: NSEC (RFC 4035 §3.1.3)

    /// The NSEC covering (or matching) `name`: the one at the greatest owner at or
    /// before it in canonical order (NSD's `find_covering_nsec`).
    mutating func addNSEC(_ zone: Int, covering name: UnsafeRawBufferPointer) {
        if let node = store.coveringNSEC(zone, name) { addNSECRRSet(at: node) }
    }

    mutating func addNSECRRSet(at node: Int) {
        guard let nsec = store.rrset(of: node, type: RecordType.nsec.rawValue), !planned(nsec)
        else { return }
        add(
            section: 1, ownerOffset: nodeOwner(node), ownerLength: UInt8(store.nameLength(node)),
            rrset: nsec, node: node)
    }

    // MARK: NSEC3 (RFC 5155 §7.2), as NSD proves

    typealias NSEC3Parameters = (salt: UnsafeRawBufferPointer, iterations: Int)

    /// Whether NSD hashes `node` (its `nsec3_condition_hash`): not a cut (nor glue,
    /// which the walk never reaches), not a name of NSEC3s only.
    func hashable(_ node: Int) -> Bool {
        store.flags(node) & (StoreView.delegation | StoreView.onlyNSEC3) == 0
    }

    /// The NSEC3 covering or matching the hash of `name` (lowercase wire).
    func nsec3Cover(_ zone: Int, _ parameters: NSEC3Parameters, name: UnsafeRawBufferPointer)
        -> (node: Int, exact: Bool)
    {
        withUnsafeTemporaryAllocation(byteCount: 20, alignment: 8) { digest in
            NSEC3Hash.hash(
                name: name, salt: parameters.salt, iterations: parameters.iterations,
                into: digest.baseAddress!)
            return store.nsec3Cover(zone, UnsafeRawPointer(digest.baseAddress!))
        }
    }

    func nsec3Cover(_ zone: Int, _ parameters: NSEC3Parameters, node: Int) -> (
        node: Int, exact: Bool
    ) {
        withUnsafeTemporaryAllocation(byteCount: 256, alignment: 8) { buffer in
            let length = store.nameLength(node)
            for index in 0..<length { buffer[index] = asciiLower(store.byte(node + 4 + index)) }
            return nsec3Cover(
                zone, parameters, name: UnsafeRawBufferPointer(rebasing: buffer[0..<length]))
        }
    }

    /// The NSEC3 covering `*.<encloser>`.
    func nsec3WildcardCover(_ zone: Int, _ parameters: NSEC3Parameters, encloser: Int) -> Int {
        withUnsafeTemporaryAllocation(byteCount: 258, alignment: 8) { buffer in
            let length = store.nameLength(encloser)
            buffer[0] = 1
            buffer[1] = UInt8(ascii: "*")
            for index in 0..<length {
                buffer[2 + index] = asciiLower(store.byte(encloser + 4 + index))
            }
            return nsec3Cover(
                zone, parameters, name: UnsafeRawBufferPointer(rebasing: buffer[0..<(2 + length)])
            ).node
        }
    }

    mutating func addNSEC3(_ node: Int) {
        guard let nsec3 = store.rrset(of: node, type: RecordType.nsec3.rawValue), !planned(nsec3)
        else { return }
        add(
            section: 1, ownerOffset: nodeOwner(node), ownerLength: UInt8(store.nameLength(node)),
            rrset: nsec3, node: node)
    }

    /// The NSEC3 covering the next closer name (the name from `labelStarts[label]`); a
    /// hash that matches instead is a collision NSD answers with SERVFAIL.
    mutating func proveNonexistence(
        _ zone: Int, _ parameters: NSEC3Parameters, from label: Int, nameLength: Int
    ) {
        let start = Int(labelStarts[label])
        let (cover, exact) = nsec3Cover(
            zone, parameters, name: UnsafeRawBufferPointer(rebasing: scratch[start..<nameLength]))
        if exact {
            rcode = UInt8(ResponseCode.serverFailure.rawValue)
        } else {
            addNSEC3(cover)
        }
    }

    /// NSD's `nsec3_answer_nodata`.
    mutating func nsec3NoData(
        _ zone: Int, _ parameters: NSEC3Parameters, original: Int, wildcard synthesized: Bool
    ) {
        let apex = Int(store.zones[zone].apex)
        // NSD treats a wildcard as one whether it was synthesised from or asked by name;
        // its parent is the closest encloser, last on the path (or before the wildcard).
        let wildcard =
            store.nameLength(original) > 2 && store.byte(original + 4) == 1
            && store.byte(original + 5) == UInt8(ascii: "*")
        let parentIndex = synthesized ? pathCount - 1 : pathCount - 2
        if qtype == RecordType.ds.rawValue {
            if original == apex {
                let (cover, exact) = nsec3Cover(zone, parameters, node: apex)
                if exact { addNSEC3(cover) }
                return
            }
            proveNoDS(
                zone, parameters, at: synthesized ? -1 : pathCount - 1, delegation: false,
                node: original)
            if wildcard && parentIndex >= 0 {
                addExactNSEC3(zone, parameters, of: Int(path[parentIndex]))
            }
        } else if wildcard {
            // RFC 5155 §7.2.5: the closest encloser's NSEC3, and the wildcard's.
            if parentIndex >= 0 { addExactNSEC3(zone, parameters, of: Int(path[parentIndex])) }
            if hashable(original) { addNSEC3(nsec3Cover(zone, parameters, node: original).node) }
        } else if hashable(original) {
            // RFC 5155 §7.2.3: the NSEC3 matching the name; for a name without one (an
            // opt-out span), NSD climbs to the highest such ancestor below a provable one.
            var index = pathCount - 1
            var (cover, exact) = nsec3Cover(zone, parameters, node: original)
            if !exact {
                while index > 0 {
                    let parent = Int(path[index - 1])
                    guard hashable(parent) else { break }
                    let (parentCover, parentExact) = nsec3Cover(zone, parameters, node: parent)
                    if parentExact { break }
                    index -= 1
                    (cover, exact) = (parentCover, parentExact)
                }
            }
            addNSEC3(cover)
            if !exact && index > 0 { addExactNSEC3(zone, parameters, of: Int(path[index - 1])) }
        }
    }

    mutating func addExactNSEC3(_ zone: Int, _ parameters: NSEC3Parameters, of node: Int) {
        guard hashable(node) else { return }
        let (cover, exact) = nsec3Cover(zone, parameters, node: node)
        if exact { addNSEC3(cover) }
    }

    /// NSD's `nsec3_add_ds_proof` for the node at `path[index]` (or `node`, a wildcard
    /// whose parent is the path's last): the NSEC3 matching it, or the closest provable
    /// encloser's with the next closer's cover (RFC 5155 §7.2.7, opt-out included).
    mutating func proveNoDS(
        _ zone: Int, _ parameters: NSEC3Parameters, at index: Int, delegation: Bool,
        node given: Int? = nil
    ) {
        let node = given ?? Int(path[index])
        let hasDSOrNS =
            store.rrset(of: node, type: RecordType.ds.rawValue) != nil
            || store.rrset(of: node, type: RecordType.ns.rawValue) != nil
        let dsHashed = hasDSOrNS && store.flags(node) & StoreView.onlyNSEC3 == 0
        let (cover, exact) = nsec3Cover(zone, parameters, node: node)
        if dsHashed && exact {
            addNSEC3(cover)
            return
        }
        if !delegation && hashable(node) && exact {
            addNSEC3(cover)
            return
        }
        var parentIndex = (index >= 0 ? index : pathCount) - 1
        var previous = -1
        while parentIndex >= 0 {
            let parent = Int(path[parentIndex])
            if hashable(parent) && nsec3Cover(zone, parameters, node: parent).exact { break }
            previous = parentIndex
            parentIndex -= 1
        }
        guard parentIndex >= 0 else { return }
        addNSEC3(nsec3Cover(zone, parameters, node: Int(path[parentIndex])).node)
        if previous >= 0 {
            if hashable(Int(path[previous])) {
                addNSEC3(nsec3Cover(zone, parameters, node: Int(path[previous])).node)
            }
        } else if dsHashed {
            addNSEC3(cover)
        }
    }

    /// RFC 1034 §4.3.2 step 6 (and §3.3.9, RFC 2782): addresses of in-zone NS, MX and
    /// SRV targets, glue included, in the additional section: every A first, then
    /// every AAAA (NSD's sections).
    mutating func addAdditionalAddresses() {
        var index = 0
        let end = planCount
        while index < end {
            let entry = plan[index]
            index += 1
            guard entry.section <= 2, entry.synthesizedTarget < 0 else { continue }
            let set = Int(entry.rrset)
            let type = store.type(set)
            guard StoreView.hasTargets(type) else { continue }
            // The targets' nodes were found when the store was built (0: not ours).
            var target = store.targets(of: set)
            for _ in 0..<store.count(set) {
                let node = Int(store.arena.loadUnaligned(fromByteOffset: target, as: UInt32.self))
                target += 4
                guard node != 0 else { continue }
                addAddresses(of: node, type: RecordType.a.rawValue, section: 3)
                addAddresses(of: node, type: RecordType.aaaa.rawValue, section: 4)
                if type == RecordType.rt.rawValue {
                    // RFC 1183 §3.3: an RT's host's X25 and ISDN addresses too.
                    addAddresses(of: node, type: RecordType.x25.rawValue, section: 5)
                    addAddresses(of: node, type: RecordType.isdn.rawValue, section: 5)
                }
            }
        }
    }

    mutating func addAddresses(of node: Int, type: UInt16, section: UInt8) {
        if let addresses = store.rrset(of: node, type: type), !planned(addresses) {
            add(
                section: section, ownerOffset: nodeOwner(node),
                ownerLength: UInt8(store.nameLength(node)), rrset: addresses, node: node)
        }
    }

    // MARK: Lookups

    func nodeOwner(_ node: Int) -> Int32 { Int32(truncatingIfNeeded: store.name(node)) }

    func planned(_ rrset: Int) -> Bool {
        for index in 0..<planCount
        where plan[index].rrset == Int32(rrset) && plan[index].synthesizedTarget < 0 {
            return true
        }
        return false
    }

    /// Plans `rrset` of `node` under the given owner; with DO in a signed zone, with
    /// the RRSIGs at `node` that cover it (NSD adds them as it writes each RRset).
    @discardableResult
    mutating func add(
        section: UInt8, ownerOffset: Int32, ownerLength: UInt8, rrset: Int, node: Int,
        negative: Bool = false
    ) -> Bool {
        guard planCount < Responder.planCapacity, !((section == 1 || section == 2) && classAny)
        else { return false }
        var signatures: Int32 = 0
        if dnssecOK && store.flags(node) & StoreView.signedZone != 0
            && store.type(rrset) != RecordType.rrsig.rawValue,
            let found = store.rrset(of: node, type: RecordType.rrsig.rawValue)
        {
            signatures = Int32(found)
        }
        sections |= 1 << section
        plan[planCount] = PlannedRRSet(
            section: section, negative: negative, ownerLength: ownerLength,
            ownerOffset: ownerOffset, rrset: Int32(rrset), signatures: signatures,
            synthesizedTarget: -1, synthesizedLength: 0)
        planCount += 1
        return true
    }

    // MARK: Encoding

    /// Writes the planned RRsets by section (answer, authority, optional authority,
    /// additional A, additional AAAA, other additional), each RRset with its RRSIGs whole or not at all.
    /// One that does not fit in the answer or authority section sets TC and ends the
    /// response; one in the optional sections ends it silently (NSD's minimal
    /// responses), with TC for a referral that got no address at all. A truncated
    /// answer keeps what was written before (NSD's).
    mutating func encode(into writer: inout MessageWriter) -> (
        counts: (Int, Int, Int), truncated: Bool
    ) {
        // Records per message section (answer, authority, additional), and the
        // additional A section's alone, for the referral rule. No array: nothing here
        // may allocate.
        var counts = (0, 0, 0)
        var additionalA = 0
        var truncated = false
        sections: for section in UInt8(0)...5 where self.sections & (1 << section) != 0 {
            for index in 0..<planCount where plan[index].section == section {
                let entry = plan[index]
                let mark = writer.mark
                do {
                    let written = try write(entry, into: &writer)
                    switch section {
                    case 0: counts.0 += written
                    case 1, 2: counts.1 += written
                    default: counts.2 += written
                    }
                    if section == 3 { additionalA += written }
                } catch {
                    writer.rollBack(to: mark)
                    truncated = section <= 1 || (section == 3 && additionalA == 0 && referral)
                    break sections
                }
            }
        }
        return (counts, truncated)
    }

    /// Writes `entry`'s owner name: a pointer to the question, or a name compressed
    /// against those written (a synthesised CNAME's made-up labels whole first).
    @inline(__always)
    func appendOwner(_ entry: PlannedRRSet, into writer: inout MessageWriter)
        throws(MessageFull)
    {
        if entry.ownerOffset == -1 {
            try writer.appendPointer(to: MessageHeader.size)
            return
        }
        let name: UnsafeRawBufferPointer
        if entry.ownerOffset < -1 {
            let at = Int(-2 - entry.ownerOffset)
            name = UnsafeRawBufferPointer(rebasing: synthesized[at..<(at + Int(entry.ownerLength))])
        } else {
            name = store.bytes(Int(entry.ownerOffset), count: Int(entry.ownerLength))
        }
        guard entry.literalLength > 0 else {
            try writer.appendName(name, compress: true)
            return
        }
        let literal = Int(entry.literalLength)
        let mark = writer.mark
        do {
            try writer.append(bytes: UnsafeRawBufferPointer(rebasing: name[0..<literal]))
            try writer.appendName(
                UnsafeRawBufferPointer(rebasing: name[literal...]), compress: true)
        } catch {
            writer.rollBack(to: mark)
            throw error
        }
    }

    func write(_ entry: PlannedRRSet, into writer: inout MessageWriter) throws(MessageFull) -> Int {
        let set = Int(entry.rrset)
        var ttl = store.ttl(set)
        var rdata = store.rdata(set)
        if entry.synthesizedTarget >= 0 {
            // RFC 6672 §3.1: the CNAME a DNAME stands for, with the DNAME's TTL.
            try appendOwner(entry, into: &writer)
            try writer.append(RecordType.cname.rawValue)
            try writer.append(RecordClass.internet.rawValue)
            try writer.append(ttl)
            let lengthAt = writer.count
            try writer.append(UInt16(0))
            let at = Int(entry.synthesizedTarget)
            try writer.appendRecordData(
                UnsafeRawBufferPointer(
                    rebasing: synthesized[at..<(at + Int(entry.synthesizedLength))]),
                type: .cname)
            writer.patch(UInt16(writer.count - lengthAt - 2), at: lengthAt)
            return 1
        }
        if entry.negative {
            // RFC 2308 §3: the lesser of the SOA's TTL and its MINIMUM field.
            let minimumAt = rdata + 2 + store.rdataLength(at: rdata) - 4
            let minimum =
                UInt32(store.byte(minimumAt)) << 24 | UInt32(store.byte(minimumAt + 1)) << 16
                | UInt32(store.byte(minimumAt + 2)) << 8 | UInt32(store.byte(minimumAt + 3))
            ttl = min(ttl, minimum)
        }
        let rawType = store.type(set)
        let type = RecordType(rawValue: rawType)
        let count = store.count(set)
        let perRecordTTLs = rawType == RecordType.rrsig.rawValue ? store.recordTTLs(of: set) : 0
        for index in 0..<count {
            try appendOwner(entry, into: &writer)
            try writer.append(rawType)
            try writer.append(RecordClass.internet.rawValue)
            if perRecordTTLs != 0 {
                try writer.append(
                    store.arena.loadUnaligned(
                        fromByteOffset: perRecordTTLs + 4 * index, as: UInt32.self))
            } else {
                try writer.append(ttl)
            }
            let length = store.rdataLength(at: rdata)
            let lengthAt = writer.count
            try writer.append(UInt16(0))
            try writer.appendRecordData(store.bytes(rdata + 2, count: length), type: type)
            writer.patch(UInt16(writer.count - lengthAt - 2), at: lengthAt)
            rdata += 2 + length
        }
        var written = count
        if entry.signatures != 0 {
            // RFC 4035 §3.1.1: the RRSIGs covering the RRset, each with its own TTL;
            // an SOA's with the SOA's as written (NSD: the negative TTL in a negative
            // answer).
            let signatures = Int(entry.signatures)
            var signature = store.rdata(signatures)
            let ttls = store.recordTTLs(of: signatures)
            for index in 0..<store.count(signatures) {
                let length = store.rdataLength(at: signature)
                let covered =
                    UInt16(store.byte(signature + 2)) << 8 | UInt16(store.byte(signature + 3))
                if covered == rawType {
                    try appendOwner(entry, into: &writer)
                    try writer.append(RecordType.rrsig.rawValue)
                    try writer.append(RecordClass.internet.rawValue)
                    try writer.append(
                        rawType == RecordType.soa.rawValue
                            ? ttl
                            : store.arena.loadUnaligned(
                                fromByteOffset: ttls + 4 * index, as: UInt32.self))
                    try writer.append(UInt16(length))
                    try writer.append(bytes: store.bytes(signature + 2, count: length))
                    written += 1
                }
                signature += 2 + length
            }
        }
        return written
    }
}

/// Whether EDNS option TLVs fill `rdata` exactly (RFC 6891 §6.1.2).
func validOptions(_ rdata: UnsafeRawBufferPointer) -> Bool {
    var index = 0
    while index < rdata.count {
        guard index + 4 <= rdata.count else { return false }
        index += 4 + (Int(rdata[index + 2]) << 8 | Int(rdata[index + 3]))
    }
    return index == rdata.count
}
