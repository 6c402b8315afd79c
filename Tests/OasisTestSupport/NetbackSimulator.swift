import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The repository's root, found from this file's place in it.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

/// xen/netback-sim, built with its Makefile once per test process.
public enum NetbackSimulator {
    public static let directory = repositoryRoot + "/xen/netback-sim"

    private static let built: Result<String, BuildFailure> = {
        guard let result = try? run(["make", "-s", "-C", directory]) else {
            return .failure(BuildFailure(text: "make could not be started"))
        }
        guard result.status == 0 else {
            return .failure(BuildFailure(text: result.output + result.errorOutput))
        }
        return .success(directory + "/netback-sim")
    }()

    public struct BuildFailure: Error, CustomStringConvertible {
        public var text: String
        public var description: String { "building xen/netback-sim failed: \(text)" }
    }

    /// The simulator's executable, built if needed.
    public static func executable() throws -> String { try built.get() }
}

/// A running netback simulator serving one frontend on a fresh socket; stopped with
/// SIGTERM (and waited for) by ``stop()``.
public final class RunningNetbackSimulator {
    private static let counter = Atomic<Int>(0)
    public let socketPath: String
    let process = Process()
    let output = Pipe()

    /// Starts `netback-sim --socket PATH` with `arguments` (`--reflect`, `--tap NAME`,
    /// misbehaviours), inside `namespace` when given, and waits until it listens.
    public init(_ arguments: [String], namespace: String? = nil) throws {
        let n = Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue
        socketPath = "/tmp/oasis-netback-\(getpid())-\(n).sock"
        let executable = try NetbackSimulator.executable()
        unlink(socketPath)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let prefix = namespace.map { ["ip", "netns", "exec", $0] } ?? []
        process.arguments =
            prefix + [executable, "--socket", socketPath, "--verbose", "--once"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin:" + (environment["PATH"] ?? "")
        process.environment = environment
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Deadline(seconds: 10)
        while access(socketPath, F_OK) != 0 {
            guard !deadline.hasPassed, process.isRunning else {
                throw NetbackSimulator.BuildFailure(text: "netback-sim did not start: \(stop())")
            }
            usleep(10_000)
        }
        usleep(50_000)  // from bind to listen
    }

    /// Stops the simulator and returns what it printed.
    @discardableResult
    public func stop() -> String {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        unlink(socketPath)
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
