// Blkfront: a Xen virtual block device as a BlockDevice, on any XenFacilities.

import OasisBits
import OasisDevices
import OasisLoop
import SystemPackage

/// What a ``Blkfront`` and its backend agreed on, and what the backend offered that
/// it does not use.
public struct BlkfrontNegotiation: Hashable, Sendable, CustomStringConvertible {
    /// Pages of the request ring (`ring-page-order` is their log2).
    public var ringPages: Int
    /// Slots of the ring (``Blkfront/queueDepth`` may be fewer: the requests in flight
    /// at once).
    public var ringSlots: Int
    /// Segments (pages) one request may carry: 11 in the slot, more through indirect
    /// descriptors when the backend offers `feature-max-indirect-segments`.
    public var segmentsPerRequest: Int
    /// Whether requests above 11 segments go through indirect descriptor pages.
    public var usesIndirect: Bool
    /// The backend's `feature-persistent`. Our grants are persistent either way (the
    /// pool's pages are granted once for the device's life) and we say so.
    public var backendPersistent: Bool
    /// The backend's `multi-queue-max-queues` (1 when absent); we use one queue.
    public var backendQueues: Int
    /// Flushes are sent as `BLKIF_OP_WRITE_BARRIER` (the backend offers no
    /// `feature-flush-cache`, only `feature-barrier`).
    public var flushByBarrier: Bool
    /// `discard-granularity` in bytes (the sector size when absent).
    public var discardGranularity: Int
    /// `discard-alignment` in bytes.
    public var discardAlignment: Int
    /// `discard-secure`: the backend can discard securely (we never ask it to).
    public var discardSecure: Bool
    /// `info`'s `VDISK_CDROM` bit.
    public var isCDROM: Bool
    /// `info`'s `VDISK_REMOVABLE` bit.
    public var isRemovable: Bool

    public var description: String {
        "ring \(ringPages) page(s)/\(ringSlots) slots, \(segmentsPerRequest) segments"
            + (usesIndirect ? " (indirect)" : "") + ", backend persistent \(backendPersistent)"
            + ", backend queues \(backendQueues) (using 1)"
            + (flushByBarrier ? ", flush by barrier" : "")
    }
}

/// A Xen blkfront: the frontend half of a split block driver, as a ``BlockDevice``.
///
/// Creating one performs the frontend's side of the xenbus handshake (it blocks, with a
/// timeout, so do it before the loop runs): read `device/vbd/N/{backend,backend-id,
/// virtual-device}`, wait for the backend's InitWait, read what it offers
/// (`feature-persistent`, `feature-max-indirect-segments`, `max-ring-page-order`,
/// `multi-queue-max-queues`), share the ring page(s), the indirect descriptor pages and
/// the data pages with the backend's domain, allocate an event channel, write
/// `ring-ref` (or `ring-page-order` and `ring-ref0…`), `event-channel`,
/// `protocol=x86_64-abi`, `feature-persistent=1`, state Initialised; wait for the
/// backend's Connected, read `sectors`, `sector-size`, `info`, `feature-flush-cache`,
/// `feature-barrier`, `feature-discard` (and its granularity, alignment, secure), and go
/// Connected.
///
/// ```swift
/// let xen = try SimulatedHypervisor.connect(to: "/tmp/blkback.sock")
/// let disk = try Blkfront(facilities: xen, vbd: 51712, on: loop)
/// var page = try disk.pool.allocate()
/// try page.extend(by: 4096)
/// disk.submit(BlockRequest(read: 0, pages: [page], sectorSize: disk.geometry.sectorSize)) {
///     result in print(result)
/// }
/// ```
///
/// Every page of ``pool`` is granted to the backend once, for the device's life, so
/// data in the pool moves without a copy (one segment per page view: grant,
/// first_sect, last_sect) and the same grants serve every request: persistent grants,
/// advertised as such. Data elsewhere is copied through a pool page once.
///
/// Requests submitted during one turn of the loop are written to the ring together and
/// pushed with one notification, if the backend asked for one. Requests beyond the
/// ring's slots wait in a queue. blkif counts sectors in 512-byte units whatever the
/// disk's `sector-size`; the device converts (``BlockRequest/sector`` is in units of
/// ``BlockGeometry/sectorSize``), and reads `sectors` in 512-byte units as Linux's
/// blkback writes it.
///
/// Everything the backend writes is checked: the response producer index, each
/// response's id (in flight), operation (the request's) and status (OKAY, ERROR,
/// EOPNOTSUPP). `ERROR` fails that request with ``BlockError/ioError(device:detail:)``;
/// `EOPNOTSUPP` with ``BlockError/unsupported(device:operation:)`` (and the feature is
/// withdrawn). Anything impossible, or the backend leaving Connected, stops the device:
/// ``failure`` is set, every request not completed fails with
/// ``BlockError/failed(device:reason:)``, and ``onFailure`` is called. Requests are
/// never read back from the shared ring: the frontend keeps its own copy.
///
/// One queue: a backend offering `multi-queue-max-queues` is used with one ring.
public final class Blkfront<Facilities: XenFacilities>: BlockDevice {
    public let name: String
    public let geometry: BlockGeometry
    public private(set) var features: BlockFeatures
    public let queueDepth: Int
    public let maximumSectorsPerRequest: Int
    public let pool: BufferPool
    public private(set) var counters = BlockCounters()
    /// What was negotiated with the backend.
    public private(set) var negotiation: BlkfrontNegotiation
    /// Why the device stopped, if it did.
    public private(set) var failure: XenFrontendError?
    /// Called once, on the loop, when the device stops because of the backend.
    public var onFailure: ((XenFrontendError) -> Void)?

