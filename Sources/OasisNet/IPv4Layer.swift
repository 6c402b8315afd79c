// The IPv4 layer: routing, fragmentation and reassembly, demultiplexing by protocol,
// ICMP errors, and the one output path every protocol above uses (Mirage's IP).

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire

/// A received datagram's header, as the IP layer hands it up with its payload.
public struct IPv4Info: Hashable, Sendable {
    /// Who sent it.
    public var source: IPv4Address
    /// Where to: our address or a broadcast address.
    public var destination: IPv4Address
    /// The payload's protocol.
    public var `protocol`: IPProtocol
    /// Time to live, as received.
    public var timeToLive: UInt8
    /// DSCP and ECN.
    public var typeOfService: UInt8
    /// The header's length: the bytes in front of the payload's window that hold it
    /// (what an ICMP error quotes). Zero for a reassembled datagram.
    public var headerLength: Int
    /// Whether it was sent to a broadcast address (the limited or the subnet's).
    public var isBroadcast: Bool
    /// Whether it was reassembled from fragments (its header is no longer in front).
    public var wasReassembled: Bool

    @inlinable
    public init(
        source: IPv4Address, destination: IPv4Address, protocol: IPProtocol,
        timeToLive: UInt8 = 64, typeOfService: UInt8 = 0, headerLength: Int = 20,
        isBroadcast: Bool = false, wasReassembled: Bool = false
    ) {
        self.source = source
        self.destination = destination
        self.protocol = `protocol`
        self.timeToLive = timeToLive
        self.typeOfService = typeOfService
        self.headerLength = headerLength
        self.isBroadcast = isBroadcast
        self.wasReassembled = wasReassembled
    }
}

/// What an IP layer hands up: the datagrams for this host, by protocol.
public protocol IPv4Receiver {
    /// Whether a layer above takes `protocol`; a datagram for one that none takes is
    /// answered with ICMP protocol unreachable (RFC 1122 §3.2.2.1).
    func accepts(_ protocol: IPProtocol) -> Bool
    /// A datagram for this host: `payload` is the IP payload, `info` its header.
    func receive(_ payload: consuming Packet, info: IPv4Info)
}

/// What a transport needs from the IP layer below it: the signature a fake IP layer
/// satisfies in tests, and ``IPv4Layer`` over a link.
public protocol IPLayer: AnyObject {
    /// This host's address.
    var address: IPv4Address { get }
    /// This host's subnet.
    var network: IPv4Network { get }
    /// The loop's clock.
    var now: Duration { get }
    /// Bytes a transport leaves in front of its header for the layers below.
    var headroom: Int { get }
    /// Transport checksums the device verified on what it delivers.
    var receiveChecksums: ChecksumOffloads { get }
    /// Transport checksums the device would fill in on what it sends, were the
    /// transport to write only the pseudo-header sum and say so in the packet's
    /// ``PacketOffload`` (TCP does, over a TAP with offloads; UDP always writes the
    /// whole sum).
    var transmitChecksums: ChecksumOffloads { get }
    /// TCP segmentation offload: the largest IP packet carrying one TCP segment that
    /// the device cuts at the MSS its ``PacketOffload`` names, and that a buffer of
    /// ``allocatePacket()`` holds; 0 (the default) when the device cuts nothing.
    var maximumSegmentationSize: Int { get }
    /// An empty packet with ``headroom`` in front, from the device's pool.
    func allocatePacket() -> Packet?
    /// The largest payload one datagram to `destination` carries unfragmented.
    func maximumPayload(to destination: IPv4Address) -> Int
    /// Sends `payload` (a transport segment, its header written) to `destination`:
    /// prepends the IPv4 header, fragments it when it exceeds the MTU, and hands it to
    /// the link for the right next hop. False (and counted) when there is no route.
    @discardableResult
    func send(_ payload: consuming Packet, protocol: IPProtocol, to destination: IPv4Address)
        -> Bool
    /// Answers a received datagram with ICMP destination unreachable `code`, quoting its
    /// header and first 8 bytes (`datagram` is its payload, the header in front of it).
    /// Rate-limited; never about a broadcast or a reassembled datagram (RFC 1122 §3.2.2).
    func sendUnreachable(
        _ code: DestinationUnreachable, about datagram: consuming Packet, info: IPv4Info)
}

