// The learning switch: learns where each source MAC lives, floods what it does not
// know, installs exact-match flows for what it does.

import OasisLoop
import OasisOpenFlow
import OasisWire

/// NOX's learning switch (pyswitch), per datapath:
///
/// - each PACKET_IN teaches that its source MAC is behind its in-port (entries expire
///   after ``macAge``; a table holds at most ``tableSize`` of them, and a full one
///   learns no new source until some expire);
/// - a packet to a MAC it knows gets an exact-match flow (the packet's 12-tuple,
///   ``idleTimeout``, `OFPFF_SEND_FLOW_REM`) applied to the buffered packet, or the
///   flow and a PACKET_OUT with the frame when the switch kept no buffer;
/// - a packet to an unknown, multicast or broadcast MAC is flooded; one for its own
///   in-port is dropped; IEEE 802.1D link-local frames (01:80:c2:00:00:0x) are dropped;
/// - a port that goes down or away loses its MACs, and the flows that output to it
///   are deleted; a flow removed for idleness forgets its source when nothing was
///   heard from it since.
///
/// ```swift
/// let learning = LearningSwitch(idleTimeout: 10)
/// controller.add(learning)
/// ```
public final class LearningSwitch: OpenFlowApplication {
    /// Idle timeout of the flows installed, in seconds.
    public let idleTimeout: UInt16
    /// Hard timeout of the flows installed, in seconds (0: none).
    public let hardTimeout: UInt16
    /// How long a learnt MAC stays without being heard from again.
    public let macAge: Duration
    /// The most MACs remembered per switch.
    public let tableSize: Int
    /// The priority of the flows installed.
    public let priority: UInt16

    /// Flows installed.
    public private(set) var flowsInstalled: UInt64 = 0
    /// Packets flooded.
    public private(set) var flooded: UInt64 = 0
    /// Packets dropped (for their own in-port, link-local, or unsendable).
    public private(set) var dropped: UInt64 = 0
    /// FLOW_REMOVED messages seen.
    public private(set) var flowsRemoved: UInt64 = 0
    /// Sources not learnt because their switch's table was full of fresh entries.
    public private(set) var notLearnt: UInt64 = 0

    private struct Location {
        var port: PortNumber
        var lastSeen: Duration
    }

    /// One switch's MACs (a class: updated in place, never copied per packet).
    private final class MACTable {
        var entries: [MACAddress: Location] = [:]
        var lastSweep: Duration = .zero
    }

    private var tables: [ObjectIdentifier: MACTable] = [:]

    /// A learning switch.
    public init(
        idleTimeout: UInt16 = 10, hardTimeout: UInt16 = 0, macAge: Duration = .seconds(300),
        tableSize: Int = 65_536, priority: UInt16 = 0x8000
    ) {
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.macAge = macAge
        self.tableSize = max(tableSize, 1)
        self.priority = priority
    }

    /// The port a switch has learnt for `mac`, if it is fresh.
    public func port(of mac: MACAddress, on datapath: Datapath) -> PortNumber? {
        guard let location = tables[ObjectIdentifier(datapath)]?.entries[mac],
            datapath.loop.now - location.lastSeen < macAge
        else { return nil }
        return location.port
    }

    /// MACs remembered for a switch.
    public func tableCount(on datapath: Datapath) -> Int {
        tables[ObjectIdentifier(datapath)]?.entries.count ?? 0
    }

    public func datapathJoined(_ datapath: Datapath) {
        tables[ObjectIdentifier(datapath)] = MACTable()
    }

    public func datapathLeft(_ datapath: Datapath, reason: DisconnectReason) {
        tables[ObjectIdentifier(datapath)] = nil
    }

    public func packetIn(_ event: PacketInEvent, from datapath: Datapath) {
        let flow = event.flow
        let packetIn = event.packetIn
        let now = datapath.loop.now
        let key = ObjectIdentifier(datapath)
        if flow.dlSrc.isUnicast {
            learn(flow.dlSrc, at: packetIn.inPort, now: now, table: key)
        }
        // 802.1D §7.12.6: bridges never forward 01-80-C2-00-00-0X (STP, LLDP, pause).
        if flow.dlDst.rawValue & ~0xf == 0x0180_c200_0000 {
            drop(packetIn, on: datapath)
            return
        }
        guard !flow.dlDst.isMulticast, let out = port(of: flow.dlDst, on: datapath) else {
            do {
                try datapath.packetOut(flooding: packetIn)
                flooded &+= 1
            } catch {
                dropped &+= 1
            }
            return
        }
        guard out != packetIn.inPort else {
            drop(packetIn, on: datapath)
            return
        }
        let actions: [Action] = [.output(port: out)]
        do {
            try datapath.flowMod(
                FlowMod(
                    match: flow, command: .add, idleTimeout: idleTimeout,
                    hardTimeout: hardTimeout, priority: priority, bufferID: packetIn.bufferID,
                    flags: [.sendFlowRemoved], actions: actions))
            flowsInstalled &+= 1
            if packetIn.bufferID == noBuffer {
                try datapath.packetOut(packetIn, actions: actions)
            }
        } catch {
            dropped &+= 1
        }
    }

    public func portStatus(_ status: PortStatus, from datapath: Datapath) {
        let port = status.port
        let gone =
            status.reason == .delete || port.config.contains(.portDown)
            || port.state.contains(.linkDown)
        guard gone else { return }
        let key = ObjectIdentifier(datapath)
        if let table = tables[key] {
            table.entries = table.entries.filter { $0.value.port != port.portNumber }
        }
        // Flows that send to the port would black-hole: delete them (non-strict, any
        // match, only those with an output to it).
        _ = try? datapath.flowMod(
            FlowMod(match: .any, command: .delete, outPort: port.portNumber))
    }

    public func flowRemoved(_ removed: FlowRemoved, from datapath: Datapath) {
        flowsRemoved &+= 1
        guard removed.reason == .idleTimeout else { return }
        // The source went quiet for the whole idle time: unless something was heard
        // from it since, forget it, so the next packet to it floods and finds it anew.
        let key = ObjectIdentifier(datapath)
        let source = removed.match.dlSrc
        if let table = tables[key], let location = table.entries[source],
            datapath.loop.now - location.lastSeen >= .seconds(Int(removed.idleTimeout))
        {
            table.entries[source] = nil
        }
    }

    private func learn(
        _ mac: MACAddress, at port: PortNumber, now: Duration, table key: ObjectIdentifier
    ) {
        let table: MACTable
        if let existing = tables[key] {
            table = existing
        } else {
            table = MACTable()
            tables[key] = table
        }
        if table.entries[mac] == nil, table.entries.count >= tableSize {
            // Full: forget the expired (at most once a second: a sweep is a pass over
            // the table), and if it is still full learn nothing new, as a switch's
            // full CAM does. Evicting the oldest instead would evict the hosts others
            // send to, under a flood of new sources (cbench's 100 000 MACs).
            if now - table.lastSweep >= .seconds(1) {
                table.lastSweep = now
                table.entries = table.entries.filter { now - $0.value.lastSeen < macAge }
            }
            if table.entries.count >= tableSize {
                notLearnt &+= 1
                return
            }
        }
        table.entries[mac] = Location(port: port, lastSeen: now)
    }

    private func drop(_ packetIn: PacketIn, on datapath: Datapath) {
        dropped &+= 1
        // A buffered packet is released by a PACKET_OUT with no actions.
        if packetIn.bufferID != noBuffer {
            _ = try? datapath.packetOut(
                PacketOut(bufferID: packetIn.bufferID, inPort: packetIn.inPort, actions: []))
        }
    }
}
