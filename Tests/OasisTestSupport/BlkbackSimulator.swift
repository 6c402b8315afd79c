import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// xen/blkback-sim, built with its Makefile once per test process.
public enum BlkbackSimulator {
    public static let directory = repositoryRoot + "/xen/blkback-sim"

    private static let built: Result<String, NetbackSimulator.BuildFailure> = {
        guard let result = try? run(["make", "-s", "-C", directory]) else {
            return .failure(.init(text: "make could not be started"))
        }
        guard result.status == 0 else {
            return .failure(.init(text: result.output + result.errorOutput))
        }
        return .success(directory + "/blkback-sim")
    }()

    /// The simulator's executable, built if needed.
    public static func executable() throws -> String { try built.get() }
}

/// A running blkback simulator serving one frontend on a fresh socket from a backing
/// file of its own (``diskPath``, removed by ``stop()``); stopped with SIGTERM (and
/// waited for) by ``stop()``.
public final class RunningBlkbackSimulator {
    private static let counter = Atomic<Int>(0)
    public let socketPath: String
    /// The backing file: read it directly to check what the frontend wrote.
    public let diskPath: String
    let process = Process()
    let output = Pipe()
    private var stopped = false

    /// The simulator's process id (to stop and continue it: a backend that stops
    /// answering).
    public var processIdentifier: Int32 { process.processIdentifier }

    /// Creates a disk of `diskBytes` zero bytes and starts `blkback-sim --socket PATH
    /// --disk FILE` with `arguments` (features, misbehaviours), waiting until it listens.
    public init(_ arguments: [String], diskBytes: Int = 8 << 20) throws {
        let n = Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue
        socketPath = "/tmp/oasis-blkback-\(getpid())-\(n).sock"
        diskPath = "/tmp/oasis-blkback-\(getpid())-\(n).img"
        let executable = try BlkbackSimulator.executable()
        unlink(socketPath)
        let fd = open(diskPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0, ftruncate(fd, off_t(diskBytes)) == 0 else {
            if fd >= 0 { close(fd) }
            throw NetbackSimulator.BuildFailure(text: "cannot create \(diskPath)")
        }
        close(fd)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments =
            ["--socket", socketPath, "--disk", diskPath, "--verbose", "--once"] + arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Deadline(seconds: 10)
        while access(socketPath, F_OK) != 0 {
            guard !deadline.hasPassed, process.isRunning else {
                throw NetbackSimulator.BuildFailure(text: "blkback-sim did not start: \(stop())")
            }
            usleep(10_000)
        }
        usleep(50_000)  // from bind to listen
    }

    /// `count` bytes of the backing file at `offset`, read with pread.
    public func readDisk(at offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let fd = open(diskPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        let read = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return read == count ? bytes : []
    }

    /// Writes `bytes` into the backing file at `offset` with pwrite.
    public func writeDisk(_ bytes: [UInt8], at offset: Int) {
        let fd = open(diskPath, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
    }

    /// Stops the simulator, removes the disk and returns what the simulator printed.
    @discardableResult
    public func stop() -> String {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        unlink(socketPath)
        if !stopped { unlink(diskPath) }
        stopped = true
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
