// Netfront: a Xen virtual network interface as a NetworkDevice, on any XenFacilities.

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A Xen netfront: the frontend half of a split network driver, as a ``NetworkDevice``.
///
/// Creating one performs the frontend's side of the xenbus handshake (it blocks, with a
/// timeout, so do it before the loop runs): read `device/vif/N/{backend,backend-id,mac}`,
/// wait for the backend's InitWait, share the two ring pages and the buffer pages with
/// the backend's domain, allocate an unbound event channel, write `tx-ring-ref`,
/// `rx-ring-ref`, `event-channel`, `request-rx-copy=1`, `feature-rx-notify=1`,
/// `feature-no-csum-offload=1`, state Connected, and wait for the backend's Connected.
///
/// Every buffer of ``pool`` is a granted page, so a frame the stack builds in the pool is
/// transmitted from where it lies (one slot: grant, offset, size) and received frames are
/// delivered in the page the backend copied them into; other frames are copied once.
/// A transmitted buffer stays referenced until the backend's response for it.
///
/// Everything the backend writes (ring indices, ids, offsets, sizes, states) is checked:
/// a misbehaving or departing backend stops the device with ``failure`` set and
/// ``onFailure`` called; nothing is read outside the pages.
public final class Netfront<Facilities: XenFacilities>: NetworkDevice {
    public let name: String
    public let macAddress: MACAddress
    public let capabilities = DeviceCapabilities(mtu: 1500)
    public var isLinkUp: Bool { isConnected && failure == nil && !isClosed }
    public private(set) var counters = DeviceCounters()
    public let pool: BufferPool
    /// Why the device stopped, if it did.
    public private(set) var failure: NetfrontError?
    /// Called once, on the loop, when the device stops because of the backend.
    public var onFailure: ((NetfrontError) -> Void)?

    /// The backend's domain and its xenstore directory.
    public var backendDomain: XenDomainID { bus.backendDomain }
    public var backendPath: String { bus.backendPath }
    /// Our directory, `device/vif/N`.
    public var frontendPath: String { bus.frontendPath }

    let facilities: Facilities
    let bus: XenbusFrontend<Facilities.Store>
    let loop: EventLoop
    let timeout: Duration
    private var transmitRing: FrontRing<NetifTransmitLayout>
    private var receiveRing: FrontRing<NetifReceiveLayout>
    private let ringPages: XenSharedPages
    private let bufferPages: XenSharedPages
    private let port: XenEventChannelPort
    private var transmitting: [Bits?]
    private var freeTransmitIDs: [UInt16]
    private var posted: [Bits?]
    private var freeReceiveIDs: [UInt16]
    private let receiveTarget: Int
    private var handler = CallbackSlot<PacketBatch>()
    private var batch = PacketBatch(capacity: deviceReceiveBatch)
    private var registered: [FileDescriptor] = []
    private var isConnected = true
    private var isClosed = false

