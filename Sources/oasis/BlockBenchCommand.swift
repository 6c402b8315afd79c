// `oasis block bench`: requests of one size kept at a queue depth for a time, as fio's
// libaio engine does; IOPS, throughput and latency percentiles like fio's summary.
// And `oasis block put-zones`: zone files written to a disk for `oasis dns --zone-disk`.

import ArgumentParser
import Glibc
import OasisBits
import OasisDNS
import OasisDevices
import OasisLoop

enum BenchPattern: String, ExpressibleByArgument, CaseIterable {
    case randread, randwrite, read, write

    var isWrite: Bool { self == .randwrite || self == .write }
    var isRandom: Bool { self == .randread || self == .randwrite }
}

struct BlockBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Keep --depth requests of --size in flight for --seconds; print IOPS and latency.",
        discussion: """
            Prints "IOPS X MB/s Y" (MB: 10^6 bytes), then fio's latency summary: min, \
            average and max, and the 50th, 90th, 99th and 99.9th percentiles, in \
            microseconds from submission to completion. Random offsets are aligned to \
            --size and spread over the whole disk (or --span bytes from its start).
            """)

    @OptionGroup var diskOptions: DiskOptions

    @Option(help: "Requests in flight.")
    var depth = 32

    @Option(help: "Bytes per request (512-byte units, at most 1M).")
    var size = "4k"

    @Option(help: "randread, randwrite, read or write.")
    var pattern: BenchPattern = .randread

    @Option(help: "How long to run.")
    var seconds = 5.0

    @Option(help: "Bytes of the disk used, from its start (default: all of it).")
    var span: String?

    @Option(help: "The random offsets' seed.")
    var seed: UInt64 = 1

    func validate() throws {
        guard (1...4096).contains(depth) else { throw ValidationError("--depth: 1...4096") }
        guard let bytes = parseSize(size), bytes >= 512, bytes % 512 == 0, bytes <= 1 << 20 else {
            throw ValidationError("--size: a multiple of 512 bytes up to 1M")
        }
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds: 0...3600") }
        if let span, parseSize(span) == nil { throw ValidationError("--span: not a size") }
    }

    func run() throws {
        let options = diskOptions
        let settings = BenchSettings(
            depth: depth, bytes: Int(parseSize(size) ?? 4096), pattern: pattern,
            duration: .milliseconds(Int64(seconds * 1000)), span: span.flatMap(parseSize),
            seed: seed)
        try runBlockCommand {
            guard let loop = EventLoop.current else { return }
            let device = try options.open(queueDepth: settings.depth, loop: loop)
            defer { device.close() }
            let bench = try BlockBench(device: device, settings: settings, loop: loop)
            let report = try await bench.run()
            print(report)
        }
    }
}

struct BenchSettings: Sendable {
    var depth: Int
    var bytes: Int
    var pattern: BenchPattern
    var duration: Duration
    var span: UInt64?
    var seed: UInt64
}

/// The benchmark's state: one slot per request in flight, each with its own pages,
/// resubmitted from its completion until the time is up.
final class BlockBench {
    let device: any BlockDevice
    let settings: BenchSettings
    let loop: EventLoop
    private var slots: [[Bits]] = []
    private var latencies: [Int64] = []
    private var started: [Duration]
    private var random: UInt64
    private var cursor: UInt64 = 0
    private let units: UInt64
    private let sectorsPerRequest: Int
    private var inFlight = 0
    private var failure: BlockError?
    private var begin: Duration = .zero
    private var end: Duration = .zero
    private var finished: Resolver<Void>?

    /// The most bytes the benchmark holds in flight (depth × size).
    static let maximumBytesInFlight = 256 << 20

    /// How long past `--seconds` requests still in flight are waited for.
    static let grace: Duration = .seconds(5)