    /// The backend's domain and its xenstore directory.
    public var backendDomain: XenDomainID { bus.backendDomain }
    public var backendPath: String { bus.backendPath }
    /// Our directory, `device/vbd/N`.
    public var frontendPath: String { bus.frontendPath }
    /// Requests queued, not yet on the ring.
    public var queuedCount: Int { pending.count - pendingHead }
    /// Requests on the ring, not yet answered.
    public var inFlightCount: Int { queueDepth - freeIDs.count }

    /// Our own copy of a request on the ring: the ring's slot is the backend's to
    /// scribble on, so nothing is read back from it.
    private struct InFlight {
        var request: BlockRequest
        var completion: (Result<BlockRequest, BlockError>) -> Void
        /// The operation the response must echo.
        var echo: UInt8
        /// Pool pages standing in for views outside the pool: (index in pages, copy).
        var bounces: [(Int, Bits)]
    }

    private struct Queued {
        var request: BlockRequest
        var completion: (Result<BlockRequest, BlockError>) -> Void
    }

    let facilities: Facilities
    private let ownsFacilities: Bool
    let bus: XenbusFrontend<Facilities.Store>
    let loop: EventLoop
    let timeout: Duration
    private let handle: UInt16
    private var ring: FrontRing<BlkifLayout>
    private let ringPages: XenSharedPages
    private let indirectPages: XenSharedPages?
    private let indirectPagesPerRequest: Int
    private let dataPages: XenSharedPages
    private let port: XenEventChannelPort
    private var inFlight: [InFlight?]
    private var freeIDs: [Int]
    private var pending: [Queued] = []
    private var pendingHead = 0
    private var kick: LoopSource?
    private var registered: [FileDescriptor] = []
    private var isClosed = false
    /// blkif sectors (512 bytes) per device sector.
    private let unitsPerSector: UInt64

