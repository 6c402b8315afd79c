// A real Open vSwitch (ovs-vswitchd 3.1, userspace netdev datapath) in a network
// namespace the test creates, connecting to a controller socket the test opens inside
// that namespace. Every message the switch sends is decoded and re-encoded.

import Foundation
import Glibc
import OasisBits
import OasisTestSupport
import Testing

@testable import OasisOpenFlow

/// `setns(2)`, which Swift's Glibc module does not export.
private func enterNetworkNamespace(_ fd: Int32) -> Bool {
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "setns") else {
        return false
    }
    let setns = unsafeBitCast(symbol, to: SetNS.self)
    return setns(fd, 0x4000_0000) == 0  // CLONE_NEWNET
}

/// A TCP listener on 127.0.0.1:`port` inside network namespace `namespace`: the
/// calling thread enters the namespace only while the socket is made.
private func listenInNamespace(_ namespace: String, port: UInt16) -> Int32? {
    let original = open("/proc/thread-self/ns/net", O_RDONLY)
    let target = open("/var/run/netns/\(namespace)", O_RDONLY)
    defer {
        if original >= 0 { close(original) }
        if target >= 0 { close(target) }
    }
    guard original >= 0, target >= 0, enterNetworkNamespace(target) else { return nil }
    defer { _ = enterNetworkNamespace(original) }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var yes: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0, listen(fd, 4) == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// Whether `pid` has exited and waits for its parent (here: a slow-reaping PID 1).
private func isZombie(_ pid: pid_t) -> Bool {
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
}

/// Waits until `fd` is readable, for at most `milliseconds`.
private func waitReadable(_ fd: Int32, milliseconds: Int32) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, milliseconds) > 0
}

/// One controller connection: sends messages, collects and decodes what comes back.
private struct ControllerConnection {
    let fd: Int32
    var framer = MessageFramer()
    var received: [Message] = []
    var rawReceived: [[UInt8]] = []
    var undecodable: [(bytes: [UInt8], error: OpenFlowError)] = []

    func send(_ message: Message) throws {
        let bytes = try message.encoded().copyBytes()
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        #expect(written == bytes.count)
    }

    func sendRaw(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Reads until `done` holds for a received message or `seconds` pass; answers
    /// echo requests as a controller must.
    mutating func receive(until done: (Message) -> Bool, seconds: Double = 5) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            guard waitReadable(fd, milliseconds: 100) else { continue }
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return false }
            chunk.withUnsafeBytes {
                _ = framer.append(UnsafeRawBufferPointer(rebasing: $0.prefix(count)))
            }
            var finished = false
            while let bits = try framer.next() {
                let message: Message
                do {
                    message = try Message.decode(bits)
                } catch {
                    undecodable.append((bits.copyBytes(), error))
                    continue
                }
                rawReceived.append(bits.copyBytes())
                received.append(message)
                if case .echoRequest(let data) = message.body {
                    try send(Message(xid: message.xid, body: .echoReply(data)))
                }
                if done(message) { finished = true }
            }
            if finished { return true }
        }
        return false
    }
}

