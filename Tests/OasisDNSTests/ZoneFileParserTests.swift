import Foundation
import OasisTestSupport
import Testing

@testable import OasisDNS

@Suite struct ZoneFileParserTests {
    let origin = try! DomainName(parsing: "example.com.")

    func parse(_ text: String) throws(ZoneFileError) -> [ResourceRecord] {
        try ZoneFileParser.parse(
            text: text, fileName: "t.zone", origin: origin, allowIncludes: false)
    }

    func name(_ text: String) -> DomainName { try! DomainName(parsing: text) }

    @Test func directivesOwnersTTLsAndClasses() throws {
        let records = try parse(
            """
            $TTL 1h30m
            @ IN SOA ns1 hostmaster ( 1 ; serial
                     2h 1h 2w 5m )
              NS ns1            ; blank owner: the previous one
            www 60 IN A 192.0.2.1
            www IN 70 A 192.0.2.2
                A 192.0.2.3
            $ORIGIN sub.example.com.
            host AAAA 2001:db8::1
            abs.example.net. 1W A 192.0.2.4
            """)
        #expect(records.count == 7)
        #expect(records[0].ttl == 5400 && records[0].name == origin)
        guard case .soa(let soa) = records[0].data else { Issue.record("no SOA"); return }
        #expect(
            soa.primary == name("ns1.example.com.") && soa.refresh == 7200
                && soa.expire == 1_209_600 && soa.minimum == 300)
        #expect(records[1].name == origin && records[1].type == .ns)
        #expect(records[2].ttl == 60 && records[3].ttl == 70 && records[4].ttl == 5400)
        #expect(records[4].name == name("www.example.com."))
        #expect(records[5].name == name("host.sub.example.com."))
        #expect(
            records[5].data
                == .aaaa([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]))
        #expect(records[6].name == name("abs.example.net.") && records[6].ttl == 604800)
    }

    @Test func lastTTLWithoutDollarTTL() throws {
        let records = try parse("@ 300 SOA a b 1 2 3 4 5\nwww A 192.0.2.1\n")
        #expect(records[1].ttl == 300)
    }

    /// Issue 19, item 6 (RFC 2181 §8): a TTL above 2³¹ − 1 is not served as it is. NSD
    /// 4.6 serves such a record, and the records under such a `$TTL`, with 3600 (its
    /// default TTL, whatever `$TTL` says): so do we. 2³¹ − 1 itself stands.
    @Test func ttlsAbove2To31Minus1AreServedAsNSDServesThem() throws {
        let records = try parse(
            """
            $TTL 100
            @ SOA a b 1 2 3 4 5
            top 2147483647 A 192.0.2.1
            big 2147483648 A 192.0.2.2
            max 4294967295 A 192.0.2.3
            units 24856d A 192.0.2.4
            $TTL 3000000000
            under A 192.0.2.5
            stated 200 A 192.0.2.6
            """)
        #expect(records.map(\.ttl) == [100, 2_147_483_647, 3600, 3600, 3600, 3600, 200])
    }

    @Test func escapesInNamesAndStrings() throws {
        let records = try parse(
            ##"""
            $TTL 60
            a\.b TXT "say \"hi\"" \065\066 "semi;colon" "paren(" multi\ word
            \@sign CNAME target\.dot
            """##)
        #expect(records[0].name.wire == [3, 0x61, 0x2e, 0x62] + origin.wire)
        #expect(
            records[0].data
                == .txt([
                    Array(#"say "hi""#.utf8), Array("AB".utf8), Array("semi;colon".utf8),
                    Array("paren(".utf8), Array("multi word".utf8),
                ]))
        #expect(records[1].name.wire.prefix(6) == [5, 0x40, 0x73, 0x69, 0x67, 0x6e])
        #expect(records[1].data == .cname(try DomainName(parsing: #"target\.dot.example.com."#)))
        #expect(records[0].name.description == #"a\.b.example.com."#)
    }

    @Test func rfc3597UnknownTypesAndData() throws {
        let records = try parse(
            ##"""
            $TTL 60
            x TYPE1234 \# 4 DEAD beef
            y TYPE999 \# 0
            z A \# 4 C0000201
            w CLASS1 TYPE16 \# 3 026869
            """##)
        #expect(
            records[0].type == RecordType(rawValue: 1234)
                && records[0].data == .opaque([0xde, 0xad, 0xbe, 0xef]))
        #expect(records[1].data == .opaque([]))
        #expect(records[2].data == .a(0xc000_0201))
        #expect(records[3].data == .txt([Array("hi".utf8)]))
        #expect(records[0].description.hasSuffix(##"TYPE1234 \# 4 deadbeef"##))
    }

    @Test func everyKnownType() throws {
        let records = try parse(
            """
            $TTL 60
            @ MX 10 mail
            @ SRV 1 2 3 target
            @ CAA 128 issue "ca.example.net; account=1"
            @ PTR host.example.org.
            @ AAAA ::ffff:192.0.2.1
            """)
        #expect(records[0].data == .mx(preference: 10, exchange: name("mail.example.com.")))
        #expect(
            records[1].data
                == .srv(priority: 1, weight: 2, port: 3, target: name("target.example.com.")))
        #expect(
            records[2].data
                == .caa(
                    flags: 128, tag: Array("issue".utf8),
                    value: Array("ca.example.net; account=1".utf8)))
        #expect(records[3].data == .ptr(name("host.example.org.")))
        #expect(
            records[4].data == .aaaa([UInt8](repeating: 0, count: 10) + [0xff, 0xff, 192, 0, 2, 1]))
    }

    @Test func includeIsRelativeToTheIncludingFile() throws {
        let folder = temporaryFolder("oasis-zone-include")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(
            atPath: folder + "/inc", withIntermediateDirectories: true)
        try write(
            "$TTL 60\n@ SOA ns h 1 2 3 4 5\n$INCLUDE inc/hosts sub\nafter A 192.0.2.9\n",
            to: folder + "/main.zone")
        try write("host A 192.0.2.1\n$INCLUDE more\n", to: folder + "/inc/hosts")
        try write("deeper A 192.0.2.2\n", to: folder + "/inc/more")
        let records = try ZoneFileParser.parse(file: folder + "/main.zone", origin: origin)
        #expect(
            records.map(\.name) == [
                origin, name("host.sub.example.com."), name("deeper.sub.example.com."),
                name("after.example.com."),
            ])
        let loop = folder + "/loop.zone"
        try write("$INCLUDE loop.zone\n", to: loop)
        #expect(throws: ZoneFileError(file: loop, line: 1, problem: .includeTooDeep)) {
            try ZoneFileParser.parse(file: loop, origin: origin)
        }
        #expect(
            throws: ZoneFileError(
                file: folder + "/nope", line: 0, problem: .cannotRead(errno: ENOENT))
        ) {
            try ZoneFileParser.parse(file: folder + "/nope", origin: origin)
        }
        // A missing included file is reported where the $INCLUDE is, as nsd-checkzone
        // reports it (it was "nope: cannot read the file", with no line to go to).
        let includer = folder + "/includer.zone"
        try write("$TTL 300\n$INCLUDE nope\n", to: includer)
        #expect(
            throws: ZoneFileError(
                file: includer, line: 2,
                problem: .cannotOpenInclude(folder + "/nope", errno: ENOENT))
        ) {
            try ZoneFileParser.parse(file: includer, origin: origin)
        }
    }

    /// A zone of every common shape: multi-line SOA, comments, blank owners, quoted
    /// and escaped strings, several types; `$INCLUDE` of `included` when given.
    func variedZone(including included: String? = nil) -> String {
        """
        $TTL 1h
        ; a comment line

        @ IN SOA ns1 hostmaster (
                 2024010101 ; serial
                 2h 1h 2w 5m )
          NS ns1
          NS ns2.example.net.
        ns1 A 192.0.2.53
        www 60 IN A 192.0.2.1
            IN 70 AAAA 2001:db8::1 ; blank owner
        mail MX 10 mail.example.net.
        _sip._tcp SRV 1 2 5060 sip
        txt TXT "say \\"hi\\"" \\065\\066 "semi;colon" multi\\ word
        alias CNAME www
        caa CAA 0 issue "ca.example.net"
        x TYPE1234 \\# 4 DEAD beef
        \(included.map { "$INCLUDE \($0) sub\n" } ?? "")last A 192.0.2.9
        """
    }

    @Test func streamingGivesTheRecordsOfTheArrayAPI() throws {
        let folder = temporaryFolder("oasis-zone-stream")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try write(variedZone(), to: folder + "/plain.zone")
        try write(variedZone(including: "hosts"), to: folder + "/main.zone")
        try write("host A 192.0.2.1\n  TXT \"in the included file\"\n", to: folder + "/hosts")
        for file in ["/plain.zone", "/main.zone"] {
            var streamed: [ResourceRecord] = []
            try ZoneFileParser.parse(file: folder + file, origin: origin) { record, _, _ in
                streamed.append(record)
            }
            let array = try ZoneFileParser.parse(file: folder + file, origin: origin)
            #expect(streamed == array)
            #expect(streamed.count == (file == "/plain.zone" ? 13 : 15))
        }
        #expect(
            try parse(variedZone())
                == ZoneFileParser.parse(file: folder + "/plain.zone", origin: origin))
    }

    @Test func streamingNamesTheFileAndLineOfEachEntry() throws {
        let folder = temporaryFolder("oasis-zone-lines")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(
            atPath: folder + "/inc", withIntermediateDirectories: true)
        let main = folder + "/main.zone"
        try write(variedZone(including: "inc/hosts"), to: main)
        try write(
            "; hosts\nhost A 192.0.2.1\n\n  TXT ( \"two\"\n \"lines\" )\n$INCLUDE more\n",
            to: folder + "/inc/hosts")
        try write("deeper A 192.0.2.2\n", to: folder + "/inc/more")
        var seen: [String] = []
        try ZoneFileParser.parse(file: main, origin: origin) { record, file, line in
            seen.append("\(file.dropFirst(folder.count)):\(line) \(record.name) \(record.type)")
        }
        #expect(
            seen == [
                "/main.zone:4 example.com. SOA", "/main.zone:7 example.com. NS",
                "/main.zone:8 example.com. NS", "/main.zone:9 ns1.example.com. A",
                "/main.zone:10 www.example.com. A", "/main.zone:11 www.example.com. AAAA",
                "/main.zone:12 mail.example.com. MX", "/main.zone:13 _sip._tcp.example.com. SRV",
                "/main.zone:14 txt.example.com. TXT", "/main.zone:15 alias.example.com. CNAME",
                "/main.zone:16 caa.example.com. CAA", "/main.zone:17 x.example.com. TYPE1234",
                "/inc/hosts:2 host.sub.example.com. A", "/inc/hosts:4 host.sub.example.com. TXT",
                "/inc/more:1 deeper.sub.example.com. A", "/main.zone:19 last.example.com. A",
            ])
    }

    @Test func anErrorFromTheBodyPassesUnchanged() throws {
        let folder = temporaryFolder("oasis-zone-body")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let main = folder + "/main.zone"
        // A syntax error further on does not replace the body's error.
        try write(variedZone(including: "hosts") + "\nbroken ( A 192.0.2.1\n", to: main)
        try write("host A 192.0.2.1\nsecond A 192.0.2.2\n", to: folder + "/hosts")
        let stop = ZoneFileError(file: "body", line: 42, problem: .outOfZone("stop"))
        for stopAt in [2, 14] {  // in the main file; in the included one
            var calls = 0
            #expect(throws: stop) {
                try ZoneFileParser.parse(file: main, origin: self.origin) {
                    _, _, _ throws(ZoneFileError) in
                    calls += 1
                    if calls == stopAt { throw stop }
                }
            }
            #expect(calls == stopAt)
        }
        // Without the body's error, the syntax error is what the file gets, as from
        // the array API.
        let syntax = ZoneFileError(file: main, line: 20, problem: .unbalancedParentheses)
        #expect(throws: syntax) {
            try ZoneFileParser.parse(file: main, origin: self.origin) { _, _, _ in }
        }
        #expect(throws: syntax) { try ZoneFileParser.parse(file: main, origin: self.origin) }
    }

    @Test func aSyntaxErrorLaterInTheFileWinsAsBefore() throws {
        let folder = temporaryFolder("oasis-zone-precedence")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        // The included file is missing, but the including file is malformed after
        // the $INCLUDE: the file was always split whole before being handled.
        let main = folder + "/main.zone"
        try write("$TTL 60\n$INCLUDE nope\nx TXT \"open\n", to: main)
        #expect(throws: ZoneFileError(file: main, line: 3, problem: .unterminatedString)) {
            try ZoneFileParser.parse(file: main, origin: self.origin)
        }
        // The included file has a bad record and, after it, a syntax error.
        try write("$TTL 60\n$INCLUDE inc\n", to: main)
        try write("bad 1x A 192.0.2.1\n)\n", to: folder + "/inc")
        #expect(
            throws: ZoneFileError(file: folder + "/inc", line: 2, problem: .unbalancedParentheses)
        ) {
            try ZoneFileParser.parse(file: main, origin: self.origin)
        }
    }

    @Test(arguments: [
        ("$TTL 60\nwww A 192.0.2.1\nbad 1x A 192.0.2.1\n", 3, ZoneFileError.Problem.badTTL("1x")),
        (
            "$TTL 60\nwww A 192.0.2.256\n", 2,
            .badRecordData(type: "A", reason: "bad IPv4 address '192.0.2.256'")
        ),
        ("$TTL 60\nwww FOO 1\n", 2, .unknownType("FOO")),
        ("$TTL 60\nwww CH A 192.0.2.1\n", 2, .unsupportedClass("CH")),
        ("$TTL 60\nwww TXT \"open\n\n", 2, .unterminatedString),
        ("$TTL 60\n@ SOA ( a b 1 2 3 4 5\n\n", 2, .unbalancedParentheses),
        ("$TTL 60\n@ A 192.0.2.1 )\n", 2, .unbalancedParentheses),
        ("$TTL 60\nbad 1x A 192.0.2.1\nok A 192.0.2.1 )\n", 3, .unbalancedParentheses),
        ("$TTL 60\nx FOO 1\n\"open\n", 3, .unterminatedString),
        ("$FOO bar\n", 1, .unknownDirective("$FOO")),
        ("$TTL\n", 1, .missingArgument("$TTL")),
        (" A 192.0.2.1\n", 1, .noPreviousOwner),
        ("www A 192.0.2.1\n", 1, .noTTL),
        ("$TTL 60\na..b A 192.0.2.1\n", 2, .badName("a..b", .emptyLabel)),
        (
            "$TTL 60\n\(String(repeating: "a", count: 64)) A 192.0.2.1\n", 2,
            .badName(String(repeating: "a", count: 64), .labelTooLong)
        ),
        (
            "$TTL 60\nx TYPE5000 1 2\n", 2,
            .badRecordData(
                type: "TYPE5000",
                reason: "no presentation format known for TYPE5000: use \\# (RFC 3597)")
        ),
        (
            "$TTL 60\nx TYPE1 \\# 3 c00002\n", 2,
            .badRecordData(type: "A", reason: "the \\# data is not a valid A RDATA")
        ),
        (
            "$TTL 60\n\nx MX 10\n", 3,
            .badRecordData(type: "MX", reason: "expected 2 fields, found 1")
        ),
        (
            "$TTL 60\nx AAAA 2001:db8::1::2\n", 2,
            .badRecordData(type: "AAAA", reason: "bad IPv6 address '2001:db8::1::2'")
        ),
        (
            "$TTL 60\nx TXT \"\\300\"\n", 2,
            .badRecordData(type: "TXT", reason: "bad escape in '\\300'")
        ),
        (
            "$TTL 60\nx A 010.0.0.1\n", 2,
            .badRecordData(type: "A", reason: "bad IPv4 address '010.0.0.1'")
        ),
        (
            "$TTL 60\nok A 1.2.3.4\ny A 1.2.3.04\n", 3,
            .badRecordData(type: "A", reason: "bad IPv4 address '1.2.3.04'")
        ),
        (
            "$TTL 60\nz AAAA ::ffff:010.0.0.1\n", 2,
            .badRecordData(type: "AAAA", reason: "bad IPv6 address '::ffff:010.0.0.1'")
        ),
    ])
    func brokenFilesNameTheLine(text: String, line: Int, problem: ZoneFileError.Problem) {
        do {
            _ = try parse(text)
            Issue.record("parsed: \(text)")
        } catch {
            #expect(
                error == ZoneFileError(file: "t.zone", line: line, problem: problem), "\(error)")
            #expect(error.description.hasPrefix("t.zone:\(line): "))
        }
    }

    /// IPv4 text with a leading zero (`010` is octal to inet_aton, decimal to others)
    /// is an error, in an A record and at the end of an AAAA, as `nsd-checkzone` has it:
    /// the same files, the same verdicts, the same `file:line`.
    @Test func leadingZerosAsNSDCheckzone() throws {
        guard isInstalled("nsd-checkzone") else {
            try skip(
                "leadingZerosAsNSDCheckzone", "nsd-checkzone is not installed (apt-get install nsd)"
            )
        }
        let folder = temporaryFolder("oasis-zone-ipv4")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let head = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
        for (record, valid) in [
            ("x A 010.0.0.1", false), ("y A 1.2.3.04", false),
            ("z AAAA ::ffff:010.0.0.1", false), ("w AAAA 1:2:3:4:5:6:001.2.3.4", false),
            ("v AAAA ::ffff:1.2.3.4", true), ("u A 0.0.0.0", true), ("t A 10.0.0.1", true),
        ] {
            let path = folder + "/" + record.split(separator: " ")[0] + ".zone"
            try write(head + record + "\n", to: path)
            let nsd = try run(["nsd-checkzone", "example.com", path])
            // nsd-checkzone: "[time] nsd-checkzone[pid]: error: FILE:LINE: what".
            let theirs = nsd.errorOutput.split(separator: "\n").compactMap { line in
                line.range(of: "error: ").map { String(line[$0.upperBound...]) }
            }
            #expect((nsd.status == 0) == valid, "\(record): \(nsd.errorOutput)")
            do {
                _ = try ZoneFileParser.parse(file: path, origin: origin)
                #expect(valid, "\(record) parsed; nsd-checkzone: \(theirs)")
            } catch {
                #expect(!valid, "\(record): \(error)")
                let place = "\(path):5: "
                #expect(error.description.hasPrefix(place), "\(error)")
                #expect(theirs.count == 1 && theirs.first?.hasPrefix(place) == true, "\(theirs)")
            }
        }
    }

    /// Issue 19, item 7: what is wrong with a zone as a whole is said at a line, the
    /// one nsd-checkzone names: a CNAME beside other data and a second CNAME at the
    /// record that breaks the rule, a second SOA at its own line, no SOA (or no
    /// records) where the file ends.
    @Test func zoneErrorsNameTheLineNSDCheckzoneNames() throws {
        guard isInstalled("nsd-checkzone") else {
            try skip(
                "zoneErrorsNameTheLineNSDCheckzoneNames",
                "nsd-checkzone is not installed (apt-get install nsd)")
        }
        let folder = temporaryFolder("oasis-zone-lines")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let head = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
        let zones: [(String, String, ZoneFileError.Problem)] = [
            (
                "cname-after", head + "www A 192.0.2.9\nwww CNAME ns\n",
                .cnameAndOtherData("www.example.com.")
            ),
            (
                "cname-before", head + "www CNAME ns\n\nwww TXT x\n",
                .cnameAndOtherData("www.example.com.")
            ),
            (
                "two-cnames", head + "www CNAME ns\nwww CNAME ns2\n",
                .multipleCNAME("www.example.com.")
            ),
            ("two-soas", head + "@ SOA ns hostmaster 2 2 3 4 5\nx A 192.0.2.2\n", .multipleSOA),
            ("no-soa", "$TTL 60\n@ NS ns\nns A 192.0.2.1\n\n", .noSOA),
            ("empty", "", .noSOA),
        ]
        for (name, text, problem) in zones {
            let path = folder + "/" + name + ".zone"
            try write(text, to: path)
            let nsd = try run(["nsd-checkzone", "example.com", path])
            let theirs = nsd.errorOutput.split(separator: "\n").compactMap { line in
                line.range(of: "error: ").map { String(line[$0.upperBound...]) }
            }
            var compiler = ZoneCompiler()
            do {
                try compiler.add(file: path, origin: origin)
                Issue.record("\(name) compiled; nsd-checkzone: \(theirs)")
            } catch {
                #expect(error.problem == problem || name == "empty", "\(name): \(error)")
                let place = "\(path):\(error.line): "
                #expect(error.line > 0 && error.description.hasPrefix(place), "\(error)")
                #expect(theirs.first?.hasPrefix(place) == true, "\(name): \(error) \(theirs)")
            }
        }
    }

    /// Issue 19, item 5 (in part): `$INCLUDE /dev/zero` grew the process to 17 GB;
    /// a device, a pipe or a folder is refused at the `$INCLUDE`'s line.
    @Test func includesOfWhatIsNotARegularFileAreRefused() throws {
        let folder = temporaryFolder("oasis-zone-include")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        for target in ["/dev/zero", "/dev/null", folder] {
            let path = folder + "/main.zone"
            try write("$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n$INCLUDE \(target)\n", to: path)
            #expect(
                throws: ZoneFileError(file: path, line: 3, problem: .notARegularFile(target))
            ) {
                _ = try ZoneFileParser.parse(file: path, origin: origin)
            }
        }
    }

    /// Issue 19, item 5 (in part): an entry's tokens are bounded as it is scanned (a
    /// 20 MB line of one-byte tokens held 816 MB of them); a TXT record of the largest
    /// RDATA, in one-byte strings, still loads.
    @Test func anEntryOfTooManyTokensIsRefusedAsItIsScanned() throws {
        let flood = "$TTL 60\n@ SOA a b 1 2 3 4 5\nx TXT " + String(repeating: "a ", count: 300_000)
        #expect(throws: ZoneFileError(file: "t.zone", line: 3, problem: .tooManyTokens)) {
            _ = try parse(flood)
        }
        let largest =
            "$TTL 60\n@ SOA a b 1 2 3 4 5\nx TXT " + String(repeating: "\"\" ", count: 65_535)
        let records = try parse(largest)
        #expect(records.count == 2)
    }

    /// Issue 19, item 5: a file is read a chunk at a time, so entries cross chunk
    /// boundaries everywhere: in parentheses over lines, in quoted strings holding
    /// newlines and semicolons, in comments, in escapes. Streamed from a file, every
    /// record and every line comes out as from the whole text, wherever the
    /// boundaries fall.
    @Test func aStreamedFileGivesWhatTheWholeTextGives() throws {
        let folder = temporaryFolder("oasis-zone-stream")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        var body = "$TTL 60\n@ SOA ns hostmaster ( 1 ; serial\n 2 3\n 4 5 )\n@ NS ns\n"
        for index in 0..<6000 {
            switch index % 5 {
            case 0: body += "a\(index) A 192.0.2.\(index % 250)   ; a comment \(index)\n"
            case 1: body += "t\(index) TXT ( \"one;\n two\" \"\\\"q\\\"\" \n  \\065\\066 )\n"
            case 2: body += "  60 IN AAAA 2001:db8::\(index % 9999)\n\n; only a comment\n"
            case 3: body += "m\(index) MX ( 10\n\tmail\(index) )\n"
            default: body += "e\\.scaped\(index) CNAME target\\ \(index)\n"
            }
        }
        for padding in [0, 1, 7, 4099, 65_535] {
            let text = String(repeating: ";", count: padding) + "\n" + body
            let path = folder + "/zone-\(padding)"
            try write(text, to: path)
            var streamed: [(ResourceRecord, Int)] = []
            let end = try ZoneFileParser.parse(file: path, origin: origin) { record, _, line in
                streamed.append((record, line))
            }
            var whole: [(ResourceRecord, Int)] = []
            var state = State(origin: origin, defaultTTL: nil)
            let wholeEnd = try state.parse(text: Array(text.utf8), file: path, depth: 0) {
                record, _, line in whole.append((record, line))
            }
            #expect(streamed.count == whole.count && streamed.count > 6000)
            #expect(streamed.map(\.0) == whole.map(\.0), "padding \(padding)")
            #expect(streamed.map(\.1) == whole.map(\.1), "padding \(padding)")
            #expect(end == wholeEnd)
        }
    }

    /// Issue 19, item 5: what never ends a line is not held without bound: a zone
    /// file that is a stream of zeros is refused after 4 MiB.
    @Test func anEndlessEntryIsRefused() throws {
        #expect(throws: ZoneFileError(file: "/dev/zero", line: 1, problem: .entryTooLong)) {
            _ = try ZoneFileParser.parse(file: "/dev/zero", origin: origin)
        }
    }

    @Test func zoneValidation() throws {
        func check(_ text: String) throws(ZoneFileError) {
            try Zone(origin: origin, records: try parse(text), source: "t.zone").validate()
        }
        #expect(throws: ZoneFileError(file: "t.zone", line: 0, problem: .noSOA)) {
            try check("$TTL 1\nwww A 192.0.2.1\n")
        }
        #expect(
            throws: ZoneFileError(file: "t.zone", line: 0, problem: .outOfZone("www.example.org."))
        ) {
            try check("$TTL 1\n@ SOA a b 1 2 3 4 5\nwww.example.org. A 192.0.2.1\n")
        }
        #expect(
            throws: ZoneFileError(
                file: "t.zone", line: 0, problem: .cnameAndOtherData("www.example.com."))
        ) {
            try check("$TTL 1\n@ SOA a b 1 2 3 4 5\nwww CNAME a\nwww A 192.0.2.1\n")
        }
    }
}

@Suite struct ZoneFileErrorClipTests {
    /// A hostile line of a million NULs gives a short, printable error line.
    @Test func offendingTextIsCutAndEscaped() {
        let nuls = String(repeating: "\u{0}", count: 1_000_000)
        let error = ZoneFileError(file: "z", line: 3, problem: .badTTL(nuls))
        let text = error.description
        #expect(text.count < 400)
        #expect(text.hasPrefix("z:3: bad TTL '\\x00\\x00"))
        #expect(text.hasSuffix("...'"))
        #expect(!text.contains("\u{0}"))
        #expect(ZoneFileError.clip("a\tb") == "a\\x09b")
        #expect(ZoneFileError.clip("example.com.") == "example.com.")
    }
}