extension IPLayer {
    /// No segmentation offload, unless the layer says otherwise.
    public var maximumSegmentationSize: Int { 0 }
}

/// How an ``IPv4Layer`` is set up.
public struct IPv4Configuration: Sendable {
    /// The address and subnet, e.g. `192.0.2.2/24`.
    public var network: IPv4Network
    /// Where packets for other subnets go; nil: only the local subnet is reachable.
    public var gateway: IPv4Address?
    /// Bounds of fragment reassembly.
    public var reassembly = IPv4Reassembler.Configuration()
    /// ICMP errors per second, and the burst allowed (RFC 1812 §4.3.2.8).
    public var icmpErrorsPerSecond = 100
    public var icmpErrorBurst = 20
    /// The largest IP packet to send when it is less than the link's MTU (a DHCP
    /// server's option 26); nil: the link's.
    public var mtu: Int?

    public init(network: IPv4Network, gateway: IPv4Address? = nil, mtu: Int? = nil) {
        self.network = network
        self.gateway = gateway
        self.mtu = mtu
    }

    /// No address yet: `0.0.0.0/32`, no gateway. A layer so configured sends from
    /// 0.0.0.0 to the limited broadcast only, and takes unicast UDP to port 68 at any
    /// address (a DHCP server's reply to the address it offers, RFC 2131 §4.1).
    public static var unconfigured: IPv4Network { IPv4Network(address: .any, prefixLength: 32)! }
}

/// IPv4 over a link: checks what arrives, reassembles fragments, hands datagrams to the
/// protocols above; sends for them, fragmenting to the MTU and routing to the next hop.
///
/// ```swift
/// let ip = IPv4Layer(link: link, configuration: .init(network: net), on: loop)
/// ip.receive(packet, linkBroadcast: false, to: transports)   // from the link
/// ip.send(segment, protocol: .udp, to: peer)                 // from a transport
/// ```
public final class IPv4Layer<Link: LinkLayer>: IPLayer {
    /// The link below.
    public let link: Link
    /// The configuration: set at first, changed by ``reconfigure(_:)`` (DHCP).
    public private(set) var configuration: IPv4Configuration
    @usableFromInline internal let loop: EventLoop
    /// The configuration's addresses, worked out once per configuration.
    @exclusivity(unchecked) public private(set) var address: IPv4Address
    @exclusivity(unchecked) @usableFromInline internal var netmask: UInt32
    @exclusivity(unchecked) @usableFromInline internal var subnet: UInt32
    /// The subnet's broadcast address; the limited broadcast for /31 and /32, which
    /// have none of their own (RFC 3021), so that comparing with it means nothing new.
    @exclusivity(unchecked) @usableFromInline internal var subnetBroadcastAddress: IPv4Address
    @exclusivity(unchecked) @usableFromInline internal var gateway: IPv4Address?
    /// The configuration's MTU, or the largest integer.
    @exclusivity(unchecked) @usableFromInline internal var mtuLimit: Int
    @exclusivity(unchecked) @usableFromInline internal var reassembler: IPv4Reassembler
    @exclusivity(unchecked) @usableFromInline internal var icmpErrors: TokenBucket
    @exclusivity(unchecked) @usableFromInline internal var identification: UInt16
    @exclusivity(unchecked) @usableFromInline internal var ownDrops = DropCounters<IPv4DropReason>()
    /// ICMP errors not sent (rate limited).
    @exclusivity(unchecked) public private(set) var icmpErrorDrops =
        DropCounters<ICMPv4DropReason>()
    /// ICMP destination unreachables sent (protocol and port unreachable together).
    @exclusivity(unchecked) public private(set) var unreachablesSent: UInt64 = 0
    private var reassemblyTimer: (id: TimerID, deadline: Duration)?

