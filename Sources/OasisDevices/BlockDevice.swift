// A block device: sectors read and written in batches of asynchronous requests on the
// loop, whatever holds them (memory, a Linux file or disk, a Xen backend).

import OasisBits

/// What a block device is: how big its sectors are, how many it has, and whether it may
/// be written.
public struct BlockGeometry: Hashable, Sendable, CustomStringConvertible {
    /// Bytes per sector: the unit of ``BlockRequest/sector`` and of every transfer
    /// (512 or 4096).
    public var sectorSize: Int
    /// How many sectors the device holds.
    public var sectorCount: UInt64
    /// Writes and discards are refused with ``BlockError/readOnly(device:)``.
    public var isReadOnly: Bool

    public init(sectorSize: Int, sectorCount: UInt64, isReadOnly: Bool = false) {
        self.sectorSize = sectorSize
        self.sectorCount = sectorCount
        self.isReadOnly = isReadOnly
    }

    /// The capacity in bytes (saturating).
    public var byteCount: UInt64 {
        sectorCount.multipliedReportingOverflow(by: UInt64(sectorSize)).overflow
            ? .max : sectorCount &* UInt64(sectorSize)
    }

    public var description: String {
        "\(sectorCount) sectors of \(sectorSize) bytes (\(byteCount) bytes)"
            + (isReadOnly ? ", read-only" : "")
    }
}

/// The optional operations a device supports, beyond read and write.
public struct BlockFeatures: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// ``BlockOperation/flush``: everything completed before it is on stable storage.
    public static let flush = BlockFeatures(rawValue: 1)
    /// ``BlockOperation/discard``: the sectors' contents may be dropped.
    public static let discard = BlockFeatures(rawValue: 2)

    public var description: String {
        var names: [String] = []
        if contains(.flush) { names.append("flush") }
        if contains(.discard) { names.append("discard") }
        return names.isEmpty ? "none" : names.joined(separator: ",")
    }
}

/// What a request does.
public enum BlockOperation: Hashable, Sendable, CustomStringConvertible {
    /// Fill ``BlockRequest/pages`` from the device.
    case read
    /// Store ``BlockRequest/pages`` on the device.
    case write
    /// Make every write completed so far durable (no data).
    case flush
    /// The device may forget ``BlockRequest/sectorCount`` sectors (no data).
    case discard

    public var description: String {
        switch self {
        case .read: return "read"
        case .write: return "write"
        case .flush: return "flush"
        case .discard: return "discard"
        }
    }
}

/// One request: an operation on a range of sectors, with the data in pages.
///
/// The data of a read or a write is a list of views, each inside one 4 KiB page and
/// starting and ending on a 512-byte boundary (the unit Xen's blkif segments and
/// `O_DIRECT` both address); they are transferred in order, back to back, and their
/// bytes add up to `sectorCount * sectorSize`. Views taken from the device's
/// ``BlockDevice/pool`` move without a copy (granted pages, aligned memory); others are
/// copied once.
///
/// ```swift
/// var page = try device.pool.allocate()      // empty view at the start of a page
/// try page.extend(by: 4096)
/// let request = BlockRequest(read: 0, pages: [page], sectorSize: 512)
/// device.submit(request) { result in
///     if case .success(let done) = result { print(done.pages[0].copyBytes()[0]) }
/// }
/// ```
public struct BlockRequest {
    public var operation: BlockOperation
    /// The first sector, in units of ``BlockGeometry/sectorSize``.
    public var sector: UInt64
    /// How many sectors (0 for a flush).
    public var sectorCount: Int
    /// The data of a read or write, in order.
    public var pages: [Bits]

    public init(operation: BlockOperation, sector: UInt64, sectorCount: Int, pages: [Bits] = []) {
        self.operation = operation
        self.sector = sector
        self.sectorCount = sectorCount
        self.pages = pages
    }

