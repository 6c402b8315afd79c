// What the iperf3 tests share: the loop run until something is true, Debian's iperf3
// run as a child process, its --json output read, and raw control-connection bytes
// for the scripted and hostile clients.

import Foundation
import OasisLoop
import OasisNet
import OasisServices
import OasisTestSupport
import OasisWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

let loopback = IPv4Address(127, 0, 0, 1)

/// Runs `loop` until `done()` holds (checked every 5 ms); false if `seconds` pass first.
func run(_ loop: EventLoop, seconds: Double = 30, until done: @escaping () -> Bool) throws -> Bool {
    let (promise, resolver) = loop.makePromise(of: Bool.self)
    let deadline = loop.now + .milliseconds(Int(seconds * 1000))
    func check() {
        if done() {
            resolver.resolve(true)
        } else if loop.now >= deadline {
            resolver.resolve(false)
        } else {
            _ = loop.schedule(after: .milliseconds(5)) { check() }
        }
    }
    check()
    return try loop.run(until: promise)
}

/// Why the iperf3 tests cannot run here, or nil.
var iperf3UnavailableReason: String? {
    isInstalled("iperf3") ? nil : "iperf3 is not installed (apt-get install iperf3)"
}

/// An iperf3 server of our own on kernel sockets at 127.0.0.1, on a port the kernel
/// picked.
func ourServer(limits: IPerf3ServerLimits = IPerf3ServerLimits()) throws -> (
    EventLoop, SocketStreams, IPerf3Server<SocketStreams>, UInt16
) {
    let loop = try EventLoop()
    let streams = SocketStreams(address: loopback, on: loop)
    let server = try IPerf3Server(service: streams, port: 0, limits: limits)
    return (loop, streams, server, server.local!.port)
}

/// Runs Debian's `iperf3 -c 127.0.0.1 -p PORT --json` with `options` against a server
/// on `loop` until it exits; its output, read.
func kernelClient(
    _ loop: EventLoop, port: UInt16, _ options: [String],
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> (status: Int32, output: IPerf3JSONOutput?, text: String) {
    let child = try ChildProcess(
        ["iperf3", "-c", "127.0.0.1", "-p", "\(port)", "--json"] + options)
    let exited = try run(loop, seconds: 60) { !child.isRunning }
    #expect(exited, "iperf3 \(options) did not finish", sourceLocation: sourceLocation)
    child.stop()
    let text = child.output
    return (child.status, IPerf3JSONOutput(text), text)
}

// MARK: - Raw control bytes, for clients written by hand

/// A cookie as iperf3 makes them, different each time.
func rawCookie() -> [UInt8] { IPerf3.makeCookie() }

/// A JSON text with iperf3's 4-byte length in front.
func framed(_ json: String) -> [UInt8] {
    let text = Array(json.utf8)
    let length = UInt32(text.count)
    return [
        UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff),
        UInt8(length & 0xff),
    ]
        + text
}

/// SERVER_ERROR with `code` and errno 0, as it arrives.
func serverError(_ code: UInt8) -> [UInt8] { [0xfe, 0, 0, 0, code, 0, 0, 0, 0] }

/// Runs `body` (blocking kernel sockets) on a thread of its own while the test runs
/// `loop`; returns the problems it found (empty: none).
func peer(_ loop: EventLoop, seconds: Double = 30, _ body: @escaping @Sendable () -> [String])
    throws
    -> [String]
{
    let problems = Shared<[String]?>(nil)
    let thread = PeerThread { problems.value = body() }
    let finished = try run(loop, seconds: seconds) { problems.value != nil }
    thread.join()
    return finished ? (problems.value ?? []) : ["the peer did not finish in \(seconds) s"]
}

/// Collects what a peer found wrong.
final class Problems {
    private(set) var list: [String] = []

    func expect(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { list.append(what()) }
    }
}
