// The DHCP client against dnsmasq: `oasis stack --ip dhcp` on a TAP in a namespace the
// test creates, dnsmasq serving DHCP (its DNS off) on the kernel's side of the TAP.
// Real clock: dnsmasq's shortest lease is two minutes, so T1 and T2 are set short.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// dnsmasq in the foreground in a namespace, with its lease file and log in a folder of
/// the test's own; stopped by its PID. Started with `posix_spawn`, not `Process`:
/// dnsmasq closes every descriptor it inherits, which Foundation takes for its exit
/// and then waits for it (blocking every other child's wait behind it).
final class RunningDnsmasq {
    let pid: pid_t
    let folder: String
    var leaseFile: String { folder + "/leases" }
    var logFile: String { folder + "/dnsmasq.log" }
    private var running = true

    init(
        namespace: TestNamespace, folder: String, interface: String = "tap0",
        extraArguments: [String] = []
    ) throws {
        self.folder = folder
        // `ip netns exec` execs dnsmasq: the PID is dnsmasq's.
        let arguments =
            [
                "ip", "netns", "exec", namespace.name, "dnsmasq", "--no-daemon", "--port=0",
                "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--interface=\(interface)",
                "--bind-interfaces", "--dhcp-range=192.0.2.50,192.0.2.59,255.255.255.0,2m",
                "--dhcp-leasefile=\(folder)/leases", "--pid-file=\(folder)/dnsmasq.pid",
                "--dhcp-option=option:dns-server,192.0.2.53", "--dhcp-option=option:mtu,1400",
                "--log-dhcp", "--log-facility=\(folder)/dnsmasq.log",
            ] + extraArguments
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        // Its output goes to its log file, not the test's.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, "ip", &actions, nil, &cArguments, environ)
        guard spawned == 0 else {
            throw CommandFailed(
                command: arguments,
                result: CommandResult(status: spawned, output: "", errorOutput: "posix_spawn"))
        }
        self.pid = pid
    }

