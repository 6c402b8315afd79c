// ovs-ofctl against our switch and against Open vSwitch, side by side: the same
// commands on one bridge each with the same ports and flows, their answers compared.

import Foundation
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Open vSwitch (ovsdb-server and ovs-vswitchd, userspace `netdev` datapath) in a
/// namespace, its state in a directory of its own, bridge br0 with ports p1 and p2 and
/// a passive OpenFlow 1.0 listener at ptcp:6634. Stopped by its daemons' PIDs.
struct OpenVSwitchBridge {
    let space: TestNamespace
    let directory: String
    private var daemons: [BackgroundProcess] = []

    init(in space: TestNamespace) throws {
        self.space = space
        directory = "/tmp/oasis-ovs-sbs-\(getpid())"
        _ = try OasisTestSupport.run(["rm", "-rf", directory])
        mkdir(directory, 0o755)
        do {
            try run([
                "ovsdb-tool", "create", directory + "/conf.db",
                "/usr/share/openvswitch/vswitch.ovsschema",
            ])
            // In the foreground, as our children (no --detach: a detached daemon keeps
            // inherited descriptors open, and a pipe read to its end never ends).
            daemons.append(
                try BackgroundProcess(
                    environment + [
                        "ip", "netns", "exec", space.name, "ovsdb-server", directory + "/conf.db",
                        "--remote=punix:\(directory)/db.sock",
                        "--log-file=\(directory)/ovsdb-server.log",
                    ]))
            let deadline = Deadline(seconds: 10)
            while access(directory + "/db.sock", F_OK) != 0 {
                guard !deadline.hasPassed else {
                    throw CommandFailed(
                        command: ["ovsdb-server"],
                        result: CommandResult(
                            status: 1, output: "", errorOutput: "no db.sock after 10 s"))
                }
                usleep(20_000)
            }
            try vsctl(["--no-wait", "init"])
            daemons.append(
                try BackgroundProcess(
                    environment + [
                        "ip", "netns", "exec", space.name, "ovs-vswitchd",
                        "unix:\(directory)/db.sock", "--log-file=\(directory)/ovs-vswitchd.log",
                    ]))
            try vsctl([
                "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                "protocols=OpenFlow10", "fail-mode=secure",
                "other_config:datapath-id=0000000000000001",
            ])
            for index in 1...2 {
                try vsctl([
                    "add-port", "br0", "p\(index)", "--", "set", "interface", "p\(index)",
                    "ofport_request=\(index)",
                ])
            }
            try vsctl(["set-controller", "br0", "ptcp:6634:127.0.0.1"])
        } catch {
            stop()
            throw error
        }
    }

    private var environment: [String] {
        ["env", "OVS_RUNDIR=\(directory)", "OVS_DBDIR=\(directory)", "OVS_LOGDIR=\(directory)"]
    }

    private func run(_ arguments: [String]) throws {
        try OasisTestSupport.run(environment + ["ip", "netns", "exec", space.name] + arguments)
            .checked(arguments)
    }

    private func vsctl(_ arguments: [String]) throws {
        try run(["ovs-vsctl", "--db=unix:\(directory)/db.sock", "--timeout=10"] + arguments)
    }

    /// Kills both daemons (our children, by PID) and removes the directory.
    func stop() {
        for daemon in daemons.reversed() { daemon.stop() }
        _ = try? OasisTestSupport.run(["rm", "-rf", directory])
    }
}

extension CommandResult {
    fileprivate func checked(_ command: [String]) throws {
        guard status == 0 else { throw CommandFailed(command: command, result: self) }
    }
}

