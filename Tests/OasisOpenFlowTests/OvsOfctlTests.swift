// ovs-ofctl talking to a passive listener of ours on loopback, as it talks to a
// switch: we answer as a switch would, decode every message it sends, and ovs-ofctl
// must understand every reply we encode (it exits non-zero when it does not).

import Foundation
import Glibc
import OasisBits
import OasisWire
import Synchronization
import Testing

@testable import OasisOpenFlow

/// A one-thread "switch" on 127.0.0.1: accepts connections one after another, says
/// HELLO, answers features, config, stats and barriers, and records what it decoded.
private final class PassiveSwitch: @unchecked Sendable {
    let listener: Int32
    let port: UInt16
    /// Every message received, as bytes (decoded again by the test's thread).
    private let state = Mutex<[[UInt8]]>([])
    private let stopped = Atomic<Bool>(false)

    var receivedBytes: [[UInt8]] { state.withLock { $0 } }

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 8) == 0
                    && getsockname(listener, $0, &length) == 0
            }
        }
        guard listener >= 0, bound else { throw POSIXError(.EADDRNOTAVAIL) }
        self.listener = listener
        port = UInt16(bigEndian: address.sin_port)
        Thread { [self] in serve() }.start()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve() {
        while !stopped.load(ordering: .relaxed) {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            handle(connection)
            close(connection)
        }
    }

    private func send(_ message: Message, on fd: Int32) {
        guard let bytes = try? message.encoded().copyBytes() else { return }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    private func handle(_ fd: Int32) {
        send(Message(xid: 1, body: .hello()), on: fd)
        var framer = MessageFramer()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 5000) > 0 else { return }
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            chunk.withUnsafeBytes {
                _ = framer.append(UnsafeRawBufferPointer(rebasing: $0.prefix(count)))
            }
            while let bits = try? framer.next() {
                let bytes = bits.copyBytes()
                state.withLock { $0.append(bytes) }
                guard let message = try? Message.decode(bits) else { continue }
                if let reply = Self.reply(to: message.body) {
                    send(Message(xid: message.xid, body: reply), on: fd)
                }
            }
        }
    }

    static let port1 = PhysicalPort(
        portNumber: PortNumber(1), hardwareAddress: MACAddress(rawValue: 0x0200_0000_0011),
        name: "p1", config: [], state: [], current: [.full1Gb, .copper], advertised: [],
        supported: [.full1Gb], peer: [])

    static func reply(to body: MessageBody) -> MessageBody? {
        switch body {
        case .echoRequest(let data): return .echoReply(data)
        case .featuresRequest:
            return .featuresReply(
                SwitchFeatures(
                    datapathID: 0x0000_0200_0000_0042, bufferCount: 256, tableCount: 1,
                    capabilities: [.flowStats, .tableStats, .portStats], actions: .all,
                    ports: [port1]))
        case .getConfigRequest:
            return .getConfigReply(SwitchConfig(flags: .fragmentNormal, missSendLength: 128))
        case .barrierRequest: return .barrierReply
        case .statsRequest(.description, _):
            return .statsReply(
                .description(
                    DescriptionStats(
                        manufacturer: "Oasis", hardware: "test", software: "0.1", serialNumber: "1",
                        datapath: "ofctl-test")))
        case .statsRequest(.table, _):
            return .statsReply(
                .table([
                    TableStats(
                        tableID: 0, name: "classifier", wildcards: .all, maxEntries: 1000,
                        activeCount: 1, lookupCount: 10, matchedCount: 9)
                ]))
        case .statsRequest(.flow(let request), _):
            return .statsReply(
                .flow([
                    FlowStats(
                        tableID: 0, match: request.match, durationSeconds: 3,
                        durationNanoseconds: 0,
                        priority: 100, idleTimeout: 0, hardTimeout: 0, cookie: 0x99, packetCount: 7,
                        byteCount: 420, actions: [.output(port: PortNumber(1))])
                ]))
        case .statsRequest(.port(let number), _):
            var stats = PortStats(portNumber: number == .none ? PortNumber(1) : number)
            stats.rxPackets = 5
            return .statsReply(.port([stats]))
        default: return nil
        }
    }
}

@Suite("ovs-ofctl talking to our passive listener", .serialized)
struct OvsOfctlTests {
    @Test func ofctlCommandsDecodeAndOurRepliesAreUnderstood() throws {
        let ofctl = try requireTool("ovs-ofctl")
        let peer = try PassiveSwitch()
        defer { peer.stop() }
        let target = "tcp:127.0.0.1:\(peer.port)"
        let options = ["-O", "OpenFlow10", "-F", "openflow10"]

        let show = try run(ofctl, options + ["show", target])
        #expect(show.status == 0, "\(show.output) \(show.error)")
        #expect(show.output.contains("dpid:0000020000000042"), "\(show.output)")
        #expect(show.output.contains("1(p1): addr:02:00:00:00:00:11"), "\(show.output)")

        let add = try run(
            ofctl,
            options + ["add-flow", target, "priority=100,ip,nw_dst=192.0.2.2,actions=output:2"])
        #expect(add.status == 0, "\(add.output) \(add.error)")

        let dump = try run(ofctl, options + ["dump-flows", target])
        #expect(dump.status == 0, "\(dump.output) \(dump.error)")
        #expect(dump.output.contains("n_packets=7, n_bytes=420"), "\(dump.output)")
        #expect(dump.output.contains("actions=output:1"), "\(dump.output)")

        let tables = try run(ofctl, options + ["dump-tables", target])
        #expect(tables.status == 0, "\(tables.output) \(tables.error)")

        var received: [Message] = []
        for bytes in peer.receivedBytes {
            do {
                received.append(try Message.decode(Bits(bytes)))
            } catch {
                Issue.record("undecodable from ovs-ofctl: \(bytes): \(error)")
            }
        }
        #expect(received.count >= 8)
        let flowMods = received.compactMap { message -> FlowMod? in
            if case .flowMod(let flowMod) = message.body { return flowMod }
            return nil
        }
        #expect(flowMods.count == 1)
        if let flowMod = flowMods.first {
            #expect(flowMod.command == .add)
            #expect(flowMod.priority == 100)
            #expect(flowMod.match.dlType == 0x0800)
            #expect(flowMod.match.nwDst == 0xc000_0202)
            #expect(flowMod.actions == [.output(port: PortNumber(2))])
        }
        #expect(
            received.contains { if case .featuresRequest = $0.body { true } else { false } })
        #expect(
            received.contains { if case .barrierRequest = $0.body { true } else { false } })
    }
}
