// The ring of a Xen virtual block device (io/blkif.h): requests from the frontend,
// responses from the backend, in one ring of one or more pages.

/// A `blkif_request_segment`: one page of a transfer (8 bytes: gref, first_sect,
/// last_sect, 2 bytes of padding).
///
/// `firstSector` and `lastSector` count 512-byte units inside the page, inclusive: a
/// whole page is 0...7.
public struct BlkifSegment: Hashable, Sendable {
    /// The granted page.
    public var grant: XenGrantReference
    /// The first 512-byte unit of the page transferred.
    public var firstSector: UInt8
    /// The last 512-byte unit of the page transferred (inclusive).
    public var lastSector: UInt8

    public init(grant: XenGrantReference, firstSector: UInt8, lastSector: UInt8) {
        self.grant = grant
        self.firstSector = firstSector
        self.lastSector = lastSector
    }

    /// `sizeof(struct blkif_request_segment)`.
    public static let size = 8
    /// Segments in one indirect page (`PAGE_SIZE / sizeof(struct blkif_request_segment)`).
    public static let perIndirectPage = xenPageSize / size

    /// Reads one from `pointer` (an indirect page or a request slot).
    @inlinable public static func load(from pointer: UnsafeRawPointer) -> BlkifSegment {
        BlkifSegment(
            grant: XenGrantReference(pointer.loadLittle(UInt32.self, 0)),
            firstSector: pointer.loadLittle(UInt8.self, 4),
            lastSector: pointer.loadLittle(UInt8.self, 5))
    }

    /// Writes it, padding included, at `pointer`.
    @inlinable public func store(to pointer: UnsafeMutableRawPointer) {
        pointer.storeLittle(grant.rawValue, 0)
        pointer.storeLittle(firstSector, 4)
        pointer.storeLittle(lastSector, 5)
        pointer.storeLittle(UInt16(0), 6)
    }
}

/// `BLKIF_OP_*`.
public enum BlkifOperation {
    /// `BLKIF_OP_READ`: the backend fills the segments' pages.
    public static let read: UInt8 = 0
    /// `BLKIF_OP_WRITE`: the backend stores the segments' pages.
    public static let write: UInt8 = 1
    /// `BLKIF_OP_WRITE_BARRIER`: writes before it complete first (`feature-barrier`).
    public static let writeBarrier: UInt8 = 2
    /// `BLKIF_OP_FLUSH_DISKCACHE`: the backend's cache to stable storage
    /// (`feature-flush-cache`).
    public static let flushDiskCache: UInt8 = 3
    /// `BLKIF_OP_DISCARD` (`feature-discard`).
    public static let discard: UInt8 = 5
    /// `BLKIF_OP_INDIRECT`: the segments are in granted pages
    /// (`feature-max-indirect-segments`).
    public static let indirect: UInt8 = 6
}

/// `struct blkif_request`: read, write, barrier or flush with up to 11 segments in the
/// slot itself (112 bytes: operation, nr_segments, handle, 4 bytes of padding, id,
/// sector_number, seg[11]).
public struct BlkifReadWriteRequest: Hashable, Sendable {
    /// `BLKIF_OP_READ`, `WRITE`, `WRITE_BARRIER` or `FLUSH_DISKCACHE`.
    public var operation: UInt8
    /// The device's `virtual-device` number (only meaningful for reads and writes).
    public var handle: UInt16
    /// Echoed in the response.
    public var id: UInt64
    /// The first sector, in 512-byte units whatever the device's `sector-size`.
    public var sectorNumber: UInt64
    /// At most ``maximumSegments``; `nr_segments` is their count.
    public var segments: [BlkifSegment]

    /// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
    public static let maximumSegments = 11

    public init(
        operation: UInt8, handle: UInt16, id: UInt64, sectorNumber: UInt64,
        segments: [BlkifSegment]
    ) {
        self.operation = operation
        self.handle = handle
        self.id = id
        self.sectorNumber = sectorNumber
        self.segments = segments
    }
}

/// `struct blkif_request_discard` (32 bytes: operation, flag, handle, id,
/// sector_number, nr_sectors).
public struct BlkifDiscardRequest: Hashable, Sendable {
    /// `BLKIF_DISCARD_SECURE` or 0.
    public var flags: UInt8
    /// The device's `virtual-device` number.
    public var handle: UInt16
    /// Echoed in the response.
    public var id: UInt64
    /// In 512-byte units.
    public var sectorNumber: UInt64
    /// In 512-byte units.
    public var sectorCount: UInt64