    init(device: any BlockDevice, settings: BenchSettings, loop: EventLoop) throws(BlockError) {
        var settings = settings
        self.device = device
        self.loop = loop
        let sectorSize = device.geometry.sectorSize
        guard settings.bytes % sectorSize == 0 else {
            throw .badRequest(
                device: device.name,
                reason: "\(settings.bytes) bytes is not whole \(sectorSize)-byte sectors")
        }
        guard settings.bytes / sectorSize <= device.maximumSectorsPerRequest else {
            throw .badRequest(
                device: device.name,
                reason:
                    "--size \(settings.bytes) is more than the device's largest request, "
                    + "\(device.maximumSectorsPerRequest * sectorSize) bytes")
        }
        guard settings.depth * settings.bytes <= Self.maximumBytesInFlight else {
            throw .badRequest(
                device: device.name,
                reason:
                    "--depth \(settings.depth) × --size \(settings.bytes) is more than "
                    + "\(Self.maximumBytesInFlight >> 20) MiB in flight")
        }
        if settings.depth > device.queueDepth {
            printError(
                "bench: --depth \(settings.depth) is more than the device's queue depth; "
                    + "using \(device.queueDepth)")
            settings.depth = max(1, device.queueDepth)
        }
        self.settings = settings
        sectorsPerRequest = settings.bytes / sectorSize
        let spanSectors = min(
            device.geometry.sectorCount, (settings.span ?? .max) / UInt64(sectorSize))
        units = spanSectors / UInt64(sectorsPerRequest)
        guard units > 0 else {
            throw .outOfRange(
                device: device.name, sector: 0, count: sectorsPerRequest,
                capacity: device.geometry.sectorCount)
        }
        random = settings.seed
        started = Array(repeating: .zero, count: settings.depth)
        latencies.reserveCapacity(1 << 20)
        // All the slots' pages made at once: allocating them one by one from a pool
        // that is all in use scans every buffer before making each new one.
        let pagesPerSlot = (settings.bytes + Buffer.pageSize - 1) / Buffer.pageSize
        guard settings.depth * pagesPerSlot <= device.pool.limit else {
            throw .badRequest(
                device: device.name,
                reason:
                    "--depth \(settings.depth) × --size \(settings.bytes) needs more than the "
                    + "device's \(device.pool.limit) pages (\((device.pool.limit * Buffer.pageSize) >> 20) MiB); "
                    + "lower --depth or --size")
        }
        device.pool.grow(by: settings.depth * pagesPerSlot - device.pool.freeCount)
        for _ in 0..<settings.depth {
            var pages = try device.allocatePages(byteCount: settings.bytes)
            for index in pages.indices {
                pages[index].withUnsafeMutableBytes {
                    SectorPattern(seed: settings.seed).fill($0, first: 0, sectorSize: 512)
                }
            }
            slots.append(pages)
        }
    }

    func run() async throws -> String {
        let (promise, resolver) = loop.makePromise(of: Void.self)
        finished = resolver
        begin = loop.now
        // A backend that stops answering must not hold the benchmark past its time.
        let deadline = loop.schedule(after: settings.duration + Self.grace) { [self] in
            guard let finished else { return }
            self.finished = nil
            end = loop.now
            if failure == nil {
                failure = .ioError(
                    device: device.name,
                    detail:
                        "\(inFlight) request\(inFlight == 1 ? "" : "s") still in flight "
                        + "\(Self.grace) after --seconds")
            }
            _ = finished.resolve()
        }
        for slot in 0..<settings.depth { issue(slot) }
        try await promise.value
        _ = loop.cancelTimer(deadline)
        if let failure { throw failure }
        return report()
    }

    private func nextSector() -> UInt64 {
        let unit: UInt64
        if settings.pattern.isRandom {
            random &+= 0x9e37_79b9_7f4a_7c15
            var z = random
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            unit = (z ^ (z >> 31)) % units
        } else {
            unit = cursor
            cursor = (cursor + 1) % units
        }
        return unit * UInt64(sectorsPerRequest)
    }

    private func issue(_ slot: Int) {
        let sector = nextSector()
        let request = BlockRequest(
            operation: settings.pattern.isWrite ? .write : .read, sector: sector,
            sectorCount: sectorsPerRequest, pages: slots[slot])
        inFlight += 1
        started[slot] = loop.now
        device.submit(request) { [self] result in complete(slot, result) }
    }

