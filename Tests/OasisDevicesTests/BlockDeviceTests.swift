// The block devices for development: MemoryBlockDevice on the virtual clock, and
// FileBlockDevice on a real file on this machine's disk (O_DIRECT, native AIO).

import Foundation
import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Requests submitted and their outcomes, in completion order.
final class BlockRecorder {
    var outcomes: [Result<BlockRequest, BlockError>] = []
    var expected = 0
    var stopWhenDone: EventLoop?

    func completion() -> (Result<BlockRequest, BlockError>) -> Void {
        { [self] result in
            outcomes.append(result)
            if outcomes.count == expected { stopWhenDone?.stop() }
        }
    }

    var errors: [BlockError] {
        outcomes.compactMap {
            if case .failure(let error) = $0 { return error } else { return nil }
        }
    }
}

/// `count` bytes of a seeded pattern in pages of `device`'s pool.
func patternPages(_ device: any BlockDevice, bytes: Int, seed: UInt64) throws -> [Bits] {
    var random = SplitMix64(seed: seed)
    var pages = try device.allocatePages(byteCount: bytes)
    for index in pages.indices {
        pages[index].withUnsafeMutableBytes { raw in
            for at in 0..<raw.count { raw[at] = UInt8(truncatingIfNeeded: random.next()) }
        }
    }
    return pages
}

func bytes(of pages: [Bits]) -> [UInt8] { pages.flatMap { $0.copyBytes() } }

@Suite struct MemoryBlockDeviceTests {
    @Test func writesAreReadBackAndUnwrittenSectorsReadAsZeros() throws {
        let loop = try EventLoop(clock: .virtual)
        let disk = MemoryBlockDevice(sectorCount: 4096, loop: loop)
        let recorder = BlockRecorder()
        let written = try patternPages(disk, bytes: 8192, seed: 1)
        disk.submit(
            BlockRequest(write: 10, pages: written, sectorSize: 512),
            completion: recorder.completion())
        try loop.run()
        let back = try disk.allocatePages(byteCount: 8192 + 4096)
        disk.submit(
            BlockRequest(read: 10, pages: back, sectorSize: 512), completion: recorder.completion())
        try loop.run()
        #expect(recorder.errors.isEmpty)
        let read = bytes(of: back)
        #expect(Array(read[0..<8192]) == bytes(of: written))
        #expect(read[8192...].allSatisfy { $0 == 0 })
        // 8 KiB at sector 10 (byte 5120) touch three 4 KiB pages.
        #expect(disk.allocatedPages == 3)
        #expect(disk.counters.writes == 1 && disk.counters.reads == 1)
        #expect(disk.counters.sectorsWritten == 16 && disk.counters.sectorsRead == 24)
    }

