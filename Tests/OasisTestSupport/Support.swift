import Foundation
import OasisDevices
import OasisWire
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The output of a finished child process.
public struct CommandResult: Sendable {
    public init(status: Int32, output: String, errorOutput: String) {
        self.status = status
        self.output = output
        self.errorOutput = errorOutput
    }

    public var status: Int32
    public var output: String
    public var errorOutput: String
}

/// Runs a command and waits for it. Child processes start in the calling thread's
/// network namespace; the tests run every command that must see a namespace through
/// `ip netns exec`, so they do not depend on which thread they run on.
@discardableResult
public func run(_ arguments: [String]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin:" + (environment["PATH"] ?? "")
    process.environment = environment
    let output = Pipe()
    let errorOutput = Pipe()
    process.standardOutput = output
    process.standardError = errorOutput
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errorOutput.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        output: String(decoding: outputData, as: UTF8.self),
        errorOutput: String(decoding: errorData, as: UTF8.self))
}

/// Whether an executable is on the PATH the tests use.
public func isInstalled(_ command: String) -> Bool {
    ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/", "/usr/local/bin/"].contains {
        access($0 + command, X_OK) == 0
    }
}

public struct CommandFailed: Error, CustomStringConvertible {
    public init(command: [String], result: CommandResult) {
        self.command = command
        self.result = result
    }

    public var command: [String]
    public var result: CommandResult
    public var description: String {
        "\(command.joined(separator: " ")) exited \(result.status): \(result.errorOutput)"
    }
}

/// A network namespace created for one test by `ip netns add` and removed by
/// ``withTestNamespace(_:)`` whatever the test does.
public struct TestNamespace {
    private static let counter = Atomic<Int>(0)

    public let name: String
    public var path: String { NetworkNamespace.path(named: name) }

    /// Why namespace tests cannot run here, or nil when they can.
    public static var unavailableReason: String? {
        if getuid() != 0 { return "not root: network namespaces and TAP need CAP_NET_ADMIN" }
        if !isInstalled("ip") { return "ip (iproute2) is not installed" }
        if access("/dev/net/tun", F_OK) != 0 { return "/dev/net/tun is missing" }
        return nil
    }

    public static func create() throws -> TestNamespace {
        let n = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        let namespace = TestNamespace(name: "oasis-t-\(getpid())-\(n)")
        try namespace.checked(["ip", "netns", "add", namespace.name])
        return namespace
    }

    public func remove() {
        _ = try? run(["ip", "netns", "del", name])
    }

    /// Runs a command inside the namespace.
    @discardableResult
    public func run(_ arguments: [String]) throws -> CommandResult {
        try OasisTestSupport.run(["ip", "netns", "exec", name] + arguments)
    }

    /// Runs a command inside the namespace and throws if it fails.
    @discardableResult
    public func runChecked(_ arguments: [String]) throws -> CommandResult {
        try checked(["ip", "netns", "exec", name] + arguments)
    }

    @discardableResult
    private func checked(_ arguments: [String]) throws -> CommandResult {
        let result = try OasisTestSupport.run(arguments)
        guard result.status == 0 else { throw CommandFailed(command: arguments, result: result) }
        return result
    }

    /// A veth pair: `va` up with no address (for the device under test), `vb` up at
    /// 192.0.2.1/24 (the kernel's side). With `kernelChecksums` the kernel fills in the
    /// checksums it sends on `vb` instead of leaving them to the veth's offload: what a
    /// device reads raw on `va` then carries complete ones, as a real wire does.
    public func addVethPair(kernelChecksums: Bool) throws {
        try runChecked(["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"])
        try runChecked(["ip", "link", "set", "va", "up"])
        try runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "vb"])
        try runChecked(["ip", "link", "set", "vb", "up"])
        if kernelChecksums { try runChecked(["ethtool", "-K", "vb", "tx", "off"]) }
    }

    /// Keeps IPv6 neighbour discovery and router solicitations out of the frames
    /// and counters the tests look at.
    public func disableIPv6() throws {
        try runChecked(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
        try runChecked(["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
    }
}

/// Why AF_XDP sockets cannot be opened here (a kernel built without them), or nil.
public var xdpUnavailableReason: String? {
    let fd = socket(44 /* AF_XDP */, Int32(SOCK_RAW.rawValue), 0)
    guard fd >= 0 else { return "this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)" }
    close(fd)
    return nil
}

/// Creates a namespace, runs `body`, and deletes the namespace even when `body`
/// throws. Returns false (after printing why) when namespaces cannot be used here.
@discardableResult
public func withTestNamespace(_ test: String, _ body: (TestNamespace) throws -> Void) throws -> Bool
{
    if let reason = TestNamespace.unavailableReason {
        try skip(test, reason)
    }
    let namespace = try TestNamespace.create()
    defer { namespace.remove() }
    try namespace.disableIPv6()
    try body(namespace)
    return true
}

/// Waits until `descriptor` is readable or `milliseconds` pass.
public func waitReadable(_ descriptor: Int32, milliseconds: Int32) -> Bool {
    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, milliseconds) > 0
}

/// A monotonic deadline for polling loops.
public struct Deadline {
    private let end: ContinuousClock.Instant
    public init(seconds: Double) { end = .now + .milliseconds(Int(seconds * 1000)) }
    public var hasPassed: Bool { ContinuousClock.now >= end }
}

/// An Ethernet frame with a local experimental EtherType (0x88b5) and a marker byte,
/// padded to the 60-byte minimum.
public func experimentalFrame(
    destination: MACAddress = .broadcast, source: MACAddress, marker: UInt8
) -> [UInt8] {
    var frame = destination.bytes + source.bytes + [0x88, 0xb5]
    frame += [0x4f, 0x41, 0x53, 0x49, marker]  // "OASI" + marker
    frame += [UInt8](repeating: 0, count: 60 - frame.count)
    return frame
}

public func isExperimentalFrame(_ frame: some Collection<UInt8>, marker: UInt8) -> Bool {
    let bytes = Array(frame)
    return bytes.count >= 19 && bytes[12] == 0x88 && bytes[13] == 0xb5
        && Array(bytes[14..<19]) == [0x4f, 0x41, 0x53, 0x49, marker]
}

/// Reports a test that cannot run here: prints why, then cancels the test so that
/// Swift Testing reports it as skipped, never as passed.
public func skip(_ test: String, _ reason: String) throws -> Never {
    print("SKIPPED: \(test): \(reason)")
    try Test.cancel("SKIPPED: \(reason)")
}

/// `arguments` run with every signal unblocked: the test runner's threads block many
/// (SIGINT and SIGTERM among them) and its children inherit the mask, so a `timeout`
/// cannot stop what it runs and a program that interrupts its own shells (Mininet)
/// waits for ever. Python (installed for the tests) resets the mask, then execs.
public func withSignalsUnblocked(_ arguments: [String]) -> [String] {
    [
        "python3", "-c",
        "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, set()); "
            + "os.execvp(sys.argv[1], sys.argv[1:])",
    ] + arguments
}
