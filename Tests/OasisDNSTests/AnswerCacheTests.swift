import OasisBits
import Testing

@testable import OasisDNS

/// The answer cache in front of the engine: every answer it gives must be the engine's,
/// byte for byte, with the asker's ID; and it must not grow, nor keep a poor hit rate.
@Suite struct AnswerCacheTests {
    let engine: AuthoritativeEngine = {
        let origin = try! DomainName(parsing: "example.")
        let records = try! ZoneFileParser.parse(text: EngineTests.zoneText, origin: origin)
        let big = (0..<20).map { index in
            ResourceRecord(
                name: try! DomainName(parsing: "big.example."), type: .a, ttl: 60,
                data: .a(0x0a00_0000 | UInt32(index)))
        }
        return try! AuthoritativeEngine(
            zones: [Zone(origin: origin, records: records + big)])
    }()

    /// The cache's answer to `query`, or nil for a drop.
    func cached(
        _ cache: AnswerCache, _ query: [UInt8], transport: Transport = .udp, room: Int = 65536
    ) -> [UInt8]? {
        var reply = [UInt8](repeating: 0, count: room)
        let length = query.withUnsafeBytes { bytes in
            reply.withUnsafeMutableBytes { room in
                cache.respond(with: engine, to: bytes, transport: transport, into: room)
            }
        }
        return length.map { Array(reply[..<$0]) }
    }

    /// Queries that differ in everything the key must see: name, case, type, class,
    /// RD, EDNS size, DO, version, and answers that truncate.
    var queries: [[UInt8]] {
        var result: [[UInt8]] = []
        for name in [
            "www.example.", "WWW.example.", "nope.example.", "alias.example.",
            "x.wild.example.", "a.b.ent.example.", "host.sub.example.", "big.example.",
            "example.", "outside.test.",
        ] {
            for type in [RecordType.a, .aaaa, .ns, .soa, .txt, .any] {
                result.append(queryBytes(name: name, type: type))
                result.append(queryBytes(name: name, type: type, recursionDesired: true))
                result.append(queryBytes(name: name, type: type, edns: EDNS()))
                result.append(
                    queryBytes(
                        name: name, type: type, edns: EDNS(udpPayloadSize: 4096, dnssecOK: true)))
            }
            result.append(queryBytes(name: name, type: .a, edns: EDNS(version: 1)))
            result.append(queryBytes(name: name, type: .a, recordClass: .chaos))
        }
        return result
    }

    @Test func answersAreTheEnginesByteForByteWithTheAskersID() throws {
        let cache = AnswerCache(slots: 4096)
        let all = queries
        for transport in [Transport.udp, .udp(maximumPayload: 512), .tcp] {
            for round in 0..<3 {
                for (index, query) in all.enumerated() {
                    var asked = query
                    asked[0] = UInt8(truncatingIfNeeded: round &* 31 &+ index)
                    asked[1] = UInt8(truncatingIfNeeded: index >> 8)
                    let expected = engineAnswer(engine, asked, transport: transport)
                    let answer = cached(cache, asked, transport: transport)
                    #expect(answer == expected, "query \(index), round \(round), \(transport)")
                    if let answer { #expect(answer[0] == asked[0] && answer[1] == asked[1]) }
                }
            }
        }
        // Each query is new the first time round; after that most are found (a
        // direct-mapped cache loses some to collisions, and answers over 512 bytes are
        // not kept).
        let total = UInt64(all.count * 3 * 3)
        #expect(cache.hits + cache.misses == total && cache.bypassed == 0)
        #expect(cache.hits >= total / 2, "\(cache.hits) hits of \(total)")
    }

    @Test func aRepeatedQueryIsAnsweredFromTheCache() throws {
        let cache = AnswerCache(slots: 16)
        let query = queryBytes(name: "www.example.", type: .a, edns: EDNS())
        for _ in 0..<3 {
            #expect(cached(cache, query) == engineAnswer(engine, query, transport: .udp))
        }
        #expect(cache.misses == 1 && cache.hits == 2)
        // The same bytes over another transport are another question.
        #expect(
            cached(cache, query, transport: .tcp) == engineAnswer(engine, query, transport: .tcp))
        #expect(cache.misses == 2)
    }