    public init(link: Link, configuration: IPv4Configuration, on loop: EventLoop) {
        self.link = link
        self.configuration = configuration
        self.loop = loop
        address = configuration.network.address
        netmask = configuration.network.netmask.rawValue
        subnet = configuration.network.address.rawValue & netmask
        subnetBroadcastAddress =
            configuration.network.prefixLength >= 31 ? .broadcast : configuration.network.broadcast
        gateway = configuration.gateway
        mtuLimit = configuration.mtu ?? .max
        reassembler = IPv4Reassembler(configuration: configuration.reassembly)
        icmpErrors = TokenBucket(
            ratePerSecond: configuration.icmpErrorsPerSecond,
            burst: configuration.icmpErrorBurst, now: loop.now)
        identification = UInt16.random(in: 0...UInt16.max)
    }

    deinit {
        stop()
    }

    /// Takes a new address, subnet, gateway and MTU (a DHCP lease, or its loss:
    /// ``IPv4Configuration/unconfigured``). Fragments being reassembled, the ICMP rate
    /// and its bounds stay as they were.
    public func reconfigure(_ new: IPv4Configuration) {
        var kept = configuration
        kept.network = new.network
        kept.gateway = new.gateway
        kept.mtu = new.mtu
        configuration = kept
        address = new.network.address
        netmask = new.network.netmask.rawValue
        subnet = new.network.address.rawValue & netmask
        subnetBroadcastAddress = new.network.prefixLength >= 31 ? .broadcast : new.network.broadcast
        gateway = new.gateway
        mtuLimit = new.mtu ?? .max
    }

    /// Whether the layer has an address (not 0.0.0.0).
    public var isConfigured: Bool { !address.isUnspecified }

    @inlinable public var network: IPv4Network { configuration.network }
    @inlinable public var now: Duration { loop.now }
    @inlinable public var headroom: Int { IPv4Header.size &+ link.headroom }
    @inlinable public var receiveChecksums: ChecksumOffloads { link.capabilities.receiveChecksums }
    @inlinable public var transmitChecksums: ChecksumOffloads {
        link.capabilities.transmitChecksums
    }
    @inlinable public func allocatePacket() -> Packet? { link.allocatePacket() }

    /// Every drop at this layer, and the reassembler's.
    public var drops:
        (ipv4: DropCounters<IPv4DropReason>, reassembly: DropCounters<ReassemblyDropReason>)
    {
        (ownDrops, reassembler.drops)
    }

    /// Bytes held by datagrams waiting for their missing fragments.
    public var reassemblyBytesHeld: Int { reassembler.bytesHeld }

    /// The largest IP packet this layer builds: the link's MTU, but no more than one
    /// pool buffer holds behind the headers, since a packet (a fragment) is built in one.
    @inlinable
    public var mtu: Int {
        min(link.capabilities.mtu, link.allocationCapacity &- link.allocationHeadroom, mtuLimit)
    }

    /// The largest TCP packet the device segments (and a buffer holds behind the
    /// headers); 0 when it segments nothing.
    @inlinable
    public var maximumSegmentationSize: Int {
        let capabilities = link.capabilities
        guard capabilities.segmentsTCP, capabilities.transmitChecksums.contains(.tcp) else {
            return 0
        }
        return min(
            capabilities.maximumSegmentationSize,
            link.allocationCapacity &- link.allocationHeadroom)
    }

    @inlinable
    public func maximumPayload(to destination: IPv4Address) -> Int {
        mtu &- IPv4Header.size
    }

    /// Cancels the reassembly timer.
    public func stop() {
        if let reassemblyTimer { loop.cancelTimer(reassemblyTimer.id) }
        reassemblyTimer = nil
    }

    // MARK: Receive

