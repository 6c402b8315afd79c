// The glue: the sans-I/O protocol pieces connected to a device and the loop.

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire

/// How an ``IPv4Stack`` is set up.
public struct IPv4StackConfiguration: Sendable {
    /// The stack's address and subnet, e.g. `192.0.2.2/24`.
    public var network: IPv4Network
    /// Where packets for other subnets go; nil: only the local subnet is reachable.
    public var gateway: IPv4Address?
    /// ARP settings. Up to 64 packets wait per unresolved address (Linux keeps about
    /// 200 KB): a fragmented datagram sent before its next hop is known must fit.
    public var arp: ArpCache.Configuration = {
        var arp = ArpCache.Configuration()
        arp.waitingPerAddress = 64
        arp.maximumWaiting = 128  // far below a device pool's buffers
        return arp
    }()
    public var reassembly = IPv4Reassembler.Configuration()
    /// ICMP errors per second (port unreachable), and the burst allowed.
    public var icmpErrorsPerSecond = 100
    public var icmpErrorBurst = 20
    /// Announce the address with a gratuitous ARP when the stack starts.
    public var gratuitousArp = true
    /// Answer ICMP echo requests (the tutorial's ping responder).
    public var answersPing = true

    public init(network: IPv4Network, gateway: IPv4Address? = nil) {
        self.network = network
        self.gateway = gateway
    }
}

/// The Oasis IPv4 stack over one device: Ethernet, ARP, IPv4 (with reassembly and
/// fragmentation), ICMP (echo, port unreachable) and UDP, all on the loop's thread.
///
/// It is generic over the device, so the same code runs over TAP, pcap, the Xen
/// netfront or an in-memory pair, specialised at compile time.
///
/// ```swift
/// let stack = IPv4Stack(device: tap, configuration: .init(network: IPv4Network("192.0.2.2/24")!), on: loop)
/// try stack.start()
/// try stack.listen(port: 7) { datagram in try? stack.send(datagram.payload, to: datagram.source, from: 7) }
/// ```
///
/// A received frame is parsed in the buffer it arrived in; a reply is built in front
/// of the payload it answers (ping and echo reuse the request's buffer); nothing is
/// copied except fragments into the reassembly buffer.
public final class IPv4Stack<Device: NetworkDevice>: DatagramService {
    public let device: Device
    public let configuration: IPv4StackConfiguration
    public var address: IPv4Address { configuration.network.address }
    /// Every drop, per layer and reason: the stack's own, plus the ARP cache's and the
    /// reassembler's.
    public var drops: NetworkDropCounters {
        var all = ownDrops
        for reason in ArpDropReason.allCases { all.arp.count(reason, arp.drops[reason]) }
        for reason in ReassemblyDropReason.allCases {
            all.reassembly.count(reason, reassembler.drops[reason])
        }
        return all
    }
    private var ownDrops = NetworkDropCounters()
    /// Echo requests answered, datagrams delivered to listeners and sent.
    public private(set) var echoRepliesSent: UInt64 = 0
    public private(set) var datagramsDelivered: UInt64 = 0
    public private(set) var datagramsSent: UInt64 = 0
    /// Bytes held by datagrams waiting for their missing fragments (bounded by
    /// ``IPv4StackConfiguration/reassembly``).
    public var reassemblyBytesHeld: Int { reassembler.bytesHeld }
    /// Entries in the ARP cache (bounded by ``IPv4StackConfiguration/arp``).
    public var arpEntries: Int { arp.count }

    private let loop: EventLoop
    private var arp: ArpCache
    private var reassembler: IPv4Reassembler
    private var icmpErrors: TokenBucket
    private var listeners: [UInt16: (Datagram) -> Void] = [:]
    private var identification: UInt16
    private var arpTimer: (id: TimerID, deadline: Duration)?
    private var reassemblyTimer: (id: TimerID, deadline: Duration)?

    public init(device: Device, configuration: IPv4StackConfiguration, on loop: EventLoop) {
        self.device = device
        self.configuration = configuration
        self.loop = loop
        arp = ArpCache(
            mac: device.macAddress, address: configuration.network.address,
            configuration: configuration.arp)
        reassembler = IPv4Reassembler(configuration: configuration.reassembly)
        icmpErrors = TokenBucket(
            ratePerSecond: configuration.icmpErrorsPerSecond, burst: configuration.icmpErrorBurst,
            now: loop.now)
        identification = UInt16.random(in: 0...UInt16.max)
    }

