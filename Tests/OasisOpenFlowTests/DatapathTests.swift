import OasisBits
import OasisDevices
import OasisLoop
import OasisSwitch
import OasisTestSupport
import OasisWire
import Testing

@testable import OasisOpenFlow

/// A datapath with three ports on memory pairs, hosts on their far ends, on the
/// virtual clock.
final class ThreeHosts {
    let loop: EventLoop
    let datapath: Datapath
    var hosts: [MemoryDevice] = []
    var switchEnds: [MemoryDevice] = []
    /// Frames each host received, by host index.
    var received: [[[UInt8]]] = [[], [], []]
    var packetIns: [PacketIn] = []
    var removed: [FlowRemoved] = []

    init() throws {
        loop = try EventLoop(clock: .virtual)
        datapath = Datapath(on: loop)
        for index in 0..<3 {
            let (switchEnd, host) = MemoryDevice.pair(
                on: loop,
                addresses: (
                    MACAddress(0x0200_0000_0100 + UInt64(index)),
                    MACAddress(0x0200_0000_0001 + UInt64(index))
                ))
            hosts.append(host)
            switchEnds.append(switchEnd)
            try datapath.addPort(switchEnd)
            try host.start { [unowned self] batch in
                for i in batch.indices {
                    if let frame = batch.take(at: i) {
                        self.received[index].append(frame.copyBytes())
                    }
                }
            }
        }
        datapath.packetIn = { [unowned self] in self.packetIns.append($0) }
        datapath.flowRemoved = { [unowned self] in self.removed.append($0) }
    }

    /// A frame from host `from` (its MAC) to `to`'s MAC, IPv4/UDP, `size` bytes.
    func frame(from: Int, to: Int, size: Int = 200, broadcast: Bool = false) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        let destination: UInt64 = broadcast ? 0xffff_ffff_ffff : 0x0200_0000_0001 + UInt64(to)
        let source: UInt64 = 0x0200_0000_0001 + UInt64(from)
        for i in 0..<6 {
            bytes[i] = UInt8(truncatingIfNeeded: destination >> (40 - 8 * UInt64(i)))
            bytes[6 + i] = UInt8(truncatingIfNeeded: source >> (40 - 8 * UInt64(i)))
        }
        bytes[12] = 0x08
        bytes[13] = 0x06  // ARP-typed: no IP fields for the table to read
        return bytes
    }

    func send(_ bytes: [UInt8], from host: Int) throws {
        try hosts[host].transmit(Packet(copying: bytes))
        try loop.advance(by: .milliseconds(1))
    }

    func port(_ host: Int) -> PortNumber { PortNumber(UInt16(host + 1)) }
}