    @Test func refusesRequestsOutOfRangeMisalignedOrToAReadOnlyDisk() throws {
        let loop = try EventLoop(clock: .virtual)
        let disk = MemoryBlockDevice(name: "m", sectorCount: 16, loop: loop)
        let readOnly = MemoryBlockDevice(name: "ro", sectorCount: 16, readOnly: true, loop: loop)
        let recorder = BlockRecorder()
        let page = try disk.allocatePages(byteCount: 4096)
        disk.submit(
            BlockRequest(read: 9, pages: page, sectorSize: 512), completion: recorder.completion())
        var odd = try disk.pool.allocate()
        try odd.extend(by: 700)
        try odd.shift(by: 100)
        disk.submit(
            BlockRequest(operation: .read, sector: 0, sectorCount: 1, pages: [odd]),
            completion: recorder.completion())
        disk.submit(
            BlockRequest(operation: .write, sector: 0, sectorCount: 2, pages: page),
            completion: recorder.completion())
        readOnly.submit(
            BlockRequest(write: 0, pages: page, sectorSize: 512), completion: recorder.completion())
        readOnly.submit(
            BlockRequest(operation: .discard, sector: 0, sectorCount: 1),
            completion: recorder.completion())
        // Refusals complete asynchronously too.
        #expect(recorder.outcomes.isEmpty)
        try loop.run()
        #expect(
            recorder.errors == [
                .outOfRange(device: "m", sector: 9, count: 8, capacity: 16),
                .badRequest(
                    device: "m",
                    reason:
                        "a view of 600 bytes at offset 100 is not whole 512-byte units inside one page"
                ),
                .badRequest(
                    device: "m", reason: "2 sectors of 512 bytes but the pages hold 4096 bytes"),
                .readOnly(device: "ro"), .readOnly(device: "ro"),
            ])
        #expect(disk.counters.refused == 3 && readOnly.counters.refused == 2)
        // Reading a read-only disk works.
        readOnly.submit(
            BlockRequest(read: 0, pages: page, sectorSize: 512), completion: recorder.completion())
        try loop.run()
        #expect(recorder.errors.count == 5 && recorder.outcomes.count == 6)
    }

    @Test func requestsOfOneTurnAreOneBatchAndTheQueueDepthHolds() throws {
        let loop = try EventLoop(clock: .virtual)
        let disk = MemoryBlockDevice(sectorCount: 1024, queueDepth: 4, loop: loop)
        let recorder = BlockRecorder()
        for index in 0..<10 {
            let pages = try patternPages(disk, bytes: 4096, seed: UInt64(index))
            disk.submit(
                BlockRequest(write: UInt64(index * 8), pages: pages, sectorSize: 512),
                completion: recorder.completion())
        }
        #expect(recorder.outcomes.isEmpty, "completed inside submit")
        try loop.run()
        #expect(recorder.outcomes.count == 10 && recorder.errors.isEmpty)
        #expect(disk.peakInFlight == 4)
        // 4 + 4 + 2: the next batch starts when a batch completes.
        #expect(disk.batches == 3)

        let unlimited = MemoryBlockDevice(sectorCount: 1024, queueDepth: 32, loop: loop)
        for index in 0..<10 {
            let pages = try unlimited.allocatePages(byteCount: 512)
            unlimited.submit(
                BlockRequest(read: UInt64(index), pages: pages, sectorSize: 512),
                completion: recorder.completion())
        }
        try loop.run()
        #expect(unlimited.batches == 1 && unlimited.peakInFlight == 10)
    }

    @Test func injectedFaultsFailTheRequestsNamed() throws {
        let loop = try EventLoop(clock: .virtual)
        let disk = MemoryBlockDevice(name: "f", sectorCount: 64, loop: loop)
        disk.failRequests = [1]
        let recorder = BlockRecorder()
        for index in 0..<3 {
            let pages = try disk.allocatePages(byteCount: 512)
            disk.submit(
                BlockRequest(read: UInt64(index), pages: pages, sectorSize: 512),
                completion: recorder.completion())
        }
        try loop.run()
        #expect(recorder.errors == [.ioError(device: "f", detail: "injected fault (request 1)")])
        #expect(disk.counters.errors == 1 && disk.counters.reads == 2)
    }

    @Test func discardGivesPagesBackAndFlushSucceeds() throws {
        let loop = try EventLoop(clock: .virtual)
        let disk = MemoryBlockDevice(sectorCount: 256, loop: loop)
        let recorder = BlockRecorder()
        let pages = try patternPages(disk, bytes: 32768, seed: 3)
        disk.submit(
            BlockRequest(write: 0, pages: pages, sectorSize: 512), completion: recorder.completion()
        )
        try loop.run()
        #expect(disk.allocatedPages == 8)
        // Sectors 4..<36: half of page 0 zeroed, pages 1...3 freed, page 4 partly zeroed.
        disk.submit(
            BlockRequest(operation: .discard, sector: 4, sectorCount: 32),
            completion: recorder.completion())
        disk.submit(.flush, completion: recorder.completion())
        try loop.run()
        #expect(recorder.errors.isEmpty)
        #expect(disk.allocatedPages == 5)
        let back = try disk.allocatePages(byteCount: 32768)
        disk.submit(
            BlockRequest(read: 0, pages: back, sectorSize: 512), completion: recorder.completion())
        try loop.run()
        let read = bytes(of: back)
        let original = bytes(of: pages)
        #expect(Array(read[0..<2048]) == Array(original[0..<2048]))
        #expect(read[2048..<18432].allSatisfy { $0 == 0 })
        #expect(Array(read[18432...]) == Array(original[18432...]))
        #expect(disk.counters.discards == 1 && disk.counters.flushes == 1)
    }

    @Test func closeFailsWhatIsPending() throws {
        let loop = try EventLoop(clock: .virtual)
        let disk = MemoryBlockDevice(name: "c", sectorCount: 64, loop: loop)
        let recorder = BlockRecorder()
        for index in 0..<3 {
            let pages = try disk.allocatePages(byteCount: 512)
            disk.submit(
                BlockRequest(read: UInt64(index), pages: pages, sectorSize: 512),
                completion: recorder.completion())
        }
        disk.close()
        disk.submit(.flush, completion: recorder.completion())
        try loop.run()
        #expect(recorder.errors == Array(repeating: .closed(device: "c"), count: 4))
    }
}

