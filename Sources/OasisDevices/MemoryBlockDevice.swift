// A block device in memory: for tests, benchmarks of the layers above, and
// `oasis block --disk memory:SIZE`.

import DequeModule
import OasisBits
import OasisLoop

#if canImport(Glibc)
    import Glibc
#endif

/// Sectors held in memory, with the timing of a real device: requests queued on
/// ``submit(_:completion:)`` start together when the loop turns (at most
/// ``queueDepth`` of them), and their completions come together one turn later.
///
/// The memory is sparse: a 4 KiB page is allocated when it is first written, a page
/// never written reads as zeros, and a discard gives whole pages back
/// (``allocatedPages`` shows it). Faults can be injected for tests: a read-only
/// geometry, and requests that fail with ``BlockError/ioError(device:detail:)``.
///
/// ```swift
/// let disk = MemoryBlockDevice(sectorCount: 2048, loop: loop)   // 1 MiB
/// disk.failRequests = [3]            // the fourth request accepted fails
/// var page = try disk.pool.allocate()
/// try page.extend(by: 4096)
/// disk.submit(BlockRequest(write: 0, pages: [page], sectorSize: 512)) { print($0) }
/// ```
///
/// Confined to the loop's thread, as every device.
public final class MemoryBlockDevice: BlockDevice {
    public let name: String
    public let geometry: BlockGeometry
    public let features: BlockFeatures
    public let queueDepth: Int
    public let maximumSectorsPerRequest: Int
    public let pool: BufferPool
    public private(set) var counters = BlockCounters()

    /// The numbers (from 0, in the order requests pass validation) of the requests that
    /// fail with an I/O error instead of being carried out.
    public var failRequests: Set<UInt64> = []
    /// Loop turns that started requests: N requests submitted in one turn are one batch.
    public private(set) var batches: UInt64 = 0
    /// The most requests that were in flight at once.
    public private(set) var peakInFlight = 0
    /// Pages of memory holding written data.
    public var allocatedPages: Int { pages.count }

    private struct Entry {
        var request: BlockRequest
        var completion: (Result<BlockRequest, BlockError>) -> Void
        var outcome: Result<BlockRequest, BlockError>?
    }

    private let loop: EventLoop
    private var pages: [UInt64: UnsafeMutableRawPointer] = [:]
    private var pending: Deque<Entry> = []
    private var inFlight: [Entry] = []
    private var accepted: UInt64 = 0
    private var isClosed = false
    private var starter: LoopSource?
    private var finisher: LoopSource?

    /// A device of `sectorCount` sectors of `sectorSize` bytes (512 or 4096), all zero.
    ///
    /// - Parameters:
    ///   - readOnly: writes and discards are refused.
    ///   - features: flush and discard by default.
    ///   - queueDepth: requests in flight at once (at least 1).
    ///   - maximumSectorsPerRequest: the largest request (default: 1 MiB of sectors).
    public init(
        name: String = "memory", sectorCount: UInt64, sectorSize: Int = 512,
        readOnly: Bool = false, features: BlockFeatures = [.flush, .discard],
        queueDepth: Int = 32, maximumSectorsPerRequest: Int? = nil, loop: EventLoop
    ) {
        self.name = name
        self.geometry = BlockGeometry(
            sectorSize: sectorSize, sectorCount: sectorCount, isReadOnly: readOnly)
        self.features = features
        self.queueDepth = max(1, queueDepth)
        self.maximumSectorsPerRequest =
            max(1, maximumSectorsPerRequest ?? (1 << 20) / max(1, sectorSize))
        self.loop = loop
        // Room for every request in flight at the largest size, up to 256 MiB of pages
        // (the pool makes its pages as they are asked for; the limit costs a slot each).
        let pagesPerRequest =
            (self.maximumSectorsPerRequest * sectorSize + Buffer.pageSize - 1) / Buffer.pageSize
        self.pool = BufferPool(
            headroom: 0, limit: max(64, min(self.queueDepth * pagesPerRequest, 1 << 16)))
        let this = Unretained(self)
        starter = loop.makeSource { this.call { $0.start() } }
        finisher = loop.makeSource { this.call { $0.finish() } }
    }

    deinit {
        close()
        for page in pages.values { free(page) }
    }

