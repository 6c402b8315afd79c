// `oasis block check`: a seeded pattern written and read back, with the SHA-256 of what
// was written, so that a harness can compare with `dd ... | sha256sum` on the other
// side of a disk (the backing file of a Xen backend).

import ArgumentParser
import Glibc
import OasisBits
import OasisDevices
import OasisLoop

/// The check's pattern: sector `s` holds the little-endian 64-bit outputs of SplitMix64
/// (Steele, Lea and Flood) started from `seed ^ (s * 0x9e3779b97f4a7c15)`, so a sector
/// written in the wrong place, or another run's sector, does not verify.
struct SectorPattern {
    var seed: UInt64

    /// Fills `bytes` (a whole number of sectors of `sectorSize`) with sectors `first`...
    func fill(_ bytes: UnsafeMutableRawBufferPointer, first: UInt64, sectorSize: Int) {
        for index in 0..<(bytes.count / sectorSize) {
            var state = seed ^ ((first &+ UInt64(index)) &* 0x9e37_79b9_7f4a_7c15)
            let base = bytes.baseAddress! + index * sectorSize
            for word in 0..<(sectorSize / 8) {
                state &+= 0x9e37_79b9_7f4a_7c15
                var z = state
                z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
                z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
                z ^= z >> 31
                base.storeBytes(of: z.littleEndian, toByteOffset: word * 8, as: UInt64.self)
            }
        }
    }
}

struct BlockCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Write a seeded pattern, read it back and verify it.",
        discussion: """
            Sector s holds the little-endian 64-bit outputs of SplitMix64 started from \
            SEED ^ (s * 0x9e3779b97f4a7c15). Prints "check: ok N sectors sha256 HEX" (HEX: \
            the SHA-256 of the N sectors' bytes, as `dd ... | sha256sum` of the same \
            range prints it) or "check: FAILED ..." and exits 1. With --verify-only \
            nothing is written: a pattern written earlier (by anyone) is read and verified.
            """)

    @OptionGroup var diskOptions: DiskOptions

    @Option(help: "The pattern's seed.")
    var seed: UInt64

    @Option(help: "How many sectors (default: 2048, or the whole disk if smaller).")
    var sectors: Int?

    @Option(help: "The first sector.")
    var sector: UInt64 = 0

    @Flag(help: "Only read and verify a pattern written before.")
    var verifyOnly = false

    func validate() throws {
        if let sectors, sectors <= 0 { throw ValidationError("--sectors must be positive") }
    }

    func run() throws {
        let options = diskOptions
        let (pattern, requested, first, verifyOnly) = (
            SectorPattern(seed: seed), sectors, sector, verifyOnly
        )
        var failed = false
        let outcome = try runCheck(
            options: options, pattern: pattern, requested: requested, first: first,
            verifyOnly: verifyOnly)
        print(outcome.line)
        failed = !outcome.ok
        if failed { throw ExitCode(1) }
    }

    private func runCheck(
        options: DiskOptions, pattern: SectorPattern, requested: Int?, first: UInt64,
        verifyOnly: Bool
    ) throws -> (ok: Bool, line: String) {
        let loop = try EventLoop()
        do {
            return try loop.run { () async throws -> (ok: Bool, line: String) in
                guard let loop = EventLoop.current else { return (false, "check: FAILED no loop") }
                let device = try options.open(loop: loop)
                defer { device.close() }
                let geometry = device.geometry
                let available = geometry.sectorCount > first ? geometry.sectorCount - first : 0
                let total = requested ?? Int(min(2048, available))
                guard total > 0, UInt64(total) <= available else {
                    throw BlockError.outOfRange(
                        device: device.name, sector: first, count: total,
                        capacity: geometry.sectorCount)
                }
                let sectorSize = geometry.sectorSize
                let chunk = chunkSectors(of: device)
                var hash = SHA256()
                if !verifyOnly {
                    var done = 0
                    while done < total {
                        let count = min(chunk, total - done)
                        var pages = try device.allocatePages(byteCount: count * sectorSize)
                        var sector = first + UInt64(done)
                        for index in pages.indices {
                            let perPage = pages[index].count / sectorSize
                            pages[index].withUnsafeMutableBytes {
                                pattern.fill($0, first: sector, sectorSize: sectorSize)
                                hash.update(UnsafeRawBufferPointer($0))
                            }
                            sector += UInt64(perPage)
                        }
                        try await device.perform(
                            BlockRequest(
                                write: first + UInt64(done), pages: pages, sectorSize: sectorSize),
                            within: options.ioTimeout)
                        done += count
                    }
                    if device.features.contains(.flush) {
                        try await device.perform(.flush, within: options.ioTimeout)
                    }
                }
                // Read back and compare, sector by sector.
                var readHash = SHA256()
                var expected = [UInt8](repeating: 0, count: sectorSize)
                var bad = 0
                var firstBad: UInt64?
                var done = 0
                while done < total {
                    let count = min(chunk, total - done)
                    let pages = try device.allocatePages(byteCount: count * sectorSize)
                    try await device.perform(
                        BlockRequest(
                            read: first + UInt64(done), pages: pages, sectorSize: sectorSize),
                        within: options.ioTimeout)
                    var sector = first + UInt64(done)
                    for page in pages {
                        page.withUnsafeBytes { bytes in
                            readHash.update(bytes)
                            for index in 0..<(bytes.count / sectorSize) {
                                expected.withUnsafeMutableBytes {
                                    pattern.fill($0, first: sector, sectorSize: sectorSize)
                                }
                                let same = expected.withUnsafeBytes {
                                    memcmp(
                                        $0.baseAddress!, bytes.baseAddress! + index * sectorSize,
                                        sectorSize) == 0
                                }
                                if !same {
                                    bad += 1
                                    if firstBad == nil { firstBad = sector }
                                }
                                sector += 1
                            }
                        }
                    }
                    done += count
                }
                let digest = (verifyOnly ? readHash : hash).finish().hex
                if bad > 0 {
                    return (
                        false,
                        "check: FAILED \(bad) of \(total) sectors differ, the first sector "
                            + "\(firstBad ?? 0); read sha256 \(readHash.finish().hex)"
                    )
                }
                return (true, "check: ok \(total) sectors sha256 \(digest)")
            }
        } catch let error as BlockError {
            return (false, "check: FAILED \(error)")
        } catch let error as BlockCommandFailure {
            return (false, "check: FAILED \(error)")
        }
    }
}