    /// Handles one IPv4 packet from the link: checks it (RFC 791; RFC 1122 §3.2.1),
    /// reassembles fragments, and hands datagrams for this host to `upper`.
    @inlinable
    public func receive<Upper: IPv4Receiver>(
        _ packet: consuming Packet, linkBroadcast: Bool, to upper: Upper
    ) {
        var packet = packet
        let header: IPv4Repr
        let headerLength: Int
        do {
            let view = try IPv4Packet(checking: packet.bytes)
            header = try IPv4Repr.parse(
                view, verifyChecksum: !receiveChecksums.contains(.ipv4))
            headerLength = view.headerLength
            if headerLength > IPv4Header.size { try view.validateOptions() }
        } catch {
            ownDrops.count(error.dropReason)
            return
        }
        let destination = header.destination
        let toBroadcast = destination == .broadcast || destination == subnetBroadcastAddress
        // RFC 1122 §3.3.6: a unicast datagram in a link-layer broadcast is discarded.
        guard
            destination == address && !linkBroadcast || toBroadcast
                || acceptsBeforeConfiguration(
                    header, linkBroadcast: linkBroadcast,
                    destinationPort: (try? packet.read(UInt16.self, at: headerLength &+ 2)) ?? 0)
        else {
            ownDrops.count(.notForUs)
            return
        }
        // RFC 1122 §3.2.1.3: no answer may go to an unspecified, broadcast, multicast,
        // loopback or reserved (240/4) source, nor to ourselves.
        let source = header.source
        guard !source.isBroadcast, !source.isMulticast, !source.isUnspecified,
            !source.isLoopback, source.rawValue >> 28 != 0xf, source != subnetBroadcastAddress,
            source != address
        else {
            ownDrops.count(.badSourceAddress)
            return
        }
        // Checked by the view: the header and payload are within the packet.
        try? packet.truncate(to: headerLength &+ header.payloadLength)
        try? packet.shift(by: headerLength)
        var info = IPv4Info(
            source: source, destination: destination, protocol: header.protocol,
            timeToLive: header.timeToLive, typeOfService: header.typeOfService,
            headerLength: headerLength, isBroadcast: toBroadcast)
        if header.isFragment {
            reassemble(packet, header: header, info: info, to: upper)
            return
        }
        guard upper.accepts(header.protocol) else {
            refuse(packet, info: info)
            return
        }
        info.wasReassembled = false
        upper.receive(packet, info: info)
    }

    /// Without an address, unicast UDP to the DHCP client's port (68) at any address
    /// is taken: a DHCP server answers the address it offers (RFC 2131 §4.1), and the
    /// client checks the rest. Nothing else is, until the stack has an address.
    @inlinable
    internal func acceptsBeforeConfiguration(
        _ header: IPv4Repr, linkBroadcast: Bool, destinationPort: @autoclosure () -> UInt16
    ) -> Bool {
        address.isUnspecified && header.protocol == .udp && !linkBroadcast && !header.isFragment
            && destinationPort() == 68
    }

    /// A fragment: held until its datagram is whole, then handed up.
    @usableFromInline
    internal func reassemble<Upper: IPv4Receiver>(
        _ fragment: consuming Packet, header: IPv4Repr, info: IPv4Info, to upper: Upper
    ) {
        switch reassembler.insert(header, payload: fragment, now: loop.now) {
        case .complete(let whole, let payload):
            var info = info
            info.headerLength = 0
            info.wasReassembled = true
            guard upper.accepts(whole.protocol) else {
                ownDrops.count(.unknownProtocol)
                return
            }
            upper.receive(payload, info: info)
        case .incomplete:
            armReassemblyTimer()
        case .dropped:
            break
        }
    }

    /// A datagram for a protocol no layer above takes: counted, and answered with
    /// protocol unreachable (RFC 1122 §3.2.2.1).
    @usableFromInline
    internal func refuse(_ datagram: consuming Packet, info: IPv4Info) {
        ownDrops.count(.unknownProtocol)
        sendUnreachable(.protocolUnreachable, about: datagram, info: info)
    }

    // MARK: Send

