// The simulated hypervisor's client side: the three facilities over one unix socket to
// xen/netback-sim, which plays dom0 (xenstored, the toolstack and netback).
// xen/README.md describes the protocol; in short:
//
//   on connect   server → "hello DOMID PAGES\n" + fds [grant memory (memfd), watch socket]
//   requests     "read P" → "ok V" | "enoent";  "write P V" | "rm P" → "ok";
//                "watch P T" | "unwatch P T" → "ok";  "evtchn-unbound D" → "ok PORT" + fds
//                [backend-to-frontend eventfd, frontend-to-backend eventfd];
//                "evtchn-close PORT" → "ok";  failures → "error TEXT"
//   watch events "PATH TOKEN\n" lines on the watch socket
//
// Page 0 of the grant memory is the grant table: byte i is 0 when page i is not granted,
// 1 when granted read-only, 3 when granted writable. A grant reference is a page index.

internal import CSystem
import CXen
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A simulated Xen for one frontend domain, served by `xen/netback-sim` on a unix
/// socket: xenstore requests and watches over the socket, grants as pages of a memfd
/// both processes map, event channels as pairs of eventfds.
///
/// ```swift
/// let xen = try SimulatedHypervisor.connect(to: "/tmp/netback.sock")
/// let vif = try Netfront(facilities: xen, vif: 0, on: loop)
/// ```
public final class SimulatedHypervisor: XenFacilities {
    public let store: SimulatedXenStore
    public let grants: SimulatedGrants
    public let eventChannels: SimulatedEventChannels
    /// The domain id the simulator gave us.
    public let domain: XenDomainID

    private init(connection: SimulatorConnection, domain: XenDomainID, grants: SimulatedGrants)
        throws(XenError)
    {
        self.domain = domain
        self.grants = grants
        self.store = SimulatedXenStore(connection: connection)
        self.eventChannels = try SimulatedEventChannels(connection: connection)
    }

    /// Connects to the simulator listening at `socketPath`.
    public static func connect(to socketPath: String) throws(XenError) -> SimulatedHypervisor {
        let connection = try SimulatorConnection(path: socketPath)
        do throws(XenError) {
            let (hello, fds) = try connection.receiveLine()
            let words = hello.split(separator: " ")
            guard words.count == 3, words[0] == "hello", let domain = UInt16(words[1]),
                let pages = Int(words[2]), pages >= 2, pages <= xenPageSize, fds.count == 2
            else {
                for fd in fds { _ = Glibc.close(fd) }
                throw XenError.simulator("bad greeting \"\(hello)\"")
            }
            connection.watchSocket = fds[1]
            let grants = try SimulatedGrants(memory: fds[0], pageCount: pages)
            return try SimulatedHypervisor(
                connection: connection, domain: XenDomainID(domain), grants: grants)
        } catch {
            connection.close()
            throw error
        }
    }

    public func close() {
        eventChannels.close()
        grants.close()
        store.close()
    }
}

/// The request/response socket and the watch socket of one simulator session.
final class SimulatorConnection {
    private(set) var control: Int32
    var watchSocket: Int32 = -1
    private var watchBuffer: [UInt8] = []

    init(path: String) throws(XenError) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .operationFailed(operation: "socket", XenError.lastErrno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            _ = Glibc.close(fd)
            throw .simulator("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { room in
            room.copyBytes(from: bytes)
            room[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let errno = XenError.lastErrno
            _ = Glibc.close(fd)
            throw .operationFailed(operation: "connect \(path)", errno)
        }
        // A simulator that stops answering (stopped, wedged) must not hold a caller
        // forever: every send and receive on the control socket is bounded.
        var limit = timeval(tv_sec: Self.replyTimeoutSeconds, tv_usec: 0)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            _ = setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
        }
        control = fd
    }

    /// How long a greeting, a reply or a send may take before the session is given up.
    static let replyTimeoutSeconds = 10

    /// Gives the session up after a timed-out exchange: the stream may be mid-line, and
    /// every later request fails at once instead of waiting again.
    private func abandon() -> XenError {
        if control >= 0 {
            _ = Glibc.close(control)
            control = -1
        }
        return .simulator("no answer from the simulator within \(Self.replyTimeoutSeconds) s")
    }