    @Test func anAnswerCutShortByTheRoomIsNotKept() throws {
        // A room smaller than the transport allows makes the engine truncate: that
        // answer is not the one for a roomy reply, and must not be kept as such.
        let cache = AnswerCache(slots: 16)
        let query = queryBytes(name: "big.example.", type: .a)
        let engineInSmallRoom: [UInt8]? = {
            var reply = [UInt8](repeating: 0, count: 300)
            let length = query.withUnsafeBytes { bytes in
                reply.withUnsafeMutableBytes {
                    engine.respond(to: bytes, transport: .udp, into: $0)
                }
            }
            return length.map { Array(reply[..<$0]) }
        }()
        #expect(cached(cache, query, room: 300) == engineInSmallRoom)
        let full = engineAnswer(engine, query, transport: .udp)
        #expect(full != engineInSmallRoom)
        #expect(cached(cache, query) == full)
        #expect(cached(cache, query) == full)
        #expect(cache.hits == 1)
        // The full answer does not fit a small room: the engine answers there.
        #expect(cached(cache, query, room: 300) == engineInSmallRoom)
    }

    @Test func aNameThatPointsAtTheIDIsNeverKept() throws {
        // The question's name is a compression pointer to offset 0: the ID spells it
        // (found by the fuzzer). Two IDs, two names, two different answers.
        let cache = AnswerCache(slots: 16)
        for id: [UInt8] in [[0x01, 0x61], [0x01, 0x62], [0x01, 0x61], [0x00, 0x00]] {
            let query = id + [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x00, 0, 1, 0, 1]
            #expect(cached(cache, query) == engineAnswer(engine, query, transport: .udp))
        }
        #expect(cache.hits == 0)
    }

    @Test func theScanForPointersAtTheIDFindsC000AndC001AnywhereAndNothingElse() {
        func scan(_ bytes: [UInt8]) -> Bool {
            bytes.withUnsafeBytes { AnswerCache.mayPointAtTheID($0.baseAddress!, count: $0.count) }
        }
        func reference(_ bytes: [UInt8]) -> Bool {
            bytes.indices.dropLast().contains { bytes[$0] == 0xc0 && bytes[$0 + 1] <= 1 }
        }
        #expect(!scan([0xc0]))
        #expect(!scan([0xc0, 0x02]))
        #expect(scan([0xc0, 0x00]))
        #expect(scan([0xc0, 0xc0, 0x01]))
        #expect(!scan([0x01, 0xc0]))
        // Every position, with and without the pointer's second byte inside the key.
        for count in 1...40 {
            for position in 0..<count {
                for second: UInt8 in [0, 1, 2, 0xc0] {
                    var bytes = [UInt8](repeating: 0x61, count: count)
                    bytes[position] = 0xc0
                    if position + 1 < count { bytes[position + 1] = second }
                    #expect(scan(bytes) == reference(bytes), "\(bytes)")
                }
            }
        }
    }

    @Test func dropsAndLongQueriesGoToTheEngineEveryTime() throws {
        let cache = AnswerCache(slots: 16)
        var response = queryBytes(name: "www.example.", type: .a)
        response[2] |= 0x80  // QR: a response is dropped, not answered
        // An EDNS option of 120 bytes makes the query longer than the cache keeps.
        let long = queryBytes(
            name: "www.example.", type: .a,
            edns: EDNS(options: [0, 10, 0, 120] + [UInt8](repeating: 7, count: 120)))
        #expect(long.count - 2 > AnswerCache.maximumQuery)
        for _ in 0..<3 {
            #expect(cached(cache, response) == nil)
            #expect(cached(cache, Array(response[..<5])) == nil)
            #expect(cached(cache, long) == engineAnswer(engine, long, transport: .udp))
        }
        #expect(cache.hits == 0)
    }

    @Test func aPoorHitRateMakesTheCacheStandAsideForAWhile() throws {
        let cache = AnswerCache(slots: 16, bypassLength: 1000)
        // 8192 different queries (one window): none repeats, so none hits.
        for index in 0..<8192 {
            let query = queryBytes(id: UInt16(index & 0xffff), name: "n\(index).example.", type: .a)
            #expect(cached(cache, query) == engineAnswer(engine, query, transport: .udp))
        }
        #expect(cache.hits == 0 && cache.bypassed == 0)
        // The next 1000 queries pass it by, even those it could answer; then it is back.
        let www = queryBytes(name: "www.example.", type: .a)
        for _ in 0..<1000 {
            #expect(cached(cache, www) == engineAnswer(engine, www, transport: .udp))
        }
        #expect(cache.bypassed == 1000 && cache.hits == 0)
        _ = cached(cache, www)
        _ = cached(cache, www)
        #expect(cache.hits == 1)
    }

    @Test func itsMemoryIsFixed() {
        let cache = AnswerCache(slots: 1000)
        #expect(cache.slotCount == 1024)
        #expect(cache.byteCount == 1024 * 640)
    }
}
