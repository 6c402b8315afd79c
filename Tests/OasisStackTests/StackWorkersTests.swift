// `--workers N` on the Oasis stack: a worker per queue of the device, each with its own
// loop, thread and stack at the same address. dig, from the kernel's side of a
// namespace, asks many queries (a socket each: the kernel spreads them over the queues
// by flow) over a 2-queue veth (AF_XDP) and a multi-queue TAP; every query is answered
// and each worker's exit statistics show it answered some.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct StackWorkersTests {
    static let queries = 32

    /// dig's `status: NOERROR` answers to `queries` questions asked in one run (dig
    /// opens a socket, so a source port, per question).
    static func askMany(_ server: String, in namespace: String) throws -> Int {
        let questions = (0..<queries).flatMap { _ in ["www.example.test", "A"] }
        let result = try run(
            [
                "ip", "netns", "exec", namespace, "dig", "@\(server)", "+noall", "+comments",
                "+tries=2", "+time=2",
            ] + questions)
        return result.output.components(separatedBy: "status: NOERROR").count - 1
    }

    /// Waits until the server answers one query from `namespace` (at most ~10 s).
    static func waitAnswering(_ server: String, in namespace: String) throws {
        for _ in 0..<50 {
            let result = try run([
                "ip", "netns", "exec", namespace, "dig", "@\(server)", "+short", "+tries=1",
                "+time=1", "www.example.test", "A",
            ])
            if result.output.contains("192.0.2.80") { return }
            usleep(200_000)
        }
        Issue.record("no answer from \(server) in \(namespace)")
    }

    /// The `queries N` of each `dns worker I udp:` exit line (the last one per worker).
    static func queriesPerWorker(_ log: String, workers: Int) -> [Int] {
        (0..<workers).map { worker in
            let lines = log.split(separator: "\n").filter {
                $0.hasPrefix("oasis: dns worker \(worker) udp: queries ")
            }
            guard let line = lines.last else { return -1 }
            let number = line.dropFirst("oasis: dns worker \(worker) udp: queries ".count)
                .prefix { $0.isNumber }
            return Int(number) ?? -1
        }
    }

    @Test func twoWorkersOnATwoQueueVethOverAFXDPEachAnswerSome() throws {
        guard access(oasisPath, X_OK) == 0 else {
            try skip("workers xdp", "\(oasisPath) is not built")
        }
        guard isInstalled("dig") else { try skip("workers xdp", "dig is not installed") }
        guard isInstalled("ethtool") else { try skip("workers xdp", "ethtool is not installed") }
        if let reason = xdpUnavailableReason { try skip("workers xdp", reason) }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        try withTestNamespace("twoWorkersOnATwoQueueVethOverAFXDP") { namespace in
            try namespace.runChecked(["ip", "link", "set", "lo", "up"])
            // Two receive and two transmit queues on both ends: the sender's transmit
            // queue (a hash of the socket) is the receive queue on the other end.
            let queues = ["numtxqueues", "2", "numrxqueues", "2"]
            let made = try namespace.run(
                ["ip", "link", "add", "va"] + queues + ["type", "veth", "peer", "name", "vb"]
                    + queues)
            if made.status != 0 {
                try skip("workers xdp", "no multi-queue veth here: \(made.errorOutput)")
            }
            try namespace.runChecked(["ip", "link", "set", "va", "up"])
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "vb"])
            try namespace.runChecked(["ip", "link", "set", "vb", "up"])
            // XDP sees frames before anyone finishes an offloaded checksum.
            try namespace.runChecked(["ethtool", "-K", "vb", "tx", "off"])
            let server = try RunningDNS(
                [
                    "--zone", folder + "/example.test.zone", "--backend", "xdp", "--xdp", "va",
                    "--ip", "192.0.2.2/24", "--listen", "53", "--workers", "2",
                ], namespace: namespace)
            defer { print("workers xdp: oasis said:\n\(server.stop())") }
            try Self.waitAnswering("192.0.2.2", in: namespace.name)
            let answered = try Self.askMany("192.0.2.2", in: namespace.name)
            #expect(answered == Self.queries)
            let log = server.stop()
            #expect(log.contains("AF_XDP on va queues 0...1"), "\(log)")
            #expect(log.contains("2 workers"), "\(log)")
            let perWorker = Self.queriesPerWorker(log, workers: 2)
            #expect(perWorker.allSatisfy { $0 > 0 }, "per worker: \(perWorker)\n\(log)")
            // The first query (waitAnswering) and the many.
            #expect(perWorker.reduce(0, +) >= Self.queries + 1, "per worker: \(perWorker)")
            #expect(log.contains("worker 1 AF_XDP queue 1 kernel: rx dropped 0"), "\(log)")
            #expect(log.contains("oasis: dns queries by type: A "), "\(log)")
        }
    }

    @Test func twoWorkersOnAMultiQueueTAPEachAnswerSome() throws {
        guard access(oasisPath, X_OK) == 0 else {
            try skip("workers tap", "\(oasisPath) is not built")
        }
        guard isInstalled("dig") else { try skip("workers tap", "dig is not installed") }
        if let reason = TestNamespace.unavailableReason { try skip("workers tap", reason) }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        // oasis makes the TAP in a namespace of its own, oasis-<pid>, and removes it on
        // the way out; removed here too should it not get that far.
        let server = try RunningDNS([
            "--zone", folder + "/example.test.zone", "--backend", "tap", "--ip", "192.0.2.2/24",
            "--listen", "53", "--workers", "2",
        ])
        let namespace = "oasis-\(server.process.processIdentifier)"
        defer {
            print("workers tap: oasis said:\n\(server.stop())")
            _ = try? run(["ip", "netns", "del", namespace])
        }
        try Self.waitAnswering("192.0.2.2", in: namespace)
        let answered = try Self.askMany("192.0.2.2", in: namespace)
        #expect(answered == Self.queries)
        let log = server.stop()
        #expect(log.contains("multi-queue TAP tap0, 2 queues"), "\(log)")
        let perWorker = Self.queriesPerWorker(log, workers: 2)
        #expect(perWorker.allSatisfy { $0 > 0 }, "per worker: \(perWorker)\n\(log)")
        #expect(perWorker.reduce(0, +) >= Self.queries + 1, "per worker: \(perWorker)")
    }

    /// `oasis stack --workers 2` over AF_XDP: UDP echo from 32 source ports (a socket
    /// each, from python3 on the kernel's side) all come back, and both workers echoed
    /// some; ping is answered.
    @Test func twoEchoStacksOnATwoQueueVethOverAFXDPEachEchoSome() throws {
        guard access(oasisPath, X_OK) == 0 else {
            try skip("workers stack", "\(oasisPath) is not built")
        }
        guard isInstalled("python3") else { try skip("workers stack", "python3 is not installed") }
        guard isInstalled("ethtool") else { try skip("workers stack", "ethtool is not installed") }
        if let reason = xdpUnavailableReason { try skip("workers stack", reason) }
        try withTestNamespace("twoEchoStacksOnATwoQueueVeth") { namespace in
            let queues = ["numtxqueues", "2", "numrxqueues", "2"]
            let made = try namespace.run(
                ["ip", "link", "add", "va"] + queues + ["type", "veth", "peer", "name", "vb"]
                    + queues)
            if made.status != 0 {
                try skip("workers stack", "no multi-queue veth here: \(made.errorOutput)")
            }
            try namespace.runChecked(["ip", "link", "set", "va", "up"])
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "vb"])
            try namespace.runChecked(["ip", "link", "set", "vb", "up"])
            try namespace.runChecked(["ethtool", "-K", "vb", "tx", "off"])
            let process = Process()
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "ip", "netns", "exec", namespace.name, oasisPath, "stack", "--backend", "xdp",
                "--xdp", "va", "--ip", "192.0.2.2/24", "--workers", "2", "--seconds", "20",
            ]
            process.standardOutput = output
            process.standardError = output
            try process.run()
            defer {
                if process.isRunning { kill(process.processIdentifier, SIGTERM) }
                process.waitUntilExit()
            }
            try waitForPing(namespace, "192.0.2.2")
            let script = """
                import socket
                echoed = 0
                for i in range(32):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.settimeout(2)
                    s.sendto(b"echo %d" % i, ("192.0.2.2", 7))
                    try:
                        if s.recv(100) == b"echo %d" % i:
                            echoed += 1
                    except OSError:
                        pass
                    s.close()
                print("echoed", echoed)
                """
            let sent = try namespace.run(["python3", "-c", script])
            #expect(sent.output.contains("echoed 32"), "\(sent)")
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            let log = String(
                decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            print("workers stack: oasis said:\n\(log)")
            #expect(process.terminationStatus == 0, "\(log)")
            for worker in 0..<2 {
                let line = log.split(separator: "\n").first {
                    $0.hasPrefix("oasis: worker \(worker) echo replies ")
                }
                let datagrams = line.flatMap { text in
                    text.components(separatedBy: "datagrams in ").last.flatMap {
                        Int($0.prefix { $0.isNumber })
                    }
                }
                #expect((datagrams ?? 0) > 0, "worker \(worker): \(String(describing: line))")
            }
        }
    }

    /// What cannot be split over queues is refused with a reason, before anything opens.
    @Test func workersAreRefusedWhereThereIsOneQueue() throws {
        guard access(oasisPath, X_OK) == 0 else {
            try skip("workers refused", "\(oasisPath) is not built")
        }
        let folder = try writeTestZones()
        defer { _ = try? FileManager.default.removeItem(atPath: folder) }
        let pcap = try run([
            oasisPath, "dns", "--zone", folder + "/example.test.zone", "--backend", "pcap",
            "--pcap", "lo", "--workers", "2",
        ])
        #expect(pcap.status != 0 && pcap.errorOutput.contains("libpcap"), "\(pcap)")
        let iperf3 = try run([
            oasisPath, "stack", "--backend", "tap", "--workers", "2", "--iperf3", "--seconds", "1",
        ])
        #expect(iperf3.status != 0 && iperf3.errorOutput.contains("iperf3"), "\(iperf3)")
        let memory = try run([oasisPath, "stack", "--backend", "memory", "--workers", "2"])
        #expect(memory.status != 0 && memory.errorOutput.contains("several queues"), "\(memory)")
    }
}
