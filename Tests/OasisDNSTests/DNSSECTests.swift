import OasisBits
import Testing

@testable import OasisDNS

/// SHA-1 against RFC 3174 §7.3's vectors, NSEC3 hashes against RFC 5155 Appendix A,
/// and the text forms of the DNSSEC types (their round trip through NSD is in
/// NSDSignedZoneTests).
@Suite struct DNSSECTests {
    func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test func sha1MatchesRFC3174() {
        #expect(hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(
            hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        let eight = Array("0123456701234567012345670123456701234567012345670123456701234567".utf8)
        #expect(
            hex(SHA1.digest(Array(repeating: eight, count: 10).flatMap { $0 }))
                == "dea356a2cddd90c7a7ecedc5ebb563934f460452")
        // Lengths around the padding boundary (55, 56, 63, 64 bytes) and the empty input.
        #expect(hex(SHA1.digest([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        for count in [55, 56, 63, 64, 119, 120] {
            #expect(SHA1.digest([UInt8](repeating: 0x61, count: count)).count == 20)
        }
    }

    @Test(arguments: [
        ("example.", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
        ("a.example.", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
        ("ai.example.", "gjeqe526plbf1g8mklp59enfd789njgi"),
        ("ns1.example.", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
        ("ns2.example.", "q04jkcevqvmu85r014c7dkba38o0ji5r"),
        ("w.example.", "k8udemvp1j2f7eg6jebps17vp3n8i58h"),
        ("*.w.example.", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
        ("x.w.example.", "b4um86eghhds6nea196smvmlo4ors995"),
        ("y.w.example.", "ji6neoaepv8b5o6k4ev33abha8ht9fgc"),
        ("x.y.w.example.", "2vptu5timamqttgl4luu9kg21e0aor3s"),
        ("XX.Example.", "t644ebqk9bibcna874givr6joj62mlhv"),
    ])
    func nsec3HashesMatchRFC5155AppendixA(name: String, expected: String) throws {
        let hash = NSEC3Hash.hash(
            name: try DomainName(parsing: name), salt: [0xaa, 0xbb, 0xcc, 0xdd], iterations: 12)
        #expect(String(decoding: encodeBase32Hex(hash), as: UTF8.self) == expected)
        #expect(decodeBase32Hex(Array(expected.utf8)) == hash)
    }

    @Test func dnssecTypesReadToTheirWireForms() throws {
        let origin = try DomainName(parsing: "example.")
        let records = try ZoneFileParser.parse(
            text: """
                $TTL 60
                @ DS 60485 RSASHA1 1 2BB183AF5F22588179A53B0A98631FAD1A292118
                @ NSEC3PARAM 1 0 12 aabbccdd
                @ NSEC host A MX RRSIG NSEC TYPE1234
                @ RRSIG A 5 2 3600 20040509183619 20040409183619 38519 Example. AQID BA==
                """, origin: origin)
        #expect(
            records[0].data.wire
                == [0xec, 0x45, 0x05, 0x01] + [
                    0x2b, 0xb1, 0x83, 0xaf, 0x5f, 0x22, 0x58, 0x81, 0x79, 0xa5, 0x3b, 0x0a, 0x98,
                    0x63, 0x1f, 0xad, 0x1a, 0x29, 0x21, 0x18,
                ])
        #expect(records[1].data.wire == [1, 0, 0, 12, 4, 0xaa, 0xbb, 0xcc, 0xdd])
        // RFC 4034 §4.3's bitmap: window 0 for A MX RRSIG NSEC, window 4 for 1234.
        #expect(
            records[2].data.wire
                == [4] + Array("host".utf8) + [7] + Array("example".utf8) + [0]
                + [0, 6, 0x40, 0x01, 0, 0, 0, 0x03] + [4, 27] + [UInt8](repeating: 0, count: 26)
                + [0x20])
        // RFC 4034 §3.3: times as seconds since 1970 (1084127779 and 1081535779).
        let rrsig = records[3].data.wire
        #expect(
            Array(rrsig[0..<18]) == [
                0, 1, 5, 2, 0, 0, 0x0e, 0x10, 0x40, 0x9e, 0x7a, 0x23, 0x40, 0x76, 0xed, 0x23, 0x96,
                0x77,
            ])
        #expect(Array(rrsig[18...]) == [7] + Array("Example".utf8) + [0, 1, 2, 3, 4])
    }

    @Test(arguments: [
        ("x RRSIG A 8 2 300 2030x 20200101000000 1 x. AQID", "bad expiration"),
        ("x NSEC3 1 0 1 zz 2t7b4g4vsa5smi47k61mv5bv1a22bojr A", "salt"),
        ("x NSEC3 1 0 1 - notbase32! A", "next hashed owner"),
        ("x DS 1 8 2 abc", "odd number of hex digits"),
        ("x DNSKEY 257 3 8 ###", "base64"),
        ("x NSEC next.example. A NOTATYPE", "bad type"),
        ("x LOC 91 N 10 E 0m", "out of range"),
        ("x SVCB 1 . nokey=1", "unknown key"),
        ("x HINFO \"only one\"", "missing os"),
        ("x EUI48 00-00-5e-00-53", "bad address"),
        ("x NSEC3PARAM 1 0 1 aabb extra", "unexpected 'extra'"),
    ])
    func malformedDataIsATypedErrorAtItsLine(text: String, expected: String) throws {
        let origin = try DomainName(parsing: "example.")
        do {
            _ = try ZoneFileParser.parse(
                text: "$TTL 60\n\n" + text, fileName: "z.zone", origin: origin)
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.line == 3)
            #expect(error.description.contains("z.zone:3:"))
            #expect(error.description.contains(expected), "\(error)")
        }
    }
}