    /// Connects virtual block device `vbd` (its `virtual-device` number, 51712 for
    /// xvda) of this domain through `facilities`, with `dataPages` pages of data pool.
    ///
    /// `ringPageOrder` caps the ring's size (the backend's `max-ring-page-order` caps
    /// it too); `inFlight` caps the requests on the ring at once (the ring's slots cap
    /// it too); `indirectSegments` caps the segments of one indirect request (the
    /// backend's `feature-max-indirect-segments` caps it too; 11 or less turns indirect
    /// descriptors off). Every page is granted for the device's life: ring pages,
    /// `inFlight` × one indirect page per 512 segments, and `dataPages`. Linux's
    /// gntalloc lets a process grant 1024 pages unless its `limit` parameter is raised;
    /// the defaults take 16 + 128 + 512.
    ///
    /// With `readOnly` the device refuses writes and discards itself, whatever the
    /// backend's `info` says. With `ownsFacilities` ``close()`` closes `facilities` too
    /// (for a program that opened them for this device alone).
    public init(
        facilities: Facilities, vbd: Int, on loop: EventLoop, dataPages: Int = 512,
        ringPageOrder: Int = 4, inFlight maximumInFlight: Int = 128, indirectSegments: Int = 256,
        readOnly: Bool = false, ownsFacilities: Bool = false, timeout: Duration = .seconds(10)
    ) throws(XenFrontendError) {
        self.facilities = facilities
        self.ownsFacilities = ownsFacilities
        self.loop = loop
        self.timeout = timeout
        name = "vbd\(vbd)"
        bus = try XenbusFrontend(store: facilities.store, kind: "vbd", index: vbd)
        let device = try bus.required("virtual-device")
        guard let number = UInt32(device) else {
            throw .badNode(path: "\(bus.frontendPath)/virtual-device", value: device)
        }
        handle = UInt16(truncatingIfNeeded: number)
        try bus.waitForBackend(until: .initWait, timeout: timeout)

        // What the backend offers.
        let bus = self.bus
        let persistent = try bus.backendNumber("feature-persistent", as: Int.self) == 1
        let backendIndirect =
            try bus.backendNumber("feature-max-indirect-segments", as: Int.self) ?? 0
        let backendOrder = try bus.backendNumber("max-ring-page-order", as: Int.self) ?? 0
        let queues = try bus.backendNumber("multi-queue-max-queues", as: Int.self) ?? 1
        let order = max(0, min(backendOrder, ringPageOrder, 4))
        let ringPageCount = 1 << order
        let maximumIndirect = BlkifIndirectRequest.maximumPages * BlkifSegment.perIndirectPage
        let segments = max(
            BlkifReadWriteRequest.maximumSegments,
            min(backendIndirect, indirectSegments, maximumIndirect))
        let usesIndirect = segments > BlkifReadWriteRequest.maximumSegments

        // Share the ring, the indirect pages and the data pages; allocate the channel.
        let grants = facilities.grants
        let domain = bus.backendDomain
        ringPages = try Self.xen { () throws(XenError) in
            try grants.share(pageCount: ringPageCount, with: domain, writable: true)
        }
        do {
            ring = try FrontRing(
                initialising: ringPages.memory.baseAddress!, byteCount: ringPageCount * xenPageSize)
        } catch {
            try? grants.unshare(ringPages)
            throw .ring(error)
        }
        let slots = max(1, min(ring.size, maximumInFlight))
        indirectPagesPerRequest =
            usesIndirect
            ? (segments + BlkifSegment.perIndirectPage - 1) / BlkifSegment.perIndirectPage : 0
        // Writable as Linux grants them: a backend using persistent grants maps every
        // grant writable (io/blkif.h note 8). We never read them back.
        let indirectCount = slots * indirectPagesPerRequest
        let ringPages = self.ringPages
        do throws(XenFrontendError) {
            indirectPages =
                indirectCount == 0
                ? nil
                : try Self.xen { () throws(XenError) in
                    try grants.share(pageCount: indirectCount, with: domain, writable: true)
                }
        } catch {
            try? grants.unshare(ringPages)
            throw error
        }
        let indirectPages = self.indirectPages
        do throws(XenFrontendError) {
            self.dataPages = try Self.xen { () throws(XenError) in
                try grants.share(pageCount: max(1, dataPages), with: domain, writable: true)
            }
        } catch {
            try? grants.unshare(ringPages)
            if let indirectPages { try? grants.unshare(indirectPages) }
            throw error
        }
        let base = self.dataPages.memory.baseAddress!
        pool = BufferPool(
            headroom: 0,
            buffers: (0..<max(1, dataPages)).map {
                Buffer(borrowing: base + $0 * xenPageSize, pageCount: 1)
            })
        let channels = facilities.eventChannels
        let dataShare = self.dataPages
        do throws(XenFrontendError) {
            port = try Self.xen { () throws(XenError) in
                try channels.allocateUnboundPort(for: domain)
            }
        } catch {
            try? grants.unshare(ringPages)
            if let indirectPages { try? grants.unshare(indirectPages) }
            try? grants.unshare(dataShare)
            throw error
        }
        inFlight = [InFlight?](repeating: nil, count: slots)
        freeIDs = (0..<slots).reversed()
        queueDepth = slots
        var negotiated = BlkfrontNegotiation(
            ringPages: ringPageCount, ringSlots: ring.size, segmentsPerRequest: segments,
            usesIndirect: usesIndirect, backendPersistent: persistent, backendQueues: queues,
            flushByBarrier: false, discardGranularity: 0, discardAlignment: 0,
            discardSecure: false, isCDROM: false, isRemovable: false)

        // Publish, Initialised, wait for Connected, read the disk.
        var nodes: [(String, String)] = []
        if order == 0 {
            nodes.append(("ring-ref", "\(ringPages.references[0].rawValue)"))
        } else {
            nodes.append(("ring-page-order", "\(order)"))
            for (index, reference) in ringPages.references.enumerated() {
                nodes.append(("ring-ref\(index)", "\(reference.rawValue)"))
            }
        }
        nodes += [
            ("event-channel", "\(port.rawValue)"),
            ("protocol", "x86_64-abi"),
            ("feature-persistent", "1"),
        ]
        let disk: (BlockGeometry, BlockFeatures)
        do throws(XenFrontendError) {
            try bus.publish(nodes, state: .initialised)
            try bus.waitForBackend(until: .connected, timeout: timeout)
            disk = try Self.readDisk(bus, negotiation: &negotiated)
            try bus.setState(.connected)
        } catch {
            let port = self.port
            try? channels.unbind(port)
            try? grants.unshare(ringPages)
            if let indirectPages { try? grants.unshare(indirectPages) }
            try? grants.unshare(dataShare)
            bus.close(timeout: timeout, orderly: false)
            throw error
        }
        negotiation = negotiated
        geometry = BlockGeometry(
            sectorSize: disk.0.sectorSize, sectorCount: disk.0.sectorCount,
            isReadOnly: disk.0.isReadOnly || readOnly)
        features = disk.1
        unitsPerSector = UInt64(disk.0.sectorSize / 512)
        maximumSectorsPerRequest = segments * xenPageSize / disk.0.sectorSize

        // Responses and the backend's state, on the loop.
        let this = Unretained(self)
        kick = loop.makeSource { this.call { $0.service() } }
        let store = facilities.store
        let descriptors: (events: FileDescriptor, watch: FileDescriptor)
        do throws(XenFrontendError) {
            descriptors = (
                try Self.xen { () throws(XenError) in try channels.fileDescriptor },
                try Self.xen { () throws(XenError) in try store.watchFileDescriptor }
            )
        } catch {
            close()
            throw error
        }
        do throws(LoopError) {
            try loop.register(descriptors.events, interest: .readable) { _ in
                this.call { $0.eventFired() }
            }
            registered.append(descriptors.events)
            try loop.register(descriptors.watch, interest: .readable) { _ in
                this.call { $0.storeChanged() }
            }
            registered.append(descriptors.watch)
        } catch {
            close()
            throw .loop(error)
        }
    }