    /// A read of as many sectors as `pages` hold.
    public init(read sector: UInt64, pages: [Bits], sectorSize: Int) {
        self.init(
            operation: .read, sector: sector,
            sectorCount: pages.reduce(0) { $0 + $1.count } / max(1, sectorSize), pages: pages)
    }

    /// A write of `pages`.
    public init(write sector: UInt64, pages: [Bits], sectorSize: Int) {
        self.init(
            operation: .write, sector: sector,
            sectorCount: pages.reduce(0) { $0 + $1.count } / max(1, sectorSize), pages: pages)
    }

    /// A flush.
    public static var flush: BlockRequest {
        BlockRequest(operation: .flush, sector: 0, sectorCount: 0)
    }

    /// The bytes the pages hold.
    public var byteCount: Int { pages.reduce(0) { $0 &+ $1.count } }

    /// The request's faults against a device, before anything is submitted: the checks
    /// every ``BlockDevice`` makes, so that they all refuse alike.
    public func validate(
        for geometry: BlockGeometry, features: BlockFeatures, device: String
    ) throws(BlockError) {
        switch operation {
        case .flush:
            guard features.contains(.flush) else {
                throw .unsupported(device: device, operation: operation)
            }
            return
        case .discard:
            guard features.contains(.discard) else {
                throw .unsupported(device: device, operation: operation)
            }
            guard !geometry.isReadOnly else { throw .readOnly(device: device) }
        case .write:
            guard !geometry.isReadOnly else { throw .readOnly(device: device) }
        case .read:
            break
        }
        guard sectorCount > 0 else {
            throw .badRequest(device: device, reason: "no sectors")
        }
        let (end, overflow) = sector.addingReportingOverflow(UInt64(sectorCount))
        guard !overflow, end <= geometry.sectorCount else {
            throw .outOfRange(
                device: device, sector: sector, count: sectorCount, capacity: geometry.sectorCount)
        }
        guard operation != .discard else { return }
        var bytes = 0
        for page in pages {
            let start = page.offset
            guard start % 512 == 0, page.count % 512 == 0, page.count > 0,
                start + page.count <= Buffer.pageSize * page.buffer.pageCount,
                start / Buffer.pageSize == (start + page.count - 1) / Buffer.pageSize
            else {
                throw .badRequest(
                    device: device,
                    reason:
                        "a view of \(page.count) bytes at offset \(start) is not whole 512-byte units inside one page"
                )
            }
            bytes += page.count
        }
        guard bytes == sectorCount * geometry.sectorSize else {
            throw .badRequest(
                device: device,
                reason:
                    "\(sectorCount) sectors of \(geometry.sectorSize) bytes but the pages hold \(bytes) bytes"
            )
        }
    }
}

/// Why a block request or device failed.
public enum BlockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The device is closed, or stopped after a failure.
    case closed(device: String)
    /// A write or discard to a read-only device.
    case readOnly(device: String)
    /// Sectors beyond the end of the device.
    case outOfRange(device: String, sector: UInt64, count: Int, capacity: UInt64)
    /// The request is malformed (alignment, sizes); nothing was submitted.
    case badRequest(device: String, reason: String)
    /// The device does not offer this operation (see ``BlockDevice/features``).
    case unsupported(device: String, operation: BlockOperation)
    /// The device (kernel, backend) reported an I/O error for this request.
    case ioError(device: String, detail: String)
    /// The device could not be opened or set up.
    case unavailable(String)
    /// The device broke (a backend that misbehaved or left); every request fails so.
    case failed(device: String, reason: String)

    public var description: String {
        switch self {
        case .closed(let device): return "\(device): closed"
        case .readOnly(let device): return "\(device): read-only"
        case .outOfRange(let device, let sector, let count, let capacity):
            return "\(device): sectors \(sector)+\(count) beyond the end (\(capacity) sectors)"
        case .badRequest(let device, let reason): return "\(device): bad request: \(reason)"
        case .unsupported(let device, let operation):
            return "\(device): \(operation) not supported"
        case .ioError(let device, let detail): return "\(device): I/O error: \(detail)"
        case .unavailable(let reason): return reason
        case .failed(let device, let reason): return "\(device): failed: \(reason)"
        }
    }
}

