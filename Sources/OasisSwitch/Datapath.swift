// An OpenFlow 1.0 datapath: ports on any network device, one flow table, the actions
// applied and the frames sent on; a miss or a CONTROLLER action goes to whoever holds
// the datapath's `packetIn` (the secure channel), with the frame kept in a bounded
// buffer for a later PACKET_OUT or FLOW_MOD to name.

import OasisBits
import OasisDevices
import OasisLoop
import OasisOpenFlow
import OasisWire

/// One port: a device, its number and name, its configuration and counters.
public final class SwitchPort {
    public let number: PortNumber
    public let device: any NetworkDevice
    /// `ofp_port_config` bits a PORT_MOD sets (down, no-flood, no-forward, …).
    public var config: PortConfig = []
    /// Frames and bytes received and sent, and frames dropped each way.
    public internal(set) var receivedPackets: UInt64 = 0
    public internal(set) var receivedBytes: UInt64 = 0
    public internal(set) var sentPackets: UInt64 = 0
    public internal(set) var sentBytes: UInt64 = 0
    public internal(set) var receiveDrops: UInt64 = 0
    public internal(set) var sendDrops: UInt64 = 0

    /// The address reported for the port: the device's unless the kernel interface
    /// under it has its own (as Open vSwitch reports a netdev's).
    public var hardwareAddress: MACAddress
    /// `ofp_port_features` the link has now (its speed and duplex), reported as `curr`.
    public var currentFeatures: PortFeatures = []

    init(number: PortNumber, device: any NetworkDevice) {
        self.number = number
        self.device = device
        hardwareAddress = device.macAddress
    }

    /// `ofp_phy_port` for FEATURES_REPLY and PORT_STATUS.
    public var description: PhysicalPort {
        var port = PhysicalPort(
            portNumber: number, hardwareAddress: hardwareAddress,
            name: OpenFlowText(device.name), config: config,
            state: device.isLinkUp ? [] : .linkDown)
        port.current = currentFeatures
        return port
    }

    /// Whether frames may leave by this port.
    var canForward: Bool { !config.contains(.portDown) && !config.contains(.noForward) }
}

/// Frames kept for the controller to name by buffer id (PACKET_IN's `buffer_id`):
/// a ring of `capacity` slots, each valid for `lifetime`; an id names its slot and a
/// generation, so a stale or reused id is refused rather than sending another frame.
public struct PacketBuffers {
    public let capacity: Int
    public let lifetime: Int64
    private var slots: [(bytes: [UInt8], inPort: PortNumber, storedAt: Int64, generation: UInt32)?]
    private var next = 0
    private var generation: UInt32 = 0

    public init(capacity: Int = 256, lifetime: Duration = .seconds(5)) {
        self.capacity = max(1, min(capacity, 1 << 16))
        let (seconds, attoseconds) = lifetime.components
        self.lifetime = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        slots = Array(repeating: nil, count: self.capacity)
    }

    /// Keeps a copy of `frame` and returns its id.
    public mutating func store(_ frame: borrowing Packet, inPort: PortNumber, now: Int64) -> UInt32
    {
        let slot = next
        next = (next + 1) % capacity
        if slot == 0 { generation &+= 1 }
        slots[slot] = (frame.copyBytes(), inPort, now, generation)
        return UInt32(truncatingIfNeeded: generation) << 16 | UInt32(slot)
    }

    /// Takes the frame `id` names, if it is still there and fresh.
    public mutating func take(_ id: UInt32, now: Int64) -> (bytes: [UInt8], inPort: PortNumber)? {
        let slot = Int(id & 0xffff)
        guard slot < capacity, let entry = slots[slot],
            entry.generation & 0xffff == id >> 16, now - entry.storedAt <= lifetime
        else { return nil }
        slots[slot] = nil
        return (entry.bytes, entry.inPort)
    }
}