    /// Reads one line (and the descriptors that came with it) from the control socket.
    func receiveLine() throws(XenError) -> (String, [Int32]) {
        guard control >= 0 else { throw .closed("simulator connection") }
        var line: [UInt8] = []
        var fds: [Int32] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            var passed = [Int32](repeating: -1, count: 4)
            var count: Int32 = 0
            // One byte at a time until the newline: replies are short, and nothing
            // beyond the reply is ever consumed.
            let received = chunk.withUnsafeMutableBytes { room in
                oasis_xen_receive_with_fds(control, room.baseAddress, 1, &passed, 4, &count)
            }
            fds += passed.prefix(Int(count))
            if received < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    for fd in fds { _ = Glibc.close(fd) }
                    throw abandon()
                }
                throw .operationFailed(operation: "simulator receive", XenError.lastErrno)
            }
            if received == 0 { throw .simulator("the simulator closed the connection") }
            if chunk[0] == UInt8(ascii: "\n") { break }
            line.append(chunk[0])
            if line.count > 4096 { throw .simulator("reply line too long") }
        }
        return (String(decoding: line, as: UTF8.self), fds)
    }

    /// Sends a request line and returns the reply's words after "ok".
    func request(_ words: [String]) throws(XenError) -> (String?, [Int32]) {
        guard control >= 0 else { throw .closed("simulator connection") }
        let line = words.joined(separator: " ")
        guard !line.contains("\n") else { throw .simulator("newline in request \(words)") }
        var bytes = Array((line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let written = bytes.withUnsafeMutableBytes { raw in
                oasis_xen_send_with_fds(control, raw.baseAddress! + sent, raw.count - sent, nil, 0)
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw abandon() }
                throw .operationFailed(operation: "simulator send", XenError.lastErrno)
            }
            sent += written
        }
        let (reply, fds) = try receiveLine()
        if reply == "ok" { return ("", fds) }
        if reply.hasPrefix("ok ") { return (String(reply.dropFirst(3)), fds) }
        for fd in fds { _ = Glibc.close(fd) }
        if reply == "enoent" { return (nil, []) }
        throw .simulator("\(words.first ?? ""): \(reply)")
    }

    /// The next complete line on the watch socket, or nil.
    func nextWatchLine() throws(XenError) -> String? {
        guard watchSocket >= 0 else { throw .closed("simulator watch socket") }
        while true {
            if let newline = watchBuffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: watchBuffer[..<newline], as: UTF8.self)
                watchBuffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 1024)
            let received = chunk.withUnsafeMutableBytes {
                recv(watchSocket, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if received < 0 {
                if errno == EAGAIN || errno == EINTR { return nil }
                throw .operationFailed(operation: "simulator watch receive", XenError.lastErrno)
            }
            if received == 0 { throw .simulator("the simulator closed the watch socket") }
            watchBuffer += chunk.prefix(received)
        }
    }

    func close() {
        if control >= 0 { _ = Glibc.close(control) }
        if watchSocket >= 0 { _ = Glibc.close(watchSocket) }
        control = -1
        watchSocket = -1
    }
}

/// xenstore served by the simulator. Transactions are accepted and ignored: the
/// simulator applies each request atomically, and one frontend is its only client.
public final class SimulatedXenStore: XenStoreFacility {
    let connection: SimulatorConnection

    init(connection: SimulatorConnection) { self.connection = connection }

    public func read(_ path: String, in transaction: XenStore.Transaction = .none)
        throws(XenError) -> String?
    {
        try connection.request(["read", path]).0
    }

    public func write(
        _ value: String, to path: String, in transaction: XenStore.Transaction = .none
    ) throws(XenError) {
        _ = try connection.request(["write", path, value])
    }

    public func remove(_ path: String, in transaction: XenStore.Transaction = .none)
        throws(XenError)
    {
        _ = try connection.request(["rm", path])
    }

    public func watch(_ path: String, token: String) throws(XenError) {
        _ = try connection.request(["watch", path, token])
    }

    public func unwatch(_ path: String, token: String) throws(XenError) {
        _ = try connection.request(["unwatch", path, token])
    }

    public var watchFileDescriptor: FileDescriptor {
        get throws(XenError) {
            guard connection.watchSocket >= 0 else { throw .closed("simulated xenstore") }
            return FileDescriptor(rawValue: connection.watchSocket)
        }
    }

    public func nextWatchEvent() throws(XenError) -> XenStore.WatchEvent? {
        guard let line = try connection.nextWatchLine() else { return nil }
        guard let space = line.lastIndex(of: " ") else { throw .malformedWatchEvent }
        return XenStore.WatchEvent(
            path: String(line[..<space]), token: String(line[line.index(after: space)...]))
    }

    public func close() { connection.close() }
}

/// Grants as pages of the simulator's shared memory. The frontend allocates pages
/// itself and marks them in the grant table (page 0) for the backend to check.
public final class SimulatedGrants: XenGrantFacility {
    private var memory: UnsafeMutableRawPointer?
    private let pageCount: Int
    private var used: [Bool]

    init(memory fd: Int32, pageCount: Int) throws(XenError) {
        let bytes = pageCount * xenPageSize
        let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        let errno = XenError.lastErrno
        _ = Glibc.close(fd)
        guard let address, address != MAP_FAILED else {
            throw .operationFailed(operation: "mmap simulated grant memory", errno)
        }
        self.memory = address
        self.pageCount = pageCount
        self.used = [Bool](repeating: false, count: pageCount)
        used[0] = true  // the grant table
    }