@Suite(.serialized) struct OVSSideBySideTests {
    /// Every command a user manages a bridge with, in order, against both switches.
    /// Those marked `exact` must answer line for line alike (in any order: a flow
    /// dump's order is the classifier's), once durations and xids are masked; the rest
    /// differ where the two switches differ by design, and are compared as written
    /// below.
    static let commands: [(command: String, exact: Bool)] = [
        ("add-flow in_port=1,actions=output:2", true),
        ("add-flow priority=100,in_port=2,actions=output:1", true),
        (
            "add-flow priority=200,cookie=0x5,idle_timeout=600,hard_timeout=900,tcp,"
                + "nw_src=10.0.0.0/8,tp_dst=80,actions=mod_nw_tos:16,output:2", true
        ),
        (
            "add-flow priority=300,udp,dl_vlan=5,dl_vlan_pcp=3,nw_dst=192.168.1.1,tp_src=53,"
                + "actions=strip_vlan,mod_dl_src:02:00:00:00:00:01,output:1", true
        ),
        ("add-flow priority=300,arp,arp_tpa=10.0.0.1,actions=flood", true),
        (
            "add-flow priority=400,icmp,icmp_type=8,actions=mod_nw_src:1.2.3.4,"
                + "mod_nw_dst:5.6.7.8,mod_tp_src:1,controller:64", true
        ),
        (
            "add-flow priority=10,dl_src=02:00:00:00:00:aa,dl_dst=ff:ff:ff:ff:ff:ff,actions=all",
            true
        ),
        ("add-flow priority=10,dl_type=0x88cc,actions=drop", true),
        (
            "add-flow priority=20,ip,nw_proto=47,nw_tos=32,actions=mod_vlan_vid:7,"
                + "mod_vlan_pcp:2,output:2", true
        ),
        ("add-flow priority=20,in_port=1,dl_vlan=0xffff,actions=normal,local", true),
        ("add-flow priority=1,ip,nw_src=10.1.2.3/24,actions=output:1", true),
        ("dump-flows", true),
        ("dump-aggregate", true),
        ("dump-flows tcp", true),
        ("mod-flows in_port=1,actions=output:1", true),
        ("dump-flows", true),
        ("mod-flows --strict priority=100,in_port=2,actions=drop", true),
        ("dump-flows", true),
        ("del-flows --strict priority=300,arp,arp_tpa=10.0.0.1", true),
        ("dump-flows", true),
        ("del-flows out_port=2", true),
        ("dump-flows", true),
        ("del-flows tcp", true),
        ("dump-flows", true),
        ("add-flow priority=5,tcp,tp_dst=22,actions=enqueue:1:0", true),
        ("add-flow priority=5,tcp,tp_dst=22,actions=output:2", true),
        ("dump-flows", true),
        ("dump-aggregate tcp", true),
        ("add-flow actions=output:99", true),
        ("dump-flows", true),
        ("del-flows", true),
        ("dump-flows", true),
        ("get-frags", true),
        ("set-frags drop", true),
        ("get-frags", true),
        ("set-frags normal", true),
        ("queue-stats", true),
        ("mod-port 2 noflood", true),
        ("mod-port 2 flood", true),
        ("mod-port 2 down", true),
        ("dump-ports 2", true),
        ("mod-port 2 up", true),
        ("dump-ports 1", true),
        ("dump-ports 2", true),
        ("dump-tables", false),
        ("dump-ports", true),
        ("show", false),
    ]

    static let ofctl = ["ovs-ofctl", "-O", "OpenFlow10", "-F", "openflow10"]