    /// The disk's properties, read once the backend is Connected.
    private static func readDisk(
        _ bus: XenbusFrontend<Facilities.Store>, negotiation: inout BlkfrontNegotiation
    ) throws(XenFrontendError) -> (BlockGeometry, BlockFeatures) {
        guard let units = try bus.backendNumber("sectors", as: UInt64.self) else {
            throw .missingNode("\(bus.backendPath)/sectors")
        }
        let sectorSize = try bus.backendNumber("sector-size", as: Int.self) ?? 512
        guard sectorSize >= 512, sectorSize <= xenPageSize, sectorSize & (sectorSize - 1) == 0
        else {
            throw .unsupportedDisk("sector-size \(sectorSize)")
        }
        let count = units / UInt64(sectorSize / 512)
        guard count > 0 else { throw .unsupportedDisk("\(units) sectors") }
        let info = try bus.backendNumber("info", as: UInt32.self) ?? 0
        let vdiskCDROM: UInt32 = 1
        let vdiskRemovable: UInt32 = 2
        let vdiskReadOnly: UInt32 = 4
        negotiation.isCDROM = info & vdiskCDROM != 0
        negotiation.isRemovable = info & vdiskRemovable != 0
        var features: BlockFeatures = []
        if try bus.backendNumber("feature-flush-cache", as: Int.self) == 1 {
            features.insert(.flush)
        } else if try bus.backendNumber("feature-barrier", as: Int.self) == 1 {
            features.insert(.flush)
            negotiation.flushByBarrier = true
        }
        if try bus.backendNumber("feature-discard", as: Int.self) == 1 {
            features.insert(.discard)
            negotiation.discardGranularity =
                try bus.backendNumber("discard-granularity", as: Int.self) ?? sectorSize
            negotiation.discardAlignment =
                try bus.backendNumber("discard-alignment", as: Int.self) ?? 0
            negotiation.discardSecure =
                try bus.backendNumber("discard-secure", as: Int.self) == 1
        }
        let geometry = BlockGeometry(
            sectorSize: sectorSize, sectorCount: count, isReadOnly: info & vdiskReadOnly != 0)
        return (geometry, features)
    }

