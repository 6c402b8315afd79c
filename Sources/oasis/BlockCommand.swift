// `oasis block`: a disk's geometry, files written to it and read from it, a seeded
// pattern written and verified, and fio-like benchmarks, on any BlockDevice.

import ArgumentParser
import Glibc
import OasisBits
import OasisDNS
import OasisDevices
import OasisLoop
import OasisXen

struct BlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block",
        abstract: "Use a block device: info, read, write, check, bench, put-zones.",
        discussion: """
            --disk is memory:SIZE (a disk in this process's memory, e.g. memory:64M), \
            file:PATH (a regular file or a block device, through Linux native AIO with \
            O_DIRECT), xen:VBD (the Xen block frontend on this domain's virtual device \
            VBD: 51712 or xvda) or xen-sim:SOCKET[@VBD] (the same against xen/blkback-sim). \
            Sizes take a K, M, G or T suffix (powers of 1024). Errors are \
            printed on one line and the exit status is 1; a usage error (a bad option) \
            exits 64. Sectors are the disk's sector size (512 unless `info` says \
            otherwise): use that as dd's bs= to compare.
            """,
        subcommands: [
            BlockInfoCommand.self, BlockWriteCommand.self, BlockReadCommand.self,
            BlockCheckCommand.self, BlockBenchCommand.self, BlockPutZonesCommand.self,
        ])
}

/// The options every `oasis block` subcommand takes.
struct DiskOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The disk: memory:SIZE, file:PATH, xen:VBD, xen-sim:SOCKET.", valueName: "disk"))
    var disk: String

    @Option(
        help: ArgumentHelp(
            "file: create PATH if it is missing and make it at least SIZE bytes.",
            valueName: "size"))
    var create: String?

    @Flag(help: "Open the disk read-only.")
    var readOnly = false

    @Flag(help: "file: buffered I/O (no O_DIRECT).")
    var buffered = false

    @Option(help: "Seconds to wait for any one request before giving up (0.001...86400).")
    var timeout = 30.0

    /// ``timeout`` as a duration.
    var ioTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }

    func validate() throws {
        let specification = try DiskSpecification(parsing: disk)
        if let create {
            guard parseSize(create) != nil else {
                throw ValidationError("--create: '\(create)' is not a size")
            }
            guard !readOnly else {
                throw ValidationError("--create and --read-only: a created file is written")
            }
            guard case .file = specification else {
                throw ValidationError("--create: only for file:PATH")
            }
        }
        guard timeout >= 0.001, timeout <= 86400 else {
            throw ValidationError("--timeout: 0.001...86400 seconds")
        }
    }

    /// Opens the disk on `loop` with room for `queueDepth` requests in flight.
    func open(queueDepth: Int = 32, loop: EventLoop) throws(BlockError) -> any BlockDevice {
        let specification: DiskSpecification
        do {
            specification = try DiskSpecification(parsing: disk)
        } catch {
            throw .unavailable("--disk: \(error.description)")
        }
        switch specification {
        case .memory(let bytes):
            return MemoryBlockDevice(
                name: disk, sectorCount: bytes / 512, readOnly: readOnly, queueDepth: queueDepth,
                loop: loop)
        case .file(let path):
            return try FileBlockDevice(
                path: path, readOnly: readOnly, direct: !buffered,
                createSize: create.flatMap(parseSize), queueDepth: queueDepth, loop: loop)
        case .xen(let vbd):
            do {
                let xen = try XenLibraries.open()
                return try openBlkfront(
                    facilities: xen, vbd: vbd, queueDepth: queueDepth, loop: loop)
            } catch {
                throw .unavailable("\(disk): \(error)")
            }
        case .xenSim(let socket, let vbd):
            do {
                let xen = try SimulatedHypervisor.connect(to: socket)
                return try openBlkfront(
                    facilities: xen, vbd: vbd, queueDepth: queueDepth, loop: loop)
            } catch {
                throw .unavailable("\(disk): \(error)")
            }
        }
    }

    /// A Blkfront on `facilities` (closed with the device, or here if it fails).
    private func openBlkfront<Facilities: XenFacilities>(
        facilities: Facilities, vbd: Int, queueDepth: Int, loop: EventLoop
    ) throws -> any BlockDevice {
        do {
            return try Blkfront(
                facilities: facilities, vbd: vbd, on: loop, inFlight: max(1, queueDepth),
                readOnly: readOnly, ownsFacilities: true)
        } catch {
            facilities.close()
            throw error
        }
    }
}

