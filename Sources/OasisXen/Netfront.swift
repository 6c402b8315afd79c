// Netfront: a Xen virtual network interface as a NetworkDevice, on any XenFacilities.

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// The xenbus states both ends publish at `.../state` (io/xenbus.h).
public enum XenbusState: Int, Sendable, CustomStringConvertible {
    case unknown = 0
    case initialising = 1
    case initWait = 2
    case initialised = 3
    case connected = 4
    case closing = 5
    case closed = 6
    case reconfiguring = 7
    case reconfigured = 8

    public var description: String {
        let names = [
            "Unknown", "Initialising", "InitWait", "Initialised", "Connected", "Closing", "Closed",
            "Reconfiguring", "Reconfigured",
        ]
        return "\(rawValue) (\(names[rawValue]))"
    }
}

/// Why a netfront could not connect, or why it stopped.
public enum NetfrontError: Error, Equatable, CustomStringConvertible {
    case xen(XenError)
    case loop(LoopError)
    /// A node the toolstack must have written is missing.
    case missingNode(String)
    /// A node holds something unusable.
    case badNode(path: String, value: String)
    /// The backend did not reach the state in time.
    case timeout(waitingFor: String)
    /// The backend closed (or vanished) during the handshake; its `error` node if any.
    case backendRefused(state: Int, error: String?)
    /// The backend left the connected state while we were running.
    case backendClosed(state: Int)
    /// A shared ring index from the backend was impossible.
    case ring(SharedRingError)
    /// A transmit response named an id that is not in flight.
    case unknownTransmitID(UInt16)
    /// A receive response named an id with no buffer posted.
    case unknownReceiveID(UInt16)
    /// A receive response placed a frame outside the page it was given.
    case lengthBeyondPage(id: UInt16, offset: Int, size: Int)

