// The link layer: Ethernet and ARP over one device (Mirage's ETHERNET and ARP).

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire

/// What an IP layer needs from the link below it: the signature a fake link satisfies
/// in tests, and ``EthernetLink`` on a device.
public protocol LinkLayer: AnyObject {
    /// The link's own hardware address.
    var macAddress: MACAddress { get }
    /// What the device carries and checks.
    var capabilities: DeviceCapabilities { get }
    /// Bytes a packet must have in front of it for the link's header.
    var headroom: Int { get }
    /// Bytes in front of a packet from ``allocatePacket()``: what the rest of its page
    /// holds bounds the largest packet built in one.
    var allocationHeadroom: Int { get }
    /// The bytes of a buffer from ``allocatePacket()``, headroom included (a page,
    /// or more where the device takes large segments).
    var allocationCapacity: Int { get }
    /// The loop's clock, for the layers above.
    var now: Duration { get }
    /// An empty packet from the device's pool, with room in front for every header.
    func allocatePacket() -> Packet?
    /// Sends an IPv4 packet to the neighbour `nextHop`, resolving its hardware address
    /// first (the packet waits meanwhile, a bounded time and number; drops are counted).
    func send(_ packet: consuming Packet, to nextHop: IPv4Address)
    /// Sends an IPv4 packet to every station on the link.
    func broadcast(_ packet: consuming Packet)
}

extension LinkLayer {
    /// One page, unless the link says otherwise.
    public var allocationCapacity: Int { Buffer.pageSize }
}

/// What a link hands up: the IPv4 packets it received for this station.
public protocol LinkReceiver {
    /// One IPv4 packet; `linkBroadcast` when its frame went to the broadcast address.
    func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool)
}

/// Ethernet and ARP over a ``NetworkDevice``: frames in, IPv4 packets up; IPv4 packets
/// down, to the right neighbour's hardware address.
///
/// ```swift
/// let link = EthernetLink(device: tap, address: ours, arp: .init(), on: loop)
/// link.receive(&batch, to: stack)          // a device batch: ARP answered, IPv4 handed
///                                          // to the receiver (IPv4Stack is one)
/// link.send(packet, to: nextHop)           // ARP-resolved, queued if need be
/// ```
///
/// The station sits on no VLAN: tagged frames are dropped (answering them untagged
/// would cross VLAN boundaries on a trunk).
public final class EthernetLink<Device: NetworkDevice>: LinkLayer {
    /// The device frames go through.
    public let device: Device
    /// Our IPv4 address, for ARP; 0.0.0.0 while the stack has none.
    public private(set) var address: IPv4Address
    @usableFromInline internal let loop: EventLoop
    @exclusivity(unchecked) private var arp: ArpCache
    /// The last neighbour resolved, kept at hand until its entry expires or the cache
    /// changes: most packets go to the neighbour the one before went to, and this
    /// spares them the table's hashing.
    @exclusivity(unchecked) @usableFromInline internal var lastHop = IPv4Address.any
    @exclusivity(unchecked) @usableFromInline internal var lastHopMAC = MACAddress.zero
    @exclusivity(unchecked) @usableFromInline internal var lastHopExpires = Duration.zero
    @exclusivity(unchecked) @usableFromInline internal var ethernetDrops =
        DropCounters<EthernetDropReason>()
    @exclusivity(unchecked) @usableFromInline internal var arpParseDrops =
        DropCounters<ArpDropReason>()
    private var arpTimer: (id: TimerID, deadline: Duration)?
    /// When we last defended our address with a gratuitous ARP (RFC 5227 §2.4 (c)).
    private var lastDefence: Duration?

    /// Called when another station claims our address (RFC 5227 §2.4) with its hardware
    /// address, before the link defends the address (at most once per
    /// ``defendInterval``) with a gratuitous ARP. The claim is counted
    /// (`arp.addressConflict`) either way.
    ///
    /// ```swift
    /// stack.link.onAddressConflict = { mac in Console.log("\(mac) claims our address") }
    /// ```
    public var onAddressConflict: ((MACAddress) -> Void)?

    /// Called with every well-formed ARP message the link receives from its device and
    /// the frame's Ethernet source, after the link has handled it. For links that
    /// answer for the same address on several queues of one interface (a worker per
    /// queue): ARP lands on one queue only, so each link hands what it hears to the
    /// others' ``learn(fromSibling:linkSource:)``; ARP is rare, so this is off the
    /// per-packet path.
    ///
    /// ```swift
    /// first.link.onArpReceived = { message, source in
    ///     otherLoop.execute { second.link.learn(fromSibling: message, linkSource: source) }
    /// }
    /// ```
    public var onArpReceived: ((ArpRepr, MACAddress) -> Void)?