/// Inputs the fuzzer found trapping, kept as tests.
@Suite struct RecordTextRegressionTests {
    @Test(arguments: [
        "x NSEC3 1 0 1 - \u{10}\u{11} A",  // a control byte in base32hex
        "x LOC 52.5 N 4 E 0m",  // a fraction where none is allowed
    ])
    func refusedNotTrapped(text: String) throws {
        let origin = try DomainName(parsing: "example.")
        #expect(throws: ZoneFileError.self) {
            try ZoneFileParser.parse(text: "$TTL 60\n" + text, origin: origin)
        }
    }
}

@Suite struct DNAMERuleTests {
    @Test(arguments: [
        ("d DNAME a.example.\nd DNAME b.example.", "more than one DNAME at 'd.example.'"),
        ("d DNAME a.example.\nd CNAME b.example.", "DNAME and CNAME at 'd.example.'"),
        ("d CNAME a.example.\nd DNAME b.example.", "DNAME and CNAME at 'd.example.'"),
    ])
    func refusedAsNSDCheckzoneRefusesThem(records: String, expected: String) throws {
        let origin = try DomainName(parsing: "example.")
        let records = try ZoneFileParser.parse(
            text: "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\n" + records, origin: origin)
        var compiler = ZoneCompiler()
        do {
            try compiler.add(Zone(origin: origin, records: records))
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains(expected), "\(error)")
        }
    }
}

@Suite struct ResponderMemoryTests {
    /// The plan lives in stack memory only while it fits the 1 KiB Swift always puts on
    /// the stack; one byte more and every query allocates.
    @Test func thePlanFitsTheStack() {
        #expect(MemoryLayout<PlannedRRSet>.stride * Responder.planCapacity <= 1024)
    }
}

/// Names in RDATA the engine or the writer reads as stored are kept decompressed,
/// whatever the bytes they came from (found by FuzzDNSMessage: an MB name compressed in
/// a message trapped when the message was written again).
@Suite struct DecompressedRDATATests {
    @Test func aCompressedNameInAMessageIsReadWhole() throws {
        // Question mail.example. MB; answer: mail.example. MB, its RDATA a pointer to 12.
        let name: [UInt8] = [4] + Array("mail".utf8) + [7] + Array("example".utf8) + [0]
        var bytes: [UInt8] = [0x42, 0x42, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]
        bytes += name + [0, 7, 0, 1]
        bytes += [0xc0, 0x0c, 0, 7, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 0x0c]
        let message = try Message(parsing: Bits(bytes))
        #expect(message.answers[0].data.wire == name)
        var bits = emptyMessageBuffer()
        try message.encode(into: &bits)
        #expect(try Message(parsing: bits).answers == message.answers)
    }

    @Test func rfc3597DataWithAPointerIsRefused() throws {
        let origin = try DomainName(parsing: "example.")
        #expect(throws: ZoneFileError.self) {
            try ZoneFileParser.parse(text: "$TTL 60\nx MINFO \\# 5 016100c000", origin: origin)
        }
    }
}