@Suite("A real Open vSwitch talking to us", .serialized)
struct OpenVSwitchTests {
    @Test func handshakeStatsFlowsAndErrors() throws {
        let ip = try requireTool("ip", root: true)
        let vswitchd = try requireTool("ovs-vswitchd")
        let ovsdb = try requireTool("ovsdb-server")
        let tool = try requireTool("ovsdb-tool")
        let vsctl = try requireTool("ovs-vsctl")
        guard FileManager.default.fileExists(atPath: "/usr/share/openvswitch/vswitch.ovsschema")
        else {
            try skip("handshakeStatsFlowsAndErrors", "the Open vSwitch schema is not installed")
        }
        let namespace = "oasis-of-\(getpid())"
        let folder = NSTemporaryDirectory() + namespace
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let environment = [
            "OVS_RUNDIR": folder, "OVS_DBDIR": folder, "OVS_LOGDIR": folder,
            "OVS_SYSCONFDIR": folder,
        ]
        let database = "unix:\(folder)/db.sock"
        try run(ip, ["netns", "add", namespace])
        defer {
            // Stop exactly the daemons this test started, by their pid files.
            let pids = ["ovs-vswitchd", "ovsdb-server"].compactMap { daemon -> pid_t? in
                let text = try? String(contentsOfFile: "\(folder)/\(daemon).pid", encoding: .utf8)
                return text.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            for pid in pids { kill(pid, SIGTERM) }
            for _ in 0..<20 where pids.contains(where: { kill($0, 0) == 0 && !isZombie($0) }) {
                usleep(50_000)
            }
            for pid in pids where kill(pid, 0) == 0 && !isZombie(pid) { kill(pid, SIGKILL) }
            _ = try? run(ip, ["netns", "del", namespace])
            try? FileManager.default.removeItem(atPath: folder)
        }
        try run(ip, ["netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
        let created = try run(
            tool, ["create", "\(folder)/conf.db", "/usr/share/openvswitch/vswitch.ovsschema"])
        #expect(created.status == 0, "\(created.error)")
        let server = try run(
            ip,
            [
                "netns", "exec", namespace, ovsdb, "\(folder)/conf.db",
                "--remote=punix:\(folder)/db.sock",
                "--pidfile=\(folder)/ovsdb-server.pid", "--detach",
                "--log-file=\(folder)/ovsdb-server.log",
            ], environment: environment, detach: true)
        #expect(server.status == 0, "\(server.error)")
        try run(vsctl, ["--db=\(database)", "--no-wait", "init"], environment: environment)
        let switchd = try run(
            ip,
            [
                "netns", "exec", namespace, vswitchd, database,
                "--pidfile=\(folder)/ovs-vswitchd.pid",
                "--detach", "--log-file=\(folder)/ovs-vswitchd.log",
            ], environment: environment, detach: true)
        #expect(switchd.status == 0, "\(switchd.error)")

        guard let listener = listenInNamespace(namespace, port: 6633) else {
            Issue.record("cannot listen on 127.0.0.1:6633 in \(namespace)")
            return
        }
        defer { close(listener) }
        let bridge = try run(
            vsctl,
            [
                "--db=\(database)", "--", "add-br", "br0", "--", "set", "bridge", "br0",
                "datapath_type=netdev",
                "protocols=OpenFlow10", "fail-mode=secure", "other-config:disable-in-band=true",
                "other-config:datapath-id=0000020000000001",
                "--", "add-port", "br0", "p1", "--", "set", "interface", "p1", "type=tap",
                "ofport_request=1",
                "--", "--id=@c", "create", "Controller", "target=\"tcp:127.0.0.1:6633\"",
                "max_backoff=1000",
                "--", "set", "bridge", "br0", "controller=[@c]",
            ], environment: environment)
        #expect(bridge.status == 0, "\(bridge.error)")

        guard waitReadable(listener, milliseconds: 5000) else {
            Issue.record("Open vSwitch did not connect")
            return
        }
        let fd = accept(listener, nil, nil)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var channel = ControllerConnection(fd: fd)

        // Handshake: the switch's HELLO, then ours and the requests a controller sends.
        #expect(try channel.receive(until: { $0.type == .hello }))
        try channel.send(Message(xid: 1, body: .hello()))
        try channel.send(Message(xid: 2, body: .featuresRequest))
        try channel.send(
            Message(xid: 3, body: .setConfig(SwitchConfig(flags: [], missSendLength: 128))))
        try channel.send(Message(xid: 4, body: .getConfigRequest))
        try channel.send(Message(xid: 5, body: .statsRequest(.description)))
        try channel.send(Message(xid: 6, body: .statsRequest(.table)))
        try channel.send(Message(xid: 7, body: .statsRequest(.port(.none))))
        let flow = FlowMod(
            match: sampleMatch, cookie: 0x42, command: .add, idleTimeout: 60, priority: 100,
            flags: [.sendFlowRemoved], actions: [.setVLANID(7), .output(port: PortNumber(1))])
        try channel.send(Message(xid: 8, body: .flowMod(flow)))
        try channel.send(Message(xid: 9, body: .statsRequest(.flow(FlowStatsRequest()))))
        try channel.send(Message(xid: 10, body: .statsRequest(.aggregate(FlowStatsRequest()))))
        try channel.send(
            Message(xid: 11, body: .statsRequest(.queue(port: .all, queueID: 0xffff_ffff))))
        try channel.send(Message(xid: 12, body: .queueGetConfigRequest(port: PortNumber(1))))
        try channel.send(Message(xid: 13, body: .echoRequest(Payload([9, 8, 7]))))
        try channel.send(Message(xid: 14, body: .flowMod(FlowMod(match: .any, command: .delete))))
        try channel.send(
            Message(
                xid: 15,
                body: .packetOut(
                    PacketOut(
                        inPort: .controller, actions: [.output(port: PortNumber(1))],
                        data: Payload(sampleFrame)))))
        try channel.send(Message(xid: 16, body: .barrierRequest))
        #expect(try channel.receive(until: { $0.xid == 16 && $0.type == .barrierReply }))

        // Bad input as OVS answers it.
        channel.sendRaw(hex("02 05 00 08 00 00 00 20"))  // FEATURES_REQUEST with version 2
        // A PACKET_OUT with an action of unknown type 12.
        channel.sendRaw(
            hex("01 0d 00 18 00 00 00 21 ff ff ff ff ff fd 00 08 00 0c 00 08 00 00 00 00"))
        var flowModBadCommand = try Message(
            xid: 0x22, body: .flowMod(FlowMod(match: .any, command: .add))
        ).encoded().copyBytes()
        flowModBadCommand[57] = 9
        channel.sendRaw(flowModBadCommand)
        channel.sendRaw(hex("01 10 00 0c 00 00 00 23 00 09 00 00"))  // unknown stats type
        try channel.send(Message(xid: 0x24, body: .barrierRequest))
        #expect(try channel.receive(until: { $0.xid == 0x24 && $0.type == .barrierReply }))

        // OVS sends FLOW_REMOVED asynchronously: not necessarily before a barrier reply.
        if !channel.received.contains(where: { $0.type == .flowRemoved }) {
            _ = try channel.receive(until: { $0.type == .flowRemoved }, seconds: 3)
        }

        func reply(_ xid: UInt32) -> MessageBody? {
            channel.received.first { $0.xid == xid && $0.type != .echoRequest }?.body
        }

        // Every message decoded; every one re-encodes to the bytes OVS sent.
        for (message, raw) in zip(channel.received, channel.rawReceived) {
            #expect(
                try message.encoded().copyBytes() == raw, "\(OpenFlowPrinter.describe(message))")
        }
        print(
            "Open vSwitch sent \(channel.received.count) messages: "
                + Set(channel.received.map { "\($0.type)" }).sorted().joined(separator: ", "))

        guard case .featuresReply(let features) = reply(2) else {
            Issue.record("no FEATURES_REPLY: \(String(describing: reply(2)))")
            return
        }
        #expect(features.datapathID == 0x0200_0000_0001)
        #expect(
            features.ports.contains {
                $0.portNumber == PortNumber(1) && $0.name.description == "p1"
            })
        #expect(features.ports.contains { $0.portNumber == .local && $0.name.description == "br0" })
        #expect(reply(4) == .getConfigReply(SwitchConfig(flags: [], missSendLength: 128)))
        if case .statsReply(.description(let description), _) = reply(5) {
            #expect(description.manufacturer.description == "Nicira, Inc.")
            #expect(
                description.datapath.description.contains("br0")
                    || !description.datapath.bytes.isEmpty)
        } else {
            Issue.record("no DESC stats reply: \(String(describing: reply(5)))")
        }
        if case .statsReply(.table(let tables), _) = reply(6) {
            #expect(!tables.isEmpty)
        } else {
            Issue.record("no TABLE stats reply")
        }
        if case .statsReply(.port(let ports), _) = reply(7) {
            #expect(ports.contains { $0.portNumber == PortNumber(1) })
        } else {
            Issue.record("no PORT stats reply")
        }
        if case .statsReply(.flow(let flows), _) = reply(9) {
            #expect(flows.count == 1)
            if let installed = flows.first {
                #expect(
                    installed.cookie == 0x42 && installed.priority == 100
                        && installed.idleTimeout == 60)
                #expect(installed.actions == flow.actions)
                #expect(
                    installed.match.isStrictlyEqual(to: flow.match),
                    "\(OpenFlowPrinter.describe(match: installed.match))")
            }
        } else {
            Issue.record("no FLOW stats reply: \(String(describing: reply(9)))")
        }
        if case .statsReply(.aggregate(let aggregate), _) = reply(10) {
            #expect(aggregate.flowCount == 1)
        } else {
            Issue.record("no AGGREGATE stats reply")
        }
        #expect(reply(11) != nil)
        #expect(reply(12) != nil)
        #expect(reply(13) == .echoReply(Payload([9, 8, 7])))
        // The flow had SEND_FLOW_REM: the DELETE (xid 14) brings a FLOW_REMOVED.
        let removed = channel.received.compactMap { message -> FlowRemoved? in
            if case .flowRemoved(let removed) = message.body { return removed }
            return nil
        }
        #expect(
            removed.count == 1 && removed.first?.reason == .delete && removed.first?.cookie == 0x42,
            "\(channel.received.map { "\($0.xid):\($0.type)" })")

        func errorKind(_ xid: UInt32) -> ErrorKind? {
            if case .error(let error) = reply(xid) { return error.kind }
            return nil
        }
        // OVS answers a version-2 request in version 2 (the header of its OFPT_ERROR
        // says 0x02), which an OpenFlow 1.0 decoder rejects; its body says
        // OFPET_BAD_REQUEST/OFPBRC_BAD_VERSION.
        let versionError = channel.undecodable.first {
            $0.bytes.count >= 12 && $0.bytes[4...7] == [0, 0, 0, 0x20]
        }
        #expect(versionError?.error == .badVersion(2, type: 1))
        #expect(versionError.map { Array($0.bytes[8..<12]) } == [0, 1, 0, 0])
        #expect(channel.undecodable.count == 1)
        #expect(errorKind(0x21) == .badAction(.badType))
        #expect(errorKind(0x22) == .flowModFailed(.badCommand))
        #expect(errorKind(0x23) == .badRequest(.badStat))
        // Our decoder gives the same verdicts on the same bytes.
        #expect(throws: OpenFlowError.badVersion(2, type: 5)) {
            try Message.decode(Bits(hex("02 05 00 08 00 00 00 20")))
        }
        print(
            "OVS errors: "
                + (0x20...0x23).map { "\(String(describing: errorKind(UInt32($0))))" }.joined(
                    separator: "; "))
    }
}
