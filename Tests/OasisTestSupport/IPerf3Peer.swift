// iperf3 as a test peer: Debian's iperf3 run as a child process whose output goes to a
// file, and what its --json output says.

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process (found on PATH) whose output goes to a file, so that a chatty one
/// never blocks on a full pipe while the test runs the loop.
public final class ChildProcess {
    public let process = Process()
    private let outputPath: String

    public init(_ arguments: [String]) throws {
        outputPath = NSTemporaryDirectory() + "oasis-iperf3-\(getpid())-\(UUID().uuidString).txt"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try output.close()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: outputPath)
    }

    public var isRunning: Bool { process.isRunning }

    /// Everything it printed so far.
    public var output: String {
        (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    }

    /// Stops it if it still runs (SIGTERM; SIGKILL if that was not enough after 3 s),
    /// and waits for it.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Deadline(seconds: 3)
            while process.isRunning && !deadline.hasPassed { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    /// Its exit status (after it exited).
    public var status: Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// What `iperf3 --json` printed, read.
public struct IPerf3JSONOutput {
    public let object: [String: Any]

    public init?(_ text: String) {
        // A failed client prints its JSON document all the same, with "error" in it.
        guard let start = text.firstIndex(of: "{"),
            let value = try? JSONSerialization.jsonObject(with: Data(text[start...].utf8)),
            let object = value as? [String: Any]
        else { return nil }
        self.object = object
    }

    public var error: String? { object["error"] as? String }

    private func end(_ key: String) -> [String: Any]? {
        (object["end"] as? [String: Any])?[key] as? [String: Any]
    }

    /// `end.KEY.bytes`, e.g. `sum_sent`, `sum_received`.
    public func bytes(_ key: String) -> Double { (end(key)?["bytes"] as? Double) ?? 0 }

    /// The data connections the client opened (`start.connected`).
    public var connections: Int {
        ((object["start"] as? [String: Any])?["connected"] as? [Any])?.count ?? 0
    }
}
