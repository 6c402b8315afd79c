// The Oasis stack against the Linux kernel: `oasis stack` runs on a TAP (or a veth
// through libpcap) inside a namespace the test creates, and the kernel's own ping,
// arping and UDP sockets talk to it.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `oasis` executable built beside the test bundle.
let oasisPath = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("oasis").path

let stackMAC = "02:00:00:00:00:02"

/// A running `oasis stack`, stopped with SIGTERM (and waited for) at the end.
final class RunningStack {
    let process = Process()
    let output = Pipe()

    init(namespace: TestNamespace, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace.name, oasisPath, "stack"] + arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    func stop() -> String {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}

/// Creates a namespace with `tap0` at 192.0.2.1/24 on the kernel's side, runs `oasis
/// stack` on it at 192.0.2.2/24, waits until it answers ping, runs `body`, and stops
/// everything, also when `body` throws.
func withStackOnTap(
    _ test: String, extraArguments: [String] = [], _ body: (TestNamespace) throws -> Void
) throws {
    var log = ""
    try withStackOnTap(test, extraArguments: extraArguments, log: &log, body)
}

/// The same, handing back what `oasis` printed (its report on exit included).
func withStackOnTap(
    _ test: String, extraArguments: [String] = [], log: inout String,
    _ body: (TestNamespace) throws -> Void
) throws {
    guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
    try withTestNamespace(test) { namespace in
        try namespace.runChecked(["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"])
        try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "tap0"])
        try namespace.runChecked(["ip", "link", "set", "tap0", "up"])
        let stack = try RunningStack(
            namespace: namespace,
            arguments: ["--tap", "tap0", "--ip", "192.0.2.2/24", "--mac", stackMAC] + extraArguments
        )
        defer {
            log = stack.stop()
            print("\(test): oasis said:\n\(log)")
        }
        try waitForPing(namespace, "192.0.2.2")
        try body(namespace)
    }
}

func waitForPing(_ namespace: TestNamespace, _ address: String) throws {
    let deadline = Deadline(seconds: 10)
    while !deadline.hasPassed {
        if try namespace.run(["ping", "-c", "1", "-W", "1", address]).status == 0 { return }
    }
    Issue.record("\(address) never answered ping")
    throw CommandFailed(
        command: ["ping", address], result: CommandResult(status: 1, output: "", errorOutput: ""))
}

/// Runs a Python snippet (the kernel's UDP sockets) inside the namespace.
func python(_ namespace: TestNamespace, _ script: String) throws -> CommandResult {
    try namespace.run(["python3", "-c", script])
}

/// The kernel's UDP sockets (Python, inside the namespace) send random payloads of each
/// size to the echo service at 192.0.2.2:7 and check what comes back: same bytes, from
/// that address and port. Records an issue for anything else.
func expectKernelUDPEcho(
    _ namespace: TestNamespace, sizes: [Int], sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let result = try python(
        namespace,
        """
        import socket, os
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        bad = 0
        sizes = [\(sizes.map(String.init).joined(separator: ", "))]
        for n in sizes:
            data = os.urandom(n)
            s.sendto(data, ('192.0.2.2', 7))
            back, peer = s.recvfrom(9000)
            if back != data or peer != ('192.0.2.2', 7):
                bad += 1
        print('checked', len(sizes), 'bad', bad)
        """)
    #expect(result.status == 0, "\(result.errorOutput)", sourceLocation: sourceLocation)
    #expect(result.output.contains("bad 0"), "\(result.output)", sourceLocation: sourceLocation)
}

@Suite(.serialized) struct KernelPeerTests {
    @Test func fiftyFastPingsAllAnswered() throws {
        try withStackOnTap("fiftyFastPingsAllAnswered") { namespace in
            let result = try namespace.runChecked([
                "ping", "-c", "50", "-i", "0.01", "-W", "2", "192.0.2.2",
            ])
            #expect(result.output.contains(" 0% packet loss"), "\(result.output)")
        }
    }

