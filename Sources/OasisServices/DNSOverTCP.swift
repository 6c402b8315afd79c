// DNS over TCP (RFC 1035 §4.2.2, RFC 7766) on kernel sockets: a small non-blocking
// server on the loop. Each message is prefixed by its 2-byte length; a client may send
// many queries on one connection without waiting (pipelining), and gets the answers in
// order. Everything is bounded: connections, bytes held per connection, idle time.
// The Oasis stack has no TCP yet; this runs beside the UDP service on the sockets
// backend.

import Glibc
import OasisBits
import OasisDNS
import OasisLoop
import OasisNet
import OasisWire
import SystemPackage

/// The bounds of the TCP server.
public struct DNSOverTCPLimits {
    /// Connections served at once; beyond it, new ones wait in the kernel's backlog.
    public var connections = 128
    /// A connection with no progress (nothing read, nothing written) this long is closed.
    public var idleTimeout: Duration = .seconds(10)
    /// Answers queued for a client that does not read them; past it, the connection's
    /// queries are not read (nor answered) until the client catches up.
    public var pendingOutput = 128 * 1024

    public init() {}
}

public final class DNSOverTCP {
    public let engine: AuthoritativeEngine
    public let limits: DNSOverTCPLimits
    private let loop: EventLoop
    private let listener: CInt
    private var connections: [CInt: Connection] = [:]
    private var acceptPaused = false
    private var sweep: TimerID?
    /// Where answers are built: a 2-byte length prefix, then up to 65535 bytes.
    private let scratch = Buffer(byteCount: 2 + 65535)

    public private(set) var statistics = DNSStatistics()
    public private(set) var connectionsAccepted: UInt64 = 0
    public private(set) var connectionsClosedIdle: UInt64 = 0
    public private(set) var connectionsFailed: UInt64 = 0

    /// One client: the bytes read but not yet answered, and the answers not yet sent.
    private final class Connection {
        let fd: CInt
        /// A whole message (2 + 65535 bytes) always fits.
        var input: Bits
        var output: [UInt8] = []
        var outputStart = 0
        var lastProgress: Duration
        var peerClosed = false
        var interest: Interest = .readable

        init(fd: CInt, now: Duration) {
            self.fd = fd
            lastProgress = now
            input = (try? Bits(buffer: Buffer(byteCount: 2 + 65535), offset: 0, count: 0))!
        }

        var pending: Int { output.count - outputStart }
    }

    /// Listens on `address`:`port` (TCP) and serves on `loop`.
    public init(
        engine: AuthoritativeEngine, address: IPv4Address, port: UInt16, on loop: EventLoop,
        limits: DNSOverTCPLimits = DNSOverTCPLimits()
    ) throws(DatagramError) {
        self.engine = engine
        self.loop = loop
        self.limits = limits
        let fd = socket(
            AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = address.rawValue.bigEndian
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, 128) == 0 else {
            let code = errno
            Glibc.close(fd)
            if code == EADDRINUSE { throw .portInUse(port) }
            throw .system(operation: "bind/listen", errno: code)
        }
        listener = fd
        do {
            try loop.register(FileDescriptor(rawValue: fd), interest: .readable) {
                [unowned self] _ in self.acceptSome()
            }
        } catch {
            Glibc.close(fd)
            throw .system(operation: "epoll_ctl", errno: EINVAL)
        }
        scheduleSweep()
    }

    /// Connections open now.
    public var openConnections: Int { connections.count }

    /// Closes the listener and every connection.
    public func close() {
        if let sweep { _ = loop.cancelTimer(sweep) }
        sweep = nil
        for fd in Array(connections.keys) { closeConnection(fd) }
        try? loop.deregister(FileDescriptor(rawValue: listener))
        Glibc.close(listener)
    }

    // MARK: Accepting

    private func acceptSome() {
        for _ in 0..<64 {
            guard connections.count < limits.connections else {
                pauseAccepting(true)
                return
            }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }  // EAGAIN: none left (or a transient error)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var one: CInt = 1
            setsockopt(
                fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
            let connection = Connection(fd: fd, now: loop.now)
            do {
                try loop.register(FileDescriptor(rawValue: fd), interest: .readable) {
                    [unowned self] readiness in self.service(connection, readiness)
                }
            } catch {
                Glibc.close(fd)
                connectionsFailed &+= 1
                continue
            }
            connections[fd] = connection
            connectionsAccepted &+= 1
        }
    }

    private func pauseAccepting(_ pause: Bool) {
        guard pause != acceptPaused else { return }
        acceptPaused = pause
        try? loop.setInterest(pause ? [] : .readable, for: FileDescriptor(rawValue: listener))
    }

    // MARK: One connection

    private func service(_ connection: Connection, _ readiness: Readiness) {
        if connection.interest.contains(.readable) {
            guard readSome(connection) else { return }
        }
        if connection.pending > 0 {
            guard flush(connection) else { return }
        }
        updateInterest(connection)
    }

