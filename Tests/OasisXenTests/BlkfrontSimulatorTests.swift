// Blkfront against xen/blkback-sim (Xen's own ring macros and io/blkif.h playing
// blkback, on a backing file): the handshake, data both ways checked against the file
// itself, indirect descriptors, multi-page rings, a full queue, flush, discard, and
// every lie the simulator can tell. No root.

import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import Testing

@testable import OasisXen

#if canImport(Glibc)
    import Glibc
#endif

/// `count` bytes from a seeded generator.
func seededBytes(_ seed: UInt64, count: Int) -> [UInt8] {
    var random = SplitMix64(seed: seed)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(count + 8)
    while bytes.count < count { withUnsafeBytes(of: random.next()) { bytes += $0 } }
    return Array(bytes.prefix(count))
}

/// A simulator, the simulated hypervisor and a connected blkfront, closed in order.
final class BlockRig {
    let simulator: RunningBlkbackSimulator
    let xen: SimulatedHypervisor
    let loop: EventLoop
    var disk: Blkfront<SimulatedHypervisor>

    init(_ arguments: [String], diskBytes: Int = 8 << 20, dataPages: Int = 1024) throws {
        simulator = try RunningBlkbackSimulator(arguments, diskBytes: diskBytes)
        do {
            xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        } catch {
            print(simulator.stop())
            throw error
        }
        loop = try EventLoop()
        do {
            disk = try Blkfront(facilities: xen, vbd: 51712, on: loop, dataPages: dataPages)
        } catch {
            xen.close()
            print(simulator.stop())
            throw error
        }
    }

    /// Pool pages holding `bytes` (whole pages, the last one partial if need be).
    func pages(holding bytes: [UInt8]) throws -> [Bits] {
        var pages: [Bits] = []
        var offset = 0
        while offset < bytes.count {
            var page = try disk.pool.allocate()
            let count = min(xenPageSize, bytes.count - offset)
            try page.append(contentsOf: Array(bytes[offset..<(offset + count)]))
            pages.append(page)
            offset += count
        }
        return pages
    }

    /// Empty pool pages for `byteCount` bytes.
    func emptyPages(_ byteCount: Int) throws -> [Bits] {
        var pages: [Bits] = []
        var left = byteCount
        while left > 0 {
            var page = try disk.pool.allocate()
            try page.extend(by: min(xenPageSize, left))
            pages.append(page)
            left -= xenPageSize
        }
        return pages
    }

    /// Submits `requests` at once and runs the loop until all complete.
    func perform(_ requests: [BlockRequest], seconds: Double = 20) throws -> [Result<
        BlockRequest, BlockError
    >?] {
        var results = [Result<BlockRequest, BlockError>?](repeating: nil, count: requests.count)
        var done = 0
        for (index, request) in requests.enumerated() {
            disk.submit(request) { result in
                results[index] = result
                done += 1
            }
        }
        try runLoop(loop, seconds: seconds) { done == requests.count }
        return results
    }

    func perform(_ request: BlockRequest) throws -> Result<BlockRequest, BlockError>? {
        try perform([request])[0]
    }

    /// Writes `bytes` at byte `offset` through the frontend.
    func write(_ bytes: [UInt8], at offset: Int) throws -> Result<BlockRequest, BlockError>? {
        let size = disk.geometry.sectorSize
        return try perform(
            BlockRequest(
                write: UInt64(offset / size), pages: try pages(holding: bytes), sectorSize: size))
    }

    /// Reads `count` bytes at byte `offset` through the frontend.
    func read(_ count: Int, at offset: Int) throws -> [UInt8]? {
        let size = disk.geometry.sectorSize
        let result = try perform(
            BlockRequest(
                read: UInt64(offset / size), pages: try emptyPages(count), sectorSize: size))
        guard case .success(let done) = result else { return nil }
        return done.pages.flatMap { $0.copyBytes() }
    }