@Suite struct DatapathTests {
    @Test func aMissGoesToTheControllerAndAFlowModNamingItsBufferSendsItOn() throws {
        let net = try ThreeHosts()
        let frame = net.frame(from: 0, to: 1)
        try net.send(frame, from: 0)
        #expect(net.packetIns.count == 1 && net.datapath.misses == 1)
        let packetIn = try #require(net.packetIns.first)
        #expect(packetIn.reason == .noMatch && packetIn.inPort == net.port(0))
        #expect(
            packetIn.totalLength == 200 && packetIn.data.count == 128
                && packetIn.bufferID != noBuffer)
        // The controller installs a flow for it, naming the buffer: the frame goes on.
        let match = Match(frame: Bits(frame), inPort: net.port(0))
        try net.datapath.apply(
            FlowMod(
                match: match, command: .add, idleTimeout: 5, bufferID: packetIn.bufferID,
                flags: .sendFlowRemoved, actions: [.output(port: net.port(1))]))
        try net.loop.advance(by: .milliseconds(1))
        #expect(net.received[1] == [frame] && net.received[2].isEmpty)
        // The next ones go by the flow, not the controller.
        try net.send(frame, from: 0)
        #expect(net.received[1].count == 2 && net.packetIns.count == 1)
        // The buffer was used up: a PACKET_OUT naming it is refused.
        #expect(throws: Datapath.PacketOutError.bufferUnknown) {
            try net.datapath.apply(
                PacketOut(bufferID: packetIn.bufferID, actions: [.output(port: .flood)]))
        }
        // Idle for 5 s: the flow goes, and the controller hears of it.
        try net.loop.advance(by: .seconds(7))
        #expect(net.removed.count == 1 && net.removed[0].reason == .idleTimeout)
        #expect(net.removed[0].packetCount == 2)
    }

    @Test func floodAndAllLeaveByEveryOtherPortSaveThoseThatSayNoFlood() throws {
        let net = try ThreeHosts()
        try net.datapath.apply(
            FlowMod(match: .any, command: .add, actions: [.output(port: .flood)]))
        try net.send(net.frame(from: 0, to: 1), from: 0)
        #expect(net.received.map(\.count) == [0, 1, 1])
        #expect(net.datapath.modifyPort(net.port(2), config: .noFlood, mask: .noFlood))
        try net.send(net.frame(from: 0, to: 1), from: 0)
        #expect(net.received.map(\.count) == [0, 2, 1])
        try net.datapath.apply(
            FlowMod(match: .any, command: .modify, actions: [.output(port: .all)]))
        try net.send(net.frame(from: 0, to: 1), from: 0)
        #expect(net.received.map(\.count) == [0, 3, 2])
        // A port taken down neither sends nor receives.
        #expect(net.datapath.modifyPort(net.port(1), config: .portDown, mask: .portDown))
        try net.send(net.frame(from: 0, to: 1), from: 0)
        try net.send(net.frame(from: 1, to: 0), from: 1)
        #expect(net.received.map(\.count) == [0, 3, 3])
    }

    @Test func normalLearnsWhereEachAddressIs() throws {
        let net = try ThreeHosts()
        try net.datapath.apply(
            FlowMod(match: .any, command: .add, actions: [.output(port: .normal)]))
        // Unknown destination: flooded; the source is learned.
        try net.send(net.frame(from: 0, to: 1), from: 0)
        #expect(net.received.map(\.count) == [0, 1, 1])
        // The answer goes to host 0 alone, and then host 1 is known too.
        try net.send(net.frame(from: 1, to: 0), from: 1)
        #expect(net.received.map(\.count) == [1, 1, 1])
        try net.send(net.frame(from: 0, to: 1), from: 0)
        #expect(net.received.map(\.count) == [1, 2, 1])
    }

    @Test func runtsAreDroppedAndBadActionsRefused() throws {
        let net = try ThreeHosts()
        try net.datapath.apply(
            FlowMod(match: .any, command: .add, actions: [.output(port: .flood)]))
        try net.send([0xff], from: 0)
        try net.send([UInt8](repeating: 0xff, count: 13), from: 0)
        #expect(net.received.map(\.count) == [0, 0, 0])
        #expect(net.datapath.ports[net.port(0)]?.receiveDrops == 2)
        func refusal(_ actions: [Action], packetOut: Bool = false) -> BadActionCode? {
            Datapath.refusal(of: actions, inPacketOut: packetOut)
        }
        #expect(refusal([.output(port: PortNumber(0))]) == .badOutPort)
        #expect(refusal([.output(port: .none)]) == .badOutPort)
        #expect(refusal([.output(port: .table)]) == .badOutPort)
        #expect(refusal([.output(port: .table)], packetOut: true) == nil)
        #expect(refusal([.output(port: PortNumber(99))]) == nil, "a port that may come later")
        #expect(refusal([.setVLANID(0x1000)]) == .badArgument)
        #expect(refusal([.setVLANPriority(8)]) == .badArgument)
        #expect(refusal([.setNWToS(0xff)]) == .badArgument)
        #expect(
            refusal([.vendor(0x2320, body: Payload([UInt8](repeating: 0, count: 8)))]) == .badVendor
        )
        #expect(refusal([.setVLANID(4095), .setVLANPriority(7), .setNWToS(0xfc)]) == nil)
    }

    @Test func packetOutSendsItsFrameOrRunsItThroughTheTable() throws {
        let net = try ThreeHosts()
        let frame = net.frame(from: 2, to: 0)
        try net.datapath.apply(
            PacketOut(inPort: .none, actions: [.output(port: net.port(0))], data: Payload(frame)))
        try net.loop.advance(by: .milliseconds(1))
        #expect(net.received[0] == [frame])
        // TABLE: the flow for in_port 3 sends it to host 1, rewritten.
        var byPort = Match()
        byPort.wildcards.remove(.inPort)
        byPort.inPort = net.port(2)
        try net.datapath.apply(
            FlowMod(
                match: byPort, command: .add,
                actions: [
                    .setDLDestination(MACAddress(0x0200_0000_0002)), .output(port: net.port(1)),
                ]))
        try net.datapath.apply(
            PacketOut(inPort: net.port(2), actions: [.output(port: .table)], data: Payload(frame)))
        try net.loop.advance(by: .milliseconds(1))
        #expect(net.received[1].count == 1 && net.received[1][0][5] == 0x02)
        #expect(throws: Datapath.PacketOutError.badOutPort(PortNumber(9))) {
            try net.datapath.apply(
                PacketOut(actions: [.output(port: PortNumber(9))], data: Payload(frame)))
        }
        // CONTROLLER with a byte limit: a PACKET_IN of that many bytes, reason action.
        try net.datapath.apply(
            PacketOut(
                inPort: net.port(0), actions: [.output(port: .controller, maxLength: 64)],
                data: Payload(frame)))
        #expect(net.packetIns.last?.reason == .action && net.packetIns.last?.data.count == 64)
    }
}