    private func complete(_ slot: Int, _ result: Result<BlockRequest, BlockError>) {
        inFlight -= 1
        let now = loop.now
        if case .failure(let error) = result, failure == nil { failure = error }
        if failure == nil {
            latencies.append(Int64((now - started[slot]) / .nanoseconds(1)))
        }
        if failure == nil && now - begin < settings.duration {
            issue(slot)
        } else if inFlight == 0 {
            end = now
            _ = finished?.resolve()
            finished = nil
        }
    }

    private func report() -> String {
        let seconds = Double((end - begin) / .nanoseconds(1)) / 1e9
        let count = latencies.count
        let iops = Double(count) / max(seconds, 1e-9)
        let megabytes = iops * Double(settings.bytes) / 1e6
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = min(
                sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)
            return Double(sorted[max(0, index)]) / 1000
        }
        let average = sorted.isEmpty ? 0 : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1000
        func format(_ value: Double, _ digits: Int = 1) -> String {
            var text = ""
            let scale = pow(10.0, Double(digits))
            let rounded = (value * scale).rounded() / scale
            text = "\(rounded)"
            return text
        }
        var lines: [String] = []
        lines.append("IOPS \(Int(iops.rounded())) MB/s \(format(megabytes))")
        lines.append(
            "bench: \(settings.pattern.rawValue) \(settings.bytes) bytes, depth \(settings.depth), "
                + "\(count) requests in \(format(seconds, 3)) s on \(device.name)")
        lines.append(
            "lat (usec): min=\(format((sorted.first.map(Double.init) ?? 0) / 1000)) "
                + "avg=\(format(average)) max=\(format((sorted.last.map(Double.init) ?? 0) / 1000))"
        )
        lines.append(
            "clat percentiles (usec): 50.00th=[\(format(percentile(50)))], "
                + "90.00th=[\(format(percentile(90)))], 99.00th=[\(format(percentile(99)))], "
                + "99.90th=[\(format(percentile(99.9)))]")
        return lines.joined(separator: "\n")
    }
}

struct BlockPutZonesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put-zones",
        abstract: "Write zone files to the disk for `oasis dns --zone-disk`.",
        discussion: """
            Each zone is [ORIGIN=]FILE, as `oasis dns --zone` takes it; every zone is \
            checked as the server would load it before anything is written. The layout \
            (a header page with magic OASISZN1, then each zone's text on a page \
            boundary) is described in Sources/OasisDNS/Zone/ZoneDisk.swift.
            """)

    @OptionGroup var diskOptions: DiskOptions

    @Argument(help: ArgumentHelp("The zones.", valueName: "[origin=]file"))
    var zones: [String]

    func run() throws {
        guard !zones.isEmpty else { throw ValidationError("give at least one zone file") }
        do {
            _ = try DNSCommand.compile(zones)
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
        var entries: [(origin: String, text: [UInt8])] = []
        for specification in zones {
            let (originText, path) = DNSCommand.splitZoneSpecification(specification)
            var origin = originText ?? DNSCommand.guessOrigin(path: path)
            if !origin.hasSuffix(".") { origin += "." }
            let text: [UInt8]
            do {
                text = try readWholeFile(path, limit: UInt64(ZoneDisk.maximumZoneBytes))
            } catch {
                printError("oasis block: \(error)")
                throw ExitCode(1)
            }
            entries.append((origin, text))
        }
        let image: [UInt8]
        do {
            image = try ZoneDisk.image(of: entries)
        } catch {
            printError("oasis block: \(error)")
            throw ExitCode(1)
        }
        let options = diskOptions
        let count = entries.count
        try runBlockCommand {
            guard let loop = EventLoop.current else { return }
            let device = try options.open(loop: loop)
            defer { device.close() }
            try await writeImage(image, to: device, timeout: options.ioTimeout)
            print("put-zones: \(count) zone\(count == 1 ? "" : "s"), \(image.count) bytes")
        }
    }
}