    /// Starts receiving from the device and announces the address.
    public func start() throws(DeviceError) {
        try device.start { [unowned self] frame in self.input(frame) }
        if configuration.gratuitousArp {
            sendArp(arp.gratuitous)
        }
    }

    /// Stops receiving; closes the device.
    public func stop() {
        if let arpTimer { loop.cancelTimer(arpTimer.id) }
        if let reassemblyTimer { loop.cancelTimer(reassemblyTimer.id) }
        arpTimer = nil
        reassemblyTimer = nil
        device.close()
    }

    // MARK: Receive

    /// Handles one frame from the device.
    public func input(_ frame: Bits) {
        let ethernet: EthernetRepr
        do {
            ethernet = try EthernetRepr.parse(frame.bytes)
        } catch {
            ownDrops.ethernet.count(error.dropReason)
            return
        }
        guard let payload = try? frame.shifted(by: ethernet.headerLength) else { return }
        guard ethernet.destination == device.macAddress || ethernet.destination.isBroadcast else {
            ownDrops.ethernet.count(.notForUs)
            return
        }
        // The stack lives on no VLAN: answering tagged frames untagged would cross
        // VLAN boundaries on a trunk.
        guard ethernet.outerTag == nil else {
            ownDrops.ethernet.count(.unsupportedFormat)
            return
        }
        switch ethernet.etherType {
        case .arp: receiveArp(payload)
        case .ipv4: receiveIPv4(payload, linkBroadcast: ethernet.destination.isBroadcast)
        default: ownDrops.ethernet.count(.unknownEtherType)
        }
    }

    private func receiveArp(_ payload: Bits) {
        let packet: ArpRepr
        do {
            packet = try ArpRepr.parse(payload.bytes)
        } catch {
            ownDrops.arp.count(error.dropReason)
            return
        }
        let reception = arp.receive(packet, now: loop.now)
        if let reply = reception.reply { sendArp(reply) }
        if let (address, mac) = reception.resolved {
            while let waiting = arp.takeWaiting(for: address) {
                transmit(waiting, to: mac)
            }
        }
    }

    /// The subnet's broadcast address; none for /31 and /32 (RFC 3021).
    private var subnetBroadcast: IPv4Address? {
        configuration.network.prefixLength >= 31 ? nil : configuration.network.broadcast
    }

    private func receiveIPv4(_ payload: Bits, linkBroadcast: Bool) {
        var header: IPv4Repr
        let headerLength: Int
        let totalLength: Int
        do {
            let view = try IPv4Packet(checking: payload.bytes)
            header = try IPv4Repr.parse(view)
            headerLength = view.headerLength
            totalLength = view.totalLength
        } catch {
            ownDrops.ipv4.count(error.dropReason)
            return
        }
        guard let packet = try? payload.prefix(totalLength),
            var data = try? packet.shifted(by: headerLength)
        else { return }
        let destination = header.destination
        let toBroadcast = destination == .broadcast || destination == subnetBroadcast
        // RFC 1122 §3.3.6: a unicast datagram in a link-layer broadcast is discarded.
        guard destination == address && !linkBroadcast || toBroadcast else {
            ownDrops.ipv4.count(.notForUs)
            return
        }
        // RFC 1122 §3.2.1.3: no answer may go to an unspecified, broadcast, multicast,
        // loopback or reserved (240/4) source, nor to ourselves.
        let source = header.source
        guard !source.isBroadcast, !source.isMulticast, !source.isUnspecified,
            !source.isLoopback, source.rawValue >> 28 != 0xf, source != subnetBroadcast,
            source != address
        else {
            ownDrops.ipv4.count(.badSourceAddress)
            return
        }
        let reassembled = header.isFragment
        if header.isFragment {
            switch reassembler.insert(header, payload: data, now: loop.now) {
            case .complete(let whole, let wholePayload):
                header = whole
                data = wholePayload
            case .incomplete:
                armReassemblyTimer()
                return
            case .dropped:
                return
            }
        }
        switch header.protocol {
        case .icmp: receiveICMP(header, data)
        case .udp:
            receiveUDP(
                header, data, original: reassembled ? nil : packet,
                originalHeaderLength: headerLength)
        default: ownDrops.ipv4.count(.unknownProtocol)
        }
    }