    public var description: String {
        switch self {
        case .xen(let error): return error.description
        case .loop(let error): return "\(error)"
        case .missingNode(let path): return "xenstore node \(path) is missing"
        case .badNode(let path, let value): return "xenstore node \(path) holds \"\(value)\""
        case .timeout(let what): return "timed out waiting for \(what)"
        case .backendRefused(let state, let error):
            return "the backend went to state \(state) during the handshake"
                + (error.map { ": \($0)" } ?? "")
        case .backendClosed(let state): return "the backend closed (state \(state))"
        case .ring(let error): return "misbehaving backend: \(error)"
        case .unknownTransmitID(let id):
            return "misbehaving backend: TX response for id \(id), not in flight"
        case .unknownReceiveID(let id):
            return "misbehaving backend: RX response for id \(id), not posted"
        case .lengthBeyondPage(let id, let offset, let size):
            return
                "misbehaving backend: RX id \(id) claims \(size) bytes at offset \(offset) of a 4096-byte page"
        }
    }
}

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
    public let backendDomain: XenDomainID
    public let backendPath: String
    /// Our directory, `device/vif/N`.
    public let frontendPath: String

    let facilities: Facilities
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
    private static var stateToken: String { "oasis-netfront-backend-state" }

    /// Connects virtual interface `vif` of this domain through `facilities`.
    public init(
        facilities: Facilities, vif: Int = 0, on loop: EventLoop, bufferPages: Int = 768,
        timeout: Duration = .seconds(10)
    ) throws(NetfrontError) {
        self.facilities = facilities
        self.loop = loop
        self.timeout = timeout
        let store = facilities.store
        frontendPath = "device/vif/\(vif)"
        name = "vif\(vif)"
        func required(_ node: String) throws(NetfrontError) -> String {
            let path = "device/vif/\(vif)/\(node)"
            guard
                let value = try Self.xen({ () throws(XenError) in try store.read(path, in: .none) })
            else { throw .missingNode(path) }
            return value
        }
        backendPath = try required("backend")
        let backendID = try required("backend-id")
        guard let domain = UInt16(backendID) else {
            throw .badNode(path: "\(frontendPath)/backend-id", value: backendID)
        }
        backendDomain = XenDomainID(domain)
        let mac = try required("mac")
        guard let address = MACAddress(mac) else {
            throw .badNode(path: "\(frontendPath)/mac", value: mac)
        }
        macAddress = address

        let backendState = "\(backendPath)/state"
        try Self.xen { () throws(XenError) in
            try store.watch(backendState, token: Self.stateToken)
        }
        try Self.waitForBackend(
            store: store, path: backendState, until: .initWait, timeout: timeout)

        // Share the rings and the buffers, allocate the channel.
        let grants = facilities.grants
        let domainToShare = backendDomain
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
        let nodes: [(String, String)] = [
            ("tx-ring-ref", "\(ringPages.references[0].rawValue)"),
            ("rx-ring-ref", "\(ringPages.references[1].rawValue)"),
            ("event-channel", "\(port.rawValue)"),
            ("request-rx-copy", "1"),
            ("feature-rx-notify", "1"),
            ("feature-no-csum-offload", "1"),
            ("feature-sg", "0"),
            ("state", "\(XenbusState.connected.rawValue)"),
        ]
        let directory = frontendPath
        for (node, value) in nodes {
            try Self.xen { () throws(XenError) in
                try store.write(value, to: "\(directory)/\(node)", in: .none)
            }
        }
        try Self.waitForBackend(
            store: store, path: backendState, until: .connected, timeout: timeout)
        refill()
    }

    /// Runs a facility call, turning its error into ours.
    private static func xen<T>(_ body: () throws(XenError) -> T) throws(NetfrontError) -> T {
        do {
            return try body()
        } catch {
            throw .xen(error)
        }
    }

    /// Blocks until the backend's state is `wanted`, draining watch events. A backend
    /// that closes instead ends the wait with ``NetfrontError/backendRefused(state:error:)``.
    private static func waitForBackend(
        store: Facilities.Store, path: String, until wanted: XenbusState, timeout: Duration
    ) throws(NetfrontError) {
        let deadline = ContinuousClock.now + timeout
        let descriptor = try xen { () throws(XenError) in try store.watchFileDescriptor }
        while true {
            while try xen({ () throws(XenError) in try store.nextWatchEvent() }) != nil {}
            let text = try xen { () throws(XenError) in try store.read(path, in: .none) }
            let state = text.flatMap { Int($0) } ?? 0
            if state == wanted.rawValue { return }
            if state >= XenbusState.closing.rawValue
                && wanted.rawValue < XenbusState.closing.rawValue
            {
                let directory = String(path.dropLast("/state".count))
                let error = try? store.read("\(directory)/error", in: .none)
                throw .backendRefused(state: state, error: error ?? nil)
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw .timeout(waitingFor: "\(path) = \(wanted)") }
            let milliseconds = Int32(clamping: left.components.seconds * 1000 + 1)
            var entry = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, min(milliseconds, 100))
        }
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
        let store = facilities.store
        let state = "\(backendPath)/state"
        let mine = "\(frontendPath)/state"
        if failure == nil {
            let wait = min(timeout, .seconds(2))
            try? store.write("\(XenbusState.closing.rawValue)", to: mine, in: .none)
            try? Self.waitForBackend(store: store, path: state, until: .closing, timeout: wait)
            try? store.write("\(XenbusState.closed.rawValue)", to: mine, in: .none)
            try? Self.waitForBackend(store: store, path: state, until: .closed, timeout: wait)
            try? store.write("\(XenbusState.initialising.rawValue)", to: mine, in: .none)
        }
        isConnected = false
        try? store.unwatch(state, token: Self.stateToken)
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
        let store = facilities.store
        do {
            while try store.nextWatchEvent() != nil {}
            let text = try store.read("\(backendPath)/state", in: .none)
            let state = text.flatMap { Int($0) } ?? 0
            if state != XenbusState.connected.rawValue && !isClosed {
                stop(.backendClosed(state: state))
            }
        } catch {
            stop(.xen(error))
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