    /// Reads what is there, answers every complete query; false if the connection closed.
    private func readSome(_ connection: Connection) -> Bool {
        for _ in 0..<16 {
            guard connection.pending <= limits.pendingOutput, connection.input.tailroom > 0
            else { return true }
            var received = 0
            connection.input.withUnsafeMutableTailroom { room in
                received = recv(connection.fd, room.baseAddress, room.count, 0)
                return max(received, 0)
            }
            if received > 0 {
                connection.lastProgress = loop.now
                answerComplete(connection)
                continue
            }
            if received == 0 {
                connection.peerClosed = true
                answerComplete(connection)
                return true
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return true }
            connectionsFailed &+= 1
            closeConnection(connection.fd)
            return false
        }
        return true
    }

    /// Answers each complete message in the input, in order, into the output queue;
    /// keeps a partial message (moved to the front of the buffer) for the next read.
    private func answerComplete(_ connection: Connection) {
        let input = connection.input
        var start = 0
        while input.count - start >= 2, connection.pending <= limits.pendingOutput {
            let length = input.withUnsafeBytes { Int($0[start]) << 8 | Int($0[start + 1]) }
            guard input.count - start - 2 >= length,
                let query = try? input.slice(from: start + 2, length: length)
            else { break }
            start += 2 + length
            answer(query, to: connection)
        }
        guard start > 0 else { return }
        let remaining = input.count - start
        connection.input.withUnsafeMutableBytes { bytes in
            if remaining > 0 {
                bytes.baseAddress!.copyMemory(
                    from: bytes.baseAddress! + start, byteCount: remaining)
            }
        }
        try? connection.input.truncate(to: remaining)
    }

    private func answer(_ query: Bits, to connection: Connection) {
        statistics.queries &+= 1
        guard var reply = try? Bits(buffer: scratch, offset: 0, count: 2),
            let length = engine.respond(to: query, transport: .tcp, into: &reply)
        else {
            statistics.dropsUnanswerable &+= 1
            return
        }
        reply.withUnsafeMutableBytes { bytes in
            bytes[0] = UInt8(length >> 8)
            bytes[1] = UInt8(length & 0xff)
            connection.output.append(contentsOf: bytes)
        }
        statistics.responses &+= 1
    }

    /// Writes as much of the output queue as the socket takes; false if it closed.
    private func flush(_ connection: Connection) -> Bool {
        while connection.pending > 0 {
            let sent = connection.output.withUnsafeBytes { bytes in
                send(
                    connection.fd, bytes.baseAddress! + connection.outputStart,
                    connection.pending, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                connection.outputStart += sent
                connection.lastProgress = loop.now
                continue
            }
            if sent < 0 && errno == EINTR { continue }
            if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            connectionsFailed &+= 1
            statistics.dropsSendFailed &+= 1
            closeConnection(connection.fd)
            return false
        }
        if connection.pending == 0 {
            connection.output.removeAll(keepingCapacity: connection.output.capacity <= 65536)
            connection.outputStart = 0
            // Queries held back while the queue was full can be answered now.
            if !connection.input.isEmpty { answerComplete(connection) }
            if connection.pending > 0 { return flush(connection) }
        } else if connection.outputStart >= 65536 {
            connection.output.removeFirst(connection.outputStart)
            connection.outputStart = 0
        }
        return true
    }

    private func updateInterest(_ connection: Connection) {
        var interest: Interest = []
        if !connection.peerClosed && connection.pending <= limits.pendingOutput {
            interest.insert(.readable)
        }
        if connection.pending > 0 { interest.insert(.writable) }
        if interest.isEmpty {
            // The client closed its side and has every answer.
            closeConnection(connection.fd)
            return
        }
        guard interest != connection.interest else { return }
        connection.interest = interest
        try? loop.setInterest(interest, for: FileDescriptor(rawValue: connection.fd))
    }

    private func closeConnection(_ fd: CInt) {
        guard connections.removeValue(forKey: fd) != nil else { return }
        try? loop.deregister(FileDescriptor(rawValue: fd))
        Glibc.close(fd)
        pauseAccepting(false)
    }

    // MARK: Idle connections

    private func scheduleSweep() {
        let period = max(limits.idleTimeout / 4, .milliseconds(100))
        sweep = loop.schedule(after: period) { [weak self] in
            guard let self else { return }
            let now = self.loop.now
            for (fd, connection) in self.connections
            where now - connection.lastProgress >= self.limits.idleTimeout {
                self.connectionsClosedIdle &+= 1
                self.closeConnection(fd)
            }
            self.scheduleSweep()
        }
    }

    public var summary: String {
        "\(statistics.summary); connections \(connectionsAccepted) accepted, "
            + "\(connectionsClosedIdle) closed idle, \(connectionsFailed) failed"
    }
}