    public func share(pageCount count: Int, with domain: XenDomainID, writable: Bool = true)
        throws(XenError) -> XenSharedPages
    {
        guard let memory else { throw .closed("simulated grants") }
        var start = 1
        while start + count <= pageCount {
            if let taken = used[start..<(start + count)].firstIndex(of: true) {
                start = taken + 1
                continue
            }
            for page in start..<(start + count) {
                used[page] = true
                memory.storeBytes(of: writable ? 3 : 1, toByteOffset: page, as: UInt8.self)
            }
            return XenSharedPages(
                memory: UnsafeMutableRawBufferPointer(
                    start: memory + start * xenPageSize, count: count * xenPageSize),
                references: (start..<(start + count)).map { XenGrantReference(UInt32($0)) },
                domain: domain)
        }
        throw .operationFailed(operation: "share \(count) simulated pages", .noMemory)
    }

    public func unshare(_ pages: XenSharedPages) throws(XenError) {
        guard let memory else { throw .closed("simulated grants") }
        for reference in pages.references where Int(reference.rawValue) < pageCount {
            let page = Int(reference.rawValue)
            memory.storeBytes(of: 0, toByteOffset: page, as: UInt8.self)
            if page > 0 { used[page] = false }
        }
    }

    /// Unmaps the memory. Pages still referenced by buffers must not be touched after.
    public func close() {
        if let memory { munmap(memory, pageCount * xenPageSize) }
        memory = nil
    }
}

/// Event channels as eventfd pairs the simulator created: one it signals (we wait on
/// it), one we signal. ``fileDescriptor`` is an epoll set of the first kind, so one
/// descriptor covers every port, as `/dev/xen/evtchn` does.
public final class SimulatedEventChannels: XenEventChannelFacility {
    private let connection: SimulatorConnection
    private var epoll: Int32
    private var ports: [UInt32: (incoming: Int32, outgoing: Int32)] = [:]

    init(connection: SimulatorConnection) throws(XenError) {
        self.connection = connection
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else {
            throw .operationFailed(operation: "epoll_create1", XenError.lastErrno)
        }
    }

    public var fileDescriptor: FileDescriptor {
        get throws(XenError) {
            guard epoll >= 0 else { throw .closed("simulated event channels") }
            return FileDescriptor(rawValue: epoll)
        }
    }

    public func allocateUnboundPort(for remote: XenDomainID) throws(XenError)
        -> XenEventChannelPort
    {
        let (reply, fds) = try connection.request(["evtchn-unbound", "\(remote.rawValue)"])
        guard let reply, let port = UInt32(reply), fds.count == 2 else {
            for fd in fds { _ = Glibc.close(fd) }
            throw .simulator("evtchn-unbound: bad reply")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u32 = port
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fds[0], &event) == 0 else {
            for fd in fds { _ = Glibc.close(fd) }
            throw .operationFailed(operation: "epoll_ctl", XenError.lastErrno)
        }
        ports[port] = (fds[0], fds[1])
        return XenEventChannelPort(port)
    }

    public func notify(_ port: XenEventChannelPort) throws(XenError) {
        guard let fds = ports[port.rawValue] else {
            throw .operationFailed(operation: "notify \(port)", .invalidArgument)
        }
        var one: UInt64 = 1
        guard Glibc.write(fds.outgoing, &one, 8) == 8 else {
            throw .operationFailed(operation: "notify \(port)", XenError.lastErrno)
        }
    }

    public func pending() throws(XenError) -> XenEventChannelPort? {
        var event = epoll_event()
        let ready = epoll_wait(epoll, &event, 1, 0)
        guard ready > 0 else { return nil }
        let port = event.data.u32
        if let fds = ports[port] {
            var count: UInt64 = 0
            _ = Glibc.read(fds.incoming, &count, 8)  // consume: the port is now "masked"
        }
        return XenEventChannelPort(port)
    }

    /// Nothing to do: reading the eventfd in ``pending()`` already re-armed it.
    public func unmask(_ port: XenEventChannelPort) throws(XenError) {}

    public func unbind(_ port: XenEventChannelPort) throws(XenError) {
        guard let fds = ports.removeValue(forKey: port.rawValue) else { return }
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fds.incoming, nil)
        _ = Glibc.close(fds.incoming)
        _ = Glibc.close(fds.outgoing)
        _ = try? connection.request(["evtchn-close", "\(port.rawValue)"])
    }

    public func close() {
        for port in Array(ports.keys) { try? unbind(XenEventChannelPort(port)) }
        if epoll >= 0 { _ = Glibc.close(epoll) }
        epoll = -1
    }
}
