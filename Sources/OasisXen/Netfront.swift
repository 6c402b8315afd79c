// Netfront: a Xen virtual network interface as a NetworkDevice, on any XenFacilities.

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The features a ``Netfront`` can negotiate with netback (io/netif.h's `feature-*` nodes).
///
/// ```swift
/// let vif = try Netfront(facilities: xen, on: loop, features: .all)
/// if vif.features.contains(.segmentation) { /* 64 KiB TCP segments both ways */ }
/// ```
public struct NetfrontFeatures: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// `feature-sg`: frames over several slots each way.
    public static let scatterGather = NetfrontFeatures(rawValue: 1)
    /// Checksums left partial both ways (`NETTXF_csum_blank`, `NETRXF_csum_blank`).
    public static let checksumOffload = NetfrontFeatures(rawValue: 2)
    /// `feature-gso-tcpv4` both ways (needs the other two).
    public static let segmentation = NetfrontFeatures(rawValue: 4)
    /// Scatter-gather and checksum offload: safe for any user of the device.
    public static let standard: NetfrontFeatures = [.scatterGather, .checksumOffload]
    /// Everything, segmentation included.
    public static let all: NetfrontFeatures = [.scatterGather, .checksumOffload, .segmentation]

    public var description: String {
        let names = [
            (NetfrontFeatures.scatterGather, "sg"), (.checksumOffload, "csum"),
            (.segmentation, "gso-tcpv4"),
        ]
        let on = names.filter { contains($0.0) }.map(\.1)
        return on.isEmpty ? "none" : on.joined(separator: ",")
    }
}

/// A Xen netfront: the frontend half of a split network driver, as a ``NetworkDevice``.
///
/// ```swift
/// let xen = try XenLibraries.open()
/// let vif = try Netfront(facilities: xen, vif: 0, on: loop, features: .all)
/// print(vif.features)      // what the backend agreed to: scatter-gather, checksums, GSO
/// ```
///
/// ## The handshake
///
/// Creating one performs the frontend's side of the xenbus handshake (it blocks, with a
/// timeout, so do it before the loop runs): read `device/vif/N/{backend,backend-id,mac}`,
/// wait for the backend's InitWait, read the features it offers, share the ring pages
/// and the buffer pages with the backend's domain, allocate an unbound event channel,
/// write `tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy=1`,
/// `feature-rx-notify=1` and the features we take (`feature-sg`,
/// `feature-no-csum-offload`, `feature-gso-tcpv4`), state Connected, and wait for the
/// backend's Connected.
///
/// ## Features (``Features``, negotiated: ``features``)
///
/// - **Scatter-gather** (`feature-sg`): a frame may span several slots. Transmitted
///   frames larger than a page (a jumbo frame, a 64 KiB TCP segment) go out as one slot
///   per page piece of their buffer (`NETTXF_more_data`, the first slot's size the whole
///   frame's, at most 18 slots, `XEN_NETBK_LEGACY_SLOTS_MAX`); received `NETRXF_more_data`
///   chains are gathered into one contiguous ``Packet`` (the `Packet` type has no chained
///   form: one buffer of ``pool``, which has pages enough for the largest frame).
/// - **Checksum offload** (no `feature-no-csum-offload`): the stack's partial TCP
///   checksums leave with `NETTXF_csum_blank|data_validated` for netback to finish
///   (``DeviceCapabilities/transmitChecksums`` holds `.tcp`); received frames marked
///   `NETRXF_data_validated` are vouched for in their ``PacketOffload``, and those marked
///   `NETRXF_csum_blank` (from another domain on the host: their checksum was never
///   computed) are finished here, as a TAP finishes `NEEDS_CSUM`, and vouched for, so
///   they are right when forwarded too.
/// - **Segmentation** (`feature-gso-tcpv4` both ways, with scatter-gather and checksum
///   offload): the stack may hand over a TCP segment of up to 64 KiB
///   (``DeviceCapabilities/maximumSegmentationSize``) that goes out with an
///   `XEN_NETIF_EXTRA_TYPE_GSO` extra slot (`gso.size` = its MSS) for netback to cut; and
///   by writing `feature-gso-tcpv4` we ask netback to pass large segments to us whole,
///   with the same extra slot: they arrive as one ``Packet`` marked coalesced with the
///   MSS, its checksum vouched for, as a TAP with virtio-net GSO delivers them. Off
///   unless asked (``Features/segmentation``), since such frames exceed the MTU.
///
/// Multi-queue (`multi-queue-max-queues`) is not used: one TX and one RX ring.
///
/// ## Received frames cannot change once checked
///
/// With `request-rx-copy` netback copies each frame into a page we granted it
/// writable, and that grant stays open for the connection's life (userspace gntshr
/// cannot end one page's access per packet: that would be an unshare and a new share,
/// an `ioctl`, an `munmap` and an `mmap` with its TLB shootdown per frame). A backend
/// could therefore rewrite a frame after the stack has checked its lengths and
/// checksums. So the RX ring has landing pages of its own, one per slot, that never
/// leave the device: each frame is copied once out of them into a buffer of ``pool``
/// (whose pages the backend may only read: they are granted read-only) before
/// anything looks at it, and every check runs on that copy. The copy is the same one
/// that gathers a multi-slot frame, so scatter-gather costs nothing more. A reply
/// built in the received buffer leaves from it without another copy.
///
/// ## Transmit
///
/// Every buffer of ``pool`` is granted (read-only), so a frame the stack builds in the
/// pool is transmitted from where it lies; other frames are copied into it once. A
/// transmitted buffer stays referenced until the backend's responses for it.
///
/// ## Reconnection
///
/// When the backend goes away (Closing, Closed, or its directory removed, as
/// `xl network-detach` does) the link goes down (``isLinkUp``, ``onLinkChange``), the
/// rings and the channel are released, and the frontend answers as netfront does
/// (Closed, then Initialising); when a backend offers itself again (InitWait, at the
/// same or a new `device/vif/N/backend`, as after `xl network-attach`) the handshake
/// runs again on the loop with new rings and a new channel, and the link comes back up:
/// the application keeps its device. With `reconnects: false` a departing backend
/// stops the device instead (``failure``).
///
/// ## Trust
///
/// Everything the backend writes (ring indices, ids, offsets, sizes, flags, extra
/// slots, states) is checked: a misbehaving backend stops the device with ``failure``
/// set and ``onFailure`` called; nothing is read outside the pages.
public final class Netfront<Facilities: XenFacilities>: NetworkDevice {
    /// The features a netfront can negotiate.
    public typealias Features = NetfrontFeatures

