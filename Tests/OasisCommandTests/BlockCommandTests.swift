// `oasis block` run as a program, its results compared with what `dd` and `sha256sum`
// see of the same file.

import Foundation
import OasisBits
import OasisTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `oasis` executable built beside the test bundle.
let blockOasisPath = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("oasis").path

/// A fresh folder on the machine's disk (O_DIRECT works there), removed afterwards.
func withBlockFolder(_ test: String, _ body: (String) throws -> Void) throws {
    guard access(blockOasisPath, X_OK) == 0 else {
        try skip(test, "\(blockOasisPath) is not built")
    }
    var template = Array("/var/tmp/oasis-block-command.XXXXXX".utf8CString)
    let folder = template.withUnsafeMutableBufferPointer {
        String(cString: mkdtemp($0.baseAddress!)!)
    }
    defer { _ = try? FileManager.default.removeItem(atPath: folder) }
    try body(folder)
}

func oasisBlock(_ arguments: [String]) throws -> CommandResult {
    try run([blockOasisPath, "block"] + arguments)
}

/// `dd if=PATH bs=512 skip=SECTOR count=COUNT | sha256sum`, as a harness on the other
/// side of a disk would compute it.
func ddDigest(_ path: String, sector: Int, count: Int) throws -> String {
    let result = try run([
        "sh", "-c", "dd if='\(path)' bs=512 skip=\(sector) count=\(count) status=none | sha256sum",
    ])
    return String(result.output.prefix(64))
}

@Suite struct BlockCommandTests {
    @Test func infoPrintsTheGeometry() throws {
        try withBlockFolder("info") { folder in
            let memory = try oasisBlock(["info", "--disk", "memory:1M"])
            #expect(memory.status == 0)
            #expect(memory.output.contains("sectors: 2048\n"))
            #expect(memory.output.contains("features: flush,discard\n"))
            let file = try oasisBlock(["info", "--disk", "file:\(folder)/d.img", "--create", "3M"])
            #expect(file.status == 0, "\(file.errorOutput)")
            #expect(file.output.contains("bytes: 3145728\n"))
            #expect(file.output.contains("direct: yes"))
            let readOnly = try oasisBlock(["info", "--disk", "file:\(folder)/d.img", "--read-only"])
            #expect(readOnly.output.contains("read-only: yes"))
        }
    }

