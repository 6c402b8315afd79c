// `oasis dns` as a real server, against tools we did not write: dig and kdig ask it over
// UDP and TCP on kernel sockets; NSD serves the same zones and must give the same
// answers through its own sockets; dig from the kernel side of a namespace asks it over
// the Oasis stack on a TAP; malformed queries over UDP and TCP must not stop it.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

let dnsZoneText = """
    $ORIGIN example.test.
    $TTL 3600
    @   IN  SOA ns1 hostmaster ( 2024010101 7200 3600 1209600 300 )
        IN  NS  ns1
        NS  ns2.elsewhere.example.
        MX  10 mail
        MX  20 mail2.elsewhere.example.
        A   192.0.2.1
        AAAA 2001:db8::1
        TXT "v=spf1 -all"
    ns1     A    192.0.2.53
            AAAA 2001:db8::53
    mail    A    192.0.2.25
    www     A    192.0.2.80
    www     A    192.0.2.81
    v6only  AAAA 2001:db8::80
    alias   CNAME www
    chain1  CNAME chain2
    chain2  CNAME www
    outside CNAME www.example.org.
    *.wild  A    192.0.2.99
    *.wild  TXT  "wild card"
    a.b.ent A    192.0.2.7
    _sip._tcp SRV 10 60 5060 mail
    deleg   NS   ns.deleg
    deleg   NS   ns.elsewhere.example.
    ns.deleg A   192.0.2.200
    quoted  TXT  "a \\"quoted\\" string" plain
    """
    + (0..<40).map { "\nbig TXT \"record \($0) " + String(repeating: "x", count: 90) + "\"" }
    .joined() + "\n"

let otherZoneText = """
    $TTL 600
    other.test. SOA ns.other.test. admin.other.test. 1 3600 600 86400 3600
    other.test. NS ns.example.test.
    www.other.test. A 198.51.100.1

    """

/// The queries asked of both servers: names × types, each answer kind at least once.
let dnsComparisonQueries: [(String, String)] = {
    var queries: [(String, String)] = []
    for name in ["example.test", "www.example.test", "ns1.example.test", "EXAMPLE.test"] {
        for type in ["A", "AAAA", "MX", "TXT", "NS", "SOA", "ANY", "SRV"] {
            queries.append((name, type))
        }
    }
    for name in [
        "alias.example.test", "chain1.example.test", "outside.example.test",
        "x.wild.example.test", "y.z.wild.example.test", "b.ent.example.test",
        "ent.example.test", "_sip._tcp.example.test", "deleg.example.test",
        "host.deleg.example.test", "nothere.example.test", "v6only.example.test",
        "quoted.example.test", "big.example.test", "www.other.test", "other.test",
        "nowhere.invalid", "mail.example.test",
    ] {
        for type in ["A", "AAAA", "TXT"] { queries.append((name, type)) }
    }
    queries.append(("_sip._tcp.example.test", "SRV"))
    queries.append(("deleg.example.test", "NS"))
    queries.append(("example.test", "CAA"))
    queries.append(("example.test", "NAPTR"))
    return queries
}()

/// A fresh folder with the test zones written in it.
func writeTestZones() throws -> String {
    var template = Array("/tmp/oasis-dns-server.XXXXXX".utf8CString)
    let folder = template.withUnsafeMutableBufferPointer {
        String(cString: mkdtemp($0.baseAddress!)!)
    }
    try dnsZoneText.write(toFile: folder + "/example.test.zone", atomically: true, encoding: .utf8)
    try otherZoneText.write(toFile: folder + "/other.test.zone", atomically: true, encoding: .utf8)
    return folder
}

/// A port for this test process: tests in other suites use 20000–39999.
/// A port for a test's server: below the kernel's ephemeral range (32768 and up), so
/// that no client socket of a test running beside it can hold it already.
func testPort(_ offset: Int) -> UInt16 {
    UInt16(20000 + Int(getpid()) % 3000 * 4 + offset)
}

/// A running `oasis dns` (inside a namespace when given), stopped with SIGTERM.
final class RunningDNS {
    let process = Process()
    let output = Pipe()