/// What `--disk` names.
enum DiskSpecification: Equatable {
    case memory(UInt64)
    case file(String)
    /// A virtual block device of this domain, by its `virtual-device` number.
    case xen(Int)
    /// The block simulator's socket, and the device number (51712, xvda, by default).
    case xenSim(String, Int)

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(parsing text: String) throws(Invalid) {
        guard let colon = text.firstIndex(of: ":") else {
            throw Invalid(
                description: "'\(text)' is not memory:SIZE, file:PATH, xen:VBD or xen-sim:SOCKET")
        }
        let kind = text[..<colon]
        let rest = String(text[text.index(after: colon)...])
        guard !rest.isEmpty else {
            throw Invalid(description: "'\(text)' names nothing after the colon")
        }
        switch kind {
        case "memory":
            guard let bytes = parseSize(rest), bytes >= 512, bytes <= 1 << 40 else {
                throw Invalid(description: "memory:\(rest): give a size from 512 bytes to 1T")
            }
            guard bytes % 512 == 0 else {
                throw Invalid(description: "memory:\(rest): not a multiple of 512-byte sectors")
            }
            self = .memory(bytes)
        case "file": self = .file(rest)
        case "xen":
            guard let vbd = Self.virtualDevice(rest) else {
                throw Invalid(
                    description: "xen:\(rest): give a virtual-device number (51712) or xvdX")
            }
            self = .xen(vbd)
        case "xen-sim":
            // xen-sim:SOCKET or xen-sim:SOCKET@VBD.
            var socket = rest
            var vbd = 51712
            if let at = rest.lastIndex(of: "@") {
                guard let number = Self.virtualDevice(String(rest[rest.index(after: at)...])) else {
                    throw Invalid(
                        description: "xen-sim:\(rest): the device after @ is not a number or xvdX")
                }
                vbd = number
                socket = String(rest[..<at])
            }
            self = .xenSim(socket, vbd)
        default:
            throw Invalid(description: "'\(kind)' is not memory, file, xen or xen-sim")
        }
    }
}

extension DiskSpecification {
    /// `51712`, or `xvda`...`xvdz` (major 202, 16 minors a disk: 51712 + 16 × index).
    static func virtualDevice(_ text: String) -> Int? {
        if let number = Int(text), (0...Int(UInt32.max)).contains(number) { return number }
        let bytes = Array(text.utf8)
        guard bytes.count == 4, text.hasPrefix("xvd"), (0x61...0x7a).contains(bytes[3]) else {
            return nil
        }
        return 51712 + 16 * Int(bytes[3] - 0x61)
    }
}