    /// `XEN_NETBK_LEGACY_SLOTS_MAX`: the data slots netback accepts in one packet.
    public static var maximumSlots: Int { 18 }
    /// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a slot's 16-bit size can say.
    public static var maximumPacketSize: Int { 0xffff }

    public let name: String
    public let macAddress: MACAddress
    /// Fixed at the first connection: the stack reads it once.
    public let capabilities: DeviceCapabilities
    public var isLinkUp: Bool { phase == .connected && failure == nil && !isClosed }
    public private(set) var counters = DeviceCounters()
    public let pool: BufferPool
    /// Why the device stopped, if it did.
    public private(set) var failure: NetfrontError?
    /// Called once, on the loop, when the device stops because of the backend.
    public var onFailure: ((NetfrontError) -> Void)?
    /// Called on the loop when the link goes down (the backend left) or up again.
    public var onLinkChange: ((Bool) -> Void)?
    /// The features asked for.
    public let requestedFeatures: Features
    /// The features of the current (or last) connection: asked for and offered.
    public private(set) var features: Features
    /// How many times the handshake ran again after the backend went away.
    public private(set) var reconnections = 0

    /// The backend's domain and its xenstore directory.
    public var backendDomain: XenDomainID { bus.backendDomain }
    public var backendPath: String { bus.backendPath }
    /// Our directory, `device/vif/N`.
    public var frontendPath: String { bus.frontendPath }

    let facilities: Facilities
    let loop: EventLoop
    let timeout: Duration
    let vif: Int
    let reconnects: Bool
    private var bus: XenbusFrontend<Facilities.Store>