/// What a block device has done, for statistics.
public struct BlockCounters: Hashable, Sendable, CustomStringConvertible {
    public var reads: UInt64 = 0
    public var writes: UInt64 = 0
    public var flushes: UInt64 = 0
    public var discards: UInt64 = 0
    public var sectorsRead: UInt64 = 0
    public var sectorsWritten: UInt64 = 0
    /// Requests that completed with an error.
    public var errors: UInt64 = 0
    /// Requests refused before submission (validation).
    public var refused: UInt64 = 0
    /// Bytes copied because the data was not in the device's pool.
    public var bytesCopied: UInt64 = 0

    public init() {}

    /// Counts a successful request.
    public mutating func countCompleted(_ operation: BlockOperation, sectors: Int) {
        switch operation {
        case .read:
            reads &+= 1
            sectorsRead &+= UInt64(sectors)
        case .write:
            writes &+= 1
            sectorsWritten &+= UInt64(sectors)
        case .flush: flushes &+= 1
        case .discard: discards &+= 1
        }
    }

    public var description: String {
        "reads \(reads) (\(sectorsRead) sectors) writes \(writes) (\(sectorsWritten) sectors)"
            + " flushes \(flushes) discards \(discards) errors \(errors) refused \(refused)"
            + " copied \(bytesCopied) bytes"
    }
}

/// A block device driven from one event loop.
///
/// ``submit(_:completion:)`` queues a request and returns at once; the device sends
/// what is queued to the storage in one batch (one ring push and notification, one
/// `io_submit`) when the loop turns, and calls each completion on the loop when the
/// storage answers, in whatever order it answers. At most ``queueDepth`` requests are in
/// flight; the rest wait in the queue. Requests are checked with
/// ``BlockRequest/validate(for:features:device:)`` first; a refused one completes with
/// its error without being sent.
///
/// A device belongs to the loop that created it: call it only from that loop's thread.
public protocol BlockDevice: AnyObject {
    /// A short name for logs: `mem0`, `file:disk.img`, `xvda`.
    var name: String { get }
    var geometry: BlockGeometry { get }
    var features: BlockFeatures { get }
    /// Most requests in flight at once.
    var queueDepth: Int { get }
    /// Most sectors one request may carry; larger requests are refused.
    var maximumSectorsPerRequest: Int { get }
    /// Pages that move to and from the storage without a copy; allocate data here.
    var pool: BufferPool { get }
    var counters: BlockCounters { get }
    /// Queues `request`; `completion` runs on the loop with the request (a read's
    /// pages filled) or why it failed.
    func submit(
        _ request: BlockRequest, completion: @escaping (Result<BlockRequest, BlockError>) -> Void)
    /// Fails every request not yet completed with ``BlockError/closed(device:)``, and
    /// releases the storage. Idempotent.
    func close()
}

extension BlockDevice {
    /// The checks every device makes before it queues `request`:
    /// ``BlockRequest/validate(for:features:device:)``, at most
    /// ``maximumSectorsPerRequest`` sectors, and at most `maximumViews` views (the
    /// segments one request of the storage can carry).
    public func admit(_ request: BlockRequest, maximumViews: Int = .max) throws(BlockError) {
        try request.validate(for: geometry, features: features, device: name)
        guard request.sectorCount <= maximumSectorsPerRequest else {
            throw .badRequest(
                device: name,
                reason: "\(request.sectorCount) sectors, more than \(maximumSectorsPerRequest)")
        }
        guard request.pages.count <= maximumViews else {
            throw .badRequest(
                device: name,
                reason: "\(request.pages.count) views, more than the \(maximumViews) of a request")
        }
    }
}
