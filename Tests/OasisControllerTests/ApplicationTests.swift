// The hub, the learning switch and the firewall against a scripted switch.

import OasisBits
import OasisController
import OasisLoop
import OasisNet
import OasisOpenFlow
import OasisWire
import Testing

private let hostA = MACAddress(0x0200_0000_000a)
private let hostB = MACAddress(0x0200_0000_000b)

private func packetIn(
    xid: UInt32, from source: MACAddress, to destination: MACAddress, port: UInt16,
    buffer: UInt32 = noBuffer, udpPort: UInt16 = 9
) -> Message {
    Message(
        xid: xid,
        body: .packetIn(
            PacketIn(
                bufferID: buffer, totalLength: 60, inPort: PortNumber(port), reason: .noMatch,
                data: Payload(frame(from: source, to: destination, udpPort: udpPort)))))
}

@Suite("OpenFlow controller applications, against a scripted switch", .serialized)
struct ApplicationTests {
    @Test func hubFloodsEveryPacket() throws {
        try withController { controller, streams, port in
            let hub = Hub()
            controller.add(hub)
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { controller.statistics.joins == 1 })
            peer.send(packetIn(xid: 2, from: hostA, to: hostB, port: 1, buffer: 17))
            peer.send(packetIn(xid: 3, from: hostB, to: hostA, port: 2))
            #expect(await eventually { peer.messages(.packetOut).count == 2 })
            let outs = peer.messages(.packetOut).compactMap { message -> PacketOut? in
                if case .packetOut(let out) = message.body { return out }
                return nil
            }
            #expect(outs[0].bufferID == 17 && outs[0].data.isEmpty)
            #expect(outs[0].actions == [.output(port: .flood)] && outs[0].inPort == PortNumber(1))
            #expect(
                outs[1].bufferID == noBuffer && outs[1].data.bytes == frame(from: hostB, to: hostA))
            #expect(peer.messages(.flowMod).isEmpty)
            #expect(hub.flooded == 2)
        }
    }

    @Test func learningSwitchFloodsLearnsInstallsAndForgets() throws {
        try withController { controller, streams, port in
            let learning = LearningSwitch(idleTimeout: 7)
            controller.add(learning)
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { controller.statistics.joins == 1 })
            let datapath = try #require(controller.datapaths.first)
            // A to B: B unknown, flooded; A learnt at port 1.
            peer.send(packetIn(xid: 2, from: hostA, to: hostB, port: 1, buffer: 5))
            #expect(await eventually { peer.messages(.packetOut).count == 1 })
            #expect(learning.port(of: hostA, on: datapath) == PortNumber(1))
            // B to A: A known: an exact flow out of port 1 applied to buffer 6.
            peer.send(packetIn(xid: 3, from: hostB, to: hostA, port: 2, buffer: 6))
            #expect(await eventually { peer.messages(.flowMod).count == 1 })
            guard case .flowMod(let flow) = peer.messages(.flowMod)[0].body else { return }
            #expect(flow.command == .add && flow.bufferID == 6 && flow.idleTimeout == 7)
            #expect(flow.actions == [.output(port: PortNumber(1))])
            #expect(flow.flags.contains(.sendFlowRemoved))
            #expect(flow.match.wildcards.isEmpty)
            #expect(flow.match.dlSrc == hostB && flow.match.dlDst == hostA)
            #expect(flow.match.inPort == PortNumber(2) && flow.match.tpDst == 9)
            #expect(peer.messages(.packetOut).count == 1)  // the buffer carries the packet
            // Unbuffered: the flow, and the frame in a packet-out.
            peer.send(packetIn(xid: 4, from: hostB, to: hostA, port: 2, udpPort: 10))
            #expect(await eventually { peer.messages(.packetOut).count == 2 })
            #expect(peer.messages(.flowMod).count == 2)
            // A packet for its own in-port is dropped (its buffer released).
            peer.send(packetIn(xid: 5, from: hostB, to: hostA, port: 1, buffer: 8))
            #expect(await eventually { peer.messages(.packetOut).count == 3 })
            if case .packetOut(let out) = peer.messages(.packetOut)[2].body {
                #expect(out.actions.isEmpty && out.bufferID == 8)
            }
            // Link-local (LLDP's group address) is never flooded.
            peer.send(packetIn(xid: 6, from: hostA, to: MACAddress(0x0180_c200_000e), port: 1))
            try await datapath.barrier()
            #expect(peer.messages(.packetOut).count == 3)
            // Port 1 goes down: A is forgotten, flows out of port 1 deleted.
            var down = datapath.ports[PortNumber(1)]!
            down.config.insert(.portDown)
            down.state.insert(.linkDown)
            peer.send(Message(xid: 0, body: .portStatus(PortStatus(reason: .modify, port: down))))
            #expect(await eventually { peer.messages(.flowMod).count == 3 })
            guard case .flowMod(let delete) = peer.messages(.flowMod)[2].body else { return }
            #expect(delete.command == .delete && delete.outPort == PortNumber(1))
            #expect(learning.port(of: hostA, on: datapath) == nil)
            #expect(datapath.ports[PortNumber(1)]?.config.contains(.portDown) == true)
            // A flow removed for idleness forgets a source silent since.
            peer.send(packetIn(xid: 7, from: hostA, to: hostB, port: 3))
            #expect(await eventually { learning.port(of: hostA, on: datapath) == PortNumber(3) })
            try await Time.sleep(.milliseconds(1100))
            var match = flow.match
            match.dlSrc = hostA
            peer.send(
                Message(
                    xid: 0,
                    body: .flowRemoved(
                        FlowRemoved(
                            match: match, cookie: 0, priority: 0x8000, reason: .idleTimeout,
                            durationSeconds: 1, durationNanoseconds: 0, idleTimeout: 1,
                            packetCount: 1, byteCount: 60))))
            #expect(await eventually { learning.flowsRemoved == 1 })
            #expect(learning.port(of: hostA, on: datapath) == nil)
            // Leaving drops the table.
            peer.connection.close()
            #expect(await eventually { controller.statistics.leaves == 1 })
            #expect(learning.tableCount(on: datapath) == 0)
        }
    }

    @Test func aFullMACTableKeepsWhatItKnows() throws {
        try withController { controller, streams, port in
            let learning = LearningSwitch(tableSize: 2)
            controller.add(learning)
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { controller.statistics.joins == 1 })
            let datapath = try #require(controller.datapaths.first)
            peer.send(packetIn(xid: 2, from: hostA, to: .broadcast, port: 1))
            peer.send(packetIn(xid: 3, from: hostB, to: .broadcast, port: 2))
            for index in 0..<50 {
                peer.send(
                    packetIn(
                        xid: 4, from: MACAddress(0x0200_0000_1000 + UInt64(index)), to: hostA,
                        port: 3))
            }
            #expect(await eventually { peer.messages(.flowMod).count == 50 })
            #expect(learning.port(of: hostA, on: datapath) == PortNumber(1))
            #expect(learning.port(of: hostB, on: datapath) == PortNumber(2))
            #expect(learning.tableCount(on: datapath) == 2)
            #expect(learning.notLearnt == 50)
        }
    }

    @Test func firewallRulesFromText() throws {
        let text = """
            # lab rules
            deny tcp nw_dst=10.0.0.2 tp_dst=22   # no ssh to h2
            deny icmp,nw_src=10.0.0.0/24
            allow arp
            default allow
            """
        let firewall = try Firewall(rulesText: text)
        #expect(firewall.rules.count == 3)
        #expect(firewall.rules[0].line == 2 && firewall.rules[0].verdict == .deny)
        var ssh = Match(wildcards: [], dlType: 0x0800, nwProto: 6, nwDst: 0x0a00_0002, tpDst: 22)
        #expect(firewall.verdict(for: ssh) == .deny)
        ssh.tpDst = 80
        #expect(firewall.verdict(for: ssh) == .allow)
        let ping = Match(wildcards: [], dlType: 0x0800, nwProto: 1, nwSrc: 0x0a00_0063)
        #expect(firewall.verdict(for: ping) == .deny)
        #expect(throws: FirewallRuleError(line: 1, problem: "unknown field 'nw_frob'")) {
            try Firewall.parse("deny nw_frob=1")
        }
        #expect(throws: FirewallRuleError(line: 2, problem: "'drop' is not allow, deny or default"))
        {
            try Firewall.parse("allow\ndrop tcp")
        }
        #expect(throws: FirewallRuleError.self) { try Firewall.parse("deny nw_src=10.0.0.1/33") }
        let (_, verdict) = try Firewall.parse("default deny")
        #expect(verdict == .deny)
    }

    @Test func firewallDropsDeniedFlowsAndForwardsTheRest() throws {
        try withController { controller, streams, port in
            let firewall = try Firewall(rulesText: "deny udp tp_dst=53")
            controller.add(firewall)
            let peer = try await ScriptedSwitch.connect(streams, port: port, datapathID: 1)
            peer.send(Message(xid: 1, body: .hello()))
            #expect(await eventually { controller.statistics.joins == 1 })
            peer.send(packetIn(xid: 2, from: hostA, to: hostB, port: 1, buffer: 3, udpPort: 53))
            #expect(await eventually { peer.messages(.flowMod).count == 1 })
            guard case .flowMod(let drop) = peer.messages(.flowMod)[0].body else { return }
            #expect(drop.actions.isEmpty && drop.bufferID == 3 && drop.priority > 0x8000)
            #expect(peer.messages(.packetOut).isEmpty)
            peer.send(packetIn(xid: 3, from: hostA, to: hostB, port: 1, udpPort: 54))
            #expect(await eventually { peer.messages(.packetOut).count == 1 })
            #expect(firewall.denied == 1 && firewall.allowed == 1)
        }
    }
}