    private func receiveICMP(_ header: IPv4Repr, _ message: Bits) {
        let icmp: ICMPv4Repr
        do {
            icmp = try ICMPv4Repr.parse(message.bytes)
        } catch {
            ownDrops.icmp.count(error.dropReason)
            return
        }
        guard let data = try? message.shifted(by: ICMPv4Header.size) else { return }
        guard configuration.answersPing, let reply = icmp.echoReply else {
            ownDrops.icmp.count(.unhandledType)
            return
        }
        // RFC 1122 §3.2.2.6: an echo request to a broadcast address may be ignored.
        guard header.destination == address else {
            ownDrops.ipv4.count(.notForUs)
            return
        }
        // The reply is built in front of the request's data, in the same buffer.
        var packet = Packet(data)
        do {
            try reply.emit(prependingTo: &packet)
        } catch {
            ownDrops.icmp.count(error.dropReason)
            return
        }
        echoRepliesSent &+= 1
        sendIPv4(Bits(packet), protocol: .icmp, to: header.source)
    }

    /// `original` is the packet to quote in a port unreachable; nil for a reassembled
    /// datagram (RFC 1122 §3.2.2: no ICMP error about a non-initial fragment, and the
    /// fragment that completed it is rarely the first).
    private func receiveUDP(
        _ header: IPv4Repr, _ datagram: Bits, original: Bits?, originalHeaderLength: Int
    ) {
        let udp: UDPRepr
        let length: Int
        do {
            let view = try UDPDatagram(checking: datagram.bytes)
            udp = try UDPRepr.parse(
                view, source: header.source, destination: header.destination)
            length = view.length
        } catch {
            ownDrops.udp.count(error.dropReason)
            return
        }
        guard let data = try? datagram.slice(from: UDPHeader.size, length: length - UDPHeader.size)
        else { return }
        guard let listener = listeners[udp.destinationPort] else {
            ownDrops.udp.count(.noListener)
            // RFC 1122 §3.2.2.1 / §4.1.3.1: port unreachable, never for broadcasts.
            if header.destination == address, let original {
                sendPortUnreachable(
                    for: original, headerLength: originalHeaderLength, to: header.source)
            }
            return
        }
        datagramsDelivered &+= 1
        listener(
            Datagram(
                source: DatagramEndpoint(address: header.source, port: udp.sourcePort),
                destination: DatagramEndpoint(
                    address: header.destination, port: udp.destinationPort),
                payload: data))
    }

    private func sendPortUnreachable(
        for original: Bits, headerLength: Int, to source: IPv4Address
    ) {
        guard icmpErrors.take(now: loop.now) else {
            ownDrops.icmp.count(.rateLimited)
            return
        }
        // The quote is copied into a fresh buffer: the original's bytes are where the
        // headers would be prepended.
        guard var message = try? device.pool.allocatePacket(),
            let quote = try? original.prefix(min(original.count, headerLength + 8)),
            (try? quote.withUnsafeBytes { (bytes) throws(BitsError) in
                try message.append(contentsOf: bytes)
            }) != nil,
            (try? ICMPv4Repr.destinationUnreachable(.portUnreachable, nextHopMTU: 0).emit(
                prependingTo: &message)) != nil
        else { return }
        sendIPv4(Bits(message), protocol: .icmp, to: source)
    }

    // MARK: Datagram service (UDP)

    public func listen(port: UInt16, _ handler: @escaping (Datagram) -> Void) throws(DatagramError)
    {
        guard listeners[port] == nil else { throw .portInUse(port) }
        listeners[port] = handler
    }

    public func stopListening(port: UInt16) {
        listeners[port] = nil
    }

    public func send(
        _ payload: consuming Bits, to destination: DatagramEndpoint, from port: UInt16
    ) throws(DatagramError) {
        let length = payload.count
        guard length <= maximumUDPPayload else { throw .payloadTooLarge(length) }
        var data = payload
        // Build in place when there is room in front for every header (a received
        // payload being answered); otherwise copy into a buffer from the device's pool.
        if data.headroom < StackLayout.headersRoom {
            guard var copy = try? device.pool.allocate() else { throw .noBuffers }
            if length > copy.tailroom {
                guard
                    let large = try? Bits(
                        buffer: Buffer(byteCount: length + 256), offset: 128, count: 0)
                else { throw .noBuffers }
                copy = large
            }
            guard (try? copy.append(contentsOf: data)) != nil else { throw .noBuffers }
            data = copy
        }
        var packet = Packet(data)
        do {
            try UDPRepr(sourcePort: port, destinationPort: destination.port).emit(
                prependingTo: &packet, source: address, destination: destination.address)
        } catch {
            throw .payloadTooLarge(length)
        }
        datagramsSent &+= 1
        sendIPv4(Bits(packet), protocol: .udp, to: destination.address)
    }

    // MARK: Send