/// An OpenFlow 1.0 datapath.
///
/// ```swift
/// let datapath = Datapath(on: loop)
/// try datapath.addPort(tapA)                 // port 1
/// try datapath.addPort(tapB)                 // port 2
/// datapath.packetIn = { packetIn in channel.send(.packetIn(packetIn)) }
/// try datapath.apply(flowMod)                // from the controller
/// ```
public final class Datapath {
    public let loop: EventLoop
    public private(set) var ports: [PortNumber: SwitchPort] = [:]
    public var table: FlowTable
    public var buffers: PacketBuffers
    /// Bytes of a missed frame sent in PACKET_IN (SET_CONFIG's miss_send_len).
    public var missSendLength: UInt16 = 128
    /// What a table miss does: go to the controller (the default), or to the built-in
    /// learning switch (fail-standalone while no controller is connected).
    public enum MissAction: Sendable { case controller, normal }
    public var missAction = MissAction.controller
    /// Where PACKET_IN goes (nil: misses are dropped, counted).
    public var packetIn: ((PacketIn) -> Void)?
    /// Where FLOW_REMOVED goes, for entries that asked for it.
    public var flowRemoved: ((FlowRemoved) -> Void)?
    /// The LOCAL port's receiver (the switch's own stack), when no device is the LOCAL
    /// port (``addPort(_:number:)`` with `.local`, an interface of the host as Open
    /// vSwitch's bridge interface).
    public var local: ((borrowing Packet) -> Void)?
    /// Called after a PORT_MOD changed a port's configuration, with the bits before:
    /// the switch takes the kernel interface under a port down and up with
    /// ``PortConfig/portDown``, as Open vSwitch does.
    public var portConfigured: ((SwitchPort, _ previous: PortConfig) -> Void)?
    /// Frames that matched nothing, and those sent to the controller.
    public private(set) var misses: UInt64 = 0
    public private(set) var packetsToController: UInt64 = 0
    /// Frames dropped: a miss with nowhere to go, an action list that failed, an
    /// output to a port that does not exist.
    public private(set) var drops: UInt64 = 0
    /// The NORMAL action's learning table: a MAC's port and when it was last seen.
    private var learned: [MACAddress: (port: PortNumber, seenAt: Int64)] = [:]
    /// How long a learned MAC stays (Open vSwitch's `mac-aging-time`, 300 s).
    public var learningAge: Int64 = 300_000_000_000
    /// The most MACs learned at once (Open vSwitch's `mac-table-size` is 2048): a
    /// flood of made-up source addresses fills it, and then nothing new is learned
    /// until entries age out (counted).
    public var learningLimit = 8192
    public private(set) var learningRefused: UInt64 = 0
    private var expiryTimer: TimerID?

    public init(
        on loop: EventLoop, table: FlowTable = FlowTable(), buffers: PacketBuffers = PacketBuffers()
    ) {
        self.loop = loop
        self.table = table
        self.buffers = buffers
    }

    var now: Int64 {
        Int64(loop.now.components.seconds) * 1_000_000_000 + loop.now.components.attoseconds
            / 1_000_000_000
    }

    // MARK: Ports

    /// Adds `device` as a port (the next free number unless `number` is given) and
    /// starts receiving from it.
    @discardableResult
    public func addPort(_ device: any NetworkDevice, number: PortNumber? = nil) throws(DeviceError)
        -> SwitchPort
    {
        let chosen =
            number
            ?? PortNumber(
                UInt16((1...0xff00).first { ports[PortNumber(UInt16($0))] == nil } ?? 0xff00))
        let port = SwitchPort(number: chosen, device: device)
        ports[chosen] = port
        let datapath = Unretained(self)
        try device.start { batch in datapath.call { $0.receive(&batch, on: port) } }
        armExpiry()
        return port
    }

    /// Takes a port out and closes its device.
    public func removePort(_ number: PortNumber) {
        guard let port = ports.removeValue(forKey: number) else { return }
        port.device.close()
        learned = learned.filter { $0.value.port != number }
    }

    // MARK: The data path

    private func receive(_ batch: inout PacketBatch, on port: SwitchPort) {
        let now = self.now
        for index in batch.indices {
            guard var frame = batch.take(at: index) else { continue }
            port.receivedPackets &+= 1
            port.receivedBytes &+= UInt64(frame.count)
            // Shorter than an Ethernet header: nothing to switch on (and padded out, it
            // would leave with made-up addresses).
            if frame.count < 14 || port.config.contains(.noReceive)
                || port.config.contains(.portDown)
            {
                port.receiveDrops &+= 1
                continue
            }
            process(&frame, inPort: port.number, now: now)
        }
    }

    /// Looks `frame` up and applies what it finds; a miss goes to the controller.
    func process(_ frame: inout Packet, inPort: PortNumber, now: Int64) {
        let tuple = Match(frame: frame.bits, inPort: inPort)
        guard let entry = table.lookup(tuple, bytes: frame.count, now: now) else {
            misses &+= 1
            switch missAction {
            case .controller:
                sendToController(
                    frame, inPort: inPort, reason: .noMatch, maxLength: missSendLength, now: now)
            case .normal:
                normal(frame, inPort: inPort, now: now)
            }
            return
        }
        execute(entry.actions, on: &frame, inPort: inPort, now: now)
    }

    /// Applies `actions` (an empty list drops the frame, §5.2.4).
    func execute(_ actions: [Action], on frame: inout Packet, inPort: PortNumber, now: Int64) {
        do throws(ActionError) {
            try FrameActions.apply(actions, to: &frame) { port, maxLength, out in
                output(out, to: port, inPort: inPort, maxLength: maxLength, now: now)
            }
        } catch {
            drops &+= 1
        }
    }