/// A file on this machine's disk (not tmpfs: O_DIRECT and hole punching are real),
/// removed afterwards.
func withDiskFile(bytes: Int, _ body: (String) throws -> Void) throws {
    let directory = "/var/tmp"
    var template = Array("\(directory)/oasis-block-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0 else { throw BlockError.unavailable("mkstemp in \(directory): errno \(errno)") }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    defer { unlink(path) }
    ftruncate(fd, off_t(bytes))
    close(fd)
    try body(path)
}

func fileBytes(_ path: String, at offset: Int, count: Int) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: count)
    let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
    return Array(bytes.prefix(max(0, got)))
}

@Suite(.serialized) struct FileBlockDeviceTests {
    /// Runs the loop until `recorder` has `count` outcomes (at most 10 s).
    func run(_ loop: EventLoop, until recorder: BlockRecorder, count: Int) throws {
        recorder.expected = count
        recorder.stopWhenDone = loop
        if recorder.outcomes.count >= count { return }
        let timer = loop.schedule(after: .seconds(10)) { loop.stop() }
        try loop.run()
        _ = loop.cancelTimer(timer)
    }

    @Test func writesReachTheFileInOneSubmitAndReadBack() throws {
        try withDiskFile(bytes: 1 << 20) { path in
            let loop = try EventLoop()
            let disk = try FileBlockDevice(path: path, queueDepth: 32, loop: loop)
            defer { disk.close() }
            #expect(disk.isDirect, "ext4 takes O_DIRECT")
            #expect(disk.geometry.sectorCount == (1 << 20) / UInt64(disk.geometry.sectorSize))
            let recorder = BlockRecorder()
            var written: [[UInt8]] = []
            for index in 0..<8 {
                // One view, then several (PWRITEV).
                let pages = try patternPages(
                    disk, bytes: index < 4 ? 4096 : 12288, seed: UInt64(index))
                written.append(bytes(of: pages))
                disk.submit(
                    BlockRequest(write: UInt64(index * 64), pages: pages, sectorSize: 512),
                    completion: recorder.completion())
            }
            try run(loop, until: recorder, count: 8)
            #expect(recorder.errors.isEmpty)
            #expect(disk.submitCalls == 1, "eight requests, one io_submit")
            #expect(disk.peakInFlight == 8)
            for index in 0..<8 {
                #expect(
                    fileBytes(path, at: index * 64 * 512, count: written[index].count)
                        == written[index])
            }
            var backs: [[Bits]] = []
            for index in 0..<8 {
                let pages = try disk.allocatePages(byteCount: written[index].count)
                backs.append(pages)
                disk.submit(
                    BlockRequest(read: UInt64(index * 64), pages: pages, sectorSize: 512),
                    completion: recorder.completion())
            }
            try run(loop, until: recorder, count: 16)
            #expect(recorder.errors.isEmpty)
            #expect(disk.submitCalls == 2)
            for index in 0..<8 { #expect(bytes(of: backs[index]) == written[index]) }
            #expect(disk.counters.bytesCopied == 0)
            #expect(disk.counters.writes == 8 && disk.counters.reads == 8)
        }
    }

