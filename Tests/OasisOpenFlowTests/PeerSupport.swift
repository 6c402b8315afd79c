// Running peers (ovs-ofctl, tshark, ovs-vswitchd) from tests: found on PATH, run as
// subprocesses, skipped with "SKIPPED: <reason>" when missing or not root.

import Foundation
import Glibc
import OasisBits
import OasisTestSupport
import Testing

@testable import OasisOpenFlow

/// The path of `tool` if it is installed.
func findTool(_ tool: String) -> String? {
    for folder in ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"] {
        let path = folder + "/" + tool
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// `tool`'s path; when it is missing (or root is needed and we are not root), the test
/// is skipped with the reason printed (``skip(_:_:)`` of OasisTestSupport).
func requireTool(_ tool: String, root: Bool = false, test: String = #function) throws -> String {
    if root && getuid() != 0 { try skip(test, "\(tool) test needs root") }
    guard let path = findTool(tool) else { try skip(test, "\(tool) is not installed") }
    return path
}

struct ProcessResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `path` with `arguments` and waits; stdout and stderr are collected. A program
/// that daemonises (`detach`) gets /dev/null instead: its detached child would hold a
/// pipe open forever.
@discardableResult
func run(
    _ path: String, _ arguments: [String], environment: [String: String] = [:], detach: Bool = false
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    if detach { return spawnDaemon(path, arguments, environment: environment) }
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

/// Starts a program that daemonises (forks, and its parent exits once the daemon is
/// ready) with posix_spawn and reaps the parent with waitpid: Foundation's Process does
/// not reap such a parent, and the daemon must not inherit any pipe of ours.
func spawnDaemon(_ path: String, _ arguments: [String], environment: [String: String])
    -> ProcessResult
{
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    // A test thread blocks signals; the daemon must not inherit that, or it would
    // ignore the SIGTERM that stops it.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard spawned == 0 else {
        return ProcessResult(status: -1, output: "", error: "posix_spawn: \(spawned)")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessResult(status: exitStatus, output: "", error: "")
}