    /// Sends `frame` out by `port`, resolving the special ports.
    func output(
        _ frame: borrowing Packet, to port: PortNumber, inPort: PortNumber, maxLength: UInt16,
        now: Int64
    ) {
        switch port {
        case .inPort:
            if let target = ports[inPort] { transmit(frame, on: target) }
        case .flood, .all:
            let flood = port == .flood
            for target in ports.values where target.number != inPort {
                if flood && target.config.contains(.noFlood) { continue }
                transmit(frame, on: target)
            }
        case .controller:
            sendToController(frame, inPort: inPort, reason: .action, maxLength: maxLength, now: now)
        case .local:
            if let target = ports[.local] {
                if inPort != .local { transmit(frame, on: target) } else { drops &+= 1 }
            } else if let local {
                local(frame)
            } else {
                drops &+= 1
            }
        case .normal:
            normal(frame, inPort: inPort, now: now)
        case .table, .none:
            drops &+= 1  // TABLE only in PACKET_OUT (handled there)
        default:
            // OpenFlow 1.0: a frame goes back by its own port only through IN_PORT.
            guard port != inPort, let target = ports[port] else {
                drops &+= 1
                return
            }
            transmit(frame, on: target)
        }
    }

    private func transmit(_ frame: borrowing Packet, on port: SwitchPort) {
        guard port.canForward else {
            port.sendDrops &+= 1
            return
        }
        do {
            let copy = try frame.copy(into: port.device.pool)
            let count = copy.count
            try port.device.transmit(copy)
            port.sentPackets &+= 1
            port.sentBytes &+= UInt64(count)
        } catch {
            port.sendDrops &+= 1
        }
    }

    private func sendToController(
        _ frame: borrowing Packet, inPort: PortNumber, reason: PacketInReason, maxLength: UInt16,
        now: Int64
    ) {
        guard let packetIn, ports[inPort]?.config.contains(.noPacketIn) != true else {
            drops &+= 1
            return
        }
        packetsToController &+= 1
        let bytes = frame.copyBytes()
        // A frame cut short is buffered whole for the controller to send on; one sent
        // whole needs no buffer (as Open vSwitch does for max_len 0xffff).
        let cut =
            reason == .action && maxLength == 0xffff
            ? bytes.count : min(bytes.count, Int(maxLength))
        let bufferID = cut < bytes.count ? buffers.store(frame, inPort: inPort, now: now) : noBuffer
        packetIn(
            PacketIn(
                bufferID: bufferID, totalLength: UInt16(truncatingIfNeeded: bytes.count),
                inPort: inPort, reason: reason, data: Payload(Array(bytes.prefix(cut)))))
    }

    /// The NORMAL action: a learning switch (the source MAC learned on its port, the
    /// destination's port if known, else flooded).
    private func normal(_ frame: borrowing Packet, inPort: PortNumber, now: Int64) {
        guard frame.count >= 14,
            let destination = try? frame.read(UInt64.self, at: 0),
            let source = try? frame.read(UInt64.self, at: 6)
        else { return }
        let destinationMAC = MACAddress(rawValue: destination >> 16)
        let sourceMAC = MACAddress(rawValue: source >> 16)
        if sourceMAC.rawValue & 0x0100_0000_0000 == 0 { learn(sourceMAC, on: inPort, now: now) }
        if let known = learned[destinationMAC], now - known.seenAt <= learningAge,
            known.port != inPort, let target = ports[known.port]
        {
            transmit(frame, on: target)
            return
        }
        output(frame, to: .flood, inPort: inPort, maxLength: 0, now: now)
    }

    private func learn(_ address: MACAddress, on port: PortNumber, now: Int64) {
        if learned[address] == nil && learned.count >= learningLimit {
            learned = learned.filter { now - $0.value.seenAt <= learningAge }
            guard learned.count < learningLimit else {
                learningRefused &+= 1
                return
            }
        }
        learned[address] = (port, now)
    }

    /// MACs the NORMAL action knows now.
    public var learnedCount: Int { learned.count }

    /// Handles `frame` as if it had arrived on port `inPort` (the LOCAL port's stack,
    /// tests, fuzzing).
    public func inject(_ frame: consuming Packet, inPort: PortNumber) {
        var frame = frame
        guard frame.count >= 14 else {
            drops &+= 1
            return
        }
        process(&frame, inPort: inPort, now: now)
    }

    // MARK: From the controller