    init(_ arguments: [String], namespace: TestNamespace? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let prefix = namespace.map { ["ip", "netns", "exec", $0.name] } ?? []
        process.arguments = prefix + [oasisPath, "dns"] + arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    private var said: String?

    /// Stops the server (once) and returns everything it wrote.
    func stop() -> String {
        if let said { return said }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        let text = String(
            decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        said = text
        return text
    }
}

// MARK: A minimal client (query bytes built by hand, `dnsQuery` and `udpAsk` in
// OasisTestSupport: no code of ours on this side)

/// The rcode and the section counts of an answer.
struct AnswerHeader: Equatable {
    var id: UInt16
    var isResponse: Bool
    var truncated: Bool
    var rcode: UInt8
    var answers: Int

    init?(_ bytes: [UInt8]) {
        guard bytes.count >= 12 else { return nil }
        id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        isResponse = bytes[2] & 0x80 != 0
        truncated = bytes[2] & 0x02 != 0
        rcode = bytes[3] & 0x0f
        answers = Int(bytes[6]) << 8 | Int(bytes[7])
    }
}

/// A blocking TCP connection to 127.0.0.1 with a receive timeout.
final class TCPClient {
    let fd: Int32

    init?(port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = socketAddress("127.0.0.1", port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) -> Bool {
        KernelTCP.sendAll(fd, bytes)
    }

    static func framed(_ message: [UInt8]) -> [UInt8] {
        [UInt8(message.count >> 8), UInt8(message.count & 0xff)] + message
    }

    func read(_ count: Int) -> [UInt8]? {
        let bytes = KernelTCP.receive(fd, count: count)
        return bytes.count == count ? bytes : nil
    }

    /// The next length-prefixed message.
    func readMessage() -> [UInt8]? {
        guard let prefix = read(2) else { return nil }
        return read(Int(prefix[0]) << 8 | Int(prefix[1]))
    }
}

/// dig's answer text for one or more queries, without what changes between runs
/// (ids, timings, the server line).
func digText(
    _ server: String, port: UInt16, _ queries: [(String, String)], options: [String] = [],
    namespace: TestNamespace? = nil
) throws -> String {
    let arguments =
        [
            "dig", "@\(server)", "-p", "\(port)", "+noall", "+comments", "+answer", "+authority",
            "+additional", "+tries=1", "+time=2",
        ] + options + queries.flatMap { [$0.0, $0.1] }
    let result = try namespace.map { try $0.run(arguments) } ?? run(arguments)
    return normalizedDig(result.output)
}

func normalizedDig(_ text: String) -> String {
    text.split(separator: "\n").filter { line in
        !line.hasPrefix(";; Query time") && !line.hasPrefix(";; SERVER")
            && !line.hasPrefix(";; WHEN") && !line.trimmingCharacters(in: .whitespaces).isEmpty
    }.map { line in
        line.replacingOccurrences(
            of: #"id: [0-9]+"#, with: "id: _", options: .regularExpression)
    }.joined(separator: "\n")
}

/// Splits dig output for many queries into one block per answer.
func digAnswers(_ text: String) -> [String] {
    text.components(separatedBy: ";; Got answer:").map {
        $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }.filter { !$0.isEmpty }
}

/// Runs `oasis dns` on the test zones over kernel sockets, waits until it answers,
/// runs `body` with its port, and stops it.
func withDNSOnSockets(
    _ test: String, offset: Int = 0, extraArguments: [String] = [],
    _ body: (UInt16, String) throws -> Void
) throws {
    guard isInstalled("dig") else { try skip(test, "dig is not installed (bind9-dnsutils)") }
    try withRunningDNS(
        test, offset: offset, zones: ["example.test.zone", "other.test.zone"],
        extraArguments: extraArguments
    ) { _, port, folder in try body(port, folder) }
}

/// `oasis dns` on `zones` (of the test zones) over kernel sockets at a test port, once
/// it answers: `body` gets the server (its `stop()` returns the log, once), the port
/// and the zones' folder; the server is stopped and its log printed afterwards.
func withRunningDNS(
    _ test: String, offset: Int = 0, zones: [String] = ["example.test.zone"],
    extraArguments: [String] = [], _ body: (RunningDNS, UInt16, String) throws -> Void
) throws {
    guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
    let folder = try writeTestZones()
    defer { _ = try? FileManager.default.removeItem(atPath: folder) }
    let port = testPort(offset)
    let server = try RunningDNS(
        zones.flatMap { ["--zone", folder + "/" + $0] } + ["--listen", "127.0.0.1:\(port)"]
            + extraArguments)
    defer { print("\(test): oasis said:\n\(server.stop())") }
    guard waitForDNS(port: port) else {
        Issue.record("oasis dns never answered on port \(port)")
        return
    }
    try body(server, port, folder)
}

@Suite(.serialized) struct DNSServerTests {
    @Test func digGetsEachKindOfAnswerOverUDPAndTCP() throws {
        // Without the answer cache: the engine answers every query (the NSD
        // comparison below runs with it).
        try withDNSOnSockets(
            "digGetsEachKindOfAnswerOverUDPAndTCP", extraArguments: ["--answer-cache", "0"]
        ) { port, _ in
            func ask(_ name: String, _ type: String, _ options: [String] = []) throws -> String {
                try digText("127.0.0.1", port: port, [(name, type)], options: options)
            }
            let a = try ask("www.example.test", "A")
            #expect(a.contains("status: NOERROR") && a.contains("flags: qr aa"), "\(a)")
            #expect(a.contains("www.example.test.\t3600\tIN\tA\t192.0.2.80"), "\(a)")
            #expect(a.contains("www.example.test.\t3600\tIN\tA\t192.0.2.81"), "\(a)")
            let aaaa = try ask("v6only.example.test", "AAAA")
            #expect(aaaa.contains("IN\tAAAA\t2001:db8::80"), "\(aaaa)")
            let mx = try ask("example.test", "MX")
            #expect(mx.contains("IN\tMX\t10 mail.example.test."), "\(mx)")
            #expect(mx.contains("mail.example.test.\t3600\tIN\tA\t192.0.2.25"), "\(mx)")
            let txt = try ask("quoted.example.test", "TXT")
            #expect(txt.contains("IN\tTXT\t\"a \\\"quoted\\\" string\" \"plain\""), "\(txt)")
            let nxdomain = try ask("nothere.example.test", "A")
            #expect(nxdomain.contains("status: NXDOMAIN"), "\(nxdomain)")
            #expect(nxdomain.contains("IN\tSOA\tns1.example.test."), "\(nxdomain)")
            let nodata = try ask("www.example.test", "AAAA")
            #expect(nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"), "\(nodata)")
            #expect(nodata.contains("IN\tSOA\tns1.example.test."), "\(nodata)")
            let referral = try ask("host.deleg.example.test", "A")
            #expect(referral.contains("status: NOERROR") && referral.contains("ANSWER: 0"))
            #expect(!referral.contains("flags: qr aa"), "\(referral)")
            #expect(referral.contains("deleg.example.test.\t3600\tIN\tNS\tns.deleg.example.test."))
            #expect(referral.contains("ns.deleg.example.test.\t3600\tIN\tA\t192.0.2.200"))
            let wildcard = try ask("x.wild.example.test", "A")
            #expect(wildcard.contains("x.wild.example.test.\t3600\tIN\tA\t192.0.2.99"))

            // 40 TXT records of ~100 bytes: truncated over UDP, whole over TCP.
            let udp = try ask("big.example.test", "TXT", ["+ignore"])
            #expect(udp.contains("flags: qr aa tc"), "\(udp)")
            #expect(udp.contains("ANSWER: 0"), "\(udp)")
            let tcp = try ask("big.example.test", "TXT", ["+tcp"])
            #expect(tcp.contains("ANSWER: 40") && !tcp.contains(" tc"), "\(tcp)")
            if isInstalled("kdig") {
                let kdig = try run([
                    "kdig", "+tcp", "@127.0.0.1", "-p", "\(port)", "big.example.test", "TXT",
                ])
                #expect(kdig.output.contains("ANSWER: 40"), "\(kdig.output)")
                #expect(kdig.output.contains("status: NOERROR"), "\(kdig.output)")
                let kdigUDP = try run([
                    "kdig", "+notcp", "+ignore", "@127.0.0.1", "-p", "\(port)",
                    "big.example.test", "TXT",
                ])
                #expect(kdigUDP.output.contains("Flags: qr aa tc"), "\(kdigUDP.output)")
            } else {
                print("SKIPPED: kdig part: kdig is not installed (knot-dnsutils)")
            }
        }
    }

    /// `--workers 3`: three loops on SO_REUSEPORT sockets share the port; queries from
    /// 300 source ports are all answered, each worker answers some (the kernel spreads
    /// them by flow), TCP is served too, and the statistics say so per worker.
    @Test func workersShareThePortAndEachAnswers() throws {
        try withRunningDNS(#function, extraArguments: ["--workers", "3"]) { server, port, folder in
            var answered = 0
            for id in 1...300 {
                // A socket per query: a new source port, a new flow for the kernel's hash.
                let query = dnsQuery("www.example.test", type: 1, id: UInt16(id))
                if let answer = udpAsk(query, port: port, timeout: 2),
                    let header = AnswerHeader(answer),
                    header.id == UInt16(id), header.isResponse, header.rcode == 0,
                    header.answers == 2
                {
                    answered += 1
                }
            }
            #expect(answered == 300)
            // A second server on the port is refused, not let into the first one's group.
            let second = try run([
                oasisPath, "dns", "--zone", folder + "/example.test.zone", "--listen",
                "127.0.0.1:\(port)", "--workers", "2", "--seconds", "1",
            ])
            #expect(second.status != 0 && second.errorOutput.contains("in use"), "\(second)")
            let tcp = try digText(
                "127.0.0.1", port: port, [("www.example.test", "A")], options: ["+tcp"])
            #expect(tcp.contains("IN\tA\t192.0.2.80"), "\(tcp)")
            // Statistics by type and rcode: one NXDOMAIN, one truncated answer (no EDNS:
            // 40 TXT records do not fit 512 bytes); SIGUSR1 prints them while serving.
            #expect(udpAsk(dnsQuery("nothere.example.test", type: 1, id: 1), port: port) != nil)
            let big = udpAsk(dnsQuery("big.example.test", type: 16, id: 2, edns: false), port: port)
            #expect(big.flatMap(AnswerHeader.init)?.truncated == true)
            kill(server.process.processIdentifier, SIGUSR1)
            usleep(300_000)
            let log = server.stop()
            #expect(log.contains("3 workers"), "\(log)")
            // Each worker's line twice (SIGUSR1, exit), then the totals.
            #expect(log.components(separatedBy: "dns worker 2 udp: ").count == 3, "\(log)")
            let totals = log.split(separator: "\n").first {
                $0.hasPrefix("oasis: dns queries by type: ")
            }
            #expect(totals?.contains("A 302") == true, "\(String(describing: totals))")
            #expect(totals?.contains("TXT 1") == true, "\(String(describing: totals))")
            #expect(totals?.contains("NXDOMAIN 1") == true, "\(String(describing: totals))")
            #expect(totals?.contains("truncated 1") == true, "\(String(describing: totals))")
            var perWorker: [Int] = []
            for worker in 0..<3 {
                let line = log.split(separator: "\n").first {
                    $0.contains("dns worker \(worker) udp: queries ")
                }
                let count = line.flatMap {
                    $0.split(separator: "queries ").last?.split(separator: ",").first
                }.flatMap { Int($0) }
                perWorker.append(count ?? 0)
            }
            #expect(perWorker.allSatisfy { $0 > 0 }, "queries by worker: \(perWorker)")
            #expect(perWorker.reduce(0, +) >= 300, "queries by worker: \(perWorker)")
            #expect(log.contains("tcp: queries 1,"), "\(log)")
        }
    }

    /// SIGHUP reloads the zones (every worker answers from the new ones, nothing cached
    /// from the old is served, no query goes unanswered meanwhile); a zone that fails
    /// to load leaves the old ones serving, and the log names the file and line.
    @Test func sighupReloadsAndABrokenZoneKeepsTheOld() throws {
        try withRunningDNS(#function, extraArguments: ["--workers", "2"]) { server, port, folder in
            let path = folder + "/example.test.zone"
            // The same bytes each time (fixed ID, no cookie): the answer cache's case.
            let query = dnsQuery("www.example.test", type: 1, id: 7)
            /// The last octets of the www addresses in the answer (80 and 81 before, 90
            /// and 91 after), nil when there is no answer.
            func addresses() -> [UInt8]? {
                guard let answer = udpAsk(query, port: port, timeout: 2),
                    AnswerHeader(answer)?.rcode == 0
                else { return nil }
                return [80, 81, 90, 91].filter { octet in
                    (0..<(answer.count - 3)).contains {
                        answer[$0..<$0 + 4].elementsEqual([192, 0, 2, octet])
                    }
                }
            }
            for _ in 0..<20 { #expect(addresses() == [80, 81]) }
            let original = try String(contentsOfFile: path, encoding: .utf8)
            try original.replacingOccurrences(of: "192.0.2.80", with: "192.0.2.90")
                .replacingOccurrences(of: "192.0.2.81", with: "192.0.2.91")
                .write(toFile: path, atomically: true, encoding: .utf8)
            kill(server.process.processIdentifier, SIGHUP)
            // Each worker takes the new zones between two turns: wait until ten
            // answers in a row (from fresh sockets, so from either worker) are new.
            var unanswered = 0
            var newInARow = 0
            let deadline = Deadline(seconds: 10)
            while newInARow < 10 && !deadline.hasPassed {
                guard let last = addresses() else {
                    unanswered += 1
                    continue
                }
                newInARow = last == [90, 91] ? newInARow + 1 : 0
            }
            #expect(newInARow == 10, "still old answers 10 s after SIGHUP")
            #expect(unanswered == 0)
            // From every worker (fresh sockets spread over both), never the old answer again.
            for _ in 0..<40 {
                let last = addresses()
                #expect(last == [90, 91], "\(String(describing: last))")
            }
            try (original + "\nbroken line here\n").write(
                toFile: path, atomically: true, encoding: .utf8)
            kill(server.process.processIdentifier, SIGHUP)
            usleep(500_000)
            for _ in 0..<20 {
                let last = addresses()
                #expect(last == [90, 91], "\(String(describing: last))")
            }
            let log = server.stop()
            #expect(log.contains("oasis: reloaded: ") && log.contains("on 2 of 2 loops"), "\(log)")
            #expect(log.contains("reload failed, the old zones are still served"), "\(log)")
            #expect(log.contains("example.test.zone:"), "\(log)")
        }
    }

    @Test func manyQueriesPipelinedOnOneTCPConnectionAnsweredInOrder() throws {
        try withDNSOnSockets("manyQueriesPipelinedOnOneTCPConnection", offset: 1) { port, _ in
            guard let client = TCPClient(port: port) else {
                Issue.record("cannot connect")
                return
            }
            // 400 queries in one write, a quarter of them for a 4.5 KB answer: 450 KB of
            // answers, more than the server queues for one client, so it must stop reading
            // and resume through writable readiness while this client is slow to read.
            var stream: [UInt8] = []
            for id in 1...400 {
                let name = id % 4 == 0 ? "big.example.test" : "www.example.test"
                stream += TCPClient.framed(dnsQuery(name, type: 16, id: UInt16(id)))
            }
            #expect(client.send(stream))
            usleep(300_000)
            var ids: [UInt16] = []
            for expected in 1...400 {
                guard let answer = client.readMessage(), let header = AnswerHeader(answer) else {
                    Issue.record("answer \(expected) missing")
                    break
                }
                ids.append(header.id)
                #expect(header.isResponse && header.rcode == 0 && !header.truncated)
                #expect(header.answers == (expected % 4 == 0 ? 40 : 0))
            }
            #expect(ids == (1...400).map { UInt16($0) })
        }
    }

    @Test func sameAnswersAsNSDThroughBothServersSockets() throws {
        guard getuid() == 0 else { try skip("NSD comparison", "NSD runs as root here") }
        guard isInstalled("nsd") else { try skip("NSD comparison", "nsd is not installed") }
        try withDNSOnSockets("sameAnswersAsNSDThroughBothServersSockets", offset: 2) {
            port, folder in
            let nsdPort = testPort(3)
            let nsd = try NSDProcess(
                zones: [
                    ("example.test.", "example.test.zone"), ("other.test.", "other.test.zone"),
                ], folder: folder, port: nsdPort)
            defer { nsd.stop() }
            #expect(nsd.waitUntilReady(probe: "example.test"), "NSD did not start")
            var compared = 0
            var differences: [String] = []
            for transport in [[], ["+tcp"], ["+nocookie", "+bufsize=512"], ["+noedns"]] {
                let theirs = digAnswers(
                    try digText(
                        "127.0.0.1", port: nsdPort, dnsComparisonQueries, options: transport))
                #expect(theirs.count == dnsComparisonQueries.count)
                // Twice: without a cookie the same questions come again as the same
                // bytes but for the ID, and the second time the answer cache answers.
                for pass in ["first", "second"] {
                    let ours = digAnswers(
                        try digText(
                            "127.0.0.1", port: port, dnsComparisonQueries, options: transport))
                    #expect(
                        ours.count == dnsComparisonQueries.count,
                        "\(transport): \(ours.count) answers")
                    for (index, (mine, nsds)) in zip(ours, theirs).enumerated() {
                        compared += 1
                        if mine != nsds {
                            differences.append(
                                "\(dnsComparisonQueries[index]) \(transport), \(pass) time:\n--- oasis\n\(mine)\n--- nsd\n\(nsds)"
                            )
                        }
                    }
                }
            }
            print("compared \(compared) answers with NSD: \(differences.count) differ")
            #expect(compared >= 2 * 4 * 80)
            #expect(differences.isEmpty, "\(differences.joined(separator: "\n\n"))")
        }
    }

    @Test func malformedQueriesOverUDPAndTCPDoNotStopTheServer() throws {
        try withDNSOnSockets("malformedQueriesDoNotStopTheServer", offset: 1) { port, _ in
            let valid = dnsQuery("www.example.test", type: 1, id: 0x4242)
            var withResponseBit = valid
            withResponseBit[2] |= 0x80
            let noQuestion: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
            let badName: [UInt8] = [0x12, 0x35, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c]
            // An extended label type (0x40): never a valid name, whatever follows.
            var junk: [UInt8] = [0x12, 0x36, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x41]
            var seed: UInt32 = 12345
            for _ in 0..<200 {
                seed = seed &* 1_103_515_245 &+ 12345
                junk.append(UInt8(truncatingIfNeeded: seed >> 16))
            }
            let garbage: [[UInt8]] = [
                [], [0xde, 0xad], Array(valid[0..<11]), withResponseBit, noQuestion, badName, junk,
                [UInt8](repeating: 0xff, count: 600),
            ]
            for message in garbage {
                if let answer = udpAsk(message, port: port, timeout: 0.3) {
                    let header = AnswerHeader(answer)
                    #expect(
                        header?.isResponse == true && header?.rcode == 1, "\(message.prefix(16))")
                }
                let answer = udpAsk(valid, port: port).flatMap(AnswerHeader.init)
                #expect(answer?.id == 0x4242 && answer?.answers == 2, "after \(message.prefix(16))")
            }
            // Over TCP: every bad message framed on one connection, then a good one. Each
            // gets FORMERR or nothing; the good one is answered, last.
            guard let client = TCPClient(port: port) else {
                Issue.record("cannot connect")
                return
            }
            #expect(client.send(garbage.flatMap(TCPClient.framed) + TCPClient.framed(valid)))
            var headers: [AnswerHeader] = []
            while let answer = client.readMessage(), let header = AnswerHeader(answer) {
                headers.append(header)
                if header.id == 0x4242 { break }
            }
            #expect(headers.last?.id == 0x4242 && headers.last?.answers == 2, "\(headers)")
            #expect(headers.dropLast().allSatisfy { $0.isResponse && $0.rcode == 1 }, "\(headers)")
            #expect(headers.count == 4, "noQuestion, badName, junk and the good one: \(headers)")
            // A connection that announces 60 000 bytes, sends ten and hangs up; one that
            // sends half a length prefix and hangs up.
            for partial: [UInt8] in [[0xea, 0x60] + [UInt8](repeating: 1, count: 10), [0x00]] {
                if let half = TCPClient(port: port) { _ = half.send(partial) }
            }
            let after = TCPClient(port: port)
            #expect(after?.send(TCPClient.framed(valid)) == true)
            #expect(after?.readMessage().flatMap(AnswerHeader.init)?.id == 0x4242)
            let udpAfter = udpAsk(valid, port: port).flatMap(AnswerHeader.init)
            #expect(udpAfter?.answers == 2)
        }
    }

    /// A full table makes room for a new connection by evicting the idle one that made
    /// progress longest ago (issue 19, item 4: before, the new one waited in the
    /// backlog until an idle one timed out); idle connections are closed at the idle
    /// timeout.
    @Test func idleTCPConnectionsAreClosedAndTheLimitHolds() throws {
        try withDNSOnSockets(
            "idleTCPConnectionsAreClosedAndTheLimitHolds", offset: 2,
            extraArguments: ["--tcp-connections", "2", "--tcp-idle-timeout", "0.5"]
        ) { port, _ in
            let valid = TCPClient.framed(dnsQuery("www.example.test", type: 1, id: 7))
            let first = TCPClient(port: port)
            let second = TCPClient(port: port)
            #expect(first?.send(valid) == true && first?.readMessage() != nil)
            #expect(second?.send(valid) == true && second?.readMessage() != nil)
            // A third is served at once: the first, idle longest, makes room.
            let started = ContinuousClock.now
            let third = TCPClient(port: port)
            #expect(third?.send(valid) == true)
            #expect(third?.readMessage().flatMap(AnswerHeader.init)?.id == 7)
            let waited = ContinuousClock.now - started
            #expect(waited < .milliseconds(300), "answered after \(waited)")
            #expect(first?.read(1) == nil)
            // The others are closed by the server once idle for 0.5 s: end of stream.
            #expect(second?.read(1) == nil && third?.read(1) == nil)
            #expect(ContinuousClock.now - started >= .milliseconds(400))
        }
    }

    /// A client that dribbles a query a byte at a time, more often than the idle
    /// timeout, makes no progress: it is closed all the same, and its slot freed.
    @Test func aClientDribblingBytesIsClosedAtTheIdleTimeout() throws {
        try withDNSOnSockets(
            "aClientDribblingBytesIsClosedAtTheIdleTimeout", offset: 3,
            extraArguments: ["--tcp-connections", "1", "--tcp-idle-timeout", "0.5"]
        ) { port, _ in
            let valid = TCPClient.framed(dnsQuery("www.example.test", type: 1, id: 9))
            guard let slow = TCPClient(port: port) else {
                Issue.record("no connection")
                return
            }
            // A byte every 0.1 s, never the whole query, for up to 3 s (six timeouts).
            let started = ContinuousClock.now
            var closedAfter: Duration? = nil
            for byte in valid.dropLast() where ContinuousClock.now - started < .seconds(3) {
                _ = slow.send([byte])
                usleep(100_000)
                var probe: UInt8 = 0
                let got = recv(slow.fd, &probe, 1, Int32(MSG_DONTWAIT))
                if got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    closedAfter = ContinuousClock.now - started
                    break
                }
            }
            #expect(closedAfter != nil, "the dribbling client was not closed")
            // Its slot is free: a real query is answered.
            let next = TCPClient(port: port)
            #expect(next?.send(valid) == true)
            #expect(next?.readMessage().flatMap(AnswerHeader.init)?.id == 9)
        }
    }

    @Test func digOverTheOasisStackOnATapGetsTheSameAnswersAsOverSockets() throws {
        guard access(oasisPath, X_OK) == 0 else { try skip("dns tap", "\(oasisPath) is not built") }
        guard isInstalled("dig") else { try skip("dns tap", "dig is not installed") }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let zones = [
            "--zone", folder + "/example.test.zone", "--zone", folder + "/other.test.zone",
        ]
        try withTestNamespace("digOverTheOasisStackOnATap") { namespace in
            try namespace.runChecked(["ip", "link", "set", "lo", "up"])
            try namespace.runChecked(["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"])
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "tap0"])
            try namespace.runChecked(["ip", "link", "set", "tap0", "up"])
            let onStack = try RunningDNS(
                zones + [
                    "--backend", "tap", "--tap", "tap0", "--ip", "192.0.2.2/24", "--mac", stackMAC,
                    "--listen", "53",
                ], namespace: namespace)
            defer { print("dns tap: oasis on the stack said:\n\(onStack.stop())") }
            let onSockets = try RunningDNS(
                zones + ["--listen", "127.0.0.1:5300"], namespace: namespace)
            defer { print("dns tap: oasis on sockets said:\n\(onSockets.stop())") }
            try expectSameAnswersOnStackAsOnSockets(namespace)
        }
    }