    @inlinable
    @discardableResult
    public func send(_ payload: consuming Packet, protocol: IPProtocol, to destination: IPv4Address)
        -> Bool
    {
        identification &+= 1
        let header = IPv4Repr(
            source: address, destination: destination, protocol: `protocol`,
            payloadLength: payload.count, identification: identification)
        guard payload.count &+ IPv4Header.size <= mtu else {
            // A TCP segment the device cuts itself goes whole (the device's segments
            // each get this header, their identifications counting up from it).
            guard payload.offload.needsSegmentation else {
                return sendFragments(payload, header: header)
            }
            guard payload.count &+ IPv4Header.size <= maximumSegmentationSize else {
                ownDrops.count(.sendFailed)
                return false
            }
            identification &+= UInt16(
                truncatingIfNeeded: payload.count / max(Int(payload.offload.segmentSize), 1))
            var packet = payload
            do {
                try header.emit(prependingTo: &packet)
            } catch {
                ownDrops.count(.sendFailed)
                return false
            }
            return route(packet, to: destination)
        }
        var packet = payload
        do {
            try header.emit(prependingTo: &packet)
        } catch {
            ownDrops.count(.sendFailed)
            return false
        }
        return route(packet, to: destination)
    }

    /// A datagram larger than the MTU, sent as fragments, each built in a buffer of
    /// the device's pool (RFC 791 §3.2).
    @usableFromInline
    internal func sendFragments(_ payload: consuming Packet, header: IPv4Repr) -> Bool {
        var header = header
        header.dontFragment = false
        guard var fragmenter = try? IPv4Fragmenter(header: header, payload: Bits(payload), mtu: mtu)
        else {
            ownDrops.count(.sendFailed)
            return false
        }
        while !fragmenter.isFinished {
            guard var fragment = allocatePacket(),
                (try? fragmenter.nextFragment(into: &fragment)) != nil
            else {
                ownDrops.count(.sendFailed)
                return false
            }
            // No route is counted by `route`, for the first fragment.
            guard route(fragment, to: header.destination) else { return false }
        }
        return true
    }

    /// Hands a packet to the link for its next hop: the destination on our subnet, the
    /// gateway beyond it, everyone for a broadcast.
    @inlinable
    internal func route(_ packet: consuming Packet, to destination: IPv4Address) -> Bool {
        if destination == .broadcast || destination == subnetBroadcastAddress {
            link.broadcast(packet)
            return true
        }
        let nextHop: IPv4Address
        if destination.rawValue & netmask == subnet {
            nextHop = destination
        } else if let gateway {
            nextHop = gateway
        } else {
            ownDrops.count(.noRoute)
            return false
        }
        link.send(packet, to: nextHop)
        return true
    }

    public func sendUnreachable(
        _ code: DestinationUnreachable, about datagram: consuming Packet, info: IPv4Info
    ) {
        guard info.destination == address, !info.isBroadcast, !info.wasReassembled else { return }
        guard icmpErrors.take(now: loop.now) else {
            icmpErrorDrops.count(.rateLimited)
            return
        }
        // The quote is the datagram's own header and first 8 bytes, where they lie; the
        // error's headers go in front of them (a copy only when there is no room).
        var message = datagram
        guard (try? message.prepend(info.headerLength)) != nil,
            (try? message.truncate(to: min(message.count, info.headerLength &+ 8))) != nil
        else { return }
        if message.headroom < ICMPv4Header.size &+ headroom {
            // Into a buffer of the device's pool, with the room in front.
            guard var copy = allocatePacket(),
                message.withUnsafeBytes({ (try? copy.append(contentsOf: $0)) != nil })
            else { return }
            message = copy
        }
        guard
            (try? ICMPv4Repr.destinationUnreachable(code, nextHopMTU: 0).emit(
                prependingTo: &message)) != nil
        else { return }
        unreachablesSent &+= 1
        send(message, protocol: .icmp, to: info.source)
    }

    // MARK: Timer

    @usableFromInline
    internal func armReassemblyTimer() {
        guard let deadline = reassembler.nextDeadline else { return }
        if let armed = reassemblyTimer {
            if armed.deadline <= deadline { return }
            loop.cancelTimer(armed.id)
        }
        let id = loop.schedule(at: deadline) { [weak self] in self?.reassemblyTimerFired() }
        reassemblyTimer = (id, deadline)
    }

    private func reassemblyTimerFired() {
        reassemblyTimer = nil
        reassembler.expire(now: loop.now)
        armReassemblyTimer()
    }
}