    /// `BLKIF_DISCARD_SECURE`: the discarded data must be unrecoverable.
    public static let secure: UInt8 = 1

    public init(flags: UInt8, handle: UInt16, id: UInt64, sectorNumber: UInt64, sectorCount: UInt64)
    {
        self.flags = flags
        self.handle = handle
        self.id = id
        self.sectorNumber = sectorNumber
        self.sectorCount = sectorCount
    }
}

/// `struct blkif_request_indirect` (64 bytes on x86_64: operation, indirect_op,
/// nr_segments as 16 bits, id, sector_number, handle, indirect_grefs[8]): the segments
/// are in granted pages, 512 to a page.
public struct BlkifIndirectRequest: Hashable, Sendable {
    /// `BLKIF_OP_READ` or `BLKIF_OP_WRITE`.
    public var indirectOperation: UInt8
    /// How many segments the indirect pages hold.
    public var segmentCount: UInt16
    /// Echoed in the response.
    public var id: UInt64
    /// In 512-byte units.
    public var sectorNumber: UInt64
    /// The device's `virtual-device` number.
    public var handle: UInt16
    /// The pages of segments, at most ``maximumPages``.
    public var indirectGrants: [XenGrantReference]

    /// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
    public static let maximumPages = 8

    public init(
        indirectOperation: UInt8, segmentCount: UInt16, id: UInt64, sectorNumber: UInt64,
        handle: UInt16, indirectGrants: [XenGrantReference]
    ) {
        self.indirectOperation = indirectOperation
        self.segmentCount = segmentCount
        self.id = id
        self.sectorNumber = sectorNumber
        self.handle = handle
        self.indirectGrants = indirectGrants
    }
}

/// A request slot, in one of its three shapes (chosen by the `operation` byte).
public enum BlkifRequest: Hashable, Sendable {
    /// Read, write, barrier or flush, segments in the slot.
    case readWrite(BlkifReadWriteRequest)
    /// `BLKIF_OP_DISCARD`.
    case discard(BlkifDiscardRequest)
    /// `BLKIF_OP_INDIRECT`: read or write, segments in granted pages.
    case indirect(BlkifIndirectRequest)

    /// The `id` echoed in the response.
    public var id: UInt64 {
        switch self {
        case .readWrite(let request): return request.id
        case .discard(let request): return request.id
        case .indirect(let request): return request.id
        }
    }

    /// The operation a response must echo: an indirect request's inner operation, as
    /// Linux's blkback answers and blkfront checks.
    public var echoedOperation: UInt8 {
        switch self {
        case .readWrite(let request): return request.operation
        case .discard: return BlkifOperation.discard
        case .indirect(let request): return request.indirectOperation
        }
    }
}

/// `struct blkif_response` (16 bytes: id, operation, padding, status).
public struct BlkifResponse: Hashable, Sendable {
    /// The request's id.
    public var id: UInt64
    /// The request's operation (an indirect request's inner one).
    public var operation: UInt8
    /// `BLKIF_RSP_*`.
    public var status: Int16

    public init(id: UInt64, operation: UInt8, status: Int16) {
        self.id = id
        self.operation = operation
        self.status = status
    }

    /// `BLKIF_RSP_OKAY`.
    public static let okay: Int16 = 0
    /// `BLKIF_RSP_ERROR`.
    public static let error: Int16 = -1
    /// `BLKIF_RSP_EOPNOTSUPP`.
    public static let notSupported: Int16 = -2
}

/// `DEFINE_RING_TYPES(blkif, struct blkif_request, struct blkif_response)`: 112-byte
/// slots, 32 in one page, 64 in two, … (io/ring.h rounds down to a power of two).
///
/// A request is written whole, padding and unused segments zeroed, so the slot holds
/// nothing from an earlier request.
public enum BlkifLayout: RingLayout {
    public static let slotSize = 112

    enum Offset {
        static let operation = 0
        static let segmentCount = 1
        static let handle = 2
        static let id = 8
        static let sector = 16
        static let segments = 24
        static let discardFlag = 1
        static let discardSectors = 24
        static let indirectOperation = 1
        static let indirectSegmentCount = 2
        static let indirectHandle = 24
        static let indirectGrants = 28
        static let responseOperation = 8
        static let responseStatus = 10
    }