/// `4096`, `4k`, `64M`, `1G`, `2T` (powers of 1024; a trailing `B` or `iB` is allowed).
func parseSize(_ text: String) -> UInt64? {
    var digits = text
    for suffix in ["iB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
        digits.removeLast(suffix.count)
        break
    }
    var shift: UInt64 = 0
    if let last = digits.last, let power = ["k": 10, "m": 20, "g": 30, "t": 40][last.lowercased()] {
        shift = UInt64(power)
        digits.removeLast()
    }
    guard let value = UInt64(digits) else { return nil }
    let (result, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
    return overflow ? nil : result
}

/// Something `oasis block` could not do, printed as one line.
struct BlockCommandFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs `body` on a new loop; a `BlockError` or a `BlockCommandFailure` is printed as
/// one line and the exit status is 1.
func runBlockCommand(_ body: sending @escaping () async throws -> Void) throws {
    let loop = try EventLoop()
    do {
        try loop.run(body)
    } catch let error as BlockError {
        printError("oasis block: \(error)")
        throw ExitCode(1)
    } catch let error as BlockCommandFailure {
        printError("oasis block: \(error)")
        throw ExitCode(1)
    }
}

/// How many sectors one request of a command's sequential transfers carries.
func chunkSectors(of device: any BlockDevice) -> Int {
    max(1, min(device.maximumSectorsPerRequest, (256 << 10) / device.geometry.sectorSize))
}

struct BlockInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Print the disk's geometry and features.")

    @OptionGroup var diskOptions: DiskOptions

    func run() throws {
        let options = diskOptions
        try runBlockCommand {
            guard let loop = EventLoop.current else { return }
            let device = try options.open(loop: loop)
            defer { device.close() }
            let geometry = device.geometry
            print("disk: \(device.name)")
            print("sector size: \(geometry.sectorSize)")
            print("sectors: \(geometry.sectorCount)")
            print("bytes: \(geometry.byteCount)")
            print("read-only: \(geometry.isReadOnly ? "yes" : "no")")
            print("features: \(device.features)")
            print("queue depth: \(device.queueDepth)")
            print("largest request: \(device.maximumSectorsPerRequest) sectors")
            if let file = device as? FileBlockDevice {
                print("kind: \(file.isBlockDevice ? "block device" : "regular file")")
                print("direct: \(file.isDirect ? "yes (O_DIRECT)" : "no (buffered)")")
                print("alignment: \(file.alignment)")
            }
        }
    }
}

struct BlockWriteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Write a file to the disk from a sector on (the last sector padded with zeros).")

    @OptionGroup var diskOptions: DiskOptions

    @Option(help: ArgumentHelp("The file to write.", valueName: "file"))
    var from: String

    @Option(help: "The first sector written.")
    var sector: UInt64 = 0

    func run() throws {
        let options = diskOptions
        let (path, first) = (from, sector)
        try runBlockCommand {
            guard let loop = EventLoop.current else { return }
            let device = try options.open(loop: loop)
            defer { device.close() }
            let written = try await streamFile(
                path, to: device, at: first, timeout: options.ioTimeout)
            print(
                "wrote \(written.bytes) bytes (\(written.sectors) sectors) at sector \(first)")
        }
    }
}

