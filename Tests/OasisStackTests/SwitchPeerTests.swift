// `oasis openflow switch` against real peers: ovs-ofctl through its passive listener,
// ovs-testcontroller as its controller, the kernel's hosts in namespaces on its TAP
// ports, tshark reading the OpenFlow session.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `oasis openflow switch` in the namespace `switchSpace` with a port per host: a TAP
/// (moved to the host's namespace once the switch made it), a veth whose switch end
/// the switch reads by pcap or AF_XDP, or a Xen netfront (vif 0) whose backend is
/// xen/netback-sim's TAP `vif1.0` (started by the caller in `switchSpace`, its socket
/// in the arguments as `--xen-sim`); host N at 10.0.0.N/24 in its own namespace.
final class RunningSwitch {
    enum PortKind: String { case tap, pcap, xdp, xen }

    let process = Process()
    let output = Pipe()
    let switchSpace: TestNamespace
    var hosts: [TestNamespace] = []

    convenience init(_ switchSpace: TestNamespace, hosts count: Int, arguments: [String]) throws {
        try self.init(
            switchSpace, ports: Array(repeating: .tap, count: count), arguments: arguments)
    }

    init(_ switchSpace: TestNamespace, ports kinds: [PortKind], arguments: [String]) throws {
        self.switchSpace = switchSpace
        do {
            for (offset, kind) in kinds.enumerated() {
                let index = offset + 1
                let host = try TestNamespace.create()
                hosts.append(host)
                try host.disableIPv6()
                guard kind != .tap else { continue }
                if kind == .xen {
                    try switchSpace.runChecked(["ip", "link", "set", "vif1.0", "netns", host.name])
                    try host.runChecked([
                        "ip", "addr", "add", "10.0.0.\(index)/24", "dev", "vif1.0",
                    ])
                    try host.runChecked(["ip", "link", "set", "vif1.0", "up"])
                    continue
                }
                // The switch's end p<N>, the host's h<N>; the host's checksums whole, as
                // a wire carries them (a raw read sees what the veth was given).
                try switchSpace.runChecked([
                    "ip", "link", "add", "p\(index)", "type", "veth", "peer", "name", "h\(index)",
                ])
                try switchSpace.runChecked(["ip", "link", "set", "h\(index)", "netns", host.name])
                try switchSpace.runChecked(["ip", "link", "set", "p\(index)", "up"])
                try host.runChecked(["ethtool", "-K", "h\(index)", "tx", "off"])
                try host.runChecked(["ip", "addr", "add", "10.0.0.\(index)/24", "dev", "h\(index)"])
                try host.runChecked(["ip", "link", "set", "h\(index)", "up"])
            }
            let ports = kinds.enumerated().flatMap {
                ["--port", $1 == .xen ? "xen:0" : "\($1.rawValue):p\($0 + 1)"]
            }
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments =
                ["ip", "netns", "exec", switchSpace.name, oasisPath, "openflow", "switch"] + ports
                + arguments
            process.standardOutput = output
            process.standardError = output
            try process.run()
            for (offset, kind) in kinds.enumerated() where kind == .tap {
                let index = offset + 1
                let host = hosts[offset]
                let deadline = Deadline(seconds: 10)
                while try switchSpace.run(["ip", "link", "show", "p\(index)"]).status != 0 {
                    guard !deadline.hasPassed, process.isRunning else {
                        throw CommandFailed(
                            command: ["ip", "link", "show", "p\(index)"],
                            result: CommandResult(status: 1, output: "", errorOutput: stop()))
                    }
                    usleep(20_000)
                }
                try switchSpace.runChecked(["ip", "link", "set", "p\(index)", "netns", host.name])
                try host.runChecked(["ip", "addr", "add", "10.0.0.\(index)/24", "dev", "p\(index)"])
                try host.runChecked(["ip", "link", "set", "p\(index)", "up"])
            }
        } catch {
            _ = stop()
            throw error
        }
    }