    public static func loadRequest(from slot: UnsafeRawPointer) -> BlkifRequest {
        let operation = slot.loadLittle(UInt8.self, Offset.operation)
        let id = slot.loadLittle(UInt64.self, Offset.id)
        let sector = slot.loadLittle(UInt64.self, Offset.sector)
        switch operation {
        case BlkifOperation.discard:
            return .discard(
                BlkifDiscardRequest(
                    flags: slot.loadLittle(UInt8.self, Offset.discardFlag),
                    handle: slot.loadLittle(UInt16.self, Offset.handle), id: id,
                    sectorNumber: sector,
                    sectorCount: slot.loadLittle(UInt64.self, Offset.discardSectors)))
        case BlkifOperation.indirect:
            // The grants present are those the segment count needs (never more than 8).
            let count = slot.loadLittle(UInt16.self, Offset.indirectSegmentCount)
            let pages = min(
                BlkifIndirectRequest.maximumPages,
                (Int(count) + BlkifSegment.perIndirectPage - 1) / BlkifSegment.perIndirectPage)
            return .indirect(
                BlkifIndirectRequest(
                    indirectOperation: slot.loadLittle(UInt8.self, Offset.indirectOperation),
                    segmentCount: count, id: id, sectorNumber: sector,
                    handle: slot.loadLittle(UInt16.self, Offset.indirectHandle),
                    indirectGrants: (0..<pages).map {
                        XenGrantReference(
                            slot.loadLittle(UInt32.self, Offset.indirectGrants + 4 * $0))
                    }))
        default:
            let count = min(
                Int(slot.loadLittle(UInt8.self, Offset.segmentCount)),
                BlkifReadWriteRequest.maximumSegments)
            return .readWrite(
                BlkifReadWriteRequest(
                    operation: operation, handle: slot.loadLittle(UInt16.self, Offset.handle),
                    id: id, sectorNumber: sector,
                    segments: (0..<count).map {
                        BlkifSegment.load(
                            from: slot + Offset.segments + $0 * BlkifSegment.size)
                    }))
        }
    }

    /// Writes `request`; segments or grants beyond the slot's room are not written (the
    /// frontend never builds such a request).
    public static func storeRequest(_ request: BlkifRequest, to slot: UnsafeMutableRawPointer) {
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: slotSize)
        switch request {
        case .readWrite(let request):
            let segments = request.segments.prefix(BlkifReadWriteRequest.maximumSegments)
            slot.storeLittle(request.operation, Offset.operation)
            slot.storeLittle(UInt8(segments.count), Offset.segmentCount)
            slot.storeLittle(request.handle, Offset.handle)
            slot.storeLittle(request.id, Offset.id)
            slot.storeLittle(request.sectorNumber, Offset.sector)
            for (index, segment) in segments.enumerated() {
                segment.store(to: slot + Offset.segments + index * BlkifSegment.size)
            }
        case .discard(let request):
            slot.storeLittle(BlkifOperation.discard, Offset.operation)
            slot.storeLittle(request.flags, Offset.discardFlag)
            slot.storeLittle(request.handle, Offset.handle)
            slot.storeLittle(request.id, Offset.id)
            slot.storeLittle(request.sectorNumber, Offset.sector)
            slot.storeLittle(request.sectorCount, Offset.discardSectors)
        case .indirect(let request):
            slot.storeLittle(BlkifOperation.indirect, Offset.operation)
            slot.storeLittle(request.indirectOperation, Offset.indirectOperation)
            slot.storeLittle(request.segmentCount, Offset.indirectSegmentCount)
            slot.storeLittle(request.id, Offset.id)
            slot.storeLittle(request.sectorNumber, Offset.sector)
            slot.storeLittle(request.handle, Offset.indirectHandle)
            for (index, grant) in request.indirectGrants.prefix(BlkifIndirectRequest.maximumPages)
                .enumerated()
            {
                slot.storeLittle(grant.rawValue, Offset.indirectGrants + 4 * index)
            }
        }
    }

    public static func loadResponse(from slot: UnsafeRawPointer) -> BlkifResponse {
        BlkifResponse(
            id: slot.loadLittle(UInt64.self, 0),
            operation: slot.loadLittle(UInt8.self, Offset.responseOperation),
            status: Int16(bitPattern: slot.loadLittle(UInt16.self, Offset.responseStatus)))
    }

    public static func storeResponse(_ response: BlkifResponse, to slot: UnsafeMutableRawPointer) {
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        slot.storeLittle(response.id, 0)
        slot.storeLittle(response.operation, Offset.responseOperation)
        slot.storeLittle(UInt16(bitPattern: response.status), Offset.responseStatus)
    }
}
