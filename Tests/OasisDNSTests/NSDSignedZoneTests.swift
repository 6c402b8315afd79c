import Foundation
import OasisBits
import OasisTestSupport
import Testing

@testable import OasisDNS

#if canImport(Glibc)
    import Glibc
#endif

// Differential tests of issue 19 item 8: a zone holding every type NSD 4.6 loads, in
// its presentation form, and zones signed by `ldns-signzone` (NSEC; NSEC3 with salt
// and iterations; NSEC3 with opt-out), served by NSD and by the engine; the same
// queries, with and without the DO bit, go to both and the answers are compared as in
// NSDDifferentialTests.

/// A zone with one record (or a few) of every type NSD 4.6 reads in presentation form.
let everyTypeZone = ##"""
    $TTL 300
    @ SOA ns1 admin 1 3600 600 86400 60
    @ NS ns1
    @ DS 1 8 2 2BB183AF5F22588179A53B0A98631FAD1A292118AAAAAAAAAAAAAAAAAAAAAAAA
    cutdname NS ns.elsewhere.example.
    cutdname DNAME elsewhere.example.
    ns1 A 192.0.2.1
    mail A 192.0.2.25
    md MD mail.types.test.
    mf MF mail
    mb MB mail
    mg MG mail
    mr MR mail
    wks WKS 192.0.2.2 tcp 25 80 ssh
    hinfo HINFO "PC-Intel" "Linux"
    minfo MINFO admin errors
    rp RP admin.types.test. txt
    afsdb AFSDB 1 afs.types.test.
    x25 X25 "311061700956"
    isdn ISDN "150862028003217" "004"
    isdn2 ISDN "150862028003217"
    rt RT 10 relay
    relay A 192.0.2.9
    relay X25 "311061700957"
    relay ISDN "150862028003218"
    nsap NSAP 0x47.0005.80.005a00.0000.0001.e133.aaaaaa000151.00
    sig SIG A 8 2 300 20300101000000 20200101000000 12345 types.test. AQIDBAUG
    key KEY 256 3 8 AwEAAc3f
    px PX 10 map822 mapx400
    loc LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m
    loc2 LOC 42 21 54 N 71 06 18 W -24m 30m
    loc3 LOC 60 N 10 E 0m
    nxt NXT next A NS
    naptr NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
    kx KX 10 kx
    kx A 192.0.2.10
    cert CERT PGP 0 0 AQIDBA==
    cert2 CERT 1 2 RSASHA256 AQIDBA==
    dname DNAME target.example.
    apl APL 1:192.168.32.0/21 !1:192.168.38.0/28 2:2001:db8::/32
    ds DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
    ds2 DS 12345 RSASHA256 2 2BB183AF5F22588179A53B0A98631FAD1A292118 2BB183AF5F22588179A53B0A98631FAD
    sshfp SSHFP 1 1 123456789abcdef67890123456789abcdef67890
    ipseckey IPSECKEY 10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==
    ipseckey2 IPSECKEY 10 0 2 . AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==
    ipseckey3 IPSECKEY 10 3 2 gw.types.test. AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==
    ipseckey4 IPSECKEY 10 2 2 2001:db8::1 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==
    rrsig RRSIG A 8 2 300 20300101000000 20200101000000 12345 Types.Test. AQIDBAUG BwgJ
    nsec NSEC next.types.test. A NS SOA MX RRSIG NSEC DNSKEY TYPE1234 CAA
    dnskey DNSKEY 257 3 8 AwEAAc3fAbc=
    dhcid DHCID AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=
    nsec3 NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG
    nsec3b NSEC3 1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG
    nsec3param NSEC3PARAM 1 0 12 aabbccdd
    nsec3param2 NSEC3PARAM 1 0 0 -
    tlsa TLSA 3 1 1 d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971
    smimea SMIMEA 3 1 1 d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971
    cds CDS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
    cdnskey CDNSKEY 257 3 8 AwEAAc3fAbc=
    openpgpkey OPENPGPKEY AQIDBAUGBwgJ
    csync CSYNC 66 3 A NS AAAA
    zonemd ZONEMD 2018031500 1 1 FEBE3D4CE2EC2FFA4BA99D46CD69D6D29711E55217057BEE7EB1A7B641A47BA7FED2DD5B97AE499FAFA4F22C6BD647DE
    svcb SVCB 1 . alpn=h2,h3 port=8443 ipv4hint=192.0.2.1 ipv6hint=2001:db8::1 mandatory=alpn,port
    svcb2 SVCB 0 foo.example.com.
    https HTTPS 1 . alpn=h2 no-default-alpn ech=AQIDBA== key65333=hello
    spf SPF "v=spf1 -all"
    nid NID 10 0014:4fff:ff20:ee64
    l32 L32 10 10.1.2.0
    l64 L64 10 2001:0DB8:1140:1000
    lp LP 10 l64-subnet1.example.com.
    eui48 EUI48 00-00-5e-00-53-2a
    eui64 EUI64 00-00-5e-ef-10-00-00-2a
    uri URI 10 1 "ftp://ftp1.example.com/public"
    caa CAA 0 issue "ca.example.net"
    avc AVC "app-name:WOLFGANG|app-class:OAM"
    dlv DLV 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118
    null TYPE10 \# 3 010203
    unknown TYPE65000 \# 2 abcd
    rfc3597a TYPE1 \# 4 c0000201

    """##

/// The zone `ldns-signzone` signs: every case the DNSSEC answers distinguish.
let unsignedZone = """
    $ORIGIN signed.test.
    $TTL 3600
    @ SOA ns1 hostmaster 1 7200 3600 1209600 300
    @ NS ns1
    @ MX 10 mail
    @ A 192.0.2.1
    ns1 A 192.0.2.53
    mail A 192.0.2.25
    www A 192.0.2.80
    www AAAA 2001:db8::80
    www TXT "hello"
    alias CNAME www
    dangling CNAME nothere
    *.wild A 192.0.2.99
    *.wild TXT "wild"
    a.b.ent A 192.0.2.7
    secure NS ns.secure
    secure DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    ns.secure A 192.0.2.100
    insecure NS ns.insecure
    ns.insecure A 192.0.2.101
    outside NS ns.elsewhere.example.
    dname DNAME target
    www.target A 192.0.2.111
    tolong DNAME \(String(repeating: "abcdefghij.", count: 20))signed.test.
    out DNAME example.org.
    toalias CNAME www.dname
    loop1 DNAME loop2
    loop2 DNAME loop1
    intoloop CNAME x.loop1
    ! A 192.0.2.3
    \(bigRecords(name: "big", count: 12))

    """

/// The child of the secure delegation in `unsignedZone`.
let childZone = """
    $TTL 600
    @ SOA ns hostmaster 7 7200 3600 1209600 120
    @ NS ns
    ns A 192.0.2.100
    www A 192.0.2.102

    """

/// Runs the same queries against NSD (serving `zones` from `folder`) and `engine`; the
/// differences, described.
func differencesFromNSD(
    engine: AuthoritativeEngine, zones: [(origin: String, file: String)], folder: String,
    cases: [(label: String, query: [UInt8], tcp: Bool)]
) throws -> (identical: Int, mismatches: [String]) {
    let port = UInt16(20000 + (Int(getpid()) + 7919) % 20000)
    let nsd = try NSDProcess(zones: zones, folder: folder, port: port)
    defer { nsd.stop() }
    #expect(nsd.waitUntilReady(probe: zones[0].origin), "NSD did not start")
    return compareWithNSD(port: port, engine: engine, cases: cases)
}

/// Each case asked of NSD on `port` and of `engine`: how many answers are byte-identical,
/// and the others, described.
func compareWithNSD(
    port: UInt16, engine: AuthoritativeEngine, cases: [(label: String, query: [UInt8], tcp: Bool)]
) -> (identical: Int, mismatches: [String]) {
    var mismatches: [String] = []
    var identical = 0
    for (label, query, tcp) in cases {
        let theirs = tcp ? tcpExchange(query, port: port) : udpAsk(query, port: port, timeout: 0.3)
        let ours = engineAnswer(engine, query, transport: tcp ? .tcp : .udp)
        if theirs == ours {
            identical += 1
            continue
        }
        guard let theirs, let ours else {
            mismatches.append(
                "\(label): NSD \(theirs == nil ? "dropped" : "answered"), we \(ours == nil ? "dropped" : "answered")"
            )
            continue
        }
        do {
            let a = try Comparable(theirs)
            let b = try Comparable(ours)
            if a != b {
                mismatches.append("\(label):\n  NSD: \(a)\n  us:  \(b)")
            } else if theirs.count != ours.count {
                mismatches.append(
                    "\(label): same content, but NSD's answer is \(theirs.count) bytes, ours \(ours.count)"
                )
            }
        } catch {
            mismatches.append("\(label): parse failed: \(error)")
        }
    }
    return (identical, mismatches)
}

func report(_ name: String, _ cases: Int, _ result: (identical: Int, mismatches: [String])) {
    print(
        "\(name): \(cases) queries, \(result.identical) byte-identical, \(result.mismatches.count) different"
    )
    for mismatch in result.mismatches.prefix(30) { print(mismatch) }
    for mismatch in result.mismatches.dropFirst(30) {
        print(mismatch.prefix(while: { $0 != "\n" }))
    }
}

@Suite(.serialized) struct NSDSignedZoneTests {
    @Test func everyTypeMatchesNSD() throws {
        guard getuid() == 0 else { try skip("everyTypeMatchesNSD", "runs NSD as root") }
        guard isInstalled("nsd") else {
            try skip("everyTypeMatchesNSD", "nsd is not installed (apt-get install nsd)")
        }
        let folder = temporaryFolder("oasis-dns-types")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try write(everyTypeZone, to: folder + "/types.test.zone")
        let check = try run(["nsd-checkzone", "types.test.", folder + "/types.test.zone"])
        #expect(check.status == 0, "nsd-checkzone: \(check.output)\(check.errorOutput)")
        var compiler = ZoneCompiler()
        try compiler.add(
            file: folder + "/types.test.zone", origin: DomainName(parsing: "types.test."))
        let engine = compiler.finish()
        var cases: [(label: String, query: [UInt8], tcp: Bool)] = []
        for line in everyTypeZone.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, !fields[0].hasPrefix("$"),
                let type = RecordType(mnemonic: fields[1])
            else { continue }
            let name = fields[0] == "@" ? "types.test." : "\(fields[0]).types.test."
            for edns in [nil, EDNS(udpPayloadSize: 1232, dnssecOK: true)] {
                cases.append(
                    (
                        "\(name) \(type) edns=\(edns != nil)",
                        queryBytes(name: name, type: type, edns: edns), false
                    ))
            }
            cases.append(("\(name) ANY", queryBytes(name: name, type: .any), false))
        }
        // Below a cut that also holds a DNAME: a referral, not a substitution (the
        // attack found us substituting).
        for type in [RecordType.a, .ds, .ns] {
            let name = "x.cutdname.types.test."
            cases.append(("\(name) \(type)", queryBytes(name: name, type: type), false))
        }
        let result = try differencesFromNSD(
            engine: engine, zones: [("types.test.", "types.test.zone")], folder: folder,
            cases: cases)
        report("every type", cases.count, result)
        #expect(result.mismatches.isEmpty)
    }

    /// Signs `text` as zone `origin` with fresh keys; the signed file's name.
    func sign(_ text: String, origin: String, in folder: String, arguments: [String]) throws
        -> String
    {
        let file = origin + "zone"
        try write(text, to: folder + "/" + file)
        func key(_ extra: [String]) throws -> String {
            let made = try run(
                [
                    "sh", "-c",
                    "cd \(folder) && ldns-keygen -a ECDSAP256SHA256 \(extra.joined(separator: " ")) \(origin)",
                ])
            #expect(made.status == 0, "ldns-keygen: \(made.errorOutput)")
            return made.output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let zsk = try key([])
        let ksk = try key(["-k"])
        let signed = try run(
            [
                "sh", "-c",
                "cd \(folder) && ldns-signzone -o \(origin) -e 20400101000000 -i 20200101000000 "
                    + arguments.joined(separator: " ")
                    + " -f \(file).signed \(file) \(zsk) \(ksk)",
            ])
        #expect(signed.status == 0, "ldns-signzone: \(signed.output)\(signed.errorOutput)")
        return file + ".signed"
    }

    /// The signed zone's NSEC3 owner names (to ask about them too).
    func hashedOwners(_ path: String) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count > 3, fields[3] == "NSEC3" else { return nil }
            return String(fields[0])
        }
    }

    func compareSigned(_ name: String, arguments: [String]) throws {
        guard getuid() == 0 else { try skip(name, "runs NSD as root") }
        guard isInstalled("nsd"), isInstalled("ldns-signzone"), isInstalled("ldns-keygen") else {
            try skip(name, "nsd or ldnsutils are not installed (apt-get install nsd ldnsutils)")
        }
        let folder = temporaryFolder("oasis-dns-signed")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let file = try sign(unsignedZone, origin: "signed.test.", in: folder, arguments: arguments)
        // The secure delegation's child, signed too and served beside its parent: DS at
        // its apex comes from the parent, DNSKEY from the child.
        let childFile = try sign(
            childZone, origin: "secure.signed.test.", in: folder, arguments: arguments)
        var compiler = ZoneCompiler()
        for (origin, name) in [("signed.test.", file), ("secure.signed.test.", childFile)] {
            let check = try run(["nsd-checkzone", origin, folder + "/" + name])
            #expect(check.status == 0, "nsd-checkzone: \(check.output)\(check.errorOutput)")
            try compiler.add(file: folder + "/" + name, origin: DomainName(parsing: origin))
        }
        let engine = compiler.finish()
        var names = [
            "signed.test.", "www.signed.test.", "alias.signed.test.", "dangling.signed.test.",
            "x.wild.signed.test.", "y.x.wild.signed.test.", "wild.signed.test.",
            "*.wild.signed.test.", "nx.signed.test.", "deep.nx.signed.test.",
            "a.b.ent.signed.test.", "b.ent.signed.test.", "ent.signed.test.",
            "x.ent.signed.test.", "x.b.ent.signed.test.", "secure.signed.test.",
            "x.secure.signed.test.", "ns.secure.signed.test.", "insecure.signed.test.",
            "x.insecure.signed.test.", "outside.signed.test.", "dname.signed.test.",
            "www.dname.signed.test.", "nx.dname.signed.test.", "a.b.dname.signed.test.",
            "www.target.signed.test.", "target.signed.test.",
            String(repeating: "abcdefghij.", count: 4) + "tolong.signed.test.",
            "x.tolong.signed.test.", "www.out.signed.test.", "toalias.signed.test.",
            "!.signed.test.", "big.signed.test.", "mail.signed.test.", "zzz.signed.test.",
            "0.signed.test.", "ns1.signed.test.", "www.secure.signed.test.",
            "nx.secure.signed.test.", "x.loop1.signed.test.", "intoloop.signed.test.",
        ]
        names += hashedOwners(folder + "/" + file).prefix(3)
        let types: [RecordType] = [
            .a, .aaaa, .txt, .mx, .ns, .soa, .ds, .dnskey, .rrsig, .nsec, .nsec3, .nsec3param,
            .cname, .dname, .any,
        ]
        var cases: [(label: String, query: [UInt8], tcp: Bool)] = []
        var seed = 0
        for name in names {
            for type in types {
                seed += 1
                for edns in [
                    nil, EDNS(udpPayloadSize: 1232, dnssecOK: true), EDNS(udpPayloadSize: 1232),
                ] {
                    let label =
                        "\(name) \(type) \(edns == nil ? "no EDNS" : edns!.dnssecOK ? "DO" : "EDNS")"
                    cases.append(
                        (
                            label, queryBytes(id: UInt16(seed), name: name, type: type, edns: edns),
                            false
                        ))
                }
            }
        }
        // Large signed answers around the limits, and over TCP.
        for name in [
            "big.signed.test.", "signed.test.", "www.signed.test.", "nx.signed.test.",
            "x.secure.signed.test.", "x.insecure.signed.test.", "www.dname.signed.test.",
            "x.wild.signed.test.",
        ] {
            for type in [RecordType.txt, .dnskey, .a, .any, .ds] {
                for size: UInt16 in [512, 700, 1232, 4096] {
                    let query = queryBytes(
                        name: name, type: type, edns: EDNS(udpPayloadSize: size, dnssecOK: true))
                    cases.append(("\(name) \(type) DO size=\(size)", query, false))
                }
                cases.append(
                    (
                        "\(name) \(type) DO tcp",
                        queryBytes(name: name, type: type, edns: EDNS(dnssecOK: true)), true
                    ))
            }
        }
        let result = try differencesFromNSD(
            engine: engine,
            zones: [("signed.test.", file), ("secure.signed.test.", childFile)], folder: folder,
            cases: cases)
        report(name, cases.count, result)
        #expect(result.mismatches.isEmpty)
    }

    /// The child served without its parent: DS at its apex is its own NODATA, with the
    /// apex's NSEC or NSEC3.
    @Test(arguments: [[], ["-n", "-s", "beef", "-t", "3"]])
    func childAloneAnswersDSAtItsApexAsNSD(arguments: [String]) throws {
        let name = "childAloneAnswersDSAtItsApexAsNSD"
        guard getuid() == 0 else { try skip(name, "runs NSD as root") }
        guard isInstalled("nsd"), isInstalled("ldns-signzone"), isInstalled("ldns-keygen") else {
            try skip(name, "nsd or ldnsutils are not installed (apt-get install nsd ldnsutils)")
        }
        let folder = temporaryFolder("oasis-dns-child")
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let origin = "secure.signed.test."
        let file = try sign(childZone, origin: origin, in: folder, arguments: arguments)
        var compiler = ZoneCompiler()
        try compiler.add(file: folder + "/" + file, origin: DomainName(parsing: origin))
        let engine = compiler.finish()
        var cases: [(label: String, query: [UInt8], tcp: Bool)] = []
        for name in [origin, "www." + origin, "nx." + origin, "a.b." + origin] {
            for type in [RecordType.ds, .dnskey, .a, .nsec, .any] {
                for edns in [nil, EDNS(udpPayloadSize: 1232, dnssecOK: true)] {
                    cases.append(
                        (
                            "\(name) \(type) DO=\(edns != nil)",
                            queryBytes(name: name, type: type, edns: edns), false
                        ))
                }
            }
        }
        let result = try differencesFromNSD(
            engine: engine, zones: [(origin, file)], folder: folder, cases: cases)
        report(name, cases.count, result)
        #expect(result.mismatches.isEmpty)
    }

    @Test func nsecSignedZoneMatchesNSD() throws {
        try compareSigned("nsecSignedZoneMatchesNSD", arguments: [])
    }

    @Test func nsec3SignedZoneMatchesNSD() throws {
        try compareSigned(
            "nsec3SignedZoneMatchesNSD", arguments: ["-n", "-s", "aabbccdd", "-t", "5"])
    }

    @Test func nsec3OptOutSignedZoneMatchesNSD() throws {
        try compareSigned(
            "nsec3OptOutSignedZoneMatchesNSD", arguments: ["-n", "-p", "-t", "0"])
    }
}