    /// Connects virtual interface `vif` of this domain through `facilities`.
    public init(
        facilities: Facilities, vif: Int = 0, on loop: EventLoop, bufferPages: Int = 768,
        timeout: Duration = .seconds(10)
    ) throws(NetfrontError) {
        self.facilities = facilities
        self.loop = loop
        self.timeout = timeout
        name = "vif\(vif)"
        bus = try XenbusFrontend(store: facilities.store, kind: "vif", index: vif)
        let mac = try bus.required("mac")
        guard let address = MACAddress(mac) else {
            throw .badNode(path: "\(bus.frontendPath)/mac", value: mac)
        }
        macAddress = address
        try bus.waitForBackend(until: .initWait, timeout: timeout)

        // Share the rings and the buffers, allocate the channel.
        let grants = facilities.grants
        let domainToShare = bus.backendDomain
        ringPages = try Self.xen { () throws(XenError) in
            try grants.share(pageCount: 2, with: domainToShare, writable: true)
        }
        let ringBase = ringPages.memory.baseAddress!
        do {
            transmitRing = try FrontRing(initialising: ringBase, byteCount: xenPageSize)
            receiveRing = try FrontRing(
                initialising: ringBase + xenPageSize, byteCount: xenPageSize)
        } catch {
            throw .ring(error)
        }
        self.bufferPages = try Self.xen { () throws(XenError) in
            try grants.share(pageCount: bufferPages, with: domainToShare, writable: true)
        }
        let bufferBase = self.bufferPages.memory.baseAddress!
        pool = BufferPool(
            buffers: (0..<bufferPages).map {
                Buffer(borrowing: bufferBase + $0 * xenPageSize, pageCount: 1)
            })
        let channels = facilities.eventChannels
        port = try Self.xen { () throws(XenError) in
            try channels.allocateUnboundPort(for: domainToShare)
        }
        let ringSize = transmitRing.size
        transmitting = [Bits?](repeating: nil, count: ringSize)
        freeTransmitIDs = (0..<UInt16(ringSize)).reversed()
        posted = [Bits?](repeating: nil, count: receiveRing.size)
        freeReceiveIDs = (0..<UInt16(receiveRing.size)).reversed()
        receiveTarget = min(receiveRing.size, bufferPages / 2)

        // Publish, then Connected.
        try bus.publish(
            [
                ("tx-ring-ref", "\(ringPages.references[0].rawValue)"),
                ("rx-ring-ref", "\(ringPages.references[1].rawValue)"),
                ("event-channel", "\(port.rawValue)"),
                ("request-rx-copy", "1"),
                ("feature-rx-notify", "1"),
                ("feature-no-csum-offload", "1"),
                ("feature-sg", "0"),
            ], state: .connected)
        try bus.waitForBackend(until: .connected, timeout: timeout)
        refill()
    }

    /// Runs a facility call, turning its error into ours.
    private static func xen<T>(_ body: () throws(XenError) -> T) throws(NetfrontError) -> T {
        try XenbusFrontend<Facilities.Store>.xen(body)
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
        // Frames may have arrived before we had a handler.
        loop.enqueue { [weak self] in self?.service() }
    }

    public func transmit(_ packet: consuming Packet) throws(DeviceError) {
        guard !isClosed else { throw .closed(device: name) }
        let frame = Bits(packet)
        let limit = capabilities.maximumFrameSize
        guard frame.count <= limit else {
            throw .frameTooLarge(device: name, size: frame.count, limit: limit)
        }
        guard isConnected, failure == nil else {
            counters.transmitDrops &+= 1  // no carrier
            return
        }
        collectTransmitResponses()
        guard failure == nil, let id = freeTransmitIDs.last else {
            counters.transmitDrops &+= 1
            return
        }
        var outgoing = frame
        var page = grantedPage(of: frame)
        if page == nil {
            // Not in a granted page (or straddling one): copy it into one, once.
            guard var copy = try? pool.allocate(), (try? copy.append(contentsOf: frame)) != nil
            else {
                counters.transmitDrops &+= 1
                return
            }
            outgoing = copy
            page = grantedPage(of: copy)
        }
        guard let page else {
            counters.transmitDrops &+= 1
            return
        }
        let request = NetifTransmitRequest(
            grant: bufferPages.references[page], offset: UInt16(outgoing.offset),
            flags: 0, id: id, size: UInt16(outgoing.count))
        do {
            try transmitRing.putRequest(request)
        } catch {
            counters.transmitDrops &+= 1
            return
        }
        freeTransmitIDs.removeLast()
        transmitting[Int(id)] = outgoing
        counters.countTransmitted(frame.count)
        if transmitRing.pushRequests() { notifyBackend() }
    }