    public func submit(
        _ request: BlockRequest, completion: @escaping (Result<BlockRequest, BlockError>) -> Void
    ) {
        do throws(BlockError) {
            guard !isClosed else { throw .closed(device: name) }
            try admit(request)
        } catch {
            counters.refused &+= 1
            loop.enqueue { completion(.failure(error)) }
            return
        }
        pending.append(Entry(request: request, completion: completion))
        starter?.wake()
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        starter?.cancel()
        finisher?.cancel()
        starter = nil
        finisher = nil
        let failed = Array(pending) + inFlight
        pending.removeAll()
        inFlight.removeAll()
        let error = BlockError.closed(device: name)
        for entry in failed {
            counters.errors &+= 1
            loop.enqueue { entry.completion(.failure(error)) }
        }
    }

    // MARK: The two halves of a request's life

    /// Starts what the queue depth allows; they complete on the next turn.
    private func start() {
        guard !pending.isEmpty, inFlight.count < queueDepth else { return }
        batches &+= 1
        while inFlight.count < queueDepth, var entry = pending.popFirst() {
            let number = accepted
            accepted &+= 1
            if failRequests.contains(number) {
                entry.outcome = .failure(
                    .ioError(device: name, detail: "injected fault (request \(number))"))
            } else {
                entry.outcome = .success(perform(entry.request))
            }
            inFlight.append(entry)
        }
        peakInFlight = max(peakInFlight, inFlight.count)
        finisher?.wake()
    }

    /// Completes everything started on the previous turn.
    private func finish() {
        let done = inFlight
        inFlight.removeAll(keepingCapacity: true)
        if !pending.isEmpty { starter?.wake() }
        for entry in done {
            guard let outcome = entry.outcome else { continue }
            switch outcome {
            case .success(let request):
                counters.countCompleted(request.operation, sectors: request.sectorCount)
            case .failure:
                counters.errors &+= 1
            }
            entry.completion(outcome)
        }
    }

    private func perform(_ request: BlockRequest) -> BlockRequest {
        var request = request
        let start = request.sector &* UInt64(geometry.sectorSize)
        switch request.operation {
        case .flush:
            break
        case .discard:
            discard(from: start, count: UInt64(request.sectorCount) * UInt64(geometry.sectorSize))
        case .read:
            var position = start
            for index in request.pages.indices {
                let count = request.pages[index].count
                request.pages[index].withUnsafeMutableBytes { bytes in
                    copyOut(from: position, into: bytes.baseAddress!, count: count)
                }
                position += UInt64(count)
            }
        case .write:
            var position = start
            for page in request.pages {
                page.withUnsafeBytes { bytes in
                    copyIn(bytes.baseAddress!, count: bytes.count, at: position)
                }
                position += UInt64(page.count)
            }
        }
        return request
    }

    // MARK: Sparse pages

    private static let pageSize = UInt64(Buffer.pageSize)

    private func copyOut(from position: UInt64, into target: UnsafeMutableRawPointer, count: Int) {
        var done = 0
        while done < count {
            let at = position + UInt64(done)
            let page = at / Self.pageSize
            let offset = Int(at % Self.pageSize)
            let length = min(count - done, Buffer.pageSize - offset)
            if let memory = pages[page] {
                memcpy(target + done, memory + offset, length)
            } else {
                memset(target + done, 0, length)
            }
            done += length
        }
    }

    private func copyIn(_ source: UnsafeRawPointer, count: Int, at position: UInt64) {
        var done = 0
        while done < count {
            let at = position + UInt64(done)
            let page = at / Self.pageSize
            let offset = Int(at % Self.pageSize)
            let length = min(count - done, Buffer.pageSize - offset)
            let memory: UnsafeMutableRawPointer
            if let existing = pages[page] {
                memory = existing
            } else {
                memory = calloc(1, Buffer.pageSize)!
                pages[page] = memory
            }
            memcpy(memory + offset, source + done, length)
            done += length
        }
    }

    /// Whole pages in the range are given back; the parts of pages at its ends are
    /// zeroed (they read as zeros, as a discarded range of a thin device does).
    private func discard(from position: UInt64, count: UInt64) {
        var at = position
        let end = position + count
        while at < end {
            let page = at / Self.pageSize
            let offset = Int(at % Self.pageSize)
            let length = Int(min(end - at, Self.pageSize - UInt64(offset)))
            if let memory = pages[page] {
                if length == Buffer.pageSize {
                    free(memory)
                    pages[page] = nil
                } else {
                    memset(memory + offset, 0, length)
                }
            }
            at += UInt64(length)
        }
    }
}