    /// Runs a facility call, turning its error into ours.
    private static func xen<T>(_ body: () throws(XenError) -> T) throws(XenFrontendError) -> T {
        try XenbusFrontend<Facilities.Store>.xen(body)
    }

    // MARK: BlockDevice

    public func submit(
        _ request: BlockRequest, completion: @escaping (Result<BlockRequest, BlockError>) -> Void
    ) {
        do throws(BlockError) {
            guard !isClosed else { throw .closed(device: name) }
            if let failure { throw .failed(device: name, reason: failure.description) }
            try admit(request, maximumViews: negotiation.segmentsPerRequest)
        } catch {
            counters.refused &+= 1
            loop.enqueue { completion(.failure(error)) }
            return
        }
        pending.append(Queued(request: request, completion: completion))
        kick?.wake()
    }

    /// Shuts down: Closing, wait for the backend, Closed, wait, Initialising (so that
    /// the vbd can be connected again); fails what is not completed with
    /// ``BlockError/closed(device:)``, releases the channel and the grants.
    /// A device dropped without ``close()`` still leaves the loop and the backend.
    deinit { close() }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        for descriptor in registered { try? loop.deregister(descriptor) }
        registered = []
        kick?.cancel()
        kick = nil
        bus.close(timeout: timeout, orderly: failure == nil)
        try? facilities.eventChannels.unbind(port)
        failEverything(.closed(device: name))
        let grants = facilities.grants
        try? grants.unshare(ringPages)
        if let indirectPages { try? grants.unshare(indirectPages) }
        // Buffers the application still holds keep their pages shared and mapped.
        if pool.freeCount == pool.limit { try? grants.unshare(dataPages) }
        if ownsFacilities { facilities.close() }
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
        guard failure == nil, !isClosed else { return }
        do {
            let state = try bus.drainWatch()
            if state != XenbusState.connected.rawValue { stop(.backendClosed(state: state)) }
        } catch {
            stop(error)
        }
    }

    /// Stops the device because of the backend: no more ring reads, every request not
    /// completed fails.
    private func stop(_ error: XenFrontendError) {
        guard failure == nil, !isClosed else { return }
        failure = error
        for descriptor in registered { try? loop.deregister(descriptor) }
        registered = []
        failEverything(.failed(device: name, reason: error.description))
        onFailure?(error)
    }

    /// Completes every request in flight or queued with `error`.
    private func failEverything(_ error: BlockError) {
        var completions: [(Result<BlockRequest, BlockError>) -> Void] = []
        for id in inFlight.indices {
            if let entry = inFlight[id] {
                completions.append(entry.completion)
                inFlight[id] = nil
            }
        }
        // The ids stay taken: a stopped ring is not written again.
        for entry in pending[pendingHead...] { completions.append(entry.completion) }
        pending = []
        pendingHead = 0
        counters.errors &+= UInt64(completions.count)
        for completion in completions { completion(.failure(error)) }
    }

    /// Responses first (they free slots), then the queue onto the ring.
    private func service() {
        guard failure == nil, !isClosed else { return }
        collectResponses()
        guard failure == nil, !isClosed else { return }
        fillRing()
    }

    // MARK: Requests

    /// Writes queued requests into free slots and pushes them with one notification.
    private func fillRing() {
        var added = false
        while pendingHead < pending.count, let id = freeIDs.last, ring.freeRequests > 0 {
            guard let slot = prepare(pending[pendingHead], id: id) else { break }
            do {
                try ring.putRequest(slot.0)
            } catch {
                break  // cannot happen: a free slot was counted
            }
            freeIDs.removeLast()
            inFlight[id] = slot.1
            pending[pendingHead] = Queued(request: BlockRequest.flush, completion: { _ in })
            pendingHead += 1
            added = true
        }
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        } else if pendingHead > 1024 && pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        if added && ring.pushRequests() {
            do {
                try facilities.eventChannels.notify(port)
            } catch {
                stop(.xen(error))
            }
        }
    }

    /// The ring request for `queued` in slot `id`, or nil when no pool page is free
    /// for a copy (it waits for a completion to free one).
    private func prepare(_ queued: Queued, id: Int) -> (BlkifRequest, InFlight)? {
        let request = queued.request
        let sector = request.sector &* unitsPerSector
        var entry = InFlight(
            request: request, completion: queued.completion, echo: 0, bounces: [])
        switch request.operation {
        case .flush:
            let operation =
                negotiation.flushByBarrier
                ? BlkifOperation.writeBarrier : BlkifOperation.flushDiskCache
            entry.echo = operation
            return (
                .readWrite(
                    BlkifReadWriteRequest(
                        operation: operation, handle: handle, id: UInt64(id), sectorNumber: 0,
                        segments: [])), entry
            )
        case .discard:
            entry.echo = BlkifOperation.discard
            return (
                .discard(
                    BlkifDiscardRequest(
                        flags: 0, handle: handle, id: UInt64(id), sectorNumber: sector,
                        sectorCount: UInt64(request.sectorCount) &* unitsPerSector)), entry
            )
        case .read, .write:
            let operation =
                request.operation == .read ? BlkifOperation.read : BlkifOperation.write
            entry.echo = operation
            var segments: [BlkifSegment] = []
            segments.reserveCapacity(request.pages.count)
            for (index, view) in request.pages.enumerated() {
                var page = view
                var grant = grantedPage(of: view)
                if grant == nil {
                    guard var copy = try? pool.allocate(), (try? copy.extend(by: view.count)) != nil
                    else { return nil }
                    if operation == BlkifOperation.write {
                        copy.withUnsafeMutableBytes { target in
                            view.withUnsafeBytes { source in target.copyMemory(from: source) }
                        }
                        counters.bytesCopied &+= UInt64(view.count)
                    }
                    entry.bounces.append((index, copy))
                    page = copy
                    grant = grantedPage(of: copy)
                }
                guard let grant else { return nil }
                let first = (page.offset % xenPageSize) / 512
                segments.append(
                    BlkifSegment(
                        grant: dataPages.references[grant], firstSector: UInt8(first),
                        lastSector: UInt8(first + page.count / 512 - 1)))
            }
            if segments.count <= BlkifReadWriteRequest.maximumSegments {
                return (
                    .readWrite(
                        BlkifReadWriteRequest(
                            operation: operation, handle: handle, id: UInt64(id),
                            sectorNumber: sector, segments: segments)), entry
                )
            }
            // Indirect: the segments in this slot's descriptor pages.
            guard let indirectPages else { return nil }
            let firstPage = id * indirectPagesPerRequest
            let base = indirectPages.memory.baseAddress! + firstPage * xenPageSize
            for (index, segment) in segments.enumerated() {
                segment.store(to: base + index * BlkifSegment.size)
            }
            let used =
                (segments.count + BlkifSegment.perIndirectPage - 1)
                / BlkifSegment.perIndirectPage
            return (
                .indirect(
                    BlkifIndirectRequest(
                        indirectOperation: operation, segmentCount: UInt16(segments.count),
                        id: UInt64(id), sectorNumber: sector, handle: handle,
                        indirectGrants: Array(
                            indirectPages.references[firstPage..<(firstPage + used)])
                    )), entry
            )
        }
    }

    /// The index among our data pages of the page holding all of `view`, if any.
    private func grantedPage(of view: Bits) -> Int? {
        let base = dataPages.memory.baseAddress!
        let distance = view.buffer.baseAddress - base
        guard distance >= 0, distance < dataPages.memory.count, distance % xenPageSize == 0,
            view.offset >= 0, view.offset + view.count <= xenPageSize
        else { return nil }
        return distance / xenPageSize
    }

    /// Takes every response, checks it, and completes its request.
    private func collectResponses() {
        var completed: [(InFlight, Result<BlockRequest, BlockError>)] = []
        do throws(XenFrontendError) {
            repeat {
                let waiting: Int
                do { waiting = try ring.unconsumedResponses() } catch { throw .ring(error) }
                for _ in 0..<waiting {
                    let response = ring.takeResponse()
                    guard response.id < UInt64(inFlight.count),
                        let entry = inFlight[Int(response.id)]
                    else {
                        throw .unknownRequestID(response.id)
                    }
                    guard response.operation == entry.echo else {
                        throw .operationMismatch(
                            id: response.id, expected: entry.echo, echoed: response.operation)
                    }
                    let result: Result<BlockRequest, BlockError>
                    switch response.status {
                    case BlkifResponse.okay:
                        result = .success(finish(entry))
                    case BlkifResponse.error:
                        result = .failure(
                            .ioError(
                                device: name,
                                detail:
                                    "the backend failed the \(entry.request.operation) of sectors \(entry.request.sector)+\(entry.request.sectorCount)"
                            ))
                    case BlkifResponse.notSupported:
                        switch entry.request.operation {
                        case .flush: features.remove(.flush)
                        case .discard: features.remove(.discard)
                        default: break
                        }
                        result = .failure(
                            .unsupported(device: name, operation: entry.request.operation))
                    default:
                        throw .badStatus(id: response.id, status: response.status)
                    }
                    inFlight[Int(response.id)] = nil
                    freeIDs.append(Int(response.id))
                    completed.append((entry, result))
                }
            } while try checkedFinalCheck()
        } catch {
            // What completed before the fault completes normally; the rest fails.
            deliver(completed)
            stop(error)
            return
        }
        deliver(completed)
    }

    private func checkedFinalCheck() throws(XenFrontendError) -> Bool {
        do {
            return try ring.finalCheckForResponses()
        } catch {
            throw .ring(error)
        }
    }

    /// A successful request: a read's copies back into the caller's views.
    private func finish(_ entry: InFlight) -> BlockRequest {
        var request = entry.request
        if request.operation == .read {
            for (index, copy) in entry.bounces {
                request.pages[index].withUnsafeMutableBytes { target in
                    copy.withUnsafeBytes { source in target.copyMemory(from: source) }
                }
                counters.bytesCopied &+= UInt64(copy.count)
            }
        }
        return request
    }

    private func deliver(_ completed: [(InFlight, Result<BlockRequest, BlockError>)]) {
        for (entry, result) in completed {
            switch result {
            case .success(let request):
                counters.countCompleted(request.operation, sectors: request.sectorCount)
            case .failure:
                counters.errors &+= 1
            }
            entry.completion(result)
        }
    }
}