    /// Takes an ARP message another link for the same address and interface received
    /// (see ``onArpReceived``) into this link's cache, under the cache's own rules
    /// (a reply to a request this link sent resolves it, and the packets waiting for it
    /// leave; an unsolicited change is refused), without answering it, defending the
    /// address or telling ``onArpReceived``: the link that received it did those.
    public func learn(fromSibling message: ArpRepr, linkSource: MACAddress) {
        // The reply and the conflict are the receiving link's to act on.
        let reception = arp.receive(message, linkSource: linkSource, now: loop.now)
        forgetLastHop()
        if let (address, mac) = reception.resolved {
            while let waiting = arp.takeWaiting(for: address) {
                transmit(waiting, to: mac)
            }
        }
    }

    /// RFC 5227's DEFEND_INTERVAL: at most one defence of our address this often.
    public static var defendInterval: Duration { .seconds(10) }

    /// The link over `device`, answering ARP for `address`.
    public init(
        device: Device, address: IPv4Address, arp configuration: ArpCache.Configuration,
        on loop: EventLoop
    ) {
        self.device = device
        self.address = address
        self.loop = loop
        arp = ArpCache(mac: device.macAddress, address: address, configuration: configuration)
    }

    @inlinable public var macAddress: MACAddress { device.macAddress }
    @inlinable public var capabilities: DeviceCapabilities { device.capabilities }
    /// The Ethernet header alone: the station sends untagged frames.
    @inlinable public var headroom: Int { EthernetHeader.size }
    @inlinable public var allocationHeadroom: Int { device.pool.headroom }
    @inlinable public var allocationCapacity: Int { device.pool.bufferCapacity }
    @inlinable public var now: Duration { loop.now }

    /// Entries in the ARP cache (bounded by its configuration).
    public var arpEntries: Int { arp.count }

    /// Every drop at this layer, per reason.
    public var drops: (ethernet: DropCounters<EthernetDropReason>, arp: DropCounters<ArpDropReason>)
    {
        var arpDrops = arpParseDrops
        for reason in ArpDropReason.allCases { arpDrops.count(reason, arp.drops[reason]) }
        return (ethernetDrops, arpDrops)
    }

    @inlinable
    public func allocatePacket() -> Packet? {
        try? device.pool.allocatePacket()
    }

    /// Takes a new address (a DHCP lease, or 0.0.0.0 when it is gone). Neighbours
    /// stay known: the link is the same.
    public func reconfigure(address: IPv4Address) {
        self.address = address
        arp.address = address
        probing = nil
        forgetLastHop()
    }

    /// An address being probed, and what to call if another station has it.
    private var probing: (address: IPv4Address, inUse: () -> Void)?

    /// Probes `address` before it is taken (RFC 5227 §2.1.1): ARP requests from
    /// 0.0.0.0, now and a second later; `inUse` is called once if another station
    /// answers for it, claims it, or probes for it too. Probing ends at the next
    /// ``reconfigure(address:)``.
    ///
    /// ```swift
    /// stack.link.probe(offered) { decline() }
    /// ```
    public func probe(_ address: IPv4Address, inUse: @escaping () -> Void) {
        probing = (address, inUse)
        let request = ArpRepr(
            operation: .request, senderHardwareAddress: device.macAddress,
            senderProtocolAddress: .any, targetHardwareAddress: .zero,
            targetProtocolAddress: address)
        sendArp(request)
        loop.schedule(after: .seconds(1)) { [weak self] in
            guard let self, self.probing?.address == address else { return }
            self.sendArp(request)
        }
    }

    /// RFC 5227 §2.1.1: while probing, a packet whose sender is the address, or a probe
    /// for it from another station, means it is in use.
    private func checkProbe(_ message: ArpRepr) {
        guard let (address, inUse) = probing,
            message.senderHardwareAddress != device.macAddress
        else { return }
        let claims = message.senderProtocolAddress == address
        let probesToo =
            message.senderProtocolAddress.isUnspecified && message.operation == .request
            && message.targetProtocolAddress == address
        guard claims || probesToo else { return }
        probing = nil
        inUse()
    }

    /// Announces our address with a gratuitous ARP (RFC 5227 §3).
    public func announce() {
        sendArp(arp.gratuitous)
    }

    /// Cancels the link's timer.
    public func stop() {
        if let arpTimer { loop.cancelTimer(arpTimer.id) }
        arpTimer = nil
    }

    deinit {
        stop()
    }

    // MARK: Receive

    /// Handles a batch of frames from the device: ARP is answered here, IPv4 packets
    /// for this station go to `upper`, the rest is dropped and counted.
    @inlinable
    public func receive<Upper: LinkReceiver>(_ batch: inout PacketBatch, to upper: Upper) {
        for index in batch.indices {
            guard let frame = batch.take(at: index) else { continue }
            receive(frame, to: upper)
        }
    }

    /// Handles one frame.
    @inlinable
    public func receive<Upper: LinkReceiver>(_ frame: consuming Packet, to upper: Upper) {
        var frame = frame
        let type: EtherType
        let broadcast: Bool
        let source: MACAddress
        do {
            let view = try EthernetFrame(checking: frame.bytes)
            let destination = view.destination
            source = view.source
            broadcast = destination.isBroadcast
            guard destination == device.macAddress || broadcast else {
                ethernetDrops.count(.notForUs)
                return
            }
            guard view.tagCount == 0, view.isEthernetII else {
                ethernetDrops.count(.unsupportedFormat)
                return
            }
            type = view.etherType
        } catch {
            ethernetDrops.count(error.dropReason)
            return
        }
        // Checked above: the header is there.
        try? frame.shift(by: EthernetHeader.size)
        switch type {
        case .ipv4: upper.receiveIPv4(frame, linkBroadcast: broadcast)
        case .arp: receiveArp(frame, linkSource: source)
        default: ethernetDrops.count(.unknownEtherType)
        }
    }