    /// Stops the switch (SIGTERM, waited for), removes the host namespaces, and returns
    /// what it printed.
    func stop() -> String {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        if process.processIdentifier != 0 { process.waitUntilExit() }
        for host in hosts { host.remove() }
        hosts = []
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Whether a ping from host `from` to `to` passes within `seconds` (the path may
    /// wait for a controller to connect, or a port to come up).
    func pingsWithin(_ seconds: Double, from: Int, to: Int) throws -> Bool {
        let deadline = Deadline(seconds: seconds)
        while !deadline.hasPassed {
            if try ping(from: from, to: to, count: 1) { return true }
        }
        return false
    }

    /// Whether host `from` (1-based) reaches 10.0.0.`to` by ping.
    func ping(from: Int, to: Int, count: Int = 2) throws -> Bool {
        try hosts[from - 1].run([
            "ping", "-c", "\(count)", "-i", "0.2", "-W", "1", "10.0.0.\(to)",
        ]).status == 0
    }

    /// 4 MiB of random bytes over TCP from host `from` to host `to` (1-based, the
    /// kernel's sockets on both ends): whether the receiver's count and SHA-256 equal
    /// the sender's, and what the client printed.
    func transferIntact(from: Int, to: Int) throws -> (intact: Bool, said: String) {
        let server = try BackgroundProcess([
            "ip", "netns", "exec", hosts[to - 1].name, "python3", "-c",
            """
            import socket, hashlib
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('10.0.0.\(to)', 5001)); s.listen(1); c, _ = s.accept(); h = hashlib.sha256(); n = 0
            while True:
                b = c.recv(1 << 16)
                if not b: break
                h.update(b); n += len(b)
            c.sendall(('%d %s' % (n, h.hexdigest())).encode()); c.close()
            """,
        ])
        defer { server.stop() }
        // Until it listens (python's start is slow on a loaded machine: a fixed pause
        // lost the race once, and the client was refused).
        let deadline = Deadline(seconds: 15)
        while !deadline.hasPassed,
            !(try hosts[to - 1].run(["ss", "-ltnH", "sport = :5001"])).output.contains("5001")
        {
            usleep(50_000)
        }
        let client = try hosts[from - 1].run([
            "python3", "-c",
            """
            import socket, hashlib, os
            data = os.urandom(4 << 20)
            s = socket.create_connection(('10.0.0.\(to)', 5001), timeout=60)
            s.sendall(data); s.shutdown(socket.SHUT_WR)
            reply = b''
            while True:
                b = s.recv(200)
                if not b: break
                reply += b
            print(reply.decode() == '%d %s' % (len(data), hashlib.sha256(data).hexdigest()))
            """,
        ])
        return (client.output.contains("True"), client.output + client.errorOutput)
    }
}

@Suite(.serialized) struct SwitchPeerTests {
    static let ofctl = ["ovs-ofctl", "-O", "OpenFlow10", "-F", "openflow10"]

    func requirements(_ test: String, _ tools: [String]) throws {
        guard access(oasisPath, X_OK) == 0 else { try skip(test, "\(oasisPath) is not built") }
        for tool in tools where !isInstalled(tool) {
            try skip(test, "\(tool) is not installed (scripts/setup.sh installs it)")
        }
    }

    /// ovs-ofctl through the passive listener: it reads the features and ports, adds
    /// flows that carry the hosts' pings, reads their counters and the ports', deletes
    /// them (and the pings stop), reads the table's statistics.
    @Test func ovsOfctlManagesTheSwitchThroughItsListener() throws {
        try requirements(#function, ["ovs-ofctl", "ping"])
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            let running = try RunningSwitch(space, hosts: 2, arguments: ["--listen", "ptcp:6634"])
            var log = ""
            defer {
                log = running.stop()
                print("oasis said:\n\(log)")
            }
            let target = "tcp:127.0.0.1:6634"
            var show = try space.run(Self.ofctl + ["show", target])
            let deadline = Deadline(seconds: 5)
            while show.status != 0 && !deadline.hasPassed {
                usleep(50_000)
                show = try space.run(Self.ofctl + ["show", target])
            }
            #expect(show.output.contains("dpid:0000000000000001"), "\(show)")
            #expect(
                show.output.contains("1(p1)") && show.output.contains("2(p2)"), "\(show.output)")
            // The TAPs now live in the hosts' namespaces, up: not LINK_DOWN (their flags
            // cannot be read from here by name).
            #expect(!show.output.contains("LINK_DOWN"), "\(show.output)")
            #expect(!(try running.ping(from: 1, to: 2, count: 1)), "no flows, no path")
            try space.runChecked(Self.ofctl + ["add-flow", target, "in_port=1,actions=output:2"])
            try space.runChecked(Self.ofctl + ["add-flow", target, "in_port=2,actions=output:1"])
            #expect(try running.ping(from: 1, to: 2, count: 3))
            let flows = try space.runChecked(Self.ofctl + ["dump-flows", target]).output
            #expect(
                flows.contains("in_port=1 actions=output:2")
                    && flows.contains("in_port=2 actions=output:1"), "\(flows)")
            #expect(!flows.contains("n_packets=0,"), "\(flows)")
            let ports = try space.runChecked(Self.ofctl + ["dump-ports", target]).output
            #expect(ports.contains("2 ports") && ports.contains("port  1: rx pkts="), "\(ports)")
            try space.runChecked(Self.ofctl + ["del-flows", target])
            #expect(!(try running.ping(from: 1, to: 2, count: 1)))
            // 3 000 flows: installed at once, and dumped in several replies (one reply
            // holds 682 such flows in its 64 KiB), then deleted.
            let file = "/tmp/oasis-flows-\(getpid())"
            defer { unlink(file) }
            try (0..<3000).map { "tcp,tp_dst=\($0 + 1),actions=output:2" }.joined(separator: "\n")
                .write(toFile: file, atomically: true, encoding: .utf8)
            try space.runChecked(Self.ofctl + ["add-flows", target, file])
            let many = try space.runChecked(Self.ofctl + ["dump-flows", target]).output
            #expect(
                many.split(separator: "\n").filter { $0.contains("actions=output:2") }.count == 3000
            )
            try space.runChecked(Self.ofctl + ["del-flows", target])
            let tables = try space.runChecked(Self.ofctl + ["dump-tables", target]).output
            #expect(tables.contains("active=0"), "\(tables)")
            // A PORT_MOD: port 2 down; a flow to it then carries nothing.
            try space.runChecked(Self.ofctl + ["add-flow", target, "actions=flood"])
            #expect(try running.ping(from: 1, to: 2, count: 1))
            try space.runChecked(Self.ofctl + ["mod-port", target, "2", "down"])
            #expect(!(try running.ping(from: 1, to: 2, count: 1)))
            let shown = try space.runChecked(Self.ofctl + ["show", target]).output
            #expect(shown.contains("PORT_DOWN"), "\(shown)")
        }
    }

    /// ovs-testcontroller (a learning switch) drives the switch: every host pings every
    /// other; the controller killed, the switch goes fail-secure (its flows removed,
    /// nothing passes); the controller back, the switch reconnects by itself and the
    /// pings pass again. tshark reads the whole OpenFlow session: nothing malformed.
    @Test func ovsTestcontrollerDrivesTheSwitchAcrossARestart() throws {
        try requirements(#function, ["ovs-testcontroller", "ping", "tcpdump"])
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            let rundir = "/tmp/oasis-ovs-\(getpid())"
            let capture = "/tmp/oasis-switch-\(getpid()).pcap"
            mkdir(rundir, 0o755)
            defer {
                unlink(capture)
                _ = try? OasisTestSupport.run(["rm", "-rf", rundir])
            }
            let dump = try BackgroundProcess(
                [
                    "ip", "netns", "exec", space.name, "tcpdump", "-i", "lo", "-U", "-w", capture,
                    "tcp", "port", "6653",
                ])
            defer { dump.stop() }  // on every path (stopping twice is harmless)
            var controller = try BackgroundProcess(
                [
                    "env", "OVS_RUNDIR=\(rundir)", "ip", "netns", "exec", space.name,
                    "ovs-testcontroller", "-O", "OpenFlow10", "ptcp:6653:127.0.0.1",
                ])
            usleep(300_000)
            let running = try RunningSwitch(
                space, hosts: 3, arguments: ["--controller", "tcp:127.0.0.1:6653"])
            var log = ""
            defer {
                log = running.stop()
                controller.stop()
                print("oasis said:\n\(log)")
            }
            for (from, to) in [(1, 2), (1, 3), (2, 3), (3, 1)] {
                #expect(try running.ping(from: from, to: to), "\(from) → \(to)")
            }
            controller.stop()
            usleep(500_000)
            #expect(!(try running.ping(from: 1, to: 2, count: 1)), "fail-secure: nothing passes")
            controller = try BackgroundProcess(
                [
                    "env", "OVS_RUNDIR=\(rundir)", "ip", "netns", "exec", space.name,
                    "ovs-testcontroller", "-O", "OpenFlow10", "ptcp:6653:127.0.0.1",
                ])
            let back = try running.pingsWithin(15, from: 2, to: 1)
            #expect(back, "the switch reconnected and the controller's flows carry the pings")
            dump.stop()
            if isInstalled("tshark") {
                let bad = try OasisTestSupport.run([
                    "tshark", "-r", capture, "-d", "tcp.port==6653,openflow", "-Y",
                    "_ws.malformed || _ws.expert.severity == error",
                ])
                #expect(bad.output.isEmpty, "\(bad.output.prefix(2000))")
                let messages = try OasisTestSupport.run([
                    "tshark", "-r", capture, "-d", "tcp.port==6653,openflow", "-Y", "openflow_v1",
                ])
                #expect(
                    messages.output.contains("OFPT_PACKET_IN")
                        && messages.output.contains("OFPT_FLOW_MOD"),
                    "\(messages.output.prefix(2000))")
            }
        }
    }

    /// Ports of three kinds at once (a TAP, a veth read by pcap, a veth on AF_XDP), driven
    /// by ovs-testcontroller: every host pings every other, and 4 MiB over TCP from the
    /// TAP host to the AF_XDP host arrive intact (SHA-256 on both ends).
    @Test func mixedPortsCarryPingsAndATCPTransfer() throws {
        try requirements(#function, ["ovs-testcontroller", "ping", "python3", "ethtool"])
        if let reason = xdpUnavailableReason { try skip(#function, reason) }
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            let rundir = "/tmp/oasis-ovs-mixed-\(getpid())"
            mkdir(rundir, 0o755)
            defer { _ = try? OasisTestSupport.run(["rm", "-rf", rundir]) }
            let controller = try BackgroundProcess([
                "env", "OVS_RUNDIR=\(rundir)", "ip", "netns", "exec", space.name,
                "ovs-testcontroller", "-O", "OpenFlow10", "ptcp:6653:127.0.0.1",
            ])
            usleep(300_000)
            let running = try RunningSwitch(
                space, ports: [.tap, .pcap, .xdp],
                arguments: ["--controller", "tcp:127.0.0.1:6653"])
            defer {
                print("oasis said:\n\(running.stop())")
                controller.stop()
            }
            for (from, to) in [(1, 2), (1, 3), (2, 3), (3, 1), (2, 1), (3, 2)] {
                #expect(try running.ping(from: from, to: to), "\(from) → \(to)")
            }
            let transfer = try running.transferIntact(from: 1, to: 3)
            #expect(transfer.intact, "\(transfer.said)")
        }
    }

    /// os-ken (PyPI; a Python controller many users pick) driving our switch with the
    /// shape of its simple_switch (bench/peers/osken_simple_switch.py: a FLOW_MOD and a
    /// PACKET_OUT per PACKET_IN, flows that ask for FLOW_REMOVED): hosts on a TAP and on
    /// a veth read by pcap ping one another and 4 MiB over TCP arrive intact.
    @Test func osKenDrivesTheSwitch() throws {
        try requirements(#function, ["ping", "python3", "ethtool"])
        let python =
            ProcessInfo.processInfo.environment["OSKEN_PYTHON"]
            ?? "/opt/oasis-peers/osken/bin/python"
        guard (try? OasisTestSupport.run([python, "-c", "import os_ken"]))?.status == 0 else {
            try skip(
                #function, "os-ken is not importable by \(python) (scripts/setup.sh installs it)")
        }
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            let controller = try BackgroundProcess([
                "ip", "netns", "exec", space.name, python,
                repositoryRoot + "/bench/peers/osken_simple_switch.py", "6653",
            ])
            // os-ken takes a while to import; the switch dials with backoff until it listens.
            let running = try RunningSwitch(
                space, ports: [.tap, .pcap, .tap],
                arguments: ["--controller", "tcp:127.0.0.1:6653"])
            var log = ""
            defer {
                if log.isEmpty { log = running.stop() }
                controller.stop()
                print("oasis said:\n\(log)")
            }
            let first = try running.pingsWithin(20, from: 1, to: 2)
            #expect(first, "no ping passed within 20 s of os-ken starting")
            for (from, to) in [(1, 2), (1, 3), (2, 3), (3, 1), (2, 1), (3, 2)] {
                #expect(try running.ping(from: from, to: to), "\(from) → \(to)")
            }
            let transfer = try running.transferIntact(from: 2, to: 3)
            #expect(transfer.intact, "\(transfer.said)")
            log = running.stop()
            #expect(log.contains("controller 127.0.0.1:6653 connected"), "\(log)")
        }
    }

    /// Our own controller's learning switch driving our switch: every host pings every
    /// other, 4 MiB over TCP arrive intact, and the controller installed the flows
    /// (the switch's own counters say so).
    @Test func ourControllerDrivesOurSwitch() throws {
        try requirements(#function, ["ping", "python3"])
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            let controller = try BackgroundProcess([
                "ip", "netns", "exec", space.name, oasisPath, "openflow", "controller", "--listen",
                "127.0.0.1:6653", "--app", "learning",
            ])
            usleep(300_000)
            let running = try RunningSwitch(
                space, hosts: 3, arguments: ["--controller", "tcp:127.0.0.1:6653"])
            var log = ""
            defer {
                if log.isEmpty { log = running.stop() }
                controller.stop()
                print("oasis said:\n\(log)")
            }
            for (from, to) in [(1, 2), (1, 3), (2, 3), (3, 1), (2, 1), (3, 2)] {
                #expect(try running.ping(from: from, to: to), "\(from) → \(to)")
            }
            let transfer = try running.transferIntact(from: 1, to: 2)
            #expect(transfer.intact, "\(transfer.said)")
            log = running.stop()
            // Most frames went by flows the controller installed, not by PACKET_IN.
            #expect(log.contains("controller 127.0.0.1:6653 connected"), "\(log)")
            if let line = log.split(separator: "\n").first(where: { $0.contains("oasis: switch:") }
            ),
                let matched = line.split(separator: "(matched ").last?.split(separator: ",").first,
                let count = Int(matched)
            {
                #expect(count > 1000, "\(line)")
            } else {
                Issue.record("no switch summary in \(log)")
            }
        }
    }

    /// A Xen netfront as a port (`--port xen:0`), its backend xen/netback-sim (Xen's own
    /// ring macros) bridged to a host's TAP, beside a TAP port: fail-standalone learns
    /// both hosts, pings pass both ways and 4 MiB over TCP arrive intact through the rings.
    @Test func aXenNetfrontIsAPort() throws {
        try requirements(#function, ["ping", "python3"])
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            let simulator = try RunningNetbackSimulator(["--tap", "vif1.0"], namespace: space.name)
            var said = ""
            defer { print("netback-sim said:\n\(said.isEmpty ? simulator.stop() : said)") }
            let running = try RunningSwitch(
                space, ports: [.xen, .tap],
                arguments: ["--xen-sim", simulator.socketPath, "--fail-mode", "standalone"])
            var log = ""
            defer {
                if log.isEmpty { log = running.stop() }
                print("oasis said:\n\(log)")
            }
            let first = try running.pingsWithin(10, from: 1, to: 2)
            #expect(first, "no ping through the netfront port within 10 s")
            #expect(try running.ping(from: 2, to: 1, count: 3))
            let transfer = try running.transferIntact(from: 1, to: 2)
            #expect(transfer.intact, "\(transfer.said)")
            log = running.stop()
            said = simulator.stop()
            #expect(log.contains("vif0 connected to backend"), "\(log)")
        }
    }

    /// The channel on the Oasis stack's own TCP (`--channel tap`): the switch reaches
    /// ovs-testcontroller at 192.0.2.1 through a TAP of its own, and the controller's
    /// flows carry the hosts' pings.
    @Test func theChannelRunsOnTheOasisStacksTCP() throws {
        try requirements(#function, ["ovs-testcontroller", "ping"])
        try withTestNamespace(#function) { space in
            try space.runChecked(["ip", "link", "set", "lo", "up"])
            try space.runChecked(["ip", "tuntap", "add", "dev", "ctl0", "mode", "tap"])
            try space.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "ctl0"])
            try space.runChecked(["ip", "link", "set", "ctl0", "up"])
            let rundir = "/tmp/oasis-ovs-stack-\(getpid())"
            mkdir(rundir, 0o755)
            defer { _ = try? OasisTestSupport.run(["rm", "-rf", rundir]) }
            let controller = try BackgroundProcess([
                "env", "OVS_RUNDIR=\(rundir)", "ip", "netns", "exec", space.name,
                "ovs-testcontroller", "-O", "OpenFlow10", "ptcp:6653:192.0.2.1",
            ])
            defer { controller.stop() }
            usleep(300_000)
            let running = try RunningSwitch(
                space, hosts: 3,
                arguments: [
                    "--channel", "tap", "--tap", "ctl0", "--ip", "192.0.2.2/24",
                    "--controller", "tcp:192.0.2.1:6653",
                ])
            var log = ""
            defer {
                if log.isEmpty { log = running.stop() }
                print("oasis said:\n\(log)")
            }
            let first = try running.pingsWithin(15, from: 1, to: 2)
            #expect(first, "no ping within 15 s: the channel did not come up")
            for (from, to) in [(1, 3), (2, 3), (3, 1)] {
                #expect(try running.ping(from: from, to: to), "\(from) → \(to)")
            }
            log = running.stop()
            #expect(log.contains("channel on the Oasis stack at 192.0.2.2/24 on ctl0"), "\(log)")
            #expect(log.contains("controller 192.0.2.1:6653 connected"), "\(log)")
        }
    }

    /// With no controller and fail-standalone, the switch is a learning switch.
    @Test func failStandaloneIsALearningSwitch() throws {
        try requirements(#function, ["ping"])
        try withTestNamespace(#function) { space in
            let running = try RunningSwitch(
                space, hosts: 3, arguments: ["--fail-mode", "standalone"])
            defer { print("oasis said:\n\(running.stop())") }
            #expect(try running.ping(from: 1, to: 3))
            #expect(try running.ping(from: 2, to: 1))
        }
    }

    /// The LOCAL port (`--local tap:br0`) is the host's way onto the bridge, as Open
    /// vSwitch's bridge interface: the learning switch floods to it and learns it, so a
    /// host behind port 1 pings an address on br0.
    @Test func theLocalPortIsTheHostsInterface() throws {
        try requirements(#function, ["ping"])
        try withTestNamespace(#function) { space in
            let running = try RunningSwitch(
                space, hosts: 2, arguments: ["--fail-mode", "standalone", "--local", "tap:br0"])
            defer { print("oasis said:\n\(running.stop())") }
            let deadline = Deadline(seconds: 10)
            while try space.run(["ip", "link", "show", "br0"]).status != 0 {
                guard !deadline.hasPassed else {
                    Issue.record("no br0 after 10 s")
                    return
                }
                usleep(20_000)
            }
            try space.runChecked(["ip", "addr", "add", "10.0.0.254/24", "dev", "br0"])
            try space.runChecked(["ip", "link", "set", "br0", "up"])
            #expect(try running.pingsWithin(5, from: 1, to: 254))
            #expect(try running.ping(from: 2, to: 1))
        }
    }
}

/// A process run in the background and stopped with SIGTERM.
struct BackgroundProcess {
    let process = Process()

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// SIGKILL: a child of the test runner may inherit SIGTERM blocked (tcpdump and
    /// ovs-testcontroller then never stop); tcpdump's -U has every packet written.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
