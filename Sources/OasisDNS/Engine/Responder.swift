import OasisBits

/// One RRset chosen for the response: where it goes and under which owner name.
struct PlannedRRSet {
    /// 0 answer, 1 authority, 2 additional.
    var section: UInt8
    /// Whether this is the SOA of a negative answer (RFC 2308 §3: TTL capped by MINIMUM).
    var negative: Bool
    var ownerLength: UInt8
    /// The owner's wire bytes in the arena, or -1: the question's name (written as a
    /// pointer to offset 12, as NSD does, so the answer echoes the query's case).
    var ownerOffset: Int32
    /// The RRset's descriptor in the store's arena.
    var rrset: Int32
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
                            var responder = Responder(
                                store: store, chaos: chaos, scratch: names,
                                labelStarts: starts.baseAddress!,
                                suffixHashes: hashes.baseAddress!, plan: plan.baseAddress!)
                            return body(&responder, suffixes.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    init(
        store: StoreView, chaos: ChaosView, scratch: UnsafeMutableRawBufferPointer,
        labelStarts: UnsafeMutablePointer<UInt8>, suffixHashes: UnsafeMutablePointer<UInt64>,
        plan: UnsafeMutablePointer<PlannedRRSet>
    ) {
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
        // for a zone we serve, NXDOMAIN for any other name; header only.
        if opcode == 4 {
            guard load16(4) == 1, H.value(of: H.rcode, in: flags) == 0,
                let (nameLength, _) = try? readWireName(query, at: H.size, into: nameBuffer)
            else { return headerOnly(.formatError) }
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

    // MARK: RFC 1034 §4.3.2

    /// Looks up the lowercased name in `scratch[0..<nameLength]`, adding to the plan.
    /// `ownerOffset` is how to write this name as an owner (-1: the question).
    mutating func resolve(nameLength: Int, ownerOffset: Int32, depth: Int) {
        let labelCount = StoreView.labels(
            of: UnsafeRawPointer(scratch.baseAddress!), starts: labelStarts, hashes: suffixHashes,
            lowercase: true)
        let name = UnsafeRawBufferPointer(rebasing: scratch[0..<nameLength])
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
        // encloser, stopping at a zone cut.
        var node = Int(store.zones[zone].apex)
        var label = apexLabel - 1
        while label >= 0 {
            let start = Int(labelStarts[label])
            guard
                let child = store.findNode(
                    zone, UnsafeRawBufferPointer(rebasing: name[start...]),
                    hash: suffixHashes[label])
            else { break }
            node = child
            // A cut: refer (step 3b), unless the question is DS at the cut itself,
            // which the parent answers (RFC 4035 §3.1.4.1).
            if store.flags(child) & StoreView.delegation != 0
                && !(label == 0 && qtype == RecordType.ds.rawValue),
                let ns = store.rrset(of: child, type: RecordType.ns.rawValue)
            {
                if depth == 0 { authoritative = false }
                add(
                    section: 1, ownerOffset: nodeOwner(child),
                    ownerLength: UInt8(store.nameLength(child)), rrset: ns)
                return
            }
            label -= 1
        }
        if label < 0 {
            answer(
                node: node, zone: zone, ownerOffset: ownerOffset, ownerLength: UInt8(nameLength),
                depth: depth)
            return
        }
        // Step 3c: no exact match. RFC 4592 §3.3.1: a wildcard child of the closest
        // encloser answers; an empty non-terminal closest encloser has none (its
        // existence blocks synthesis from above).
        if store.flags(node) & StoreView.wildcardChild != 0 {
            let encloser = Int(labelStarts[label + 1])
            let wildcard = UnsafeMutableRawBufferPointer(rebasing: scratch[256..<512])
            wildcard[0] = 1
            wildcard[1] = UInt8(ascii: "*")
            let suffixLength = nameLength - encloser
            UnsafeMutableRawBufferPointer(rebasing: wildcard[2..<(2 + suffixLength)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: name[encloser..<nameLength]))
            let hash = StoreView.extend(
                suffixHashes[label + 1], label: UnsafeRawPointer(wildcard.baseAddress!), at: 0,
                lowercase: true)
            if let source = store.findNode(
                zone, UnsafeRawBufferPointer(rebasing: wildcard[0..<(2 + suffixLength)]),
                hash: hash)
            {
                answer(
                    node: source, zone: zone, ownerOffset: ownerOffset,
                    ownerLength: UInt8(nameLength), depth: depth)
                return
            }
        }
        // Name error (RFC 2308 §2.1): NXDOMAIN with the zone's SOA.
        rcode = UInt8(ResponseCode.nameError.rawValue)
        addNegativeSOA(zone)
    }

    /// Step 3a (or the synthesis of 3c): `node` holds the data for the name.
    mutating func answer(node: Int, zone: Int, ownerOffset: Int32, ownerLength: UInt8, depth: Int) {
        if qtype == RecordType.any.rawValue {
            guard store.rrsetCount(node) > 0 else {
                addNegativeSOA(zone)
                return
            }
            // RFC 8482 §4.1: one RRset is enough for ANY. NSD gives the first one
            // loaded (file order), with no authority or additional data; so do we.
            add(
                section: 0, ownerOffset: ownerOffset, ownerLength: ownerLength,
                rrset: store.firstRRSet(node))
            return
        }
        if qtype != RecordType.cname.rawValue,
            let cname = store.rrset(of: node, type: RecordType.cname.rawValue)
        {
            // RFC 1034 §4.3.2 step 3a / RFC 2181 §10.1: the CNAME, then its target.
            // A CNAME already in the answer is a loop: stop there.
            guard !planned(cname),
                add(section: 0, ownerOffset: ownerOffset, ownerLength: ownerLength, rrset: cname)
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
        if let found = store.rrset(of: node, type: qtype) {
            add(section: 0, ownerOffset: ownerOffset, ownerLength: ownerLength, rrset: found)
            // NSD puts the zone's NS RRset in the authority section of positive answers.
            let ns = Int(store.zones[zone].ns)
            if ns != 0 && !planned(ns) {
                let apex = Int(store.zones[zone].apex)
                add(
                    section: 1, ownerOffset: nodeOwner(apex),
                    ownerLength: UInt8(store.nameLength(apex)), rrset: ns)
            }
            return
        }
        // No data (RFC 2308 §2.2): NOERROR, the SOA in authority.
        addNegativeSOA(zone)
    }

    mutating func addNegativeSOA(_ zone: Int) {
        let apex = Int(store.zones[zone].apex)
        let soa = Int(store.zones[zone].soa)
        guard !planned(soa) else { return }
        _ = add(
            section: 1, ownerOffset: nodeOwner(apex), ownerLength: UInt8(store.nameLength(apex)),
            rrset: soa, negative: true)
    }

    /// RFC 1034 §4.3.2 step 6 (and §3.3.9, RFC 2782): addresses of in-zone NS, MX and
    /// SRV targets, glue included, in the additional section.
    mutating func addAdditionalAddresses() {
        var index = 0
        let end = planCount
        while index < end {
            let entry = plan[index]
            index += 1
            guard entry.section < 2 else { continue }
            let set = Int(entry.rrset)
            let type = store.type(set)
            guard StoreView.hasTargets(type) else { continue }
            // The targets' nodes were found when the store was built (0: not ours).
            var target = store.targets(of: set)
            for _ in 0..<store.count(set) {
                let node = Int(store.arena.loadUnaligned(fromByteOffset: target, as: UInt32.self))
                target += 4
                guard node != 0 else { continue }
                addAddresses(of: node, type: RecordType.a.rawValue)
                addAddresses(of: node, type: RecordType.aaaa.rawValue)
            }
        }
    }

    mutating func addAddresses(of node: Int, type: UInt16) {
        if let addresses = store.rrset(of: node, type: type), !planned(addresses) {
            add(
                section: 2, ownerOffset: nodeOwner(node),
                ownerLength: UInt8(store.nameLength(node)), rrset: addresses)
        }
    }

    // MARK: Lookups

    func nodeOwner(_ node: Int) -> Int32 { Int32(truncatingIfNeeded: store.name(node)) }

    func planned(_ rrset: Int) -> Bool {
        for index in 0..<planCount where plan[index].rrset == Int32(rrset) { return true }
        return false
    }

    @discardableResult
    mutating func add(
        section: UInt8, ownerOffset: Int32, ownerLength: UInt8, rrset: Int, negative: Bool = false
    ) -> Bool {
        guard planCount < Responder.planCapacity, !(section == 1 && classAny) else { return false }
        plan[planCount] = PlannedRRSet(
            section: section, negative: negative, ownerLength: ownerLength,
            ownerOffset: ownerOffset, rrset: Int32(rrset))
        planCount += 1
        return true
    }

    // MARK: Encoding

    /// Writes the planned RRsets, answer first. An RRset is written whole or not at
    /// all. One that does not fit in the answer section (or the authority section of
    /// an answer with no answer records: a referral or a negative answer) sets TC and
    /// ends the response; elsewhere it is left out silently, and so is everything
    /// after it — what NSD does (checked by experiment: a truncated answer is the
    /// header, the question and the OPT).
    mutating func encode(into writer: inout MessageWriter) -> (
        counts: (Int, Int, Int), truncated: Bool
    ) {
        var counts = (0, 0, 0)
        var truncated = false
        sections: for section in UInt8(0)...2 {
            for index in 0..<planCount where plan[index].section == section {
                let entry = plan[index]
                let mark = writer.mark
                do {
                    let written = try write(entry, into: &writer)
                    switch section {
                    case 0: counts.0 += written
                    case 1: counts.1 += written
                    default: counts.2 += written
                    }
                } catch {
                    writer.rollBack(to: mark)
                    truncated = section == 0 || (section == 1 && counts.0 == 0)
                    break sections
                }
            }
        }
        return (counts, truncated)
    }

    func write(_ entry: PlannedRRSet, into writer: inout MessageWriter) throws(MessageFull) -> Int {
        let set = Int(entry.rrset)
        var ttl = store.ttl(set)
        var rdata = store.rdata(set)
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
        for _ in 0..<count {
            if entry.ownerOffset < 0 {
                try writer.appendPointer(to: MessageHeader.size)
            } else {
                try writer.appendName(
                    store.bytes(Int(entry.ownerOffset), count: Int(entry.ownerLength)),
                    compress: true)
            }
            try writer.append(rawType)
            try writer.append(RecordClass.internet.rawValue)
            try writer.append(ttl)
            let length = store.rdataLength(at: rdata)
            let lengthAt = writer.count
            try writer.append(UInt16(0))
            try writer.appendRecordData(store.bytes(rdata + 2, count: length), type: type)
            writer.patch(UInt16(writer.count - lengthAt - 2), at: lengthAt)
            rdata += 2 + length
        }
        return count
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