    @Test func theQueueDepthHoldsAndTheRestFollows() throws {
        try withDiskFile(bytes: 1 << 20) { path in
            let loop = try EventLoop()
            let disk = try FileBlockDevice(path: path, queueDepth: 4, loop: loop)
            defer { disk.close() }
            let recorder = BlockRecorder()
            for index in 0..<20 {
                let pages = try disk.allocatePages(byteCount: 4096)
                disk.submit(
                    BlockRequest(read: UInt64(index * 8), pages: pages, sectorSize: 512),
                    completion: recorder.completion())
            }
            try run(loop, until: recorder, count: 20)
            #expect(recorder.outcomes.count == 20 && recorder.errors.isEmpty)
            #expect(disk.peakInFlight == 4)
            #expect(disk.submitCalls >= 5)
        }
    }

    @Test func boundsReadOnlyAndClose() throws {
        try withDiskFile(bytes: 64 << 10) { path in
            let loop = try EventLoop()
            let readOnly = try FileBlockDevice(path: path, readOnly: true, loop: loop)
            let recorder = BlockRecorder()
            let page = try readOnly.allocatePages(byteCount: 4096)
            readOnly.submit(
                BlockRequest(write: 0, pages: page, sectorSize: 512),
                completion: recorder.completion())
            readOnly.submit(
                BlockRequest(read: 127, pages: page, sectorSize: 512),
                completion: recorder.completion())
            readOnly.submit(
                BlockRequest(read: 120, pages: page, sectorSize: 512),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 3)
            let name = "file:" + path
            #expect(
                recorder.errors == [
                    .readOnly(device: name),
                    .outOfRange(device: name, sector: 127, count: 8, capacity: 128),
                ])
            readOnly.close()
            let disk = try FileBlockDevice(path: path, loop: loop)
            for index in 0..<3 {
                disk.submit(
                    BlockRequest(
                        read: UInt64(index), pages: try disk.allocatePages(byteCount: 512),
                        sectorSize: 512),
                    completion: recorder.completion())
            }
            disk.close()
            try run(loop, until: recorder, count: 6)
            #expect(recorder.errors.suffix(3) == Array(repeating: .closed(device: name), count: 3))
        }
    }

    @Test func flushAndDiscardPunchAHole() throws {
        try withDiskFile(bytes: 2 << 20) { path in
            let loop = try EventLoop()
            let disk = try FileBlockDevice(path: path, loop: loop)
            defer { disk.close() }
            let recorder = BlockRecorder()
            for index in 0..<8 {
                let pages = try patternPages(disk, bytes: 256 << 10, seed: UInt64(index))
                disk.submit(
                    BlockRequest(write: UInt64(index * 512), pages: pages, sectorSize: 512),
                    completion: recorder.completion())
            }
            try run(loop, until: recorder, count: 8)
            disk.submit(.flush, completion: recorder.completion())
            try run(loop, until: recorder, count: 9)
            #expect(recorder.errors.isEmpty)
            #expect(disk.counters.flushes == 1)
            print(
                "flush on \(path): \(disk.flushesInline == 0 ? "IOCB_CMD_FDSYNC" : "fdatasync inline")"
            )
            var before = stat()
            stat(path, &before)
            #expect(before.st_blocks >= 4096, "2 MiB written: \(before.st_blocks) blocks")
            // 1 MiB (the largest request) from sector 1024 on.
            disk.submit(
                BlockRequest(operation: .discard, sector: 1024, sectorCount: 2048),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 10)
            #expect(recorder.errors.isEmpty)
            var after = stat()
            stat(path, &after)
            #expect(
                after.st_blocks <= before.st_blocks - 2048,
                "\(before.st_blocks) -> \(after.st_blocks)")
            #expect(after.st_size == before.st_size)
            #expect(fileBytes(path, at: 1024 * 512, count: 4096).allSatisfy { $0 == 0 })
            #expect(disk.counters.discards == 1)
        }
    }

    @Test func viewsOffTheAlignmentGoThroughACopy() throws {
        try withDiskFile(bytes: 64 << 10) { path in
            let loop = try EventLoop()
            let disk = try FileBlockDevice(path: path, alignment: 4096, loop: loop)
            defer { disk.close() }
            let recorder = BlockRecorder()
            var view = try disk.pool.allocate()
            try view.extend(by: 2048)
            try view.shift(by: 512)
            view.withUnsafeMutableBytes { for at in 0..<$0.count { $0[at] = UInt8(at % 251) } }
            disk.submit(
                BlockRequest(write: 3, pages: [view], sectorSize: 512),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 1)
            #expect(recorder.errors.isEmpty)
            #expect(fileBytes(path, at: 3 * 512, count: 1536) == view.copyBytes())
            var shifted = try disk.pool.allocate()
            try shifted.extend(by: 2048)
            try shifted.shift(by: 512)
            disk.submit(
                BlockRequest(read: 3, pages: [shifted], sectorSize: 512),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 2)
            #expect(recorder.errors.isEmpty)
            #expect(shifted.copyBytes() == view.copyBytes())
            #expect(disk.counters.bytesCopied == 3072)
        }
    }

    @Test func aLoopBlockDeviceHasItsGeometryFlushesAndDiscards() throws {
        let test = "loop block device"
        guard getuid() == 0 else { try skip(test, "not root: losetup needs CAP_SYS_ADMIN") }
        guard isInstalled("losetup") else {
            try skip(test, "losetup (util-linux) is not installed")
        }
        try withDiskFile(bytes: 8 << 20) { path in
            let attach = try OasisTestSupport.run(["losetup", "--find", "--show", path])
            guard attach.status == 0 else { try skip(test, "losetup: \(attach.errorOutput)") }
            let device = attach.output.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? OasisTestSupport.run(["losetup", "--detach", device]) }
            let loop = try EventLoop()
            let disk = try FileBlockDevice(path: device, loop: loop)
            defer { disk.close() }
            #expect(disk.isBlockDevice && disk.isDirect)
            #expect(disk.geometry.byteCount == 8 << 20)
            #expect(disk.geometry.sectorSize == 512)
            let recorder = BlockRecorder()
            let pages = try patternPages(disk, bytes: 1 << 20, seed: 5)
            disk.submit(
                BlockRequest(write: 2048, pages: pages, sectorSize: 512),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 1)
            disk.submit(.flush, completion: recorder.completion())
            try run(loop, until: recorder, count: 2)
            #expect(recorder.errors.isEmpty)
            #expect(fileBytes(path, at: 2048 * 512, count: 1 << 20) == bytes(of: pages))
            var before = stat()
            stat(path, &before)
            // BLKDISCARD on a loop device punches the hole in its backing file.
            disk.submit(
                BlockRequest(operation: .discard, sector: 2048, sectorCount: 2048),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 3)
            #expect(recorder.errors.isEmpty)
            var after = stat()
            stat(path, &after)
            #expect(
                after.st_blocks <= before.st_blocks - 2048,
                "\(before.st_blocks) -> \(after.st_blocks)")
        }
    }

    @Test func aShortReadIsAnIOError() throws {
        try withDiskFile(bytes: 64 << 10) { path in
            let loop = try EventLoop()
            let disk = try FileBlockDevice(path: path, loop: loop)
            defer { disk.close() }
            // The file shrinks under the device: the kernel reads less than asked.
            #expect(truncate(path, 32 << 10) == 0)
            let recorder = BlockRecorder()
            disk.submit(
                BlockRequest(
                    read: 60, pages: try disk.allocatePages(byteCount: 4096), sectorSize: 512),
                completion: recorder.completion())
            try run(loop, until: recorder, count: 1)
            #expect(
                recorder.errors == [
                    .ioError(device: "file:" + path, detail: "short read: 2048 of 4096 bytes")
                ])
            #expect(disk.counters.errors == 1)
        }
    }
}