/// Writes `image` from sector 0 (the last sector padded with zeros) and flushes.
func writeImage(_ image: [UInt8], to device: any BlockDevice, timeout: Duration = .seconds(30))
    async throws(BlockError)
{
    let sectorSize = device.geometry.sectorSize
    let sectors = (image.count + sectorSize - 1) / sectorSize
    guard UInt64(sectors) <= device.geometry.sectorCount else {
        throw .outOfRange(
            device: device.name, sector: 0, count: sectors, capacity: device.geometry.sectorCount)
    }
    var done = 0
    while done < sectors {
        let count = min(chunkSectors(of: device), sectors - done)
        let pages = try device.allocatePages(byteCount: count * sectorSize)
        var at = done * sectorSize
        for var page in pages {
            let take = max(0, min(page.count, image.count - at))
            page.withUnsafeMutableBytes { target in
                memset(target.baseAddress!, 0, target.count)
                if take > 0 {
                    image.withUnsafeBytes {
                        _ = memcpy(target.baseAddress!, $0.baseAddress! + at, take)
                    }
                }
            }
            at += page.count
        }
        try await device.perform(
            BlockRequest(write: UInt64(done), pages: pages, sectorSize: sectorSize),
            within: timeout)
        done += count
    }
    if device.features.contains(.flush) { try await device.perform(.flush, within: timeout) }
}

/// The zones on a zone disk, each checked against its digest: read through the block
/// device on a loop of its own, before the server starts.
func readZoneDisk(_ specification: String) throws(DNSCommand.ZoneLoadFailure) -> [(
    origin: String, text: [UInt8]
)] {
    let options: DiskOptions
    do {
        options = try DiskOptions.parse(["--disk", specification, "--read-only"])
    } catch {
        throw DNSCommand.ZoneLoadFailure(message: "--zone-disk: \(error)")
    }
    do {
        let loop = try EventLoop()
        return try loop.run { () async throws -> [(origin: String, text: [UInt8])] in
            guard let loop = EventLoop.current else { return [] }
            let device = try options.open(loop: loop)
            defer { device.close() }
            let sectorSize = device.geometry.sectorSize
            let header = try await readBytes(
                from: device, at: 0, count: max(ZoneDisk.headerBytes, sectorSize))
            let extents = try ZoneDisk.parseHeader(header, capacity: device.geometry.byteCount)
            var zones: [(origin: String, text: [UInt8])] = []
            for extent in extents {
                guard extent.offset % UInt64(sectorSize) == 0 else {
                    throw ZoneDiskError.outOfRange(
                        origin: extent.origin, offset: extent.offset, length: extent.length,
                        capacity: device.geometry.byteCount)
                }
                var text = try await readBytes(
                    from: device, at: extent.offset / UInt64(sectorSize), count: extent.length)
                text.removeLast(text.count - extent.length)
                try ZoneDisk.verify(text, of: extent)
                zones.append((extent.origin, text))
            }
            return zones
        }
    } catch {
        throw DNSCommand.ZoneLoadFailure(message: "--zone-disk \(specification): \(error)")
    }
}

/// At least `count` bytes (whole sectors) from `sector` on.
func readBytes(
    from device: any BlockDevice, at sector: UInt64, count: Int, timeout: Duration = .seconds(30)
) async throws(BlockError) -> [UInt8] {
    let sectorSize = device.geometry.sectorSize
    let sectors = (count + sectorSize - 1) / sectorSize
    var bytes: [UInt8] = []
    bytes.reserveCapacity(sectors * sectorSize)
    var done = 0
    while done < sectors {
        let chunk = min(chunkSectors(of: device), sectors - done)
        let pages = try device.allocatePages(byteCount: chunk * sectorSize)
        try await device.perform(
            BlockRequest(read: sector + UInt64(done), pages: pages, sectorSize: sectorSize),
            within: timeout)
        for page in pages { bytes += page.copyBytes() }
        done += chunk
    }
    return bytes
}