    @usableFromInline
    internal func receiveArp(_ packet: consuming Packet, linkSource: MACAddress) {
        let message: ArpRepr
        do {
            message = try ArpRepr.parse(packet.bytes)
        } catch {
            arpParseDrops.count(error.dropReason)
            return
        }
        if probing != nil { checkProbe(message) }
        let reception = arp.receive(message, linkSource: linkSource, now: loop.now)
        forgetLastHop()
        if let claimant = reception.conflict { defend(against: claimant) }
        if let reply = reception.reply { sendArp(reply) }
        if let (address, mac) = reception.resolved {
            while let waiting = arp.takeWaiting(for: address) {
                transmit(waiting, to: mac)
            }
        }
        onArpReceived?(message, linkSource)
    }

    /// RFC 5227 §2.4 (b): tell, and defend the address with one gratuitous ARP unless
    /// we did so within DEFEND_INTERVAL (then the claimant is left to notice).
    private func defend(against claimant: MACAddress) {
        onAddressConflict?(claimant)
        let now = loop.now
        if let lastDefence, now - lastDefence < Self.defendInterval { return }
        lastDefence = now
        announce()
    }

    // MARK: Send

    @inlinable
    public func send(_ packet: consuming Packet, to nextHop: IPv4Address) {
        if nextHop == lastHop && loop.turnTime < lastHopExpires {
            transmit(packet, to: lastHopMAC)
            return
        }
        if let mac = hardwareAddress(of: nextHop) {
            transmit(packet, to: mac)
            return
        }
        resolve(packet, for: nextHop)
    }

    /// The hardware address of the neighbour `ip`, if known: fresh, or past its
    /// lifetime while it is asked again (the request goes out on the first such use).
    @usableFromInline
    internal func hardwareAddress(of ip: IPv4Address) -> MACAddress? {
        guard let (mac, expires) = arp.lookupWithExpiry(ip, now: loop.now) else {
            return staleHardwareAddress(of: ip)
        }
        lastHop = ip
        lastHopMAC = mac
        lastHopExpires = expires
        return mac
    }

    /// A stale entry's address, asking the neighbour again the first time.
    private func staleHardwareAddress(of ip: IPv4Address) -> MACAddress? {
        guard let (mac, request) = arp.staleLookup(ip, now: loop.now) else { return nil }
        if let request {
            sendArp(request)
            armArpTimer()
        }
        return mac
    }

    /// Forgets the neighbour kept at hand: the cache changed.
    private func forgetLastHop() {
        lastHopExpires = .zero
    }

    /// Queues a copy of `packet` behind an ARP request for `nextHop`.
    @usableFromInline
    internal func resolve(_ packet: consuming Packet, for nextHop: IPv4Address) {
        forgetLastHop()
        switch arp.enqueue(packet, for: nextHop, now: loop.now) {
        case .queued(let request):
            if let request { sendArp(request) }
            armArpTimer()
        case .dropped:
            break
        }
    }

    @inlinable
    public func broadcast(_ packet: consuming Packet) {
        transmit(packet, to: .broadcast)
    }

    @inlinable
    internal func transmit(_ packet: consuming Packet, to mac: MACAddress) {
        var frame = packet
        do {
            try EthernetRepr(destination: mac, source: device.macAddress, etherType: .ipv4).emit(
                prependingTo: &frame)
            try device.transmit(frame)
        } catch {
            ethernetDrops.count(.transmitFailed)
        }
    }

    @usableFromInline
    internal func sendArp(_ message: ArpRepr) {
        guard var frame = allocatePacket() else { return }
        do {
            try message.emit(prependingTo: &frame)
            try message.ethernetHeader.emit(prependingTo: &frame)
            // Pad to the Ethernet minimum (60 bytes before the FCS).
            if frame.count < 60 {
                let padding = 60 - frame.count
                try frame.extend(by: padding)
                frame.withUnsafeMutableBytes { bytes in
                    for offset in (60 - padding)..<60 { bytes[offset] = 0 }
                }
            }
            try device.transmit(frame)
        } catch {
        }
    }

    // MARK: Timer

    private func armArpTimer() {
        guard let deadline = arp.nextDeadline else { return }
        if let armed = arpTimer {
            if armed.deadline <= deadline { return }
            loop.cancelTimer(armed.id)
        }
        let id = loop.schedule(at: deadline) { [weak self] in self?.arpTimerFired() }
        arpTimer = (id, deadline)
    }

    private func arpTimerFired() {
        arpTimer = nil
        let now = loop.now
        forgetLastHop()
        while let request = arp.poll(now: now) { sendArp(request) }
        armArpTimer()
    }
}
