// A block device on a Linux regular file or block device, through the kernel's native
// asynchronous I/O: what `oasis block --disk file:PATH` and the tests use for a disk.

import CBlock
import DequeModule
import OasisBits
import OasisLoop
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A regular file or a block device (`/dev/loop0`, `/dev/vdb`) driven by Linux native
/// AIO from the loop.
///
/// The file is opened with `O_DIRECT`, so transfers go between the device and the
/// request's pages without the page cache; a filesystem that refuses `O_DIRECT` (tmpfs)
/// gets buffered I/O and a note on standard error (``isDirect`` says which). Requests
/// queued by ``submit(_:completion:)`` during a loop turn go to the kernel in one
/// `io_submit` when the loop turns (``submitCalls`` counts them), each an `iocb`:
/// `IOCB_CMD_PREAD`/`PWRITE` for one view, `PREADV`/`PWRITEV` with an `iovec` per view
/// for several. The kernel signals completions on an eventfd (`IOCB_FLAG_RESFD`)
/// registered with the loop, which reaps them with `io_getevents` without waiting.
///
/// - A flush is `IOCB_CMD_FDSYNC` (asynchronous `fdatasync`, Linux 4.18 and later);
///   where the kernel refuses it for the file, `fdatasync` runs synchronously on the
///   loop from then on (``flushesInline`` counts those).
/// - A discard runs synchronously when its batch is submitted: `fallocate` with
///   `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE` on a file (the blocks are freed),
///   the `BLKDISCARD` ioctl on a block device.
/// - A view whose address or length does not meet the file's `O_DIRECT` alignment
///   (`statx`'s `STATX_DIOALIGN`, else the logical sector size) is carried through an
///   aligned page of the device's own and counted in ``BlockCounters/bytesCopied``.
/// - A negative result or a short transfer completes the request with
///   ``BlockError/ioError(device:detail:)``.
///
/// ```swift
/// let disk = try FileBlockDevice(path: "disk.img", loop: loop)
/// print(disk.geometry)           // 131072 sectors of 512 bytes (67108864 bytes)
/// ```
///
/// Confined to the loop's thread. ``close()`` waits for the requests the kernel holds
/// (`io_destroy`), then fails every request not completed.
public final class FileBlockDevice: BlockDevice {
    public let name: String
    public let geometry: BlockGeometry
    public let features: BlockFeatures
    public let queueDepth: Int
    public let maximumSectorsPerRequest: Int
    public let pool: BufferPool
    public private(set) var counters = BlockCounters()

    /// Whether the file is open with `O_DIRECT`.
    public let isDirect: Bool
    /// Whether the path is a block device (else a regular file).
    public let isBlockDevice: Bool
    /// The alignment of memory addresses and of lengths that the device transfers
    /// without a copy.
    public let alignment: Int
    /// `io_submit` calls made: one per loop turn with requests to start.
    public private(set) var submitCalls: UInt64 = 0
    /// Flushes done by a synchronous `fdatasync` because the kernel refused
    /// `IOCB_CMD_FDSYNC`.
    public private(set) var flushesInline: UInt64 = 0
    /// The most requests that were with the kernel at once.
    public private(set) var peakInFlight = 0

    /// The most views one request may have.
    public static let maximumSegments = 256

    private struct Entry {
        var request: BlockRequest
        var completion: (Result<BlockRequest, BlockError>) -> Void
        /// The aligned copy the kernel transfers, when the views could not be used.
        var bounce: Buffer?
    }

    private let loop: EventLoop
    private let fd: CInt
    private var context: aio_context_t = 0
    private let doorbell: EventFD
    private let iocbs: UnsafeMutablePointer<iocb>
    private let iocbPointers: UnsafeMutablePointer<UnsafeMutablePointer<iocb>?>
    private let vectors: UnsafeMutablePointer<iovec>
    private let events: UnsafeMutablePointer<io_event>
    private var slots: [Entry?]
    private var freeSlots: [Int]
    private var pending: Deque<Entry> = []
    private var asynchronousFlush = true
    private var isClosed = false
    private var kick: LoopSource?