    /// Where the connection is: rings live in `.connecting` and `.connected` only.
    private enum Phase { case connected, connecting, down }
    private var phase = Phase.down
    private var transmitRing: FrontRing<NetifTransmitLayout>
    private var receiveRing: FrontRing<NetifReceiveLayout>
    private var ringPages: XenSharedPages
    private var port: XenEventChannelPort
    /// One writable page per RX slot, slot i's request naming page i (its id is i).
    private let landingPages: XenSharedPages
    /// The pool's pages, granted read-only.
    private let poolPages: XenSharedPages
    /// The frame behind each TX id that is the head of a packet in flight.
    private var transmitting: [Bits?]
    private var inFlight: [Bool]
    private var freeTransmitIDs: [UInt16]
    private var assembly = ReceiveAssembly()
    private var handler = CallbackSlot<PacketBatch>()
    private var batch = PacketBatch(capacity: deviceReceiveBatch)
    private var registered: [FileDescriptor] = []
    private var isClosed = false
    private let frontendWatchToken: String

    /// A received packet being gathered from its slots.
    private struct ReceiveAssembly {
        var frame: Bits?
        var offload = PacketOffload()
        var active = false
        var dropping = false
        var failed = false
        var checksumBlank = false
        var moreData = false
        var extraExpected = false
        var slots = 0
    }

    /// Connects virtual interface `vif` of this domain through `facilities`.
    ///
    /// - Parameters:
    ///   - bufferPages: the pool's pages (granted read-only): frames built for
    ///     transmission and every received frame live in them. With segmentation a
    ///     buffer spans 17 of them. The device grants 258 pages more (2 rings, 256
    ///     landing pages); Linux's gntalloc grants at most 1024 pages in all unless
    ///     its `limit` parameter says more (`/sys/module/xen_gntalloc/parameters/limit`),
    ///     hence 512 by default.
    ///   - features: what to ask for; ``features`` says what the backend agreed to.
    ///   - reconnects: whether to connect again when the backend goes away and comes
    ///     back, rather than stop.
    public init(
        facilities: Facilities, vif: Int = 0, on loop: EventLoop, bufferPages: Int = 512,
        features requested: Features = .standard, reconnects: Bool = true,
        timeout: Duration = .seconds(10)
    ) throws(NetfrontError) {
        self.facilities = facilities
        self.loop = loop
        self.timeout = timeout
        self.vif = vif
        self.reconnects = reconnects
        requestedFeatures = requested
        name = "vif\(vif)"
        frontendWatchToken = "oasis-vif\(vif)-frontend"
        bus = try XenbusFrontend(store: facilities.store, kind: "vif", index: vif)
        let mac = try bus.required("mac")
        guard let address = MACAddress(mac) else {
            throw .badNode(path: "\(bus.frontendPath)/mac", value: mac)
        }
        macAddress = address
        try bus.waitForBackend(until: .initWait, timeout: timeout)
        let offered = try Self.negotiate(requested, with: bus)
        features = offered

        // The frame sizes decide the pool's geometry once, for the device's life.
        let backendMTU = try bus.backendNumber("mtu", as: Int.self) ?? 1500
        let headroom = BufferPool.defaultHeadroom
        var mtu = min(max(backendMTU, 576), Self.maximumPacketSize - 18)
        if !offered.contains(.scatterGather) { mtu = min(mtu, xenPageSize - headroom - 18) }
        let largestFrame = offered.contains(.segmentation) ? Self.maximumPacketSize : mtu + 18
        let pagesPerBuffer = (headroom + largestFrame + xenPageSize - 1) / xenPageSize
        capabilities = DeviceCapabilities(
            mtu: mtu, transmitChecksums: offered.contains(.checksumOffload) ? .tcp : [],
            maximumSegmentationSize: offered.contains(.segmentation)
                ? Self.maximumPacketSize - 18 : 0)

        let grants = facilities.grants
        let domain = bus.backendDomain
        let buffers = max(1, bufferPages / pagesPerBuffer)
        poolPages = try Self.xen { () throws(XenError) in
            try grants.share(pageCount: buffers * pagesPerBuffer, with: domain, writable: false)
        }
        let poolBase = poolPages.memory.baseAddress!
        pool = BufferPool(
            headroom: headroom,
            buffers: (0..<buffers).map {
                Buffer(
                    borrowing: poolBase + $0 * pagesPerBuffer * xenPageSize,
                    pageCount: pagesPerBuffer)
            })
        let ringSize = Self.ringSize(NetifReceiveLayout.self)
        landingPages = try Self.xen { () throws(XenError) in
            try grants.share(pageCount: ringSize, with: domain, writable: true)
        }
        let transmitSize = Self.ringSize(NetifTransmitLayout.self)
        transmitting = [Bits?](repeating: nil, count: transmitSize)
        inFlight = [Bool](repeating: false, count: transmitSize)
        freeTransmitIDs = (0..<UInt16(transmitSize)).reversed()

        // Placeholders until connect() makes the first rings.
        let first = try Self.makeRings(facilities: facilities, domain: domain)
        ringPages = first.pages
        transmitRing = first.transmit
        receiveRing = first.receive
        port = first.port
        try publish()
        phase = .connecting
        try bus.waitForBackend(until: .connected, timeout: timeout)
        phase = .connected
        let store = facilities.store
        let path = "\(bus.frontendPath)/backend"
        let token = frontendWatchToken
        try Self.xen { () throws(XenError) in try store.watch(path, token: token) }
        refill()
    }

