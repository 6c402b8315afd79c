import Foundation
import OasisBits
import Testing

@testable import OasisDNS

#if canImport(Glibc)
    import Glibc
#endif

/// Whether an executable is installed where the tests look.
func isInstalled(_ command: String) -> Bool {
    ["/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/", "/usr/local/bin/"].contains {
        access($0 + command, X_OK) == 0
    }
}

/// Cancels the running test as skipped, saying why (never reported as passed).
func skip(_ reason: String) throws {
    print("SKIPPED: \(reason)")
    try Test.cancel("SKIPPED: \(reason)")
}

/// Runs a command to completion; returns its exit status and its output.
@discardableResult
func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A fresh temporary folder.
func temporaryFolder(_ prefix: String) -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: path!)
}

func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Sends `query` over UDP to 127.0.0.1:`port` and returns the answer, or nil after
/// `timeout` seconds (a dropped query).
func udpExchange(_ query: [UInt8], port: UInt16, timeout: Double = 1) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(
        tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = loopback(port)
    let sent = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard sent == query.count else { return nil }
    var buffer = [UInt8](repeating: 0, count: 65536)
    let received = recv(fd, &buffer, buffer.count, 0)
    guard received > 0 else { return nil }
    return Array(buffer[0..<received])
}

/// Sends `query` over TCP (with its length prefix) and returns the answer.
func tcpExchange(_ query: [UInt8], port: UInt16) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = loopback(port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xff)] + query
    guard send(fd, framed, framed.count, 0) == framed.count else { return nil }
    func readExactly(_ count: Int) -> [UInt8]? {
        var result = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = result.withUnsafeMutableBytes {
                recv(fd, $0.baseAddress! + got, count - got, 0)
            }
            guard n > 0 else { return nil }
            got += n
        }
        return result
    }
    guard let prefix = readExactly(2) else { return nil }
    return readExactly(Int(prefix[0]) << 8 | Int(prefix[1]))
}

func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

/// An empty view with room for any DNS message.
func emptyMessageBuffer() -> Bits {
    var bits = Bits([UInt8](repeating: 0, count: 65536 + 16))
    try! bits.truncate(to: 0)
    return bits
}

/// Builds a query message's bytes.
func queryBytes(
    id: UInt16 = 0x4242, name: String, type: RecordType, recordClass: RecordClass = .internet,
    recursionDesired: Bool = false, edns: EDNS? = nil
) -> [UInt8] {
    var message = Message()
    message.id = id
    message.recursionDesired = recursionDesired
    message.questions = [
        Question(name: try! DomainName(parsing: name), type: type, recordClass: recordClass)
    ]
    message.edns = edns
    var bits = emptyMessageBuffer()
    try! message.encode(into: &bits)
    return bits.copyBytes()
}

/// Our engine's answer to `query`, or nil for a drop.
func engineAnswer(_ engine: AuthoritativeEngine, _ query: [UInt8], transport: Transport)
    -> [UInt8]?
{
    var out = emptyMessageBuffer()
    guard let length = engine.respond(to: Bits(query), transport: transport, into: &out) else {
        return nil
    }
    #expect(length == out.count)
    return out.copyBytes()
}

/// An NSD server, started as a child of the test with its own configuration in a
/// temporary folder, and killed by PID when the test ends (``stop()``; always called).
final class NSDServer {
    let process = Process()
    let port: UInt16
    let folder: String

    /// Writes a configuration serving `zones` (origin, file in `folder`) and starts
    /// NSD on 127.0.0.1:`port`.
    init(zones: [(origin: String, file: String)], folder: String, port: UInt16) throws {
        self.folder = folder
        self.port = port
        var config = """
            server:
              server-count: 1
              username: ""
              chroot: ""
              # Debian's NSD rate-limits answers per source netblock; hundreds of test
              # queries from 127.0.0.1 would trip it (slipped, truncated answers).
              rrl-ratelimit: 0
              ip-address: 127.0.0.1@\(port)
              zonesdir: "\(folder)"
              pidfile: "\(folder)/nsd.pid"
              database: ""
              xfrdfile: "\(folder)/xfrd.state"
              zonelistfile: "\(folder)/zone.list"
              logfile: "\(folder)/nsd.log"
            remote-control:
              control-enable: no

            """
        for zone in zones {
            config += "zone:\n  name: \"\(zone.origin)\"\n  zonefile: \"\(zone.file)\"\n"
        }
        try write(config, to: folder + "/nsd.conf")
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nsd")
        process.arguments = ["-d", "-c", folder + "/nsd.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until NSD answers a query for `probe` (it takes about 0.05 s).
    func waitUntilReady(probe: String) -> Bool {
        for _ in 0..<100 {
            if udpExchange(queryBytes(name: probe, type: .soa), port: port, timeout: 0.1) != nil {
                return true
            }
            if !process.isRunning { return false }
        }
        return false
    }

    /// Stops NSD by PID and waits for it. With `-d`, the process we started becomes
    /// NSD's xfrd, which ignores SIGTERM; the main process (its child, PID in the
    /// pidfile) shuts everything down on SIGTERM. SIGKILL to both if that fails.
    func stop() {
        let text = (try? String(contentsOfFile: folder + "/nsd.pid", encoding: .utf8)) ?? ""
        let main = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        if main > 0 { kill(main, SIGTERM) }
        for _ in 0..<40 where process.isRunning { usleep(50_000) }
        if process.isRunning {
            if main > 0 { kill(main, SIGKILL) }
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }
}