    @Test func fragmentedPingBothWays() throws {
        try withStackOnTap("fragmentedPingBothWays") { namespace in
            let result = try namespace.runChecked([
                "ping", "-c", "3", "-s", "8000", "-W", "2", "192.0.2.2",
            ])
            #expect(result.output.contains("3 received"), "\(result.output)")
            #expect(result.output.contains("8008 bytes from 192.0.2.2"), "\(result.output)")
        }
    }

    @Test func arpingAnsweredAndNeighbourEntryRight() throws {
        guard isInstalled("arping") else { try skip("arping", "arping is not installed") }
        try withStackOnTap("arpingAnsweredAndNeighbourEntryRight") { namespace in
            let result = try namespace.run([
                "arping", "-c", "2", "-w", "3", "-I", "tap0", "192.0.2.2",
            ])
            #expect(result.output.contains("Received 2 response"), "\(result.output)")
            #expect(result.output.lowercased().contains(stackMAC), "\(result.output)")
            let neighbour = try namespace.runChecked([
                "ip", "neigh", "show", "192.0.2.2", "dev", "tap0",
            ])
            #expect(neighbour.output.contains("lladdr \(stackMAC)"), "\(neighbour.output)")
        }
    }

    @Test func udpEchoReturnsPayloadsOfOneTo8000Bytes() throws {
        try withStackOnTap("udpEchoReturnsPayloadsOfOneTo8000Bytes") { namespace in
            try expectKernelUDPEcho(
                namespace,
                sizes: Array(1..<40) + [
                    100, 512, 1000, 1471, 1472, 1473, 1480, 2000, 2960, 3000, 4096, 6000, 7999,
                    8000,
                ])
        }
    }

    @Test func udpEchoWithTheVirtioHeaderAndChecksumOffload() throws {
        // With --vnet-header the kernel hands over frames whose UDP checksum it left
        // partial; the TAP device must complete them, or the stack would drop them all.
        try withStackOnTap(
            "udpEchoWithTheVirtioHeaderAndChecksumOffload", extraArguments: ["--vnet-header"]
        ) { namespace in
            try expectKernelUDPEcho(namespace, sizes: [1, 64, 1472, 3000])
        }
    }

    @Test func aFragmentedDatagramToAClosedPortGetsNoErrorAboutAFragment() throws {
        try withStackOnTap("aFragmentedDatagramToAClosedPortGetsNoErrorAboutAFragment") {
            namespace in
            let result = try python(
                namespace,
                """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(1)
                s.connect(('192.0.2.2', 9))
                s.send(b'x' * 3000)
                try:
                    s.recv(100)
                    print('answered')
                except ConnectionRefusedError:
                    print('refused')
                except socket.timeout:
                    print('timeout')
                """)
            // RFC 1122 §3.2.2: the stack sends no ICMP error about a reassembled datagram
            // (the fragment that completed it is not the first); nothing comes back.
            #expect(result.output.contains("timeout"), "\(result.output) \(result.errorOutput)")
        }
    }

    @Test func udpToAClosedPortIsRefused() throws {
        try withStackOnTap("udpToAClosedPortIsRefused") { namespace in
            let result = try python(
                namespace,
                """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.settimeout(2)
                s.connect(('192.0.2.2', 9))
                s.send(b'anyone?')
                try:
                    s.recv(100)
                    print('answered')
                except ConnectionRefusedError:
                    print('refused')
                except socket.timeout:
                    print('timeout')
                """)
            #expect(result.output.contains("refused"), "\(result.output) \(result.errorOutput)")
        }
    }