    /// The lease file's line for `mac` (any, when nil), if dnsmasq has one.
    func lease(of mac: String?) -> [Substring]? {
        guard let text = try? String(contentsOfFile: leaseFile, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").map { $0.split(separator: " ") }
            .first { $0.count >= 3 && (mac == nil || $0[1] == mac!) }
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// SIGKILL (the test runner's children may have SIGTERM blocked), and reaped.
    func stop() {
        guard running else { return }
        running = false
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

@Suite(.serialized) struct DHCPPeerTests {
    /// Why these tests cannot run here, if they cannot.
    func unavailable(_ test: String) throws {
        guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
        guard isInstalled("dnsmasq") else {
            try skip(test, "dnsmasq is not installed (Debian: dnsmasq-base)")
        }
    }

    /// A namespace with a persistent `tap0` at 192.0.2.1/24 (it outlives `oasis`, so
    /// that dnsmasq reads a release sent as it exits), dnsmasq on it, and `oasis stack
    /// --ip dhcp` on the TAP with a capture; `body` gets them all and the folder.
    func withDHCP(
        _ test: String, dnsmasqArguments: [String] = [],
        _ body: (TestNamespace, RunningDnsmasq, RunningStack, String) throws -> Void
    ) throws {
        try unavailable(test)
        try withTestNamespace(test) { namespace in
            var template = Array("/tmp/oasis-dhcp.XXXXXX".utf8CString)
            let folder = template.withUnsafeMutableBufferPointer {
                String(cString: mkdtemp($0.baseAddress!)!)
            }
            defer { _ = try? run(["rm", "-rf", folder]) }
            try namespace.runChecked(["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"])
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "tap0"])
            try namespace.runChecked(["ip", "link", "set", "tap0", "up"])
            let dnsmasq = try RunningDnsmasq(
                namespace: namespace, folder: folder, extraArguments: dnsmasqArguments)
            defer { dnsmasq.stop() }
            let stack = try RunningStack(
                namespace: namespace,
                arguments: [
                    "--tap", "tap0", "--ip", "dhcp", "--mac", stackMAC,
                    "--capture", folder + "/dhcp.pcap",
                ])
            var stopped = false
            defer {
                if !stopped { print("\(test): oasis said:\n\(stack.stop())") }
            }
            try body(namespace, dnsmasq, stack, folder)
            stopped = true
        }
    }

    /// Waits for dnsmasq's lease for the stack and returns its address.
    func waitForLease(_ dnsmasq: RunningDnsmasq, mac: String? = stackMAC, seconds: Double = 15)
        throws -> String
    {
        let deadline = Deadline(seconds: seconds)
        while !deadline.hasPassed {
            if let lease = dnsmasq.lease(of: mac) { return String(lease[2]) }
            usleep(100_000)
        }
        Issue.record("no lease in dnsmasq's lease file; its log:\n\(dnsmasq.log)")
        throw CommandFailed(
            command: ["dnsmasq"], result: CommandResult(status: 1, output: "", errorOutput: ""))
    }

    /// Lines of tshark's one-line summaries of DHCP packets in `capture` matching `filter`.
    func dhcpPackets(_ capture: String, _ filter: String) throws -> [Substring] {
        try run(["tshark", "-r", capture, "-Y", "dhcp && (\(filter))"]).output.split(
            separator: "\n")
    }

    /// tshark finds nothing malformed or wrong in what either side sent.
    func expectWellFormed(_ capture: String) throws {
        let bad = try run([
            "tshark", "-r", capture, "-Y", "_ws.malformed || _ws.expert.severity >= warning",
        ])
        #expect(bad.output.isEmpty, "tshark flagged: \(bad.output)")
        let verbose = try run(["tshark", "-r", capture, "-V", "-Y", "dhcp"])
        #expect(verbose.status == 0 && !verbose.output.contains("Malformed"))
        #expect(verbose.output.contains("Magic cookie: DHCP"))
    }

    @Test func leaseFromDnsmasqPingedThenReleasedOnStop() throws {
        try withDHCP("DHCP lease, ping, release") { namespace, dnsmasq, stack, folder in
            let address = try waitForLease(dnsmasq)
            try waitForPing(namespace, address)
            // Stopping the stack releases the lease: dnsmasq forgets it.
            let said = stack.stop()
            print("oasis said:\n\(said)")
            #expect(said.contains("oasis: dhcp: leased \(address)/24 gateway 192.0.2.1"))
            #expect(said.contains("dns 192.0.2.53") && said.contains("mtu 1400"))
            #expect(said.contains("releasing \(address)"))
            let deadline = Deadline(seconds: 5)
            while dnsmasq.lease(of: stackMAC) != nil && !deadline.hasPassed { usleep(100_000) }
            #expect(dnsmasq.lease(of: stackMAC) == nil, "still leased after the release")
            #expect(dnsmasq.log.contains("DHCPRELEASE(tap0) \(address) \(stackMAC)"))
            guard isInstalled("tshark") else { return }
            let capture = folder + "/dhcp.pcap"
            // DISCOVER and REQUEST from 0.0.0.0 to the broadcast address; the release
            // from the address to the server.
            #expect(
                try dhcpPackets(
                    capture,
                    "ip.src == 0.0.0.0 && ip.dst == 255.255.255.255 && udp.srcport == 68 "
                        + "&& udp.dstport == 67"
                ).count >= 2)
            #expect(
                try dhcpPackets(
                    capture, "dhcp.option.dhcp == 7 && ip.src == \(address) && ip.dst == 192.0.2.1"
                ).count == 1)
            try expectWellFormed(capture)
        }
    }

