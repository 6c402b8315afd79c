import OasisBits
import Testing

@testable import OasisDNS

/// The engine on its own (no peer needed): the RFC behaviours the NSD differential
/// test also covers, checked here so they hold on machines without NSD.
@Suite struct EngineTests {
    static let zoneText = ##"""
        $TTL 3600
        @ SOA ns hostmaster 1 7200 3600 1209600 300
        @ NS ns
        ns A 192.0.2.1
        www A 192.0.2.2
        alias CNAME www
        loop1 CNAME loop2
        loop2 CNAME loop1
        *.wild A 192.0.2.3
        a.b.ent A 192.0.2.4
        *.ent A 192.0.2.5
        sub NS ns.sub
        ns.sub A 192.0.2.6
        """##

    let engine: AuthoritativeEngine = {
        let origin = try! DomainName(parsing: "example.")
        let records = try! ZoneFileParser.parse(text: zoneText, origin: origin)
        return try! AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
    }()

    func ask(_ name: String, _ type: RecordType, edns: EDNS? = nil, transport: Transport = .udp)
        throws -> Message
    {
        let answer = try #require(
            engineAnswer(
                engine, queryBytes(name: name, type: type, edns: edns), transport: transport))
        return try Message(parsing: Bits(answer))
    }

    @Test func positiveAnswerEchoesCaseAndSetsAA() throws {
        let reply = try ask("WwW.Example.", .a)
        #expect(reply.authoritative && reply.rcode == .noError)
        let asked = try DomainName(parsing: "WwW.Example.")
        #expect(reply.questions[0].name.wire == asked.wire)
        #expect(reply.answers.map(\.data) == [.a(0xc000_0202)])
        #expect(reply.authority.map(\.type) == [.ns])
        #expect(reply.additional.map(\.data) == [.a(0xc000_0201)])
    }

    @Test func negativeAnswersCarryTheSOAWithTheMinimumTTL() throws {
        let nx = try ask("nope.example.", .a)
        #expect(nx.rcode == .nameError && nx.authority.map(\.ttl) == [300])
        let nodata = try ask("www.example.", .txt)
        #expect(
            nodata.rcode == .noError && nodata.answers.isEmpty
                && nodata.authority.map(\.type) == [.soa])
    }

    @Test func cnameChainsAndLoops() throws {
        let alias = try ask("alias.example.", .a)
        #expect(alias.answers.map(\.type) == [.cname, .a])
        let loop = try ask("loop1.example.", .a)
        #expect(loop.answers.map(\.type) == [.cname, .cname] && loop.rcode == .noError)
    }

    @Test func wildcardsAndEmptyNonTerminals() throws {
        let wild = try ask("x.y.wild.example.", .a)
        #expect(wild.answers.map(\.name) == [try DomainName(parsing: "x.y.wild.example.")])
        // b.ent exists (empty non-terminal): NODATA, and it blocks *.ent below it.
        let ent = try ask("b.ent.example.", .a)
        #expect(ent.rcode == .noError && ent.answers.isEmpty)
        #expect(try ask("z.b.ent.example.", .a).rcode == .nameError)
        #expect(try ask("z.ent.example.", .a).answers.map(\.data) == [.a(0xc000_0205)])
    }

    @Test func referralWithGlue() throws {
        let referral = try ask("www.sub.example.", .a)
        #expect(!referral.authoritative && referral.answers.isEmpty)
        #expect(referral.authority.map(\.type) == [.ns])
        #expect(referral.additional.map(\.data) == [.a(0xc000_0206)])
    }

    @Test func refusedBadVersionAndMalformed() throws {
        #expect(try ask("www.example.org.", .a).rcode == .refused)
        let badVersion = try ask("www.example.", .a, edns: EDNS(version: 1))
        #expect(badVersion.rcode == .badVersion && badVersion.edns?.version == 0)
        var query = queryBytes(name: "www.example.", type: .a)
        query[5] = 2
        let formerr = try Message(
            parsing: Bits(try #require(engineAnswer(engine, query, transport: .udp))))
        #expect(formerr.rcode == .formatError && formerr.questions.isEmpty)
        query[2] = 0x80
        #expect(engineAnswer(engine, query, transport: .udp) == nil)
        #expect(engineAnswer(engine, [1, 2, 3], transport: .udp) == nil)
    }

    /// Issue 19, item 9 (each as NSD 4.6 answers, checked by the differential test
    /// too): a name pointer into the header is FORMERR; a record other than OPT and a
    /// last TSIG in the additional section is FORMERR; a TSIG with a key we do not
    /// know is NOTAUTH with BADKEY; NOTIFY is REFUSED for our zone, NXDOMAIN for
    /// another; a refused transfer says Extended DNS Error 18; CHAOS TXT for
    /// version.bind and id.server is answered only when configured.
    @Test func hostileAndOddQueriesAsNSDAnswersThem() throws {
        func answer(_ query: [UInt8], _ engine: AuthoritativeEngine? = nil, tcp: Bool = false)
            throws -> Message
        {
            let bytes = try #require(
                engineAnswer(engine ?? self.engine, query, transport: tcp ? .tcp : .udp))
            return try Message(parsing: Bits(bytes))
        }
        let header: [UInt8] = [0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        let intoHeader = try answer(header + [0xc0, 0x04, 0, 1, 0, 1])
        #expect(intoHeader.rcode == .formatError && intoHeader.questions.isEmpty)

        let www = queryBytes(name: "www.example.", type: .a)
        var withA = www + [0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]
        withA[11] = 1
        #expect(try answer(withA).rcode == .formatError)
        var tsig = www + [1, 0x6b, 0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 29]
        tsig += [11] + Array("hmac-sha256".utf8) + [0]
        tsig += [0, 0, 0x65, 0x5f, 0, 0, 1, 0x2c, 0, 0, 0x12, 0x34, 0, 0, 0, 0]
        tsig[11] = 1
        let badKey = try answer(tsig)
        #expect(badKey.rcode == ResponseCode(rawValue: 9) && badKey.questions.isEmpty)
        #expect(badKey.additional.map(\.type.rawValue) == [250])

        var notify = queryBytes(name: "example.", type: .soa)
        notify[2] = 0x20
        #expect(try answer(notify).rcode == .refused)
        var elsewhere = queryBytes(name: "example.org.", type: .soa)
        elsewhere[2] = 0x20
        #expect(try answer(elsewhere).rcode == .nameError)

        let axfr = try answer(
            queryBytes(name: "example.", type: .axfr, edns: EDNS(udpPayloadSize: 1232)), tcp: true)
        #expect(axfr.rcode == .refused && axfr.edns?.options == [0, 15, 0, 2, 0, 18])

        let version = queryBytes(name: "version.bind.", type: .txt, recordClass: .chaos)
        #expect(try answer(version).rcode == .refused)
        let talking = engine.answering(as: ServerIdentity(version: "oasis 1", identity: "ns1"))
        let said = try answer(version, talking)
        #expect(said.rcode == .noError && said.answers.map(\.ttl) == [0])
        #expect(said.answers.map(\.recordClass) == [.chaos])
        let id = try answer(
            queryBytes(name: "ID.Server.", type: .txt, recordClass: .chaos), talking)
        #expect(id.answers.count == 1)
    }

    @Test func truncationOverUDPAndFullOverTCP() throws {
        let origin = try DomainName(parsing: "big.")
        var text = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n"
        for index in 0..<30 { text += "@ TXT \"\(index) \(String(repeating: "x", count: 100))\"\n" }
        let records = try ZoneFileParser.parse(text: text, origin: origin)
        let big = try AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
        let query = queryBytes(name: "big.", type: .txt)
        let udp = try #require(engineAnswer(big, query, transport: .udp))
        let truncated = try Message(parsing: Bits(udp))
        #expect(udp.count <= 512 && truncated.truncated && truncated.answers.isEmpty)
        let tcp = try Message(
            parsing: Bits(try #require(engineAnswer(big, query, transport: .tcp))))
        #expect(!tcp.truncated && tcp.answers.count == 30)
    }

    /// Lookups go through hash tables: a zone of 200 000 names answers like a small one.
    @Test func largeZone() throws {
        let origin = try DomainName(parsing: "large.")
        var records = [
            ResourceRecord(
                name: origin, type: .soa, ttl: 60,
                data: .soa(
                    StartOfAuthority(
                        primary: origin, mailbox: origin, serial: 1, refresh: 2, retry: 3,
                        expire: 4,
                        minimum: 5)))
        ]
        for index in 0..<200_000 {
            records.append(
                ResourceRecord(
                    name: try origin.prepending(label: Array("h\(index)".utf8)), type: .a, ttl: 60,
                    data: .a(UInt32(index))))
        }
        let large = try AuthoritativeEngine(zones: [Zone(origin: origin, records: records)])
        #expect(large.statistics.names == 200_001)
        for index in stride(from: 0, to: 200_000, by: 9973) {
            let answer = try #require(
                engineAnswer(large, queryBytes(name: "H\(index).large.", type: .a), transport: .udp)
            )
            #expect(try Message(parsing: Bits(answer)).answers.map(\.data) == [.a(UInt32(index))])
        }
    }

    /// A `Zone` made in code can pair a type with any data: the engine reads the names
    /// inside NS, CNAME, PTR, MX, SRV and SOA RDATA, so malformed ones are refused when
    /// it is built (and well-formed `\#` data is accepted).
    @Test func malformedRecordDataOfTypesWithNamesIsRefused() throws {
        let origin = try DomainName(parsing: "example.")
        let soa = try #require(
            try ZoneFileParser.parse(text: "@ 60 SOA ns hostmaster 1 2 3 4 5", origin: origin)
                .first)
        for (type, bytes) in [
            (RecordType.mx, [0, 10, 63, 1]), (.ns, [5, 0x61]), (.soa, [0]), (.srv, [0, 1]),
            (.cname, [0xc0, 0]),
        ] as [(RecordType, [UInt8])] {
            let bad = ResourceRecord(name: origin, type: type, ttl: 60, data: .opaque(bytes))
            #expect(throws: ZoneFileError.self) {
                try AuthoritativeEngine(zones: [Zone(origin: origin, records: [soa, bad])])
            }
        }
        let good = ResourceRecord(
            name: origin, type: .mx, ttl: 60, data: .opaque([0, 10, 4, 0x6d, 0x61, 0x69, 0x6c, 0]))
        let engine = try AuthoritativeEngine(zones: [Zone(origin: origin, records: [soa, good])])
        let answer = try #require(
            engineAnswer(engine, queryBytes(name: "example.", type: .mx), transport: .udp))
        let message = try Message(parsing: Bits(answer))
        #expect(
            message.answers.map(\.data) == [
                .mx(preference: 10, exchange: try DomainName(parsing: "mail."))
            ])
    }

    /// Prefetch tokens are hints: from another engine, or from a query about nothing we
    /// serve, they read nothing out of bounds and change no answer. An engine with no
    /// zones refuses everything.
    @Test func prefetchTokensAreHarmlessAnywhere() throws {
        let empty = try AuthoritativeEngine(zones: [])
        let query = Bits(queryBytes(name: "www.example.", type: .a))
        let token = engine.prefetchSlot(for: query)
        empty.prefetchRecord(token)
        engine.prefetchRecord(empty.prefetchSlot(for: query))
        engine.prefetchRecord(engine.prefetchSlot(for: Bits([1, 2, 3])))
        let refused = try Message(
            parsing: Bits(try #require(engineAnswer(empty, query.copyBytes(), transport: .udp))))
        #expect(refused.rcode == .refused)
        #expect(try ask("www.example.", .a).answers.count == 1)
    }
}