    /// Applies a FLOW_MOD; one naming a buffered frame then sends that frame through
    /// the table (§4.6).
    /// Returns false when the buffer it names is not there (gone, stale, never
    /// stored): the flow is applied all the same, and the channel says
    /// OFPBRC_BUFFER_UNKNOWN.
    @discardableResult
    public func apply(_ mod: FlowMod) throws(FlowModFailedCode) -> Bool {
        let now = self.now
        let removed = try table.apply(mod, now: now)
        for entry in removed where entry.flags.contains(.sendFlowRemoved) {
            flowRemoved?(entry.removed(reason: .delete, now: now))
        }
        guard mod.bufferID != noBuffer,
            mod.command == .add || mod.command == .modify || mod.command == .modifyStrict
        else { return true }
        guard let (bytes, inPort) = buffers.take(mod.bufferID, now: now) else { return false }
        var frame = Packet(copying: bytes)
        process(&frame, inPort: inPort, now: now)
        return true
    }

    /// Why an action list is refused (checked when a FLOW_MOD or PACKET_OUT brings it,
    /// as OFPT_ERROR's bad-action codes), or nil: output to port 0, NONE or (outside
    /// PACKET_OUT) TABLE; a VLAN id over 4095 or priority over 7; a ToS with ECN bits;
    /// any vendor action. Ports that do not exist yet are allowed in flows, as Open
    /// vSwitch allows them.
    public static func refusal(of actions: [Action], inPacketOut: Bool) -> BadActionCode? {
        for action in actions {
            switch action {
            case .output(let port, _), .enqueue(let port, _):
                if port.rawValue == 0 || port == .none || (port == .table && !inPacketOut) {
                    return .badOutPort
                }
            case .setVLANID(let vid) where vid > 0x0fff: return .badArgument
            case .setVLANPriority(let pcp) where pcp > 7: return .badArgument
            case .setNWToS(let tos) where tos & 0x03 != 0: return .badArgument
            case .vendor: return .badVendor
            default: continue
            }
        }
        return nil
    }

    /// Why a PACKET_OUT was refused.
    public enum PacketOutError: Error, Hashable, Sendable {
        /// The buffer id names no frame (gone, stale, never stored): OFPBRC_BUFFER_UNKNOWN.
        case bufferUnknown
        /// An output to a port that does not exist: OFPBAC_BAD_OUT_PORT.
        case badOutPort(PortNumber)
    }

    /// Applies a PACKET_OUT: its actions to its frame (or the buffered one); an output
    /// to TABLE runs the frame through the flow table with `inPort` as its port.
    public func apply(_ out: PacketOut) throws(PacketOutError) {
        let now = self.now
        var frame: Packet
        if out.bufferID != noBuffer {
            guard let (bytes, _) = buffers.take(out.bufferID, now: now) else {
                throw .bufferUnknown
            }
            frame = Packet(copying: bytes)
        } else {
            frame = Packet(copying: out.data.bits.copyBytes())
        }
        for case .output(let port, _) in out.actions where port.rawValue < PortNumber.max.rawValue {
            if ports[port] == nil { throw .badOutPort(port) }
        }
        do throws(ActionError) {
            try FrameActions.apply(out.actions, to: &frame) { port, maxLength, result in
                if port == .table {
                    var copy = Packet(copying: result.copyBytes())
                    process(&copy, inPort: out.inPort, now: now)
                } else {
                    output(result, to: port, inPort: out.inPort, maxLength: maxLength, now: now)
                }
            }
        } catch {
            drops &+= 1
        }
    }

    /// PORT_MOD's configuration bits (under `mask`) on `port`.
    public func modifyPort(_ number: PortNumber, config: PortConfig, mask: PortConfig) -> Bool {
        guard let port = ports[number] else { return false }
        let previous = port.config
        port.config = PortConfig(
            rawValue: port.config.rawValue & ~mask.rawValue | config.rawValue & mask.rawValue)
        if port.config != previous { portConfigured?(port, previous) }
        return true
    }

    // MARK: Timeouts

    /// Expires flows once a second, telling the controller of those that asked.
    private func armExpiry() {
        guard expiryTimer == nil else { return }
        expiryTimer = loop.schedule(after: .seconds(1)) { [weak self] in
            guard let self else { return }
            self.expiryTimer = nil
            let now = self.now
            for (entry, reason) in self.table.expire(now: now)
            where entry.flags.contains(.sendFlowRemoved) {
                self.flowRemoved?(entry.removed(reason: reason, now: now))
            }
            self.learned = self.learned.filter { now - $0.value.seenAt <= self.learningAge }
            if !self.ports.isEmpty { self.armExpiry() }
        }
    }

    /// Stops the expiry timer and closes every port.
    public func close() {
        if let expiryTimer { _ = loop.cancelTimer(expiryTimer) }
        expiryTimer = nil
        for port in ports.values { port.device.close() }
        ports = [:]
    }
}