    @Test func renewedAtT1ThenServerGoneRebindingAndExpiry() throws {
        // T1 10 s, T2 20 s of a two-minute lease.
        try withDHCP(
            "DHCP renew, rebind, expiry",
            dnsmasqArguments: ["--dhcp-option=option:T1,10", "--dhcp-option=option:T2,20"]
        ) { namespace, dnsmasq, stack, folder in
            let address = try waitForLease(dnsmasq)
            let firstExpiry = try #require(dnsmasq.lease(of: stackMAC).flatMap { Int($0[0]) })
            try waitForPing(namespace, address)
            // T1: a unicast DHCPREQUEST, acknowledged; dnsmasq's lease moves on.
            let deadline = Deadline(seconds: 20)
            var renewed = false
            while !deadline.hasPassed && !renewed {
                usleep(250_000)
                if let expiry = dnsmasq.lease(of: stackMAC).flatMap({ Int($0[0]) }),
                    expiry > firstExpiry
                {
                    renewed = true
                }
            }
            #expect(renewed, "dnsmasq's lease never moved on; its log:\n\(dnsmasq.log)")
            let acks = dnsmasq.log.components(separatedBy: "DHCPACK(tap0) \(address)").count - 1
            #expect(acks >= 2)

            // The server goes away: RENEWING at the next T1, REBINDING at T2 (broadcast),
            // and at the lease's end the address is dropped.
            dnsmasq.stop()
            let expiry = ContinuousClock.now + .seconds(122)
            try waitForPing(namespace, address)
            while ContinuousClock.now < expiry { usleep(500_000) }
            let deadlineGone = Deadline(seconds: 10)
            var gone = false
            while !deadlineGone.hasPassed && !gone {
                gone = try namespace.run(["ping", "-c", "1", "-W", "1", address]).status != 0
            }
            #expect(gone, "\(address) still answers after its lease ended")
            let said = stack.stop()
            print("oasis said:\n\(said)")
            #expect(said.contains("oasis: dhcp: lease lost, address dropped"))
            guard isInstalled("tshark") else { return }
            let capture = folder + "/dhcp.pcap"
            // Renewing: unicast requests from the address to the server; rebinding:
            // broadcast ones with ciaddr set.
            let requests = "dhcp.option.dhcp == 3 && ip.src == \(address)"
            #expect(try dhcpPackets(capture, requests + " && ip.dst == 192.0.2.1").count >= 2)
            #expect(
                try dhcpPackets(
                    capture,
                    requests + " && ip.dst == 255.255.255.255 && dhcp.ip.client == \(address)"
                ).count >= 1)
            // After expiry: discovering again, from 0.0.0.0.
            #expect(try dhcpPackets(capture, "dhcp.option.dhcp == 1").count >= 2)
            try expectWellFormed(capture)
        }
    }

    @Test func leaseOverTheXenNetfrontOnTheSimulatedHypervisor() throws {
        let test = "DHCP over the Xen netfront"
        try unavailable(test)
        try withTestNamespace(test) { namespace in
            let simulator = try RunningNetbackSimulator(
                ["--tap", "vif1.0"], namespace: namespace.name)
            defer { print("\(test): netback-sim said:\n\(simulator.stop())") }
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "vif1.0"])
            var template = Array("/tmp/oasis-dhcp.XXXXXX".utf8CString)
            let folder = template.withUnsafeMutableBufferPointer {
                String(cString: mkdtemp($0.baseAddress!)!)
            }
            defer { _ = try? run(["rm", "-rf", folder]) }
            let dnsmasq = try RunningDnsmasq(
                namespace: namespace, folder: folder, interface: "vif1.0")
            defer { dnsmasq.stop() }
            let stack = try RunningStack(
                namespace: namespace,
                arguments: ["--backend", "xen", "--xen-sim", simulator.socketPath, "--ip", "dhcp"])
            var said = ""
            defer { print("\(test): oasis said:\n\(said)") }
            let address = try waitForLease(dnsmasq, mac: nil)
            try waitForPing(namespace, address)
            said = stack.stop()
            #expect(said.contains("oasis: dhcp: leased \(address)/24 gateway 192.0.2.1"))
            #expect(said.contains("releasing \(address)"))
        }
    }

    @Test func dnsServerOnALeasedAddress() throws {
        let test = "oasis dns --ip dhcp"
        try unavailable(test)
        guard isInstalled("dig") else { try skip(test, "dig is not installed") }
        try withTestNamespace(test) { namespace in
            var template = Array("/tmp/oasis-dhcp.XXXXXX".utf8CString)
            let folder = template.withUnsafeMutableBufferPointer {
                String(cString: mkdtemp($0.baseAddress!)!)
            }
            defer { _ = try? run(["rm", "-rf", folder]) }
            try """
            $ORIGIN example.test.
            $TTL 3600
            @ IN SOA ns1 hostmaster 1 3600 900 604800 300
            @ IN NS ns1
            ns1 IN A 192.0.2.53
            www IN A 192.0.2.80

            """.write(toFile: folder + "/example.test.zone", atomically: true, encoding: .utf8)
            try namespace.runChecked(["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"])
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "tap0"])
            try namespace.runChecked(["ip", "link", "set", "tap0", "up"])
            let dnsmasq = try RunningDnsmasq(namespace: namespace, folder: folder)
            defer { dnsmasq.stop() }
            let server = Process()
            let output = Pipe()
            server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            server.arguments = [
                "ip", "netns", "exec", namespace.name, oasisPath, "dns", "--backend", "tap",
                "--tap", "tap0", "--ip", "dhcp", "--mac", stackMAC,
                "--zone", folder + "/example.test.zone",
            ]
            server.standardOutput = output
            server.standardError = output
            try server.run()
            defer {
                if server.isRunning { kill(server.processIdentifier, SIGTERM) }
                server.waitUntilExit()
                let said = String(
                    decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                print("\(test): oasis said:\n\(said)")
                #expect(said.contains("oasis: dhcp: leased"))
            }
            let address = try waitForLease(dnsmasq)
            // Once the address is in use (after its ARP probe), the server answers at it.
            try waitForPing(namespace, address)
            let answer = try namespace.run([
                "dig", "+short", "+tries=3", "+time=1", "@\(address)", "www.example.test", "A",
            ])
            #expect(answer.output.contains("192.0.2.80"), "\(answer.output)\(answer.errorOutput)")
        }
    }
}