    /// Every comparison query asked with dig of the server on the stack (192.0.2.2:53)
    /// and of the one on sockets (127.0.0.1:5300), both in `namespace`: the answers
    /// must be the same, and the big one truncated over the stack's UDP too.
    private func expectSameAnswersOnStackAsOnSockets(_ namespace: TestNamespace) throws {
        try waitForPing(namespace, "192.0.2.2")
        let deadline = Deadline(seconds: 10)
        while !deadline.hasPassed {
            let probe = try namespace.run([
                "dig", "@127.0.0.1", "-p", "5300", "+short", "+tries=1", "+time=1",
                "example.test", "SOA",
            ])
            if probe.status == 0 && !probe.output.isEmpty { break }
        }
        // UDP first (dig asks ANY over TCP by default, and retries truncated answers
        // over TCP); TCP after.
        let udpOnly = ["+notcp", "+ignore"]
        let overStack = digAnswers(
            try digText(
                "192.0.2.2", port: 53, dnsComparisonQueries, options: udpOnly,
                namespace: namespace))
        let overSockets = digAnswers(
            try digText(
                "127.0.0.1", port: 5300, dnsComparisonQueries, options: udpOnly,
                namespace: namespace))
        #expect(overStack.count == dnsComparisonQueries.count, "\(overStack.count) answers")
        #expect(overStack.count == overSockets.count)
        for (index, (a, b)) in zip(overStack, overSockets).enumerated() where a != b {
            Issue.record("\(dnsComparisonQueries[index]):\n\(a)\n--- sockets:\n\(b)")
        }
        let big = try digText(
            "192.0.2.2", port: 53, [("big.example.test", "TXT")], options: ["+ignore"],
            namespace: namespace)
        #expect(big.contains("flags: qr aa tc"), "\(big)")
        // The same over TCP: the stack's TCP against the kernel's (dig), and the big
        // answer whole.
        let tcpOverStack = digAnswers(
            try digText(
                "192.0.2.2", port: 53, dnsComparisonQueries, options: ["+tcp"],
                namespace: namespace))
        let tcpOverSockets = digAnswers(
            try digText(
                "127.0.0.1", port: 5300, dnsComparisonQueries, options: ["+tcp"],
                namespace: namespace))
        #expect(tcpOverStack.count == dnsComparisonQueries.count, "\(tcpOverStack.count) answers")
        for (index, (a, b)) in zip(tcpOverStack, tcpOverSockets).enumerated() where a != b {
            Issue.record("TCP \(dnsComparisonQueries[index]):\n\(a)\n--- sockets:\n\(b)")
        }
        let bigOverTCP = try digText(
            "192.0.2.2", port: 53, [("big.example.test", "TXT")], options: ["+tcp"],
            namespace: namespace)
        #expect(bigOverTCP.contains("ANSWER: 40") && !bigOverTCP.contains(" tc"), "\(bigOverTCP)")
    }