    /// The answer, durations and xids masked, its lines sorted.
    static func answer(_ space: TestNamespace, _ command: String) throws -> [String] {
        let words = command.split(separator: " ").map(String.init)
        let result = try space.run(
            Self.ofctl + [words[0], "tcp:127.0.0.1:6634"] + words.dropFirst())
        let text = result.output + result.errorOutput
        return text.split(separator: "\n").map { line in
            line.replacingOccurrences(
                of: #"duration=[0-9.]+s"#, with: "duration=X", options: .regularExpression
            ).replacingOccurrences(
                of: #"xid=0x[0-9a-f]+"#, with: "xid=X", options: .regularExpression)
        }.sorted()
    }

    @Test func ovsOfctlAnswersAsAgainstOpenVSwitch() throws {
        for tool in ["ovs-ofctl", "ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ovsdb-tool"]
        where !isInstalled(tool) {
            try skip(#function, "\(tool) is not installed (scripts/setup.sh installs it)")
        }
        guard access(oasisPath, X_OK) == 0 else { try skip(#function, "\(oasisPath) is not built") }
        try withTestNamespace(#function + "-ovs") { ovsSpace in
            try withTestNamespace(#function + "-oasis") { oasisSpace in
                // The same ports in both: p1 and p2, veths whose other ends stay idle.
                for space in [ovsSpace, oasisSpace] {
                    try space.runChecked(["ip", "link", "set", "lo", "up"])
                    for index in 1...2 {
                        try space.runChecked([
                            "ip", "link", "add", "p\(index)", "type", "veth", "peer", "name",
                            "h\(index)",
                        ])
                        try space.runChecked(["ip", "link", "set", "p\(index)", "up"])
                        try space.runChecked(["ip", "link", "set", "h\(index)", "up"])
                    }
                }
                let ovs = try OpenVSwitchBridge(in: ovsSpace)
                defer { ovs.stop() }
                let oasis = try BackgroundProcess([
                    "ip", "netns", "exec", oasisSpace.name, oasisPath, "openflow", "switch",
                    "--port", "pcap:p1", "--port", "pcap:p2", "--local", "tap:br0", "--listen",
                    "ptcp:6634",
                ])
                defer { oasis.stop() }
                for space in [ovsSpace, oasisSpace] {
                    let deadline = Deadline(seconds: 10)
                    while try space.run(Self.ofctl + ["show", "tcp:127.0.0.1:6634"]).status != 0 {
                        guard !deadline.hasPassed else {
                            Issue.record("\(space.name): no switch on ptcp:6634 after 10 s")
                            return
                        }
                        usleep(100_000)
                    }
                }
                var answers: [String: (ovs: [String], oasis: [String])] = [:]
                for (command, exact) in Self.commands {
                    let theirs = try Self.answer(ovsSpace, command)
                    let ours = try Self.answer(oasisSpace, command)
                    if exact {
                        #expect(ours == theirs, "\(command)")
                    } else {
                        answers[command] = (theirs, ours)
                    }
                    // PORT_MOD down and up take the kernel interface down and up, in both.
                    if command.hasPrefix("mod-port 2 down") || command.hasPrefix("mod-port 2 up") {
                        let wanted = command.hasSuffix("up")
                        for space in [ovsSpace, oasisSpace] {
                            let flags = try space.runChecked(["cat", "/sys/class/net/p2/flags"])
                                .output.trimmingCharacters(in: .whitespacesAndNewlines)
                            let up = (Int(flags.dropFirst(2), radix: 16) ?? 0) & 1 == 1
                            #expect(up == wanted, "\(space.name) after \(command): flags \(flags)")
                        }
                    }
                }
                // show: the same ports (LOCAL included), names, configuration and state,
                // and the same actions; ours has one table, 256 buffers, and cannot tell
                // the medium (OVS: COPPER, from ethtool). LOCAL: OVS leaves its bridge
                // interface down until the user sets it up and calls it 10 Gb/s; ours
                // brings its TAP up, and a TAP has no speed.
                let show = try #require(answers["show"])
                func ports(_ lines: [String]) -> [String] {
                    lines.filter {
                        $0.contains("(p1)") || $0.contains("(p2)") || $0.contains("LOCAL(br0)")
                            || $0.hasPrefix("actions:") || $0.contains("config:")
                            || $0.contains("state:") || $0.contains("speed:")
                    }.map {
                        $0.replacingOccurrences(
                            of: #"addr:[0-9a-f:]+"#, with: "addr:X", options: .regularExpression)
                    }
                }
                #expect(ports(show.oasis).count == ports(show.ovs).count, "\(show)")
                #expect(
                    Set(ports(show.oasis)).subtracting(ports(show.ovs))
                        == ["     speed: 0 Mbps now, 0 Mbps max"], "\(show)")
                #expect(
                    Set(ports(show.ovs)).subtracting(ports(show.oasis))
                        == ["     config:     PORT_DOWN", "     state:      LINK_DOWN"], "\(show)")
                #expect(
                    show.oasis.contains("     current:    10GB-FD")
                        && show.ovs.contains("     current:    10GB-FD COPPER"), "\(show)")
                // Each port's MAC is its interface's, as OVS reports it.
                for index in 1...2 {
                    let address = try oasisSpace.runChecked([
                        "cat", "/sys/class/net/p\(index)/address",
                    ]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                    #expect(show.oasis.contains(" \(index)(p\(index)): addr:\(address)"), "\(show)")
                }
                // dump-tables: both one active table 0 with no flows left; OVS lists 253
                // more ("ditto"), names the table by default and allows 1 000 000 flows.
                let tables = try #require(answers["dump-tables"])
                #expect(tables.oasis.contains("    active=0, lookup=0, matched=0"), "\(tables)")
                #expect(tables.ovs.contains("    active=0, lookup=0, matched=0"), "\(tables)")
            }
        }
    }
}