    @discardableResult
    func finish() -> String {
        disk.close()
        xen.close()
        let log = simulator.stop()
        print("blkback-sim said:\n\(log)")
        return log
    }
}

@Suite(.serialized) struct BlkfrontSimulatorTests {
    /// The handshake as blkback sees it, the disk's properties, and a clean goodbye.
    @Test func handshakeAndGeometry() throws {
        let rig = try BlockRig([])
        defer { rig.finish() }
        let disk = rig.disk
        let store = rig.xen.store
        #expect(disk.backendPath == "/local/domain/0/backend/vbd/1/51712")
        #expect(try store.read("device/vbd/51712/state", in: .none) == "4")
        #expect(try store.read("\(disk.backendPath)/state", in: .none) == "4")
        #expect(try store.read("device/vbd/51712/protocol", in: .none) == "x86_64-abi")
        #expect(try store.read("device/vbd/51712/feature-persistent", in: .none) == "1")
        #expect(try store.read("device/vbd/51712/ring-page-order", in: .none) == "4")
        #expect(try store.read("device/vbd/51712/ring-ref15", in: .none) != nil)
        #expect(try store.read("device/vbd/51712/ring-ref", in: .none) == nil)
        #expect(try store.read("device/vbd/51712/event-channel", in: .none) == "5")
        #expect(disk.geometry == BlockGeometry(sectorSize: 512, sectorCount: 16384))
        #expect(disk.features == [.flush, .discard])
        #expect(disk.negotiation.ringPages == 16)
        #expect(disk.negotiation.ringSlots == 512)
        #expect(disk.queueDepth == 128)
        #expect(disk.negotiation.usesIndirect)
        #expect(disk.negotiation.segmentsPerRequest == 256)
        #expect(disk.maximumSectorsPerRequest == 256 * 8)
        #expect(disk.negotiation.backendQueues == 2)
        #expect(disk.negotiation.discardGranularity == 512)
        #expect(!disk.negotiation.backendPersistent)
        disk.close()
        // Closing, Closed, Initialising: the backend waits again in InitWait.
        #expect(try store.read("device/vbd/51712/state", in: .none) == "1")
        #expect(try store.read("\(disk.backendPath)/state", in: .none) == "2")
        if case .failure(.closed) = try rig.perform(.flush) {
        } else {
            Issue.record("a closed device must refuse with .closed")
        }
    }