    @Test func digOverTheOasisStackOnAFXDPGetsTheSameAnswersAsOverSockets() throws {
        guard access(oasisPath, X_OK) == 0 else { try skip("dns xdp", "\(oasisPath) is not built") }
        guard isInstalled("dig") else { try skip("dns xdp", "dig is not installed") }
        guard isInstalled("ethtool") else { try skip("dns xdp", "ethtool is not installed") }
        if let reason = xdpUnavailableReason { try skip("dns xdp", reason) }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let zones = [
            "--zone", folder + "/example.test.zone", "--zone", folder + "/other.test.zone",
        ]
        let capture = folder + "/dns-xdp.pcap"
        try withTestNamespace("digOverTheOasisStackOnAFXDP") { namespace in
            try namespace.runChecked(["ip", "link", "set", "lo", "up"])
            // XDP sees frames before anyone finishes an offloaded checksum.
            try namespace.addVethPair(kernelChecksums: true)
            let onXdp = try RunningDNS(
                zones + [
                    "--backend", "xdp", "--xdp", "va", "--ip", "192.0.2.2/24", "--listen", "53",
                    "--capture", capture,
                ], namespace: namespace)
            defer { print("dns xdp: oasis on AF_XDP said:\n\(onXdp.stop())") }
            let onSockets = try RunningDNS(
                zones + ["--listen", "127.0.0.1:5300"], namespace: namespace)
            defer { print("dns xdp: oasis on sockets said:\n\(onSockets.stop())") }
            try expectSameAnswersOnStackAsOnSockets(namespace)
            let said = onXdp.stop()
            #expect(said.contains("native XDP"), "\(said)")
            #expect(said.contains("AF_XDP kernel: rx dropped 0"), "\(said)")
        }
        guard isInstalled("tshark") else { return }
        let dns = try run(["tshark", "-r", capture, "-Y", "dns.flags.response == 1"])
        #expect(
            dns.output.split(separator: "\n").count >= dnsComparisonQueries.count, "\(dns.output)")
        let bad = try run([
            "tshark", "-r", capture, "-Y", "_ws.malformed || _ws.expert.severity >= warning",
        ])
        #expect(bad.output.isEmpty, "tshark flagged: \(bad.output)")
    }

    @Test func digOverTheOasisStackThroughPcapOnAVethWithACapture() throws {
        guard access(oasisPath, X_OK) == 0 else {
            try skip("dns pcap", "\(oasisPath) is not built")
        }
        guard isInstalled("dig") else { try skip("dns pcap", "dig is not installed") }
        guard isInstalled("ethtool") else { try skip("dns pcap", "ethtool is not installed") }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let capture = folder + "/dns.pcap"
        try withTestNamespace("digOverTheOasisStackThroughPcap") { namespace in
            try namespace.addVethPair(kernelChecksums: true)
            let server = try RunningDNS(
                [
                    "--zone", folder + "/example.test.zone", "--backend", "pcap", "--pcap", "va",
                    "--ip", "192.0.2.2/24", "--mac", stackMAC, "--listen", "53", "--capture",
                    capture,
                ], namespace: namespace)
            defer { print("dns pcap: oasis said:\n\(server.stop())") }
            try waitForPing(namespace, "192.0.2.2")
            let answer = try digText(
                "192.0.2.2", port: 53, [("www.example.test", "A"), ("x.wild.example.test", "TXT")],
                options: ["+notcp"], namespace: namespace)
            #expect(answer.contains("www.example.test.\t3600\tIN\tA\t192.0.2.81"), "\(answer)")
            #expect(answer.contains("x.wild.example.test.\t3600\tIN\tTXT\t\"wild card\""))
        }
        guard isInstalled("tshark") else { return }
        let dns = try run(["tshark", "-r", capture, "-Y", "dns.flags.response == 1"])
        #expect(dns.output.split(separator: "\n").count == 2, "\(dns.output)")
        let bad = try run([
            "tshark", "-r", capture, "-Y", "_ws.malformed || _ws.expert.severity >= warning",
        ])
        #expect(bad.output.isEmpty, "tshark flagged: \(bad.output)")
    }

    @Test func aZoneFileErrorIsReportedAsFileLineAndExitsNonZero() throws {
        guard access(oasisPath, X_OK) == 0 else {
            try skip("zone error", "\(oasisPath) is not built")
        }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/broken.zone"
        try "$ORIGIN broken.test.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.300\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = try run([oasisPath, "dns", "--zone", path, "--listen", "127.0.0.1:1"])
        #expect(result.status != 0)
        #expect(result.errorOutput.contains("\(path):5: "), "\(result.errorOutput)")
        let misused = try run([
            oasisPath, "dns", "--zone", folder + "/example.test.zone", "--capture", "/tmp/x.pcap",
        ])
        #expect(
            misused.status != 0 && misused.errorOutput.contains("--capture is for the Oasis stack"))
        let missing = try run([oasisPath, "dns", "--zone", folder + "/none.zone"])
        #expect(missing.status != 0)
        #expect(missing.errorOutput.contains("none.zone"), "\(missing.errorOutput)")
    }
}