    /// Runs a facility call, turning its error into ours.
    private static func xen<T>(_ body: () throws(XenError) -> T) throws(NetfrontError) -> T {
        try XenbusFrontend<Facilities.Store>.xen(body)
    }

    private static func ringSize<Layout: RingLayout>(_ layout: Layout.Type) -> Int {
        let fitting = (xenPageSize - SharedRingArea.headerSize) / Layout.slotSize
        var size = 1
        while size * 2 <= fitting { size *= 2 }
        return size
    }

    /// What we take of what the backend offers (read at its InitWait).
    private static func negotiate(
        _ requested: Features, with bus: XenbusFrontend<Facilities.Store>
    ) throws(NetfrontError) -> Features {
        var features: Features = []
        if requested.contains(.scatterGather),
            try bus.backendNumber("feature-sg", as: Int.self) == 1
        {
            features.insert(.scatterGather)
        }
        // Netback takes partial checksums unless it says otherwise (io/netif.h: a
        // missing feature-no-csum-offload means on).
        if requested.contains(.checksumOffload),
            try bus.backendNumber("feature-no-csum-offload", as: Int.self) ?? 0 == 0
        {
            features.insert(.checksumOffload)
        }
        if requested.contains(.segmentation), features.contains(.scatterGather),
            features.contains(.checksumOffload),
            try bus.backendNumber("feature-gso-tcpv4", as: Int.self) == 1
        {
            features.insert(.segmentation)
        }
        return features
    }

    /// New ring pages, rings and channel for one connection.
    private static func makeRings(facilities: Facilities, domain: XenDomainID)
        throws(NetfrontError) -> (
            pages: XenSharedPages, transmit: FrontRing<NetifTransmitLayout>,
            receive: FrontRing<NetifReceiveLayout>, port: XenEventChannelPort
        )
    {
        let grants = facilities.grants
        let pages = try xen { () throws(XenError) in
            try grants.share(pageCount: 2, with: domain, writable: true)
        }
        let base = pages.memory.baseAddress!
        let transmit: FrontRing<NetifTransmitLayout>
        let receive: FrontRing<NetifReceiveLayout>
        do {
            transmit = try FrontRing(initialising: base, byteCount: xenPageSize)
            receive = try FrontRing(initialising: base + xenPageSize, byteCount: xenPageSize)
        } catch {
            try? grants.unshare(pages)
            throw .ring(error)
        }
        let channels = facilities.eventChannels
        let port: XenEventChannelPort
        do {
            port = try channels.allocateUnboundPort(for: domain)
        } catch {
            try? grants.unshare(pages)
            throw .xen(error)
        }
        return (pages, transmit, receive, port)
    }

    /// Writes our nodes and Connected.
    private func publish() throws(NetfrontError) {
        try bus.publish(
            [
                ("tx-ring-ref", "\(ringPages.references[0].rawValue)"),
                ("rx-ring-ref", "\(ringPages.references[1].rawValue)"),
                ("event-channel", "\(port.rawValue)"),
                ("request-rx-copy", "1"),
                ("feature-rx-notify", "1"),
                ("feature-sg", features.contains(.scatterGather) ? "1" : "0"),
                ("feature-no-csum-offload", features.contains(.checksumOffload) ? "0" : "1"),
                ("feature-gso-tcpv4", features.contains(.segmentation) ? "1" : "0"),
            ], state: .connected)
    }