    /// Opens `path`, a regular file or a block device.
    ///
    /// - Parameters:
    ///   - readOnly: opened for reading only; the geometry says so and writes are refused.
    ///   - direct: try `O_DIRECT` (the default); false for buffered I/O.
    ///   - createSize: create the file if it is missing, and make it this many bytes
    ///     long if it is shorter.
    ///   - queueDepth: requests with the kernel at once (the AIO context's size).
    ///   - alignment: transfer through an aligned copy any view not aligned to this
    ///     (default: what the file's `O_DIRECT` needs); for tests of the copy path.
    /// - Throws: ``BlockError/unavailable(_:)`` naming the path and the reason.
    public init(
        path: String, readOnly: Bool = false, direct: Bool = true, createSize: UInt64? = nil,
        queueDepth: Int = 64, alignment: Int? = nil, loop: EventLoop
    ) throws(BlockError) {
        let name = "file:" + path
        func failure(_ what: String, _ code: CInt) -> BlockError {
            .unavailable("\(name): \(what): \(String(cString: strerror(code)))")
        }
        // A device node, a FIFO or a folder is refused before it is opened: opening a
        // FIFO read-only would wait for a writer, and O_DIRECT's refusal would be
        // mistaken for a filesystem's.
        var existing = stat()
        if stat(path, &existing) == 0 {
            let kind = existing.st_mode & S_IFMT
            guard kind == S_IFREG || kind == S_IFBLK else {
                throw .unavailable("\(name): not a regular file or a block device")
            }
        }
        var isDirect = direct
        var fd = oasis_block_open(
            path, readOnly ? 0 : 1, isDirect ? 1 : 0, createSize == nil ? 0 : 1)
        if fd == -EINVAL && isDirect {
            isDirect = false
            fd = oasis_block_open(path, readOnly ? 0 : 1, 0, createSize == nil ? 0 : 1)
            if fd >= 0 {
                var note = "oasis: \(path): O_DIRECT refused (tmpfs?); using buffered I/O\n"
                note.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
            }
        }
        guard fd >= 0 else { throw failure("open", -fd) }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }

        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure("fstat", errno) }
        let kind = status.st_mode & S_IFMT
        var byteCount: UInt64
        var sectorSize = 512
        var memoryAlignment = 512
        var lengthAlignment = 512
        if kind == S_IFBLK {
            isBlockDevice = true
            var bytes: UInt64 = 0
            var logical: CInt = 0
            var code = oasis_block_size(fd, &bytes)
            guard code == 0 else { throw failure("BLKGETSIZE64", -code) }
            code = oasis_block_sector_size(fd, &logical)
            guard code == 0 else { throw failure("BLKSSZGET", -code) }
            byteCount = bytes
            sectorSize = max(512, Int(logical))
            lengthAlignment = sectorSize
            memoryAlignment = sectorSize
        } else if kind == S_IFREG {
            isBlockDevice = false
            byteCount = UInt64(max(0, status.st_size))
            if let createSize, byteCount < createSize, !readOnly {
                let code = oasis_ftruncate(fd, createSize)
                guard code == 0 else { throw failure("ftruncate", -code) }
                byteCount = createSize
            }
        } else {
            throw .unavailable("\(name): not a regular file or a block device")
        }
        if isDirect {
            var memory: UInt32 = 0
            var offset: UInt32 = 0
            if oasis_direct_alignment(fd, &memory, &offset) == 0 {
                memoryAlignment = max(1, Int(memory))
                lengthAlignment = Int(offset)
                if lengthAlignment > 512 && lengthAlignment <= Buffer.pageSize {
                    sectorSize = max(sectorSize, lengthAlignment)
                }
            }
        }
        let forced = alignment ?? 1
        self.alignment = isDirect ? max(memoryAlignment, lengthAlignment, forced) : forced
        self.name = name
        self.isDirect = isDirect
        self.geometry = BlockGeometry(
            sectorSize: sectorSize, sectorCount: byteCount / UInt64(sectorSize),
            isReadOnly: readOnly)
        self.features = [.flush, .discard]
        self.queueDepth = max(1, min(queueDepth, 4096))
        self.maximumSectorsPerRequest = (1 << 20) / sectorSize
        self.loop = loop
        // Room for every request in flight at the largest size (1 MiB, 256 pages), up to
        // 256 MiB of pages (made as they are asked for; the limit costs a slot each).
        self.pool = BufferPool(headroom: 0, limit: max(256, min(self.queueDepth * 256, 1 << 16)))

        var context: aio_context_t = 0
        let code = oasis_io_setup(UInt32(self.queueDepth), &context)
        guard code == 0 else { throw failure("io_setup(\(self.queueDepth))", -code) }
        do {
            doorbell = try EventFD()
        } catch {
            _ = oasis_io_destroy(context)
            throw failure("eventfd", error.rawValue)
        }
        self.fd = fd
        self.context = context
        iocbs = .allocate(capacity: self.queueDepth)
        iocbs.initialize(repeating: iocb(), count: self.queueDepth)
        iocbPointers = .allocate(capacity: self.queueDepth)
        iocbPointers.initialize(repeating: nil, count: self.queueDepth)
        vectors = .allocate(capacity: self.queueDepth * Self.maximumSegments)
        vectors.initialize(repeating: iovec(), count: self.queueDepth * Self.maximumSegments)
        events = .allocate(capacity: self.queueDepth)
        events.initialize(repeating: io_event(), count: self.queueDepth)
        slots = Array(repeating: nil, count: self.queueDepth)
        freeSlots = Array((0..<self.queueDepth).reversed())
        ok = true

        let this = Unretained(self)
        kick = loop.makeSource { this.call { $0.submitQueued() } }
        do {
            try loop.register(doorbell.fileDescriptor, interest: .readable) { _ in
                this.call { $0.reap() }
            }
        } catch {
            close()
            throw .unavailable("\(name): the loop cannot watch the eventfd: \(error)")
        }
    }

    deinit {
        close()
        iocbs.deallocate()
        iocbPointers.deallocate()
        vectors.deallocate()
        events.deallocate()
    }

    public func submit(
        _ request: BlockRequest, completion: @escaping (Result<BlockRequest, BlockError>) -> Void
    ) {
        do throws(BlockError) {
            guard !isClosed else { throw .closed(device: name) }
            try admit(request, maximumViews: Self.maximumSegments)
        } catch {
            counters.refused &+= 1
            loop.enqueue { completion(.failure(error)) }
            return
        }
        pending.append(Entry(request: request, completion: completion))
        kick?.wake()
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        kick?.cancel()
        kick = nil
        // Waits for what the kernel holds: after it, no DMA into our pages.
        _ = oasis_io_destroy(context)
        try? loop.deregister(doorbell.fileDescriptor)
        try? doorbell.close()
        Glibc.close(fd)
        var failed: [Entry] = slots.compactMap { $0 }
        failed += pending
        pending.removeAll()
        for index in slots.indices { slots[index] = nil }
        let error = BlockError.closed(device: name)
        for entry in failed {
            counters.errors &+= 1
            loop.enqueue { entry.completion(.failure(error)) }
        }
    }

    // MARK: Submission

    private var inFlight: Int { queueDepth - freeSlots.count }

    /// Everything queued that the queue depth allows, in one `io_submit`.
    private func submitQueued() {
        guard !isClosed else { return }
        var count = 0
        while !freeSlots.isEmpty, let entry = pending.popFirst() {
            switch entry.request.operation {
            case .discard:
                finish(entry, discard(entry.request))
            case .flush where !asynchronousFlush:
                finish(entry, flushInline(entry.request))
            default:
                let slot = freeSlots.removeLast()
                prepare(entry, in: slot)
                iocbPointers[count] = iocbs + slot
                count += 1
            }
        }
        var offset = 0
        while offset < count {
            let accepted = oasis_io_submit(context, count - offset, iocbPointers + offset)
            submitCalls &+= 1
            if accepted > 0 {
                offset += accepted
                continue
            }
            // The iocb at `offset` was refused (0 means the kernel took none: no room).
            let slot = iocbPointers[offset]! - iocbs
            guard let entry = slots[slot] else { break }
            if accepted == 0 || accepted == -EAGAIN {
                // Back to the queue, in order; the next completion submits them again.
                for index in (offset..<count).reversed() {
                    let back = iocbPointers[index]! - iocbs
                    if let queued = slots[back] { pending.prepend(queued) }
                    release(back)
                }
                break
            }
            release(slot)
            if entry.request.operation == .flush && accepted == -EINVAL {
                asynchronousFlush = false
                finish(entry, flushInline(entry.request))
            } else {
                finish(entry, .failure(ioError("io_submit", code: CInt(-accepted))))
            }
            offset += 1
        }
        peakInFlight = max(peakInFlight, inFlight)
    }

    /// Fills slot `slot`'s iocb (and iovecs) for `entry`.
    private func prepare(_ entry: Entry, in slot: Int) {
        var entry = entry
        let request = entry.request
        let control = iocbs + slot
        control.pointee = iocb()
        control.pointee.aio_data = UInt64(slot)
        control.pointee.aio_fildes = UInt32(fd)
        control.pointee.aio_flags = UInt32(IOCB_FLAG_RESFD)
        control.pointee.aio_resfd = UInt32(doorbell.fileDescriptor.rawValue)
        control.pointee.aio_offset = Int64(request.sector &* UInt64(geometry.sectorSize))
        if request.operation == .flush {
            control.pointee.aio_lio_opcode = UInt16(IOCB_CMD_FDSYNC)
            slots[slot] = entry
            return
        }
        let isWrite = request.operation == .write
        let aligned = request.pages.allSatisfy { page in
            let address = Int(bitPattern: page.buffer.baseAddress) + page.offset
            return address % alignment == 0 && page.count % alignment == 0
        }
        if !aligned {
            let bytes = request.byteCount
            let bounce = Buffer(byteCount: bytes)
            if isWrite {
                var at = 0
                for page in request.pages {
                    page.withUnsafeBytes {
                        _ = memcpy(bounce.baseAddress + at, $0.baseAddress!, $0.count)
                    }
                    at += page.count
                }
            }
            counters.bytesCopied &+= UInt64(bytes)
            entry.bounce = bounce
            control.pointee.aio_lio_opcode = UInt16(isWrite ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD)
            control.pointee.aio_buf = UInt64(UInt(bitPattern: bounce.baseAddress))
            control.pointee.aio_nbytes = UInt64(bytes)
        } else if request.pages.count == 1 {
            let page = request.pages[0]
            control.pointee.aio_lio_opcode = UInt16(isWrite ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD)
            control.pointee.aio_buf = UInt64(
                UInt(bitPattern: page.buffer.baseAddress + page.offset))
            control.pointee.aio_nbytes = UInt64(page.count)
        } else {
            let vector = vectors + slot * Self.maximumSegments
            for (index, page) in request.pages.enumerated() {
                vector[index] = iovec(
                    iov_base: page.buffer.baseAddress + page.offset, iov_len: page.count)
            }
            control.pointee.aio_lio_opcode = UInt16(isWrite ? IOCB_CMD_PWRITEV : IOCB_CMD_PREADV)
            control.pointee.aio_buf = UInt64(UInt(bitPattern: vector))
            control.pointee.aio_nbytes = UInt64(request.pages.count)
        }
        slots[slot] = entry
    }

    private func release(_ slot: Int) {
        slots[slot] = nil
        freeSlots.append(slot)
    }

    // MARK: Completion

    /// Takes every completion the kernel has, completes the requests, and submits
    /// what waited for room.
    private func reap() {
        _ = try? doorbell.consume()
        while !isClosed {
            let count = oasis_io_getevents(context, queueDepth, events)
            guard count > 0 else { break }
            for index in 0..<count {
                let event = events[index]
                let slot = Int(truncatingIfNeeded: event.data)
                guard slot >= 0, slot < queueDepth, let entry = slots[slot] else { continue }
                release(slot)
                finish(entry, outcome(of: entry, result: event.res))
            }
            // Fewer than asked for: the ring is empty (saves a system call per wake-up).
            if count < queueDepth { break }
        }
        if !pending.isEmpty { kick?.wake() }
    }

    private func outcome(of entry: Entry, result: Int64) -> Result<BlockRequest, BlockError> {
        let request = entry.request
        if result < 0 {
            return .failure(ioError(request.operation.description, code: CInt(-result)))
        }
        if request.operation == .flush { return .success(request) }
        let expected = request.byteCount
        guard result == Int64(expected) else {
            return .failure(
                .ioError(
                    device: name,
                    detail: "short \(request.operation): \(result) of \(expected) bytes"))
        }
        if request.operation == .read, let bounce = entry.bounce {
            var at = 0
            var pages = request.pages
            for index in pages.indices {
                let count = pages[index].count
                pages[index].withUnsafeMutableBytes {
                    _ = memcpy($0.baseAddress!, bounce.baseAddress + at, count)
                }
                at += count
            }
        }
        return .success(request)
    }

    private func finish(_ entry: Entry, _ outcome: Result<BlockRequest, BlockError>) {
        switch outcome {
        case .success(let request):
            counters.countCompleted(request.operation, sectors: request.sectorCount)
        case .failure:
            counters.errors &+= 1
        }
        entry.completion(outcome)
    }

    // MARK: Synchronous operations

    private func discard(_ request: BlockRequest) -> Result<BlockRequest, BlockError> {
        let start = request.sector &* UInt64(geometry.sectorSize)
        let length = UInt64(request.sectorCount) &* UInt64(geometry.sectorSize)
        let code =
            isBlockDevice
            ? oasis_block_discard(fd, start, length) : oasis_punch_hole(fd, start, length)
        guard code == 0 else {
            return .failure(ioError(isBlockDevice ? "BLKDISCARD" : "fallocate", code: -code))
        }
        return .success(request)
    }

    private func flushInline(_ request: BlockRequest) -> Result<BlockRequest, BlockError> {
        flushesInline &+= 1
        let code = oasis_fdatasync(fd)
        guard code == 0 else { return .failure(ioError("fdatasync", code: -code)) }
        return .success(request)
    }

    private func ioError(_ what: String, code: CInt) -> BlockError {
        .ioError(device: name, detail: "\(what): \(String(cString: strerror(code)))")
    }
}