    /// Data both ways, checked against the backing file itself, on every shape of ring
    /// and feature set: one page or sixteen, indirect or not, 512- or 4096-byte sectors.
    @Test(arguments: [
        [], ["--ring-order", "0"], ["--no-indirect"], ["--sector-size", "4096"],
        ["--persistent", "--ring-order", "1"],
    ])
    func dataBothWaysMatchesTheBackingFile(arguments: [String]) throws {
        let rig = try BlockRig(arguments)
        defer { rig.finish() }
        let sectorSize = rig.disk.geometry.sectorSize
        #expect(rig.disk.geometry.sectorCount == UInt64((8 << 20) / sectorSize))
        // Through the frontend, then the file: 1, 3 and 11 pages, and partial pages.
        var offset = 0
        for (index, count) in [4096, 3 * 4096, 11 * 4096, 4096 + sectorSize].enumerated() {
            let bytes = seededBytes(UInt64(index + 1), count: count)
            let result = try rig.write(bytes, at: offset)
            guard case .success = result else {
                Issue.record("write \(index): \(String(describing: result))")
                return
            }
            #expect(rig.simulator.readDisk(at: offset, count: count) == bytes, "write \(index)")
            offset += count + 8192
        }
        // The file, then the frontend.
        let pattern = seededBytes(99, count: 7 * 4096)
        rig.simulator.writeDisk(pattern, at: 1 << 20)
        #expect(try rig.read(pattern.count, at: 1 << 20) == pattern)
        #expect(rig.disk.failure == nil)
        #expect(rig.disk.counters.writes == 4)
        #expect(rig.disk.counters.reads == 1)
        #expect(rig.disk.counters.bytesCopied == 0)
        if arguments.contains("--persistent") { #expect(rig.disk.negotiation.backendPersistent) }
        if arguments == ["--ring-order", "0"] { #expect(rig.disk.negotiation.ringSlots == 32) }
    }

    /// 1 MiB requests go through indirect descriptors; without them, the device says
    /// so and refuses them before the ring.
    @Test func largeRequestsThroughIndirectDescriptors() throws {
        let rig = try BlockRig([])
        defer { rig.finish() }
        let bytes = seededBytes(7, count: 256 * 4096)
        guard case .success = try rig.write(bytes, at: 4096) else {
            Issue.record("the 1 MiB write failed")
            return
        }
        #expect(rig.simulator.readDisk(at: 4096, count: bytes.count) == bytes)
        rig.simulator.writeDisk(bytes.reversed(), at: 2 << 20)
        #expect(try rig.read(bytes.count, at: 2 << 20) == bytes.reversed())
        // More than the negotiated 256 segments: refused, nothing sent.
        let tooMany = try rig.perform(
            BlockRequest(read: 0, pages: try rig.emptyPages(257 * 4096), sectorSize: 512))
        guard case .failure(.badRequest) = tooMany else {
            Issue.record("257 pages: \(String(describing: tooMany))")
            return
        }
        #expect(rig.disk.counters.refused == 1)

        let plain = try BlockRig(["--no-indirect"])
        defer { plain.finish() }
        #expect(!plain.disk.negotiation.usesIndirect)
        #expect(plain.disk.maximumSectorsPerRequest == 11 * 8)
        guard case .failure(.badRequest) = try plain.write(seededBytes(8, count: 12 * 4096), at: 0)
        else {
            Issue.record("12 pages without indirect descriptors must be refused")
            return
        }
        // A backend offering fewer than 12 indirect segments gains nothing: none used.
        let few = try BlockRig(["--max-indirect", "8"])
        defer { few.finish() }
        #expect(!few.disk.negotiation.usesIndirect)
    }

    /// More requests than the ring has slots: the rest wait, all complete, in data.
    @Test func moreRequestsThanTheRingHolds() throws {
        let rig = try BlockRig(["--ring-order", "0"])
        defer { rig.finish() }
        #expect(rig.disk.queueDepth == 32)
        var requests: [BlockRequest] = []
        var expected: [[UInt8]] = []
        for index in 0..<300 {
            let bytes = seededBytes(UInt64(1000 + index), count: 4096)
            expected.append(bytes)
            requests.append(
                BlockRequest(
                    write: UInt64(index * 8), pages: try rig.pages(holding: bytes), sectorSize: 512)
            )
        }
        // All submitted in one turn: the queue holds what the ring cannot.
        var done = 0
        var failures = 0
        for request in requests {
            rig.disk.submit(request) { result in
                done += 1
                if case .failure = result { failures += 1 }
            }
        }
        #expect(rig.disk.queuedCount == 300)
        var mostInFlight = 0
        try runLoop(rig.loop, seconds: 30) {
            mostInFlight = max(mostInFlight, rig.disk.inFlightCount)
            return done == 300
        }
        #expect(done == 300)
        #expect(failures == 0)
        #expect(mostInFlight <= 32)
        #expect(rig.disk.counters.writes == 300)
        for index in 0..<300 {
            #expect(rig.simulator.readDisk(at: index * 4096, count: 4096) == expected[index])
        }
    }

    /// Flush and discard when offered; refused when not; barrier when only it is.
    @Test func flushAndDiscard() throws {
        let rig = try BlockRig([])
        defer { rig.finish() }
        let bytes = seededBytes(5, count: 64 * 1024)
        _ = try rig.write(bytes, at: 65536)
        guard case .success = try rig.perform(.flush) else {
            Issue.record("flush failed")
            return
        }
        let discard = BlockRequest(operation: .discard, sector: 128 + 32, sectorCount: 64)
        guard case .success = try rig.perform(discard) else {
            Issue.record("discard failed")
            return
        }
        let after = rig.simulator.readDisk(at: 65536, count: bytes.count)
        #expect(Array(after.prefix(16384)) == Array(bytes.prefix(16384)))
        #expect(after[16384..<(16384 + 32768)].allSatisfy { $0 == 0 })
        #expect(Array(after.suffix(16384)) == Array(bytes.suffix(16384)))
        #expect(rig.disk.counters.flushes == 1)
        #expect(rig.disk.counters.discards == 1)

        let bare = try BlockRig(["--no-flush", "--no-discard"])
        defer { bare.finish() }
        #expect(bare.disk.features == [])
        guard case .failure(.unsupported(_, .flush)) = try bare.perform(.flush) else {
            Issue.record("flush without the feature must be refused")
            return
        }
        guard case .failure(.unsupported(_, .discard)) = try bare.perform(discard) else {
            Issue.record("discard without the feature must be refused")
            return
        }

        let barrier = try BlockRig(["--no-flush", "--barrier"])
        defer { barrier.finish() }
        #expect(barrier.disk.negotiation.flushByBarrier)
        guard case .success = try barrier.perform(.flush) else {
            Issue.record("flush by barrier failed")
            return
        }
    }

    /// A read-only disk: reads work, writes are refused before the ring.
    @Test func readOnlyDisk() throws {
        let rig = try BlockRig(["--read-only"])
        defer { rig.finish() }
        #expect(rig.disk.geometry.isReadOnly)
        rig.simulator.writeDisk(seededBytes(3, count: 4096), at: 0)
        #expect(try rig.read(4096, at: 0) == seededBytes(3, count: 4096))
        guard case .failure(.readOnly) = try rig.write(seededBytes(4, count: 4096), at: 0) else {
            Issue.record("a write to a read-only disk must be refused")
            return
        }
    }

    /// Views outside the pool are copied through a pool page, both ways.
    @Test func dataOutsideThePoolIsCopiedOnce() throws {
        let rig = try BlockRig([])
        defer { rig.finish() }
        let bytes = seededBytes(11, count: 8192)
        let outside = [Bits(Array(bytes.prefix(4096))), Bits(Array(bytes.suffix(4096)))]
        guard
            case .success = try rig.perform(BlockRequest(write: 8, pages: outside, sectorSize: 512))
        else {
            Issue.record("write from outside the pool failed")
            return
        }
        #expect(rig.simulator.readDisk(at: 4096, count: 8192) == bytes)
        let into = Bits([UInt8](repeating: 0, count: 4096))
        let result = try rig.perform(BlockRequest(read: 8, pages: [into], sectorSize: 512))
        guard case .success(let done) = result else {
            Issue.record("read into memory outside the pool failed")
            return
        }
        #expect(done.pages[0].copyBytes() == Array(bytes.prefix(4096)))
        #expect(into.copyBytes() == Array(bytes.prefix(4096)))
        #expect(rig.disk.counters.bytesCopied == 3 * 4096)
    }

    /// Every lie the simulator tells stops the device with its typed error after the
    /// requests answered honestly complete; every other request fails, nothing is read
    /// outside the ring or the pages.
    @Test(arguments: [
        "bad-id", "bad-status", "bad-operation", "responses-beyond-requests", "close-mid-stream",
    ])
    func misbehavingBackendStopsTheDevice(kind: String) throws {
        let rig = try BlockRig(["--misbehave", kind, "--misbehave-after", "3"])
        defer { rig.finish() }
        var reported: [XenFrontendError] = []
        rig.disk.onFailure = { reported.append($0) }
        var requests: [BlockRequest] = []
        for index in 0..<3 {
            requests.append(
                BlockRequest(
                    write: UInt64(index * 8),
                    pages: try rig.pages(holding: seededBytes(UInt64(index), count: 4096)),
                    sectorSize: 512))
        }
        // Three honest answers, one at a time.
        for request in requests {
            guard case .success = try rig.perform(request) else {
                Issue.record("\(kind): an honest answer failed")
                return
            }
        }
        // Then a batch the backend lies about.
        let batch = try (0..<5).map { index in
            BlockRequest(read: UInt64(index * 8), pages: try rig.emptyPages(4096), sectorSize: 512)
        }
        let results = try rig.perform(batch)
        let failure = try #require(rig.disk.failure)
        #expect(reported == [failure])
        switch (kind, failure) {
        case ("bad-id", .unknownRequestID(let id)): #expect(id & 0x4000_0000_0000_0000 != 0)
        case ("bad-status", .badStatus(_, let status)): #expect(status == 7)
        case ("bad-operation", .operationMismatch(_, let expected, let echoed)):
            #expect(expected == BlkifOperation.read)
            #expect(echoed == BlkifOperation.read ^ 0x40)
        case ("responses-beyond-requests", .ring(.responseProducerOverrun)): break
        case ("close-mid-stream", .backendClosed(let state)): #expect(state == 5)
        default: Issue.record("\(kind): unexpected \(failure)")
        }
        if kind != "close-mid-stream" {
            #expect("\(failure)".contains("misbehaving backend"), "\(failure)")
        }
        // Every request of the batch completed, and those not answered honestly failed
        // with the device's failure.
        #expect(results.allSatisfy { $0 != nil })
        let failed = results.filter {
            if case .failure(.failed) = $0 { return true } else { return false }
        }
        #expect(failed.count >= (kind == "close-mid-stream" ? 4 : 5))
        // Afterwards: refused at once.
        guard case .failure(.failed) = try rig.perform(.flush) else {
            Issue.record("a stopped device must refuse with .failed")
            return
        }
    }

    /// A backend that scribbles over the request slots after reading them (255
    /// segments, grants nobody gave): the frontend never reads its requests back, so
    /// the data is right and the device goes on.
    @Test func requestSlotsRewrittenByTheBackendAreNeverReadBack() throws {
        let rig = try BlockRig(["--misbehave", "bad-segment"])
        defer { rig.finish() }
        for index in 0..<40 {
            let bytes = seededBytes(UInt64(500 + index), count: 3 * 4096)
            guard case .success = try rig.write(bytes, at: index * 3 * 4096) else {
                Issue.record("write \(index)")
                return
            }
            #expect(try rig.read(bytes.count, at: index * 3 * 4096) == bytes)
        }
        #expect(rig.disk.failure == nil)
    }

    /// The backend leaves mid-stream by --close-after: typed failure, requests failed.
    @Test func backendClosingMidStream() throws {
        let rig = try BlockRig(["--close-after", "10"])
        defer { rig.finish() }
        var failures = 0
        var successes = 0
        for index in 0..<30 {
            let request = BlockRequest(
                write: UInt64(index * 8),
                pages: try rig.pages(holding: seededBytes(UInt64(index), count: 4096)),
                sectorSize: 512)
            rig.disk.submit(request) { result in
                if case .success = result { successes += 1 } else { failures += 1 }
            }
        }
        try runLoop(rig.loop, seconds: 20) { successes + failures == 30 }
        #expect(rig.disk.failure == .backendClosed(state: 5))
        #expect(successes <= 10)
        #expect(successes + failures == 30)
    }

    /// Close, then a second blkfront on the same vbd: the backend serves it again.
    @Test func closeAndReconnect() throws {
        let rig = try BlockRig(["--ring-order", "2"])
        defer { rig.finish() }
        let first = seededBytes(21, count: 16384)
        guard case .success = try rig.write(first, at: 0) else {
            Issue.record("first write")
            return
        }
        rig.disk.close()
        #expect(try rig.xen.store.read("\(rig.disk.backendPath)/state", in: .none) == "2")
        rig.disk = try Blkfront(facilities: rig.xen, vbd: 51712, on: rig.loop, dataPages: 256)
        #expect(try rig.read(16384, at: 0) == first)
        let second = seededBytes(22, count: 16384)
        guard case .success = try rig.write(second, at: 16384) else {
            Issue.record("second write")
            return
        }
        #expect(rig.simulator.readDisk(at: 16384, count: 16384) == second)
        #expect(rig.disk.negotiation.ringPages == 4)
    }

    /// Read-only by the frontend's choice on a writable disk; and a device that owns
    /// its facilities closes them.
    @Test func readOnlyByChoiceAndOwnedFacilities() throws {
        let simulator = try RunningBlkbackSimulator([])
        defer { print(simulator.stop()) }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        let loop = try EventLoop()
        let disk = try Blkfront(
            facilities: xen, vbd: 51712, on: loop, dataPages: 16, readOnly: true,
            ownsFacilities: true)
        #expect(disk.geometry.isReadOnly)
        var page = try disk.pool.allocate()
        try page.extend(by: 4096)
        var outcome: Result<BlockRequest, BlockError>?
        disk.submit(BlockRequest(write: 0, pages: [page], sectorSize: 512)) { outcome = $0 }
        try runLoop(loop, seconds: 5) { outcome != nil }
        guard case .failure(.readOnly) = outcome else {
            Issue.record("a write to a disk opened read-only: \(String(describing: outcome))")
            return
        }
        disk.close()
        #expect(throws: XenError.self) { try xen.store.read("device/vbd/51712/state", in: .none) }
    }

    /// A vbd the toolstack never created: a typed error naming the node.
    @Test func missingDeviceIsATypedError() throws {
        let simulator = try RunningBlkbackSimulator([])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        #expect(throws: XenFrontendError.missingNode("device/vbd/768/backend")) {
            _ = try Blkfront(facilities: xen, vbd: 768, on: loop)
        }
    }
}

/// What a request costs through the simulator: printed, not asserted (the simulator
/// is a single-threaded process doing pread/pwrite on a file, so the figures say more
/// about it than about blkfront).
@Suite(.serialized) struct BlkfrontSimulatorCostTests {
    /// Runs `body`; its time, and whether every request succeeded.
    func timed(_ body: () throws -> [Result<BlockRequest, BlockError>?]) throws -> Duration {
        let start = ContinuousClock.now
        let results = try body()
        let elapsed = ContinuousClock.now - start
        #expect(results.allSatisfy { if case .success = $0 { true } else { false } })
        return elapsed
    }