    /// Sends an IP payload: one packet, or fragments when it exceeds the MTU.
    private func sendIPv4(_ payload: Bits, protocol: IPProtocol, to destination: IPv4Address) {
        identification &+= 1
        var header = IPv4Repr(
            source: address, destination: destination, protocol: `protocol`,
            payloadLength: payload.count, identification: identification)
        // A fragment is built in one pool buffer: no larger than what one holds.
        let mtu = min(device.mtu, Buffer.pageSize - BufferPool.defaultHeadroom - 22)
        if payload.count + IPv4Repr.headerLength <= mtu {
            var packet = Packet(payload)
            do {
                try header.emit(prependingTo: &packet)
            } catch {
                ownDrops.ipv4.count(.tooShort)
                return
            }
            route(Bits(packet), to: destination)
            return
        }
        header.dontFragment = false
        guard var fragmenter = try? IPv4Fragmenter(header: header, payload: payload, mtu: mtu)
        else {
            return
        }
        while !fragmenter.isFinished {
            guard var fragment = try? device.pool.allocate(),
                (try? fragmenter.nextFragment(into: &fragment)) != nil
            else { return }
            route(fragment, to: destination)
        }
    }

    /// Resolves the next hop and sends, or queues the packet behind an ARP request.
    private func route(_ packet: Bits, to destination: IPv4Address) {
        let nextHop: IPv4Address
        if destination == .broadcast || destination == subnetBroadcast {
            transmit(packet, to: .broadcast)
            return
        } else if configuration.network.contains(destination) {
            nextHop = destination
        } else if let gateway = configuration.gateway {
            nextHop = gateway
        } else {
            ownDrops.ipv4.count(.notForUs)  // no route
            return
        }
        if let mac = arp.lookup(nextHop, now: loop.now) {
            transmit(packet, to: mac)
            return
        }
        // Waiting for ARP: queue a copy, so the packet holds no device buffer while it
        // waits and the caller's buffer can be reused (a reply to another sender built
        // in front of the same payload) without rewriting the queued one.
        let copy = Bits(packet.copyBytes(), headroom: StackLayout.headersRoom)
        switch arp.resolve(nextHop, now: loop.now, waiting: copy) {
        case .resolved(let mac):
            transmit(packet, to: mac)
        case .queued(let request):
            if let request { sendArp(request) }
            armArpTimer()
        case .dropped:
            break
        }
    }

    private func transmit(_ packet: Bits, to mac: MACAddress) {
        var frame = Packet(packet)
        do {
            try EthernetRepr(destination: mac, source: device.macAddress, etherType: .ipv4).emit(
                prependingTo: &frame)
            try device.transmit(Bits(frame))
        } catch {
            // Counted by the device (or a frame too large: a bug, not traffic).
        }
    }

    private func sendArp(_ packet: ArpRepr) {
        guard var frame = try? device.pool.allocatePacket() else { return }
        do {
            try packet.emit(prependingTo: &frame)
            try packet.ethernetHeader.emit(prependingTo: &frame)
            // Pad to the Ethernet minimum (60 bytes before the FCS).
            if frame.count < 60 {
                let padding = 60 - frame.count
                try frame.extend(by: padding)
                for offset in (60 - padding)..<60 { try frame.write(UInt8(0), at: offset) }
            }
            try device.transmit(Bits(frame))
        } catch {
        }
    }

    // MARK: Timers

    private func armArpTimer() {
        guard let deadline = arp.nextDeadline else { return }
        if let armed = arpTimer {
            if armed.deadline <= deadline { return }
            loop.cancelTimer(armed.id)
        }
        let id = loop.schedule(at: deadline) { [unowned self] in
            self.arpTimer = nil
            let now = self.loop.now
            while let request = self.arp.poll(now: now) { self.sendArp(request) }
            self.armArpTimer()
        }
        arpTimer = (id, deadline)
    }

    private func armReassemblyTimer() {
        guard let deadline = reassembler.nextDeadline else { return }
        if let armed = reassemblyTimer {
            if armed.deadline <= deadline { return }
            loop.cancelTimer(armed.id)
        }
        let id = loop.schedule(at: deadline) { [unowned self] in
            self.reassemblyTimer = nil
            self.reassembler.expire(now: self.loop.now)
            self.armReassemblyTimer()
        }
        reassemblyTimer = (id, deadline)
    }

}

/// Room the stack needs in front of a payload to prepend every header in place.
enum StackLayout {
    /// Ethernet (14) + two VLAN tags (8) + IPv4 (20) + UDP (8), rounded up.
    static let headersRoom = 64
}
