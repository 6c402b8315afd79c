// Running peers (ovs-ofctl, tshark, ovs-vswitchd) from tests: found on PATH, run as
// subprocesses, skipped with "SKIPPED: <reason>" when missing or not root.

import Foundation
import OasisBits

@testable import OasisOpenFlow

/// The path of `tool` if it is installed.
func findTool(_ tool: String) -> String? {
    for folder in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let path = folder + "/" + tool
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// Prints why a peer test does not run; returns nil so callers can `guard let`.
func skip(_ reason: String) -> String? {
    print("SKIPPED: \(reason)")
    return nil
}

/// `tool`'s path, or nil after printing SKIPPED when it is missing (or when root is
/// needed and we are not root).
func requireTool(_ tool: String, root: Bool = false) -> String? {
    if root && getuid() != 0 { return skip("\(tool) test needs root") }
    guard let path = findTool(tool) else { return skip("\(tool) is not installed") }
    return path
}

struct ProcessResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `path` with `arguments` and waits; stdout and stderr are collected.
@discardableResult
func run(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus, output: String(decoding: outData, as: UTF8.self),
        error: String(decoding: errData, as: UTF8.self))
}