    @Test func requestRatesThroughTheSimulator() throws {
        let rig = try BlockRig(["--ring-order", "2"], diskBytes: 64 << 20, dataPages: 1024)
        defer { rig.finish() }
        // 4 KiB reads, 8192 of them queued at once (128 in flight).
        let small = try timed {
            var pages: [Bits] = []
            for _ in 0..<256 { pages += try rig.emptyPages(4096) }
            var random = SplitMix64(seed: 42)
            let requests = (0..<8192).map { index in
                BlockRequest(
                    read: random.next() % UInt64((64 << 20) / 4096) * 8,
                    pages: [pages[index % 256]], sectorSize: 512)
            }
            return try rig.perform(requests, seconds: 60)
        }
        // 1 MiB writes through indirect descriptors, 64 of them.
        let large = try timed {
            let big = try (0..<4).map { _ in try rig.emptyPages(1 << 20) }
            let writes = (0..<64).map { index in
                BlockRequest(write: UInt64(index) * 2048, pages: big[index % 4], sectorSize: 512)
            }
            return try rig.perform(writes, seconds: 60)
        }
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        print(
            "blkfront via blkback-sim: 4 KiB reads \(Int(8192 / seconds(small))) IOPS at depth 128;"
                + " 1 MiB writes \(Int(64 / seconds(large))) MiB/s")
    }
}