    // MARK: NetworkDevice

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard !isClosed else { throw .closed(device: name) }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        self.handler.set(handler)
        let device = Unretained(self)
        do {
            let events = try facilities.eventChannels.fileDescriptor
            try loop.register(events, interest: .readable) { _ in device.call { $0.eventFired() } }
            registered.append(events)
            let watch = try facilities.store.watchFileDescriptor
            try loop.register(watch, interest: .readable) { _ in
                device.call { $0.storeChanged() }
            }
            registered.append(watch)
        } catch let error as LoopError {
            throw .loop(error)
        } catch {
            throw .unavailable("\(name): \(error)")
        }
        // Frames may have arrived, or the backend moved, before we had a handler.
        loop.enqueue { [weak self] in
            self?.storeChanged()
            self?.service()
        }
    }

    public func transmit(_ packet: consuming Packet) throws(DeviceError) {
        guard !isClosed else { throw .closed(device: name) }
        let offload = packet.offload
        let frame = Bits(packet)
        let segmenting = offload.needsSegmentation && capabilities.segmentsTCP
        let limit =
            segmenting
            ? capabilities.maximumFrameSize - capabilities.mtu
                + capabilities.maximumSegmentationSize
            : capabilities.maximumFrameSize
        guard frame.count <= limit else {
            throw .frameTooLarge(device: name, size: frame.count, limit: limit)
        }
        guard phase == .connected, failure == nil else {
            counters.transmitDrops &+= 1  // no carrier
            return
        }
        collectTransmitResponses()
        guard failure == nil else {
            counters.transmitDrops &+= 1
            return
        }
        var outgoing = frame
        if !inPool(outgoing) {
            // Not in a granted page: copy it into one, once.
            guard var copy = try? pool.allocate(), (try? copy.append(contentsOf: frame)) != nil
            else {
                counters.transmitDrops &+= 1
                return
            }
            outgoing = copy
        }
        // What this connection cannot offload is done here, or the frame is refused.
        var flags: UInt16 = 0
        if offload.needsChecksum {
            if features.contains(.checksumOffload) {
                flags |= NetifTransmitRequest.checksumBlank | NetifTransmitRequest.dataValidated
            } else if segmenting
                || !outgoing.withUnsafeMutableBytes({
                    PartialChecksum.finish(
                        span: Int(offload.checksumSpan), field: Int(offload.checksumField),
                        in: $0)
                })
            {
                counters.transmitErrors &+= 1
                return
            }
        }
        if segmenting && !features.contains(.segmentation) {
            counters.transmitErrors &+= 1  // a backend that took GSO before, not now
            return
        }
        if send(outgoing, flags: flags, segmentSize: segmenting ? offload.segmentSize : 0) {
            counters.countTransmitted(frame.count)
            if segmenting {
                counters.segmentedTransmits &+= 1
                counters.segmentedTransmitBytes &+= UInt64(frame.count)
            }
        } else {
            counters.transmitDrops &+= 1
        }
    }

    /// Puts `frame` (in the pool) on the TX ring: one slot per page piece, the GSO
    /// extra after the first. False when the ring or the ids have no room, or the
    /// frame needs more slots than the connection allows.
    private func send(_ frame: Bits, flags firstFlags: UInt16, segmentSize: UInt16) -> Bool {
        let base = poolPages.memory.baseAddress!
        let start = frame.buffer.baseAddress + frame.offset - base
        let end = start + frame.count
        let firstPage = start / xenPageSize
        let slots = max(1, (end - 1) / xenPageSize - firstPage + 1)
        let extras = segmentSize != 0 ? 1 : 0
        guard slots == 1 || features.contains(.scatterGather), slots <= Self.maximumSlots,
            freeTransmitIDs.count >= slots, transmitRing.freeRequests >= slots + extras
        else { return false }
        var position = start
        for slot in 0..<slots {
            let page = position / xenPageSize
            let inPage = position % xenPageSize
            let piece = min(end - position, xenPageSize - inPage)
            let id = freeTransmitIDs.removeLast()
            var flags: UInt16 = slot + 1 < slots ? NetifTransmitRequest.moreData : 0
            if slot == 0 {
                flags |= firstFlags | (extras != 0 ? NetifTransmitRequest.extraInfo : 0)
                transmitting[Int(id)] = frame
            }
            inFlight[Int(id)] = true
            // The first slot's size is the whole packet's (io/netif.h).
            let size = slot == 0 ? frame.count : piece
            try? transmitRing.putRequest(
                NetifTransmitRequest(
                    grant: poolPages.references[page], offset: UInt16(inPage), flags: flags,
                    id: id, size: UInt16(size)))
            if slot == 0 && extras != 0 {
                let extra = NetifExtraInfo.segmentation(
                    size: segmentSize, type: NetifExtraInfo.gsoTCPv4)
                try? transmitRing.putRequest(extra.transmitSlot)
            }
            position += piece
        }
        if transmitRing.pushRequests() { notifyBackend() }
        return true
    }

    /// Whether all of `frame` lies in the pool's granted pages.
    private func inPool(_ frame: Bits) -> Bool {
        let base = poolPages.memory.baseAddress!
        let distance = frame.buffer.baseAddress - base
        return distance >= 0 && distance < poolPages.memory.count
            && frame.offset + frame.count <= frame.buffer.capacity
    }

    /// Shuts down: Closing, wait for the backend, Closed, wait, Initialising; then
    /// releases the channel and, when no buffer is still in use, the grants.
    /// A device dropped without ``close()`` still leaves the loop (its registrations
    /// hold it unretained) and the backend.
    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        for descriptor in registered { try? loop.deregister(descriptor) }
        registered = []
        handler.clear()
        try? facilities.store.unwatch("\(bus.frontendPath)/backend", token: frontendWatchToken)
        bus.close(timeout: timeout, orderly: failure == nil && phase != .down)
        releaseConnection()
        phase = .down
        try? facilities.grants.unshare(landingPages)
        // Buffers the application still holds keep their pages shared and mapped.
        if pool.freeCount == pool.limit { try? facilities.grants.unshare(poolPages) }
    }

    /// Drops what one connection holds: the channel, the ring pages, the frames in
    /// flight and a packet half gathered.
    private func releaseConnection() {
        guard phase != .down else { return }
        try? facilities.eventChannels.unbind(port)
        try? facilities.grants.unshare(ringPages)
        for index in transmitting.indices { transmitting[index] = nil }
        for index in inFlight.indices where inFlight[index] {
            inFlight[index] = false
            freeTransmitIDs.append(UInt16(index))
        }
        assembly = ReceiveAssembly()
    }

    // MARK: Events

    private func eventFired() {
        let channels = facilities.eventChannels
        do {
            while let fired = try channels.pending() {
                try channels.unmask(fired)
            }
        } catch {
            stop(.xen(error))
            return
        }
        service()
    }

    /// The backend's state (or our directory) changed: follow it, down and up again.
    private func storeChanged() {
        guard failure == nil, !isClosed else { return }
        do throws(NetfrontError) {
            _ = try bus.drainWatch()
            try follow()
        } catch {
            stop(error)
        }
    }

    /// The reconnection state machine, one step per state seen.
    private func follow() throws(NetfrontError) {
        for _ in 0..<4 {
            let state = try bus.backendState()
            switch phase {
            case .connected:
                if state == XenbusState.connected.rawValue { return }
                guard reconnects else {
                    stop(.backendClosed(state: state))
                    return
                }
                goDown()
            case .connecting:
                if state == XenbusState.connected.rawValue {
                    phase = .connected
                    reconnections += 1
                    onLinkChange?(true)
                    refill()
                    service()
                    return
                }
                if state == XenbusState.initWait.rawValue
                    || state == XenbusState.initialised.rawValue
                {
                    return
                }
                goDown()
            case .down:
                switch state {
                case XenbusState.closing.rawValue:
                    try? bus.setState(.closed)  // netfront's answer to Closing
                    return
                case XenbusState.closed.rawValue:
                    // Ready for a new connection (netback answers InitWait), unless
                    // the toolstack is detaching the vif (`online` 0): it is about to
                    // remove our directory, and a late write would leave a stray
                    // node that moves the next `xl network-attach` to another index.
                    if try bus.backendNode("online") != "0" {
                        try? bus.setState(.initialising)
                    }
                    return
                case XenbusState.initWait.rawValue:
                    try reconnect()
                case XenbusState.unknown.rawValue:
                    // Gone (xl network-detach removes both directories): wait for our
                    // directory to name a backend again, maybe elsewhere.
                    guard try relocate() else { return }
                default:
                    return
                }
            }
        }
    }

    /// Link down: the connection's resources released, our state left for `follow`.
    private func goDown() {
        releaseConnection()
        phase = .down
        onLinkChange?(false)
    }

    /// A new bus when `device/vif/N/backend` names a backend other than ours; true when
    /// there is one to follow.
    private func relocate() throws(NetfrontError) -> Bool {
        let store = facilities.store
        let path = "\(bus.frontendPath)/backend"
        guard let backend = try Self.xen({ () throws(XenError) in try store.read(path, in: .none) })
        else { return false }
        guard backend != bus.backendPath else { return false }
        bus.close(timeout: timeout, orderly: false)
        bus = try XenbusFrontend(store: store, kind: "vif", index: vif)
        guard bus.backendDomain == poolPages.domain else {
            // Our pages are granted to the old backend's domain only.
            throw .badNode(path: "\(bus.frontendPath)/backend-id", value: "\(bus.backendDomain)")
        }
        return true
    }

    /// The handshake again, on the loop: new rings, new channel, Connected; the link
    /// comes up when the backend says Connected.
    private func reconnect() throws(NetfrontError) {
        features = try Self.negotiate(requestedFeatures, with: bus)
        let rings = try Self.makeRings(facilities: facilities, domain: bus.backendDomain)
        ringPages = rings.pages
        transmitRing = rings.transmit
        receiveRing = rings.receive
        port = rings.port
        phase = .connecting
        try publish()
    }

    /// Stops the device because of the backend: link down, no more ring reads.
    private func stop(_ error: NetfrontError) {
        guard failure == nil else { return }
        failure = error
        let wasUp = phase == .connected
        releaseConnection()
        phase = .down
        for descriptor in registered { try? loop.deregister(descriptor) }
        registered = []
        if wasUp { onLinkChange?(false) }
        onFailure?(error)
    }

    private func service() {
        guard failure == nil, !isClosed, phase == .connected else { return }
        collectTransmitResponses()
        receive()
        refill()
    }

    private func notifyBackend() {
        do {
            try facilities.eventChannels.notify(port)
        } catch {
            stop(.xen(error))
        }
    }

    /// Releases the buffers of answered transmits.
    private func collectTransmitResponses() {
        guard failure == nil, phase == .connected else { return }
        do throws(NetfrontError) {
            repeat {
                let waiting: Int
                do { waiting = try transmitRing.unconsumedResponses() } catch { throw .ring(error) }
                for _ in 0..<waiting {
                    let response = transmitRing.takeResponse()
                    // An extra slot's response (XEN_NETIF_RSP_NULL) has no id: netback
                    // writes only its status over the slot.
                    if response.status == NetifTransmitResponse.null { continue }
                    let id = Int(response.id)
                    guard id < inFlight.count, inFlight[id] else {
                        throw .unknownTransmitID(response.id)
                    }
                    inFlight[id] = false
                    freeTransmitIDs.append(response.id)
                    let head = transmitting[id] != nil
                    transmitting[id] = nil
                    if head && response.status != NetifTransmitResponse.okay {
                        counters.transmitErrors &+= 1
                    }
                }
            } while try checked { () throws(SharedRingError) in
                try transmitRing.finalCheckForResponses()
            }
        } catch {
            stop(error)
        }
    }

    private func checked<T>(_ body: () throws(SharedRingError) -> T) throws(NetfrontError) -> T {
        do {
            return try body()
        } catch {
            throw .ring(error)
        }
    }

    /// Gathers every answered slot into packets and delivers them, in batches.
    private func receive() {
        defer { deliverBatch() }
        do throws(NetfrontError) {
            repeat {
                let waiting = try checked { () throws(SharedRingError) in
                    try receiveRing.unconsumedResponses()
                }
                for _ in 0..<waiting {
                    let slot = Int(receiveRing.consumedResponses) & (receiveRing.size - 1)
                    let response = receiveRing.takeResponse()
                    try take(response, slot: slot)
                    if batch.isFull { deliverBatch() }
                    if isClosed || failure != nil || phase != .connected { return }
                }
            } while try checked { () throws(SharedRingError) in
                try receiveRing.finalCheckForResponses()
            }
        } catch {
            stop(error)
        }
    }

    /// One RX slot: a packet's first fragment, an extra, or a further fragment. Each
    /// fragment is copied out of its landing page at once (the page is posted again);
    /// every check after that reads the copy.
    private func take(_ response: NetifReceiveResponse, slot: Int) throws(NetfrontError) {
        if assembly.extraExpected {
            // Extras overlay the response: no id, known by their place after the first.
            let extra = NetifExtraInfo(overlaying: response)
            assembly.extraExpected = extra.flags & NetifExtraInfo.more != 0
            assembly.slots += 1
            if extra.type == NetifExtraInfo.typeGSO {
                if extra.segmentationType == NetifExtraInfo.gsoTCPv4, extra.segmentSize > 0,
                    features.contains(.segmentation)
                {
                    assembly.offload.coalesced = true
                    assembly.offload.segmentSize = extra.segmentSize
                } else {
                    assembly.dropping = true  // a GSO kind we did not ask for
                }
            } else if extra.type == NetifExtraInfo.typeNone || extra.type >= 5 {
                assembly.dropping = true
            }
            if !assembly.extraExpected && !assembly.moreData { complete() }
            return
        }
        guard Int(response.id) == slot else { throw .unknownReceiveID(response.id) }
        let first = !assembly.active
        if first {
            assembly = ReceiveAssembly()
            assembly.active = true
            assembly.checksumBlank = response.flags & NetifReceiveResponse.checksumBlank != 0
            if response.flags
                & (NetifReceiveResponse.checksumBlank | NetifReceiveResponse.dataValidated) != 0
            {
                assembly.offload.checksumVerified = true
            }
            assembly.extraExpected = response.flags & NetifReceiveResponse.extraInfo != 0
            if response.flags & NetifReceiveResponse.gsoPrefix != 0 { assembly.dropping = true }
        }
        assembly.moreData = response.flags & NetifReceiveResponse.moreData != 0
        assembly.slots += 1
        if response.status <= 0 {
            // An error for the packet (netback puts it on the first slot): drop it.
            if response.status < 0 { assembly.failed = true }
            assembly.dropping = true
        } else if !assembly.dropping {
            let offset = Int(response.offset)
            let size = Int(response.status)
            guard offset + size <= xenPageSize else {
                throw .lengthBeyondPage(id: response.id, offset: offset, size: size)
            }
            if first {
                assembly.frame = try? pool.allocate()
            }
            if assembly.frame == nil || assembly.slots > Self.maximumSlots + 4
                || (!first && !features.contains(.scatterGather))
            {
                assembly.dropping = true
                assembly.frame = nil
            } else {
                let page = UnsafeRawBufferPointer(
                    start: landingPages.memory.baseAddress! + slot * xenPageSize + offset,
                    count: size)
                if (try? assembly.frame!.append(contentsOf: page)) == nil {
                    assembly.dropping = true  // larger than a buffer holds
                    assembly.frame = nil
                }
            }
        }
        if !assembly.moreData && !assembly.extraExpected { complete() }
    }

    /// The last slot of a packet came: deliver it, or count why not.
    private func complete() {
        let gathered = assembly
        assembly = ReceiveAssembly()
        guard !gathered.dropping, var frame = gathered.frame, handler.isSet else {
            if gathered.failed {
                counters.receiveErrors &+= 1
            } else {
                counters.receiveDrops &+= 1
            }
            return
        }
        if gathered.checksumBlank && !gathered.offload.coalesced {
            // Never computed (a frame from a domain on this host): finished here, so
            // that it is right wherever it goes next.
            frame.withUnsafeMutableBytes { bytes in
                PartialChecksum(locatingIn: UnsafeRawBufferPointer(bytes))?.finish(in: bytes)
            }
        }
        var packet = Packet(frame)
        packet.offload = gathered.offload
        if gathered.offload.coalesced {
            counters.coalescedReceives &+= 1
            counters.coalescedReceiveBytes &+= UInt64(packet.count)
        }
        counters.countReceived(packet.count)
        batch.append(packet)
    }

    /// Hands the frames received so far to the handler.
    private func deliverBatch() {
        guard !batch.isEmpty else { return }
        handler(&batch)
        batch.removeAll()
    }

    /// Posts every free RX slot's landing page (slot i, id i, page i).
    private func refill() {
        guard failure == nil, !isClosed, phase != .down else { return }
        var added = false
        while receiveRing.freeRequests > 0 {
            let id = Int(receiveRing.privateRequestProducer) & (receiveRing.size - 1)
            do {
                try receiveRing.putRequest(
                    NetifReceiveRequest(id: UInt16(id), grant: landingPages.references[id]))
            } catch {
                break
            }
            added = true
        }
        if added && receiveRing.pushRequests() { notifyBackend() }
    }
}