    /// RFC 1122 §3.2.2.1: a datagram for a protocol the stack does not speak is
    /// answered with ICMP protocol unreachable, quoting its header and first 8 bytes; the
    /// kernel reads it on a raw ICMP socket.
    @Test func anUnknownProtocolIsAnsweredWithProtocolUnreachable() throws {
        try withStackOnTap("anUnknownProtocolIsAnsweredWithProtocolUnreachable") { namespace in
            let result = try python(
                namespace,
                """
                import socket, select, time
                icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
                raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)
                raw.sendto(b'experimental-253', ('192.0.2.2', 0))
                deadline = time.time() + 3
                while time.time() < deadline:
                    ready, _, _ = select.select([icmp], [], [], 0.5)
                    if not ready:
                        continue
                    packet, peer = icmp.recvfrom(2000)
                    ihl = (packet[0] & 15) * 4
                    kind, code = packet[ihl], packet[ihl + 1]
                    quoted = packet[ihl + 8:]
                    qihl = (quoted[0] & 15) * 4
                    if peer[0] == '192.0.2.2' and kind == 3:
                        print('type', kind, 'code', code, 'protocol', quoted[9],
                              'quoted', quoted[qihl:qihl + 8])
                        break
                else:
                    print('nothing')
                """)
            #expect(result.status == 0, "\(result.errorOutput)")
            #expect(
                result.output.contains("type 3 code 2 protocol 253 quoted b'experime'"),
                "\(result.output) \(result.errorOutput)")
        }
    }

    @Test func captureIsReadByTsharkWithoutMalformedPackets() throws {
        guard isInstalled("tshark") else { try skip("capture", "tshark is not installed") }
        let path = "/tmp/oasis-capture-\(getpid()).pcap"
        defer { unlink(path) }
        try withStackOnTap(
            "captureIsReadByTsharkWithoutMalformedPackets", extraArguments: ["--capture", path]
        ) {
            namespace in
            _ = try namespace.runChecked([
                "ping", "-c", "3", "-i", "0.05", "-s", "3000", "192.0.2.2",
            ])
            _ = try python(
                namespace,
                "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1); s.sendto(b'x' * 100, ('192.0.2.2', 7)); s.recvfrom(200)"
            )
        }
        let all = try run(["tshark", "-r", path, "-T", "fields", "-e", "frame.protocols"])
        let lines = all.output.split(separator: "\n")
        #expect(lines.count >= 10, "\(all.output)")
        #expect(lines.contains { $0.contains("icmp") })
        #expect(lines.contains { $0.contains("udp") })
        #expect(lines.contains { $0.contains("arp") })
        let bad = try run([
            "tshark", "-r", path, "-Y", "_ws.malformed || _ws.expert.severity >= warning",
        ])
        #expect(bad.output.isEmpty, "tshark flagged: \(bad.output)")
    }

    /// `oasis stack` on one end of a veth pair, through libpcap or AF_XDP.
    @Test(arguments: ["pcap", "xdp"])
    func pingAndUDPEchoOnAVethPair(backend: String) throws {
        guard access(oasisPath, X_OK) == 0 else { try skip(backend, "\(oasisPath) is not built") }
        guard isInstalled("ethtool") else { try skip(backend, "ethtool is not installed") }
        if backend == "xdp", let reason = xdpUnavailableReason { try skip(backend, reason) }
        try withTestNamespace("pingAndUDPEchoOnAVethPair(\(backend))") { namespace in
            // va carries the Oasis stack (no kernel address on it); vb is the kernel's
            // side at 192.0.2.1. The kernel leaves UDP checksums to the veth's offload;
            // what libpcap or XDP reads on va would carry partial ones. A real wire
            // carries complete checksums.
            try namespace.addVethPair(kernelChecksums: true)
            let stack = try RunningStack(
                namespace: namespace,
                arguments: [
                    "--backend", backend, "--\(backend)", "va", "--ip", "192.0.2.2/24", "--mac",
                    stackMAC,
                ])
            defer { print("\(backend): oasis said:\n\(stack.stop())") }
            try waitForPing(namespace, "192.0.2.2")
            let result = try namespace.runChecked([
                "ping", "-c", "50", "-i", "0.01", "-W", "2", "192.0.2.2",
            ])
            #expect(result.output.contains(" 0% packet loss"), "\(result.output)")
            // The largest ping: 45 fragments each way in one burst (libpcap's ring held
            // about 31 frames with a 64 KiB snapshot; the device's is as long as a buffer).
            let big = try namespace.runChecked([
                "ping", "-c", "5", "-i", "0.2", "-W", "2", "-s", "65507", "192.0.2.2",
            ])
            #expect(big.output.contains(" 0% packet loss"), "\(big.output)")
            try expectKernelUDPEcho(namespace, sizes: [1, 100, 1472, 3000, 8000])
        }
    }
}
