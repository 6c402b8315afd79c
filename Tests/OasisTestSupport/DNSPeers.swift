// DNS peers for the tests: NSD run as a child of the test, and a minimal DNS client
// whose query bytes are built by hand (no code of ours on the asking side), used to
// wait until a server answers.

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A query for `name`/`type` with `id`; with an OPT offering 1232 bytes when `edns`.
public func dnsQuery(_ name: String, type: UInt16, id: UInt16, edns: Bool = true) -> [UInt8] {
    var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0]
    bytes.append(edns ? 1 : 0)
    for label in name.split(separator: ".") {
        bytes.append(UInt8(label.utf8.count))
        bytes += Array(label.utf8)
    }
    bytes += [0, UInt8(type >> 8), UInt8(type & 0xff), 0, 1]
    if edns { bytes += [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0] }
    return bytes
}

/// `address` (dotted quad) and `port` as a socket address.
public func socketAddress(_ address: String, _ port: UInt16) -> sockaddr_in {
    var result = sockaddr_in()
    result.sin_family = sa_family_t(AF_INET)
    result.sin_port = port.bigEndian
    inet_pton(AF_INET, address, &result.sin_addr)
    return result
}

/// One UDP exchange with 127.0.0.1:`port`; nil when nothing comes back within
/// `timeout` seconds.
public func udpAsk(_ query: [UInt8], port: UInt16, timeout: Double = 0.5) -> [UInt8]? {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var address = socketAddress("127.0.0.1", port)
    let sent = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard sent == query.count, waitReadable(fd, milliseconds: Int32(timeout * 1000)) else {
        return nil
    }
    var buffer = [UInt8](repeating: 0, count: 65536)
    let received = recv(fd, &buffer, buffer.count, 0)
    return received > 0 ? Array(buffer[0..<received]) : nil
}

/// Waits until a server on 127.0.0.1:`port` answers an SOA query for `probe` over UDP;
/// false after `seconds`, or as soon as `running` says the server has gone.
public func waitForDNS(
    port: UInt16, probe: String = "example.test", seconds: Double = 20,
    while running: () -> Bool = { true }
) -> Bool {
    let deadline = Deadline(seconds: seconds)
    while !deadline.hasPassed && running() {
        if udpAsk(dnsQuery(probe, type: 6, id: 1), port: port, timeout: 0.2) != nil {
            return true
        }
    }
    return false
}

/// An NSD server started as a child of the test (`nsd -d`) with its own configuration in
/// `folder`, serving `zones` (origin, file name in `folder`) on 127.0.0.1:`port` with
/// response rate limiting off; stopped by PID with ``stop()``, which tests always call.
public final class NSDProcess {
    public let port: UInt16
    public let folder: String
    let process = Process()

    /// `zoneOptions`: lines added to every zone's clause (a secondary's `request-xfr`
    /// and `allow-notify`, for one).
    public init(
        zones: [(origin: String, file: String)], folder: String, port: UInt16,
        zoneOptions: [String] = []
    ) throws {
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
            for option in zoneOptions { config += "  \(option)\n" }
        }
        try config.write(toFile: folder + "/nsd.conf", atomically: true, encoding: .utf8)
        // NSD must see SIGTERM: the test process may run with it blocked (a blocked
        // mask is inherited), so NSD starts through Python, which clears the mask.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
                + "os.execvp('nsd', ['nsd', '-d', '-c', sys.argv[1]])",
            folder + "/nsd.conf",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    public var isRunning: Bool { process.isRunning }

    /// Waits until NSD answers a query for `probe` (it takes about 0.05 s); false if it
    /// exits or does not answer within 10 s.
    public func waitUntilReady(probe: String) -> Bool {
        waitForDNS(port: port, probe: probe, seconds: 10, while: { isRunning })
    }

    /// With `-d`, the process started becomes NSD's xfrd, which ignores SIGTERM; the
    /// main process (its child, PID in the pidfile) stops everything on SIGTERM.
    /// SIGKILL to both if that fails.
    public func stop() {
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