/// Writes the file at `path` to `device` from sector `first` on, a chunk of at most
/// ``chunkSectors(of:)`` sectors at a time (the last sector padded with zeros), so a
/// source of any size (a pipe, /dev/zero) is held in bounded memory; then flushes.
///
/// A regular file larger than the space from `first` is refused before anything is
/// written; any other source is written until the disk's end and then refused if it
/// has more.
func streamFile(_ path: String, to device: any BlockDevice, at first: UInt64, timeout: Duration)
    async throws -> (bytes: UInt64, sectors: UInt64)
{
    let sectorSize = device.geometry.sectorSize
    let capacity = device.geometry.sectorCount
    guard first <= capacity else {
        throw BlockError.outOfRange(
            device: device.name, sector: first, count: 1, capacity: capacity)
    }
    let space = (capacity - first) * UInt64(sectorSize)
    let source = open(path, O_RDONLY | O_CLOEXEC)
    guard source >= 0 else {
        throw BlockCommandFailure(description: "\(path): \(String(cString: strerror(errno)))")
    }
    defer { close(source) }
    var status = stat()
    if fstat(source, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
        UInt64(status.st_size) > space
    {
        throw BlockCommandFailure(
            description:
                "\(path): \(status.st_size) bytes do not fit in the \(space) bytes from sector \(first)"
        )
    }
    var staging = [UInt8](repeating: 0, count: chunkSectors(of: device) * sectorSize)
    var bytes: UInt64 = 0
    var sectors: UInt64 = 0
    while true {
        let room = capacity - first - sectors
        let want = Int(min(UInt64(staging.count), room * UInt64(sectorSize)))
        let (filled, ended) = try fill(&staging, upTo: want, from: source, path: path)
        if room == 0 || (filled == 0 && !ended) {
            // The disk is full: refuse a source with more to give.
            var probe: UInt8 = 0
            if read(source, &probe, 1) > 0 {
                throw BlockCommandFailure(
                    description:
                        "\(path): stopped at the disk's end after \(bytes) bytes from sector \(first); the source has more"
                )
            }
            break
        }
        if filled == 0 { break }
        let count = (filled + sectorSize - 1) / sectorSize
        let pages = try device.allocatePages(byteCount: count * sectorSize)
        var at = 0
        for var page in pages {
            let take = max(0, min(page.count, filled - at))
            page.withUnsafeMutableBytes { target in
                memset(target.baseAddress!, 0, target.count)
                if take > 0 {
                    staging.withUnsafeBytes {
                        _ = memcpy(target.baseAddress!, $0.baseAddress! + at, take)
                    }
                }
            }
            at += page.count
        }
        try await device.perform(
            BlockRequest(write: first + sectors, pages: pages, sectorSize: sectorSize),
            within: timeout)
        bytes += UInt64(filled)
        sectors += UInt64(count)
        if ended { break }
    }
    if device.features.contains(.flush) { try await device.perform(.flush, within: timeout) }
    return (bytes, sectors)
}

/// Reads from `fd` into the start of `buffer` until `count` bytes or the end of the
/// source; says how many came and whether the source ended.
private func fill(_ buffer: inout [UInt8], upTo count: Int, from fd: Int32, path: String)
    throws(BlockCommandFailure) -> (Int, Bool)
{
    var filled = 0
    while filled < count {
        let got = buffer.withUnsafeMutableBytes {
            read(fd, $0.baseAddress! + filled, count - filled)
        }
        if got < 0 {
            if errno == EINTR { continue }
            throw BlockCommandFailure(description: "\(path): \(String(cString: strerror(errno)))")
        }
        if got == 0 { return (filled, true) }
        filled += got
    }
    return (filled, false)
}

struct BlockReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Read sectors from the disk into a file.")

    @OptionGroup var diskOptions: DiskOptions

    @Option(help: ArgumentHelp("The file to write what is read to.", valueName: "file"))
    var to: String

    @Option(help: "The first sector read.")
    var sector: UInt64 = 0

    @Option(help: "How many sectors to read.")
    var count: Int

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
    }

    func run() throws {
        let options = diskOptions
        let (path, first, total) = (to, sector, count)
        try runBlockCommand {
            guard let loop = EventLoop.current else { return }
            let device = try options.open(loop: loop)
            defer { device.close() }
            let sectorSize = device.geometry.sectorSize
            let capacity = device.geometry.sectorCount
            guard first <= capacity, UInt64(total) <= capacity - first else {
                throw BlockError.outOfRange(
                    device: device.name, sector: first, count: total, capacity: capacity)
            }
            let output = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard output >= 0 else {
                throw BlockCommandFailure(
                    description: "\(path): \(String(cString: strerror(errno)))")
            }
            defer { Glibc.close(output) }
            var done = 0
            while done < total {
                let count = min(chunkSectors(of: device), total - done)
                let pages = try device.allocatePages(byteCount: count * sectorSize)
                try await device.perform(
                    BlockRequest(read: first + UInt64(done), pages: pages, sectorSize: sectorSize),
                    within: options.ioTimeout)
                for page in pages {
                    let written = page.withUnsafeBytes { write(output, $0.baseAddress, $0.count) }
                    guard written == page.count else {
                        throw BlockCommandFailure(
                            description: "\(path): \(String(cString: strerror(errno)))")
                    }
                }
                done += count
            }
            print("read \(total) sectors (\(total * sectorSize) bytes) from sector \(first)")
        }
    }
}

/// A file's bytes, refused when larger than `limit`.
func readWholeFile(_ path: String, limit: UInt64) throws(BlockCommandFailure) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw BlockCommandFailure(description: "\(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard got >= 0 else {
            throw BlockCommandFailure(description: "\(path): \(String(cString: strerror(errno)))")
        }
        if got == 0 { break }
        bytes += chunk[0..<got]
        guard UInt64(bytes.count) <= limit else {
            throw BlockCommandFailure(
                description: "\(path): larger than the disk's \(limit) bytes")
        }
    }
    return bytes
}