    /// The index among our granted pages of the page holding all of `frame`, if any.
    private func grantedPage(of frame: Bits) -> Int? {
        let base = bufferPages.memory.baseAddress!
        let distance = frame.buffer.baseAddress - base
        guard distance >= 0, distance < bufferPages.memory.count,
            frame.offset + frame.count <= xenPageSize
        else { return nil }
        return distance / xenPageSize
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
        bus.close(timeout: timeout, orderly: failure == nil)
        isConnected = false
        try? facilities.eventChannels.unbind(port)
        for index in transmitting.indices { transmitting[index] = nil }
        for index in posted.indices { posted[index] = nil }
        try? facilities.grants.unshare(ringPages)
        // Buffers the application still holds keep their pages shared and mapped.
        if pool.freeCount == pool.limit { try? facilities.grants.unshare(bufferPages) }
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

    private func storeChanged() {
        do {
            let state = try bus.drainWatch()
            if state != XenbusState.connected.rawValue && !isClosed {
                stop(.backendClosed(state: state))
            }
        } catch {
            stop(error)
        }
    }

    /// Stops the device because of the backend: link down, no more ring reads.
    private func stop(_ error: NetfrontError) {
        guard failure == nil else { return }
        failure = error
        isConnected = false
        for descriptor in registered { try? loop.deregister(descriptor) }
        registered = []
        onFailure?(error)
    }

    private func service() {
        guard failure == nil, !isClosed else { return }
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
        guard failure == nil else { return }
        do throws(NetfrontError) {
            repeat {
                let waiting: Int
                do { waiting = try transmitRing.unconsumedResponses() } catch { throw .ring(error) }
                for _ in 0..<waiting {
                    let response = transmitRing.takeResponse()
                    let id = Int(response.id)
                    guard id < transmitting.count, transmitting[id] != nil else {
                        throw .unknownTransmitID(response.id)
                    }
                    transmitting[id] = nil
                    freeTransmitIDs.append(response.id)
                    if response.status != NetifTransmitResponse.okay
                        && response.status != NetifTransmitResponse.null
                    {
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

    /// Delivers every filled buffer to the handler, in batches.
    private func receive() {
        defer { deliverBatch() }
        do throws(NetfrontError) {
            repeat {
                let waiting = try checked { () throws(SharedRingError) in
                    try receiveRing.unconsumedResponses()
                }
                for _ in 0..<waiting {
                    let response = receiveRing.takeResponse()
                    let id = Int(response.id)
                    guard id < posted.count, let buffer = posted[id] else {
                        throw .unknownReceiveID(response.id)
                    }
                    posted[id] = nil
                    freeReceiveIDs.append(response.id)
                    guard response.status > 0 else {
                        counters.receiveErrors &+= 1
                        continue
                    }
                    let offset = Int(response.offset)
                    let size = Int(response.status)
                    guard offset + size <= xenPageSize else {
                        throw .lengthBeyondPage(id: response.id, offset: offset, size: size)
                    }
                    let unsupported = NetifReceiveResponse.moreData | NetifReceiveResponse.extraInfo
                    var frame = Packet(buffer)
                    guard response.flags & unsupported == 0, handler.isSet,
                        (try? frame.move(toOffset: offset, count: size)) != nil
                    else {
                        counters.receiveDrops &+= 1
                        continue
                    }
                    counters.countReceived(size)
                    batch.append(frame)
                    if batch.isFull { deliverBatch() }
                    if isClosed || failure != nil { return }
                }
            } while try checked { () throws(SharedRingError) in
                try receiveRing.finalCheckForResponses()
            }
        } catch {
            stop(error)
        }
    }

    /// Hands the frames received so far to the handler.
    private func deliverBatch() {
        guard !batch.isEmpty else { return }
        handler(&batch)
        batch.removeAll()
    }

    /// Posts free pool buffers to the backend, up to the receive target.
    private func refill() {
        guard failure == nil, !isClosed else { return }
        var added = false
        while receiveRing.freeRequests > 0, freeReceiveIDs.count > receiveRing.size - receiveTarget,
            let id = freeReceiveIDs.last
        {
            guard let buffer = try? pool.allocate(), let page = grantedPage(of: buffer) else {
                break
            }
            do {
                try receiveRing.putRequest(
                    NetifReceiveRequest(id: id, grant: bufferPages.references[page]))
            } catch {
                break
            }
            freeReceiveIDs.removeLast()
            posted[Int(id)] = buffer
            added = true
        }
        if added && receiveRing.pushRequests() { notifyBackend() }
    }
}