    @Test func errorsAreOneLineAndExitNonZero() throws {
        try withBlockFolder("errors") { folder in
            let missing = try oasisBlock(["info", "--disk", "file:\(folder)/none.img"])
            #expect(missing.status == 1)
            #expect(
                missing.errorOutput
                    == "oasis block: file:\(folder)/none.img: open: No such file or directory\n")
            let xen = try oasisBlock(["info", "--disk", "xen:51712"])
            #expect(xen.status == 1)
            #expect(xen.errorOutput.hasPrefix("oasis block: xen:51712: "), "\(xen.errorOutput)")
            #expect(xen.errorOutput.split(separator: "\n").count == 1)
            let beyond = try oasisBlock([
                "read", "--disk", "memory:1M", "--to", "\(folder)/o", "--sector", "2040", "--count",
                "16",
            ])
            #expect(beyond.status == 1)
            #expect(
                beyond.errorOutput.hasPrefix(
                    "oasis block: memory:1M: sectors 2040+16 beyond the end"))
        }
    }

    @Test func writeThenReadAgreesWithDD() throws {
        try withBlockFolder("write/read") { folder in
            let image = "\(folder)/d.img"
            var random = SplitMix64(seed: 17)
            let data = (0..<10_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            try Data(data).write(to: URL(fileURLWithPath: "\(folder)/data"))
            let write = try oasisBlock([
                "write", "--disk", "file:\(image)", "--create", "1M", "--from", "\(folder)/data",
                "--sector", "5",
            ])
            #expect(write.status == 0, "\(write.errorOutput)")
            #expect(write.output == "wrote 10000 bytes (20 sectors) at sector 5\n")
            let dd = try run([
                "sh", "-c", "dd if='\(image)' bs=512 skip=5 count=20 status=none > '\(folder)/dd'",
            ])
            #expect(dd.status == 0)
            let fromDD = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder)/dd")))
            #expect(Array(fromDD.prefix(10_000)) == data)
            #expect(fromDD.count == 10_240 && fromDD.suffix(240).allSatisfy { $0 == 0 })
            let read = try oasisBlock([
                "read", "--disk", "file:\(image)", "--to", "\(folder)/back", "--sector", "5",
                "--count", "20",
            ])
            #expect(read.status == 0, "\(read.errorOutput)")
            let back = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder)/back")))
            #expect(back == fromDD)
        }
    }

    @Test func checkPrintsTheDigestDDSees() throws {
        try withBlockFolder("check") { folder in
            let image = "\(folder)/d.img"
            let check = try oasisBlock([
                "check", "--disk", "file:\(image)", "--create", "4M", "--seed", "42", "--sectors",
                "3000",
                "--sector", "100",
            ])
            #expect(check.status == 0, "\(check.errorOutput)")
            let digest = try ddDigest(image, sector: 100, count: 3000)
            #expect(check.output == "check: ok 3000 sectors sha256 \(digest)\n")
            // The pattern, computed here: SplitMix64 from seed ^ (sector * golden).
            var expected = SHA256()
            for sector in 100..<3100 {
                var random = SplitMix64(seed: 42 ^ (UInt64(sector) &* 0x9e37_79b9_7f4a_7c15))
                var bytes: [UInt8] = []
                for _ in 0..<64 { withUnsafeBytes(of: random.next().littleEndian) { bytes += $0 } }
                expected.update(bytes)
            }
            #expect(digest == expected.finish().hex)
            let verify = try oasisBlock([
                "check", "--disk", "file:\(image)", "--seed", "42", "--sectors", "3000", "--sector",
                "100",
                "--verify-only",
            ])
            #expect(verify.output == check.output)
            let wrongSeed = try oasisBlock([
                "check", "--disk", "file:\(image)", "--seed", "43", "--sectors", "10", "--sector",
                "100",
                "--verify-only",
            ])
            #expect(wrongSeed.status == 1)
            #expect(
                wrongSeed.output.hasPrefix(
                    "check: FAILED 10 of 10 sectors differ, the first sector 100"))
            // Any part verifies alone: a sector's pattern depends on its own number only.
            let shifted = try oasisBlock([
                "check", "--disk", "file:\(image)", "--seed", "42", "--sectors", "10", "--sector",
                "101",
                "--verify-only",
            ])
            #expect(shifted.status == 0, "\(shifted.output)")
            let memory = try oasisBlock([
                "check", "--disk", "memory:8M", "--seed", "42", "--sectors", "3000", "--sector",
                "100",
            ])
            #expect(memory.output == check.output)
        }
    }

    @Test func benchPrintsIOPSAndLatency() throws {
        try withBlockFolder("bench") { folder in
            let memory = try oasisBlock([
                "bench", "--disk", "memory:16M", "--depth", "8", "--size", "4k", "--pattern",
                "randwrite",
                "--seconds", "0.3",
            ])
            #expect(memory.status == 0, "\(memory.errorOutput)")
            #expect(memory.output.hasPrefix("IOPS "))
            #expect(memory.output.contains(" MB/s "))
            #expect(memory.output.contains("99.90th="))
            let file = try oasisBlock([
                "bench", "--disk", "file:\(folder)/d.img", "--create", "8M", "--depth", "4",
                "--size", "8k",
                "--pattern", "read", "--seconds", "0.3",
            ])
            #expect(file.status == 0, "\(file.errorOutput)")
            #expect(file.output.hasPrefix("IOPS "))
        }
    }

    @Test func checkThroughTheXenBlockFrontendAgreesWithTheBackingFile() throws {
        let test = "check over xen-sim"
        guard access(blockOasisPath, X_OK) == 0 else {
            try skip(test, "\(blockOasisPath) is not built")
        }
        let simulator: RunningBlkbackSimulator
        do {
            simulator = try RunningBlkbackSimulator([], diskBytes: 8 << 20)
        } catch {
            try skip(test, "xen/blkback-sim: \(error)")
        }
        defer { print("\(test): blkback-sim said:\n\(simulator.stop())") }
        let check = try oasisBlock([
            "check", "--disk", "xen-sim:\(simulator.socketPath)@xvda", "--seed", "5", "--sectors",
            "4096",
            "--sector", "64",
        ])
        #expect(check.status == 0, "\(check.errorOutput)")
        // What the backend wrote to its file, as dd sees it.
        let digest = try ddDigest(simulator.diskPath, sector: 64, count: 4096)
        #expect(check.output == "check: ok 4096 sectors sha256 \(digest)\n")
    }

    @Test func benchBoundsWhatIsInFlightAndStartsQuickly() throws {
        try withBlockFolder("bench bounds") { _ in
            let tooMuch = try oasisBlock([
                "bench", "--disk", "memory:64M", "--depth", "1024", "--size", "1M", "--seconds",
                "0.5", "--pattern", "write",
            ])
            #expect(tooMuch.status == 1)
            #expect(
                tooMuch.errorOutput.contains("more than 256 MiB in flight"),
                "\(tooMuch.errorOutput)")
            #expect(tooMuch.errorOutput.split(separator: "\n").count == 1)
            // 256 requests of 1 MiB: the pages are made at once, not one scan each.
            let started = ContinuousClock.now
            let big = try oasisBlock([
                "bench", "--disk", "memory:64M", "--depth", "256", "--size", "1M", "--seconds",
                "0.5", "--pattern", "write",
            ])
            let took = ContinuousClock.now - started
            #expect(big.status == 0, "\(big.errorOutput)")
            #expect(big.output.hasPrefix("IOPS "))
            #expect(took < .seconds(6), "\(took)")
        }
    }

    @Test func readBeyondTheEndIsRefusedBeforeTheOutputIsMade() throws {
        try withBlockFolder("read beyond") { folder in
            let beyond = try oasisBlock([
                "read", "--disk", "memory:1M", "--to", "\(folder)/r", "--count",
                "9223372036854775807",
            ])
            #expect(beyond.status == 1)
            #expect(beyond.errorOutput.contains("beyond the end"), "\(beyond.errorOutput)")
            #expect(access("\(folder)/r", F_OK) != 0)
        }
    }

    @Test func writeStreamsAndStopsAtTheDisksEnd() throws {
        try withBlockFolder("write streams") { folder in
            // /dev/zero is endless: written up to the end of the disk, then refused.
            let zero = try oasisBlock(["write", "--disk", "memory:64M", "--from", "/dev/zero"])
            #expect(zero.status == 1)
            #expect(
                zero.errorOutput
                    == "oasis block: /dev/zero: stopped at the disk's end after 67108864 bytes "
                    + "from sector 0; the source has more\n")
            // A regular file larger than the space from --sector: refused up front.
            try Data(count: 4096).write(to: URL(fileURLWithPath: "\(folder)/big"))
            let big = try oasisBlock([
                "write", "--disk", "memory:4K", "--from", "\(folder)/big", "--sector", "1",
            ])
            #expect(big.status == 1)
            #expect(
                big.errorOutput.contains("4096 bytes do not fit in the 3584 bytes from sector 1"))
            // A pipe of exactly the disk's size is written whole.
            let piped = try run([
                "sh", "-c",
                "head -c 1048576 /dev/zero | '\(blockOasisPath)' block write --disk memory:1M --from /dev/stdin",
            ])
            #expect(piped.status == 0, "\(piped.errorOutput)")
            #expect(piped.output == "wrote 1048576 bytes (2048 sectors) at sector 0\n")
        }
    }

    @Test func optionsThatCannotWorkAreRefused() throws {
        try withBlockFolder("option checks") { folder in
            let readOnlyCreate = try oasisBlock([
                "info", "--disk", "file:\(folder)/c.img", "--create", "1M", "--read-only",
            ])
            #expect(readOnlyCreate.status != 0)
            #expect(readOnlyCreate.errorOutput.contains("--create and --read-only"))
            let odd = try oasisBlock(["info", "--disk", "memory:513"])
            #expect(odd.status != 0)
            #expect(odd.errorOutput.contains("not a multiple of 512-byte sectors"))
            let null = try oasisBlock(["info", "--disk", "file:/dev/null"])
            #expect(null.status == 1)
            #expect(
                null.errorOutput
                    == "oasis block: file:/dev/null: not a regular file or a block device\n")
        }
    }

    @Test func aStoppedBackendDoesNotHangTheCommands() throws {
        let test = "stopped blkback-sim"
        guard access(blockOasisPath, X_OK) == 0 else {
            try skip(test, "\(blockOasisPath) is not built")
        }
        let simulator: RunningBlkbackSimulator
        do {
            simulator = try RunningBlkbackSimulator([], diskBytes: 8 << 20)
        } catch {
            try skip(test, "xen/blkback-sim: \(error)")
        }
        let pid = simulator.processIdentifier
        defer {
            kill(pid, SIGCONT)
            print("\(test): blkback-sim said:\n\(simulator.stop())")
        }
        kill(pid, SIGSTOP)
        let started = ContinuousClock.now
        let info = try oasisBlock(["info", "--disk", "xen-sim:\(simulator.socketPath)"])
        #expect(info.status == 1)
        #expect(
            info.errorOutput.contains("no answer from the simulator within 10 s"),
            "\(info.errorOutput)")
        #expect(ContinuousClock.now - started < .seconds(25))
    }
}
