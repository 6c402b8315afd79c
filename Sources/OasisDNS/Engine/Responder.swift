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
    /// [0, 256): the name being looked up, lowercased; [256, 512): a second name.
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
    /// QCLASS ANY: NSD leaves the authority section out.
    var classAny = false

    /// Room for the largest answer we plan: a 16-link CNAME chain, its answer, the
    /// authority section, and the addresses of a dozen name servers.
    static let planCapacity = 64

    /// Runs `body` with a responder over `store` whose scratch memory is on the stack
    /// (each piece at most 1 KiB, the size Swift always places on the stack).
    static func with<Result>(store: StoreView, _ body: (inout Responder) -> Result) -> Result {
        withUnsafeTemporaryAllocation(byteCount: 512, alignment: 8) { names in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 128) { hashes in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { starts in
                    withUnsafeTemporaryAllocation(of: PlannedRRSet.self, capacity: planCapacity) {
                        plan in
                        var responder = Responder(
                            store: store, scratch: names, labelStarts: starts.baseAddress!,
                            suffixHashes: hashes.baseAddress!, plan: plan.baseAddress!)
                        return body(&responder)
                    }
                }
            }
        }
    }

    init(
        store: StoreView, scratch: UnsafeMutableRawBufferPointer,
        labelStarts: UnsafeMutablePointer<UInt8>, suffixHashes: UnsafeMutablePointer<UInt64>,
        plan: UnsafeMutablePointer<PlannedRRSet>
    ) {
        self.store = store
        self.scratch = scratch
        self.labelStarts = labelStarts
        self.suffixHashes = suffixHashes
        self.plan = plan
    }

    // MARK: The query

    mutating func respond(to query: Bits, transport: Transport, writer: inout MessageWriter) -> Int?
    {
        // Shorter than a header, or a response: drop (RFC 1035 §4.1.1; NSD does).
        guard let header = try? query.header(MessageHeader.self),
            header[MessageHeader.isResponse] == 0
        else { return nil }
        guard (try? writer.reserve(MessageHeader.size)) != nil,
            var out = try? writer.bits.header(MessageHeader.self)
        else { return nil }
        out[MessageHeader.id] = header[MessageHeader.id]
        out[MessageHeader.flags] = 0x8000
        out[MessageHeader.opcode] = header[MessageHeader.opcode]
        out[MessageHeader.recursionDesired] = header[MessageHeader.recursionDesired]
        out[MessageHeader.questionCount] = 0
        out[MessageHeader.answerCount] = 0
        out[MessageHeader.authorityCount] = 0
        out[MessageHeader.additionalCount] = 0
        func headerOnly(_ code: ResponseCode) -> Int {
            out[MessageHeader.rcode] = UInt8(code.rawValue)
            return writer.count
        }
        // RFC 1035 §4.1.1: only QUERY is implemented.
        guard header[MessageHeader.opcode] == 0 else { return headerOnly(.notImplemented) }
        // A query has one question and nothing in the answer and authority sections;
        // NSD also rejects a query with a response code set. FORMERR, header only.
        guard header[MessageHeader.questionCount] == 1, header[MessageHeader.answerCount] == 0,
            header[MessageHeader.authorityCount] == 0, header[MessageHeader.rcode] == 0
        else { return headerOnly(.formatError) }
        let nameBuffer = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<256])
        guard
            let (nameLength, afterName) = try? query.readName(
                at: MessageHeader.size, into: nameBuffer),
            let type: UInt16 = try? query.read(at: afterName),
            let qclass: UInt16 = try? query.read(at: afterName + 2)
        else { return headerOnly(.formatError) }
        qtype = type
        // The additional section may hold one OPT (RFC 6891 §6.1.1); other records
        // (TSIG, which we do not implement) are skipped.
        var edns: (size: UInt16, version: UInt8, dnssecOK: Bool)?
        var offset = afterName + 4
        let otherName = UnsafeMutableRawBufferPointer(rebasing: scratch[256..<512])
        for _ in 0..<header[MessageHeader.additionalCount] {
            guard let (ownerLength, next) = try? query.readName(at: offset, into: otherName),
                let fixed = try? query.slice(from: next, length: 10),
                let rdataLength: UInt16 = try? fixed.read(at: 8),
                let rdata = try? query.slice(from: next + 10, length: Int(rdataLength))
            else { return headerOnly(.formatError) }
            offset = next + 10 + Int(rdataLength)
            guard (try? fixed.read(UInt16.self, at: 0)) == RecordType.opt.rawValue else { continue }
            guard edns == nil, ownerLength == 1, validOptions(rdata) else {
                return headerOnly(.formatError)
            }
            let ttl = (try? fixed.read(UInt32.self, at: 4)) ?? 0
            edns = (
                (try? fixed.read(UInt16.self, at: 2)) ?? 512, UInt8((ttl >> 16) & 0xff),
                ttl & 0x8000 != 0
            )
        }
        // The question, echoed as asked (RFC 1035 §7.3 — the query's case).
        let questionMark = writer.mark
        _ = try? writer.append(bytes: UnsafeRawBufferPointer(rebasing: nameBuffer[0..<nameLength]))
        _ = try? writer.append(type)
        _ = try? writer.append(qclass)
        writer.remember(nameAt: MessageHeader.size)
        out[MessageHeader.questionCount] = 1
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
            out[MessageHeader.rcode] = UInt8(code.rawValue & 0xf)
            out[MessageHeader.answerCount] = UInt16(records.answer)
            out[MessageHeader.authorityCount] = UInt16(records.authority)
            out[MessageHeader.additionalCount] = UInt16(records.additional)
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
                } else {
                    _ = try? writer.append(UInt16(0))
                }
                out[MessageHeader.additionalCount] = UInt16(records.additional + 1)
            }
            return writer.count
        }
        writer.limit -= optSize
        // RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS, nothing else.
        if let edns, edns.version != 0 { return withOPT(.badVersion, records: (0, 0, 0)) }
        // Only class IN is served. As NSD: QCLASS ANY is answered as IN without AA
        // and without an authority section; CH (where NSD would serve id.server) is
        // REFUSED with the question; any other class is REFUSED without it.
        if qclass == RecordClass.any.rawValue {
            authoritative = false
            classAny = true
        } else if qclass != RecordClass.internet.rawValue {
            notAuthoritative = true
            if qclass != RecordClass.chaos.rawValue {
                writer.rollBack(to: questionMark)
                out[MessageHeader.questionCount] = 0
            }
            return withOPT(.refused, records: (0, 0, 0))
        }
        // Zone transfers are not served: AXFR over UDP is NOTIMP (RFC 5936 §4.2 says
        // UDP AXFR is not defined), otherwise REFUSED, as NSD without `provide-xfr`.
        if type == RecordType.axfr.rawValue || type == RecordType.ixfr.rawValue {
            if case .udp = transport, type == RecordType.axfr.rawValue {
                return withOPT(.notImplemented, records: (0, 0, 0))
            }
            return withOPT(.refused, records: (0, 0, 0))
        }

        resolve(nameLength: nameLength, ownerOffset: -1, depth: 0)
        addAdditionalAddresses()
        let counts = encode(into: &writer, header: &out)
        out[MessageHeader.authoritative] =
            authoritative && rcode != ResponseCode.refused.rawValue ? 1 : 0
        return withOPT(ResponseCode(rawValue: UInt16(rcode)), records: counts)
    }

    // MARK: RFC 1034 §4.3.2

    /// Looks up the lowercased name in `scratch[0..<nameLength]`, adding to the plan.
    /// `ownerOffset` is how to write this name as an owner (-1: the question).
    mutating func resolve(nameLength: Int, ownerOffset: Int32, depth: Int) {
        let labelCount = StoreView.labels(
            of: UnsafeRawPointer(scratch.baseAddress!), starts: labelStarts, hashes: suffixHashes)
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
                suffixHashes[label + 1], label: UnsafeRawPointer(wildcard.baseAddress!), at: 0)
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
    mutating func encode(into writer: inout MessageWriter, header: inout Header<MessageHeader>) -> (
        Int, Int, Int
    ) {
        var counts = (0, 0, 0)
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
                    if section == 0 || (section == 1 && counts.0 == 0) {
                        header[MessageHeader.truncated] = 1
                    }
                    break sections
                }
            }
        }
        return counts
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
func validOptions(_ rdata: Bits) -> Bool {
    var index = 0
    while index < rdata.count {
        guard let length: UInt16 = try? rdata.read(at: index + 2) else { return false }
        index += 4 + Int(length)
    }
    return index == rdata.count
}
