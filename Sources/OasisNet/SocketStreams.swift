// The `Stream` surface over the kernel's TCP sockets: non-blocking sockets on the loop.
// An application written against `StreamService` runs on this or on the Oasis stack.

import CSocket
import Glibc
import OasisLoop
import OasisWire
import SystemPackage

/// ``StreamService`` over kernel TCP sockets, driven by the loop: listeners accept in
/// batches, connects complete through writable readiness, each connection reads into
/// its receive buffer while it has room and sends its send buffer while the kernel
/// takes it. Sockets are non-blocking, close-on-exec, with `TCP_NODELAY` (writes made
/// in one loop turn already leave together, so Nagle's delay would only add latency).
///
/// ```swift
/// let tcp = SocketStreams(address: IPv4Address(127, 0, 0, 1), on: loop)
/// let listener = try tcp.listen(port: 8053) { connection in serve(connection) }
/// ```
public final class SocketStreams: StreamService {
    /// The local address listeners bind to (`0.0.0.0`: every address); when it is not
    /// `0.0.0.0`, outgoing connections leave from it too.
    public let address: IPv4Address
    public let loop: EventLoop
    /// The receive buffer of each new connection, in bytes (changeable per connection).
    public let receiveCapacity: Int
    /// The send buffer of each new connection, in bytes (changeable per connection).
    public let sendCapacity: Int

    private var listeners: [CInt: Listener] = [:]
    private var connections: [CInt: Connection] = [:]
    private var connecting: [CInt: Promise<Connection>] = [:]

    /// A service on `loop` whose connections start with buffers of the given sizes.
    public init(
        address: IPv4Address = .any, on loop: EventLoop, receiveCapacity: Int = 65_536,
        sendCapacity: Int = 65_536
    ) {
        self.address = address
        self.loop = loop
        self.receiveCapacity = max(receiveCapacity, 1)
        self.sendCapacity = max(sendCapacity, 1)
    }

    /// Connections open now (accepted or connected, not yet closed).
    public var openConnections: Int { connections.count }
    /// Listeners opened from now on share their port with others that set it too
    /// (`SO_REUSEPORT`): the kernel spreads new connections over them, one per worker.
    public var reusePort = false

    // MARK: Listening

    public func listen(port: UInt16, backlog: Int, _ accept: @escaping (Connection) -> Void)
        throws(StreamError) -> Listener
    {
        let endpoint = StreamEndpoint(address: address, port: port)
        let fd = try SocketStreams.openSocket()
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size))
        }
        let bound = SocketDatagrams.bind(fd, address, port)
        guard bound == 0, Glibc.listen(fd, CInt(clamping: max(backlog, 1))) == 0 else {
            let code = bound == 0 ? errno : bound
            Glibc.close(fd)
            if code == EADDRINUSE { throw .addressInUse(endpoint) }
            throw .system(operation: bound == 0 ? "listen" : "bind", errno: code)
        }
        let listener = Listener(
            fd: fd, local: SocketStreams.localEndpoint(of: fd) ?? endpoint, service: self,
            accept: accept)
        // The listener owns the registration (its close() removes it, and the service
        // holds the listener until then): no reference count per readiness.
        let target = Unretained(listener)
        do {
            try loop.register(FileDescriptor(rawValue: fd), interest: .readable) { _ in
                target.call { $0.acceptWaiting() }
            }
        } catch {
            Glibc.close(fd)
            throw .system(operation: "epoll_ctl", errno: error.errno)
        }
        listeners[fd] = listener
        return listener
    }

    /// A listening kernel socket.
    public final class Listener: StreamListener {
        public let local: StreamEndpoint
        public private(set) var accepted: UInt64 = 0
        /// `accept` failures other than "nothing waiting" (out of descriptors or
        /// memory): counted, and accepting pauses for 100 ms (a level-triggered
        /// listener that cannot accept would otherwise spin).
        public private(set) var acceptFailures: UInt64 = 0
        public var isAccepting = true {
            didSet { updateInterest() }
        }
        private var fd: CInt
        private let service: SocketStreams
        private let accept: (Connection) -> Void
        private var backingOff = false
        private var interest: Interest = .readable

        init(
            fd: CInt, local: StreamEndpoint, service: SocketStreams,
            accept: @escaping (Connection) -> Void
        ) {
            self.fd = fd
            self.local = local
            self.service = service
            self.accept = accept
        }

        /// Accepts what waits in the backlog, a bounded batch per readiness.
        func acceptWaiting() {
            for _ in 0..<64 {
                guard isAccepting, !backingOff, fd >= 0 else { return }
                var from = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let client = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        oasis_accept4(fd, $0, &length)
                    }
                }
                guard client >= 0 else {
                    let code = errno
                    switch code {
                    case EAGAIN, EWOULDBLOCK: return
                    case EINTR, ECONNABORTED: continue
                    default:
                        acceptFailures &+= 1
                        backOff()
                        return
                    }
                }
                SocketStreams.setNoDelay(client)
                let connection = Connection(
                    fd: client, local: SocketStreams.localEndpoint(of: client) ?? local,
                    remote: SocketStreams.endpoint(from), service: service)
                guard connection.start() else {
                    acceptFailures &+= 1
                    continue
                }
                accepted &+= 1
                accept(connection)
            }
        }

        private func backOff() {
            backingOff = true
            updateInterest()
            _ = service.loop.schedule(after: .milliseconds(100)) { [weak self] in
                self?.backingOff = false
                self?.updateInterest()
            }
        }

        private func updateInterest() {
            guard fd >= 0 else { return }
            let wanted: Interest = isAccepting && !backingOff ? .readable : []
            guard wanted != interest else { return }
            interest = wanted
            try? service.loop.setInterest(wanted, for: FileDescriptor(rawValue: fd))
        }

        public func close() {
            guard fd >= 0 else { return }
            try? service.loop.deregister(FileDescriptor(rawValue: fd))
            Glibc.close(fd)
            service.listeners[fd] = nil
            fd = -1
        }
    }

    // MARK: Connecting

    public func connect(to remote: StreamEndpoint) -> Promise<Connection> {
        let promise = Promise<Connection>(on: loop)
        let fd: CInt
        do {
            fd = try SocketStreams.openSocket()
        } catch {
            promise.settle(.failure(error))
            return promise
        }
        SocketStreams.setNoDelay(fd)
        if address != .any {
            let code = SocketDatagrams.bind(fd, address, 0)
            guard code == 0 else {
                Glibc.close(fd)
                promise.settle(.failure(StreamError.system(operation: "bind", errno: code)))
                return promise
            }
        }
        var target = SocketDatagrams.socketAddress(remote.address, remote.port)
        let started = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if started == 0 {
            establish(fd, remote: remote, promise)
            return promise
        }
        let code = errno
        guard code == EINPROGRESS else {
            Glibc.close(fd)
            promise.settle(
                .failure(SocketStreams.streamError(code, operation: "connect", remote: remote)))
            return promise
        }
        // The handshake is under way: the socket turns writable when it completes or fails.
        do {
            try loop.register(FileDescriptor(rawValue: fd), interest: .writable) {
                [weak self] _ in self?.completeConnect(fd, remote: remote, promise)
            }
        } catch {
            Glibc.close(fd)
            promise.settle(
                .failure(StreamError.system(operation: "epoll_ctl", errno: error.errno)))
            return promise
        }
        connecting[fd] = promise
        promise.onCancel { [weak self] in self?.abandonConnect(fd, promise) }
        return promise
    }

    private func completeConnect(_ fd: CInt, remote: StreamEndpoint, _ promise: Promise<Connection>)
    {
        guard connecting[fd] === promise else { return }
        connecting[fd] = nil
        try? loop.deregister(FileDescriptor(rawValue: fd))
        let code = SocketStreams.pendingError(fd)
        guard code == 0 else {
            Glibc.close(fd)
            promise.settle(
                .failure(SocketStreams.streamError(code, operation: "connect", remote: remote)))
            return
        }
        establish(fd, remote: remote, promise)
    }

    private func abandonConnect(_ fd: CInt, _ promise: Promise<Connection>) {
        guard connecting[fd] === promise else { return }
        connecting[fd] = nil
        try? loop.deregister(FileDescriptor(rawValue: fd))
        Glibc.close(fd)
    }

    private func establish(_ fd: CInt, remote: StreamEndpoint, _ promise: Promise<Connection>) {
        let local =
            SocketStreams.localEndpoint(of: fd) ?? StreamEndpoint(address: address, port: 0)
        let connection = Connection(fd: fd, local: local, remote: remote, service: self)
        guard connection.start() else {
            promise.settle(.failure(StreamError.system(operation: "epoll_ctl", errno: EINVAL)))
            return
        }
        promise.settle(.success(connection))
    }

    // MARK: The service as a whole

    /// Closes every listener, abandons the connects under way (their promises fail with
    /// ``StreamError/closed``) and closes every connection now: what the kernel has
    /// taken still leaves, bytes in the send buffers that it does not take are dropped.
    public func close() {
        for listener in Array(listeners.values) { listener.close() }
        abandonConnects()
        for connection in Array(connections.values) { connection.closeNow() }
    }

    /// Listeners and connections hold the service, so it goes only when none is left;
    /// the connects still under way are abandoned then.
    deinit { abandonConnects() }

    private func abandonConnects() {
        for (fd, promise) in connecting {
            try? loop.deregister(FileDescriptor(rawValue: fd))
            Glibc.close(fd)
            promise.settle(.failure(StreamError.closed))
        }
        connecting = [:]
    }

    fileprivate func adopt(_ connection: Connection, fd: CInt) { connections[fd] = connection }
    fileprivate func forget(fd: CInt) { connections[fd] = nil }

    // MARK: Socket helpers

    static func openSocket() throws(StreamError) -> CInt {
        let fd = socket(
            AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        return fd
    }

    static func setNoDelay(_ fd: CInt) {
        var one: CInt = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
    }

    static func endpoint(_ address: sockaddr_in) -> StreamEndpoint {
        StreamEndpoint(
            address: IPv4Address(rawValue: UInt32(bigEndian: address.sin_addr.s_addr)),
            port: UInt16(bigEndian: address.sin_port))
    }

    static func localEndpoint(of fd: CInt) -> StreamEndpoint? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return named == 0 ? endpoint(address) : nil
    }

    /// The socket's pending error (`SO_ERROR`, which reading clears), 0 for none.
    static func pendingError(_ fd: CInt) -> CInt {
        var code: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return errno }
        return code
    }

    /// The typed error for an `errno` from a socket call on a connection to `remote`.
    static func streamError(_ code: CInt, operation: String, remote: StreamEndpoint)
        -> StreamError
    {
        switch code {
        case ECONNREFUSED: return .refused(remote)
        case ECONNRESET, EPIPE, ECONNABORTED: return .resetByPeer
        case ETIMEDOUT: return .timedOut
        case EHOSTUNREACH, ENETUNREACH: return .unreachable(remote.address)
        default: return .system(operation: operation, errno: code)
        }
    }
}

extension SocketStreams {
    /// A connected kernel TCP socket with its two buffers.
    ///
    /// The loop watches the socket for what the connection can use: readable while
    /// the input is open and the receive buffer has room, writable while bytes are
    /// queued. With neither, the socket is taken off the loop altogether (a closed
    /// peer would otherwise report hang-up at every turn); a reset that arrives then is
    /// seen when the application next consumes or writes.
    public final class Connection: StreamConnection {
        public let local: StreamEndpoint
        public let remote: StreamEndpoint
        private var fd: CInt
        private let service: SocketStreams
        private var input: ByteQueue
        private var output: ByteQueue

        private var inputFinished = false
        /// `shutdownWrite` or `close` was called: nothing more may be written.
        private var outputFinishing = false
        /// `shutdown(SHUT_WR)` was made (after the queued bytes).
        private var outputShutDown = false
        private var closeRequested = false
        private var isClosed = false
        private var closeError: StreamError?

        /// The interest registered with the loop; nil while off the loop.
        private var registered: Interest?
        /// Inside a loop callback of this connection: application writes wait for
        /// ``settle()`` at its end instead of scheduling a flush of their own.
        private var handling = false
        /// The input is lent to the application (no nested lending).
        private var lending = false
        /// A turn of this connection is queued on the loop (``scheduleTurn()``).
        private var turnScheduled = false
        /// Input waits for a receive handler set since it arrived.
        private var deliveryDue = false
        /// A write took fewer bytes than offered: ``onWritable(_:)``'s handler is due.
        private var writeWasCut = false

        private var receiveHandler: ((inout StreamInput) -> Void)?
        private var writableHandler: (() -> Void)?
        private var closeHandler: ((StreamError?) -> Void)?
        private var readableWaiters: [Promise<Void>] = []
        private var writableWaiters: [Promise<Void>] = []
        private var closeWaiters: [Promise<StreamError?>] = []

        init(fd: CInt, local: StreamEndpoint, remote: StreamEndpoint, service: SocketStreams) {
            self.fd = fd
            self.local = local
            self.remote = remote
            self.service = service
            input = ByteQueue(limit: service.receiveCapacity)
            output = ByteQueue(limit: service.sendCapacity)
        }

        /// The connection owns its registration (no reference count per readiness): it
        /// leaves the loop before it goes.
        deinit {
            if fd >= 0 {
                if registered != nil { try? service.loop.deregister(FileDescriptor(rawValue: fd)) }
                Glibc.close(fd)
            }
        }

        private var loop: EventLoop { service.loop }

        /// Puts the socket on the loop (reading) and in the service's table; false (and
        /// the socket closed) if the loop refused it.
        func start() -> Bool {
            do {
                try loop.register(FileDescriptor(rawValue: fd), interest: .readable) {
                    [connection = Unretained(self)] readiness in
                    connection.call { $0.handle(readiness) }
                }
            } catch {
                Glibc.close(fd)
                fd = -1
                isClosed = true
                return false
            }
            registered = .readable
            service.adopt(self, fd: fd)
            return true
        }

        // MARK: State

        public var state: StreamState {
            if isClosed { return .closed(closeError) }
            if closeRequested || (inputFinished && outputFinishing) { return .closing }
            if inputFinished { return .inputFinished }
            if outputFinishing { return .outputFinished }
            return .open
        }

        public var noDelay: Bool {
            get { option(Int32(IPPROTO_TCP), TCP_NODELAY) != 0 }
            set { setOption(Int32(IPPROTO_TCP), TCP_NODELAY, newValue ? 1 : 0) }
        }

        public var keepalive: StreamKeepalive? {
            get { keepaliveSetting }
            set {
                keepaliveSetting = newValue
                setOption(SOL_SOCKET, SO_KEEPALIVE, newValue == nil ? 0 : 1)
                guard let newValue else { return }
                // The kernel counts these in whole seconds, at least one.
                func seconds(_ duration: Duration) -> CInt {
                    CInt(clamping: max(duration.components.seconds, 1))
                }
                setOption(Int32(IPPROTO_TCP), TCP_KEEPIDLE, seconds(newValue.idle))
                setOption(Int32(IPPROTO_TCP), TCP_KEEPINTVL, seconds(newValue.interval))
                setOption(Int32(IPPROTO_TCP), TCP_KEEPCNT, CInt(clamping: max(newValue.count, 1)))
            }
        }
        private var keepaliveSetting: StreamKeepalive?

        /// The kernel's algorithm as it names it (`TCP_CONGESTION`: "cubic", "reno",
        /// "bbr", …), or nil if the socket would not say.
        public var congestionControlName: String? {
            var name = [CChar](repeating: 0, count: 16)
            var length = socklen_t(name.count)
            guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_CONGESTION, &name, &length) == 0
            else { return nil }
            return String(
                decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }

        /// NewReno for the kernel's "reno", CUBIC for "cubic"; an algorithm the Oasis
        /// stack does not have (BBR, say, a host's default) reads as CUBIC: see
        /// ``congestionControlName`` for its name.
        public var congestionControl: StreamCongestionControl {
            get { congestionControlName == "reno" ? .newReno : .cubic }
            set {
                // Linux's names: "reno" is NewReno (RFC 6582 recovery is built in).
                let name = newValue == .newReno ? "reno" : "cubic"
                _ = name.withCString { pointer in
                    setsockopt(
                        fd, Int32(IPPROTO_TCP), TCP_CONGESTION, pointer,
                        socklen_t(strlen(pointer)))
                }
            }
        }

        private func option(_ level: CInt, _ name: CInt) -> CInt {
            var value: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            guard fd >= 0, getsockopt(fd, level, name, &value, &length) == 0 else { return 0 }
            return value
        }

        private func setOption(_ level: CInt, _ name: CInt, _ value: CInt) {
            guard fd >= 0 else { return }
            var value = value
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<CInt>.size))
        }

        public var receiveCapacity: Int {
            get { input.limit }
            set {
                input.limit = max(newValue, 1)
                if !handling { updateInterest() }
            }
        }

        public var sendCapacity: Int {
            get { output.limit }
            set { output.limit = max(newValue, 1) }
        }

        public var sendQueued: Int { output.count }

        // MARK: Receiving

        public func onReceive(_ handler: @escaping (inout StreamInput) -> Void) {
            guard !isClosed else { return }
            receiveHandler = handler
            if !input.isEmpty || inputFinished {
                deliveryDue = true
                scheduleTurn()
            }
        }

        public func withInput<Value, Failure: Error>(
            _ body: (inout StreamInput) throws(Failure) -> Value
        ) throws(Failure) -> Value {
            let value = try lend(body)
            if !handling { updateInterest() }
            return value
        }

        public func readable() -> Promise<Void> {
            if inputFinished || isClosed { return Promise(on: loop, value: ()) }
            return waiter(in: &readableWaiters)
        }

        private func lend<Value, Failure: Error>(
            _ body: (inout StreamInput) throws(Failure) -> Value
        ) throws(Failure) -> Value {
            precondition(!lending, "StreamConnection: the input is already lent (nested withInput)")
            lending = true
            defer { lending = false }
            var view = StreamInput(input.bytes, isFinished: inputFinished)
            let value: Value
            do {
                value = try body(&view)
            } catch {
                input.consume(view.consumedCount)
                throw error
            }
            input.consume(view.consumedCount)
            return value
        }

        /// Reads what the kernel has, while the receive buffer has room: a few reads
        /// per readiness, so one busy connection does not hold the loop.
        private func receive() {
            var progressed = false
            for _ in 0..<4 {
                let space = input.reserve(16 * 1024)
                guard space.count > 0 else { break }
                let received = recv(fd, space.baseAddress, space.count, 0)
                if received > 0 {
                    input.commit(received)
                    progressed = true
                    if received < space.count { break }  // most likely drained
                    continue
                }
                if received == 0 {
                    inputFinished = true
                    progressed = true
                    break
                }
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { break }
                fail(code, operation: "recv")
                return
            }
            if progressed { deliver() }
        }

        /// Hands the input to the receive handler and wakes the readable waiters.
        private func deliver() {
            if let handler = receiveHandler, !closeRequested, !isClosed { lend(handler) }
            wake(&readableWaiters)
        }

        // MARK: Sending

        public func write(_ bytes: UnsafeRawBufferPointer) throws(StreamError) -> Int {
            if isClosed { throw closeError ?? .closed }
            if outputFinishing { throw .closed }
            guard !bytes.isEmpty else { return 0 }
            let taken = output.append(bytes)
            if taken < bytes.count { writeWasCut = true }
            if taken > 0 && !handling && registered?.contains(.writable) != true {
                scheduleTurn()
            }
            return taken
        }

        public func onWritable(_ handler: @escaping () -> Void) {
            guard !isClosed else { return }
            writableHandler = handler
        }

        public func writable() -> Promise<Void> {
            if isClosed || output.room > 0 { return Promise(on: loop, value: ()) }
            return waiter(in: &writableWaiters)
        }

        /// A turn of this connection at the loop's next turn: writes made outside a
        /// loop callback leave together then, and input that waited for a receive
        /// handler is delivered.
        private func scheduleTurn() {
            guard !turnScheduled else { return }
            turnScheduled = true
            loop.enqueue { [self] in
                turnScheduled = false
                guard !isClosed else { return }
                turn {
                    if deliveryDue {
                        deliveryDue = false
                        deliver()
                    }
                }
            }
        }

        /// Sends what the kernel takes; the bytes sent, or nil if the connection failed.
        private func sendOutput() -> Int? {
            var sent = 0
            while !output.isEmpty {
                let bytes = output.bytes
                let count = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                if count > 0 {
                    output.consume(count)
                    sent += count
                    continue
                }
                let code = errno
                if count < 0 && code == EINTR { continue }
                if count < 0 && (code == EAGAIN || code == EWOULDBLOCK) { break }
                fail(code, operation: "send")
                return nil
            }
            return sent
        }

        // MARK: Closing

        public func shutdownWrite() {
            guard !isClosed, !outputFinishing else { return }
            outputFinishing = true
            if !handling { settle() }
        }

        public func close() {
            guard !isClosed, !closeRequested else { return }
            closeRequested = true
            outputFinishing = true
            if !handling { settle() }
        }

        public func reset() {
            guard !isClosed else { return }
            output.removeAll()
            finish(nil, abort: true)
        }

        public func onClose(_ handler: @escaping (StreamError?) -> Void) {
            if isClosed {
                handler(closeError)
            } else {
                closeHandler = handler
            }
        }

        public func closed() -> Promise<StreamError?> {
            if isClosed { return Promise(on: loop, value: closeError) }
            let promise = Promise<StreamError?>(on: loop)
            closeWaiters.append(promise)
            return promise
        }

        /// Closes at once for ``SocketStreams/close()``: one last send, then the socket.
        func closeNow() {
            guard !isClosed else { return }
            if !output.isEmpty { _ = sendOutput() }
            finish(nil, abort: false)
        }

        /// Releases the socket: off the loop, closed (after SO_LINGER {1, 0} for an
        /// abort, which makes the kernel send a reset), handlers released, waiters woken.
        private func finish(_ error: StreamError?, abort: Bool) {
            guard !isClosed else { return }
            // The service forgets this connection below and the close handler may drop
            // the application's last reference to it: alive until the end of this call
            // (a release build freed it under its own feet, found by the switch bench).
            let alive = Unmanaged.passRetained(self)
            defer { alive.release() }
            isClosed = true
            closeError = error
            if registered != nil { try? loop.deregister(FileDescriptor(rawValue: fd)) }
            registered = nil
            if abort {
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(
                    fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            } else if error == nil && !inputFinished {
                discardKernelInput()
            }
            Glibc.close(fd)
            service.forget(fd: fd)
            fd = -1
            output.removeAll()
            let handler = closeHandler
            receiveHandler = nil
            writableHandler = nil
            closeHandler = nil
            wake(&readableWaiters)
            wake(&writableWaiters)
            let waiters = closeWaiters
            closeWaiters = []
            for waiter in waiters { waiter.settle(.success(error)) }
            handler?(error)
        }

        /// Reads and drops what the kernel still holds for us: closing a socket with
        /// unread data makes the kernel answer with a reset instead of a graceful end
        /// (RFC 2525 §2.17), which could make the peer drop our last bytes unread.
        private func discardKernelInput() {
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
            defer { scratch.deallocate() }
            for _ in 0..<64 {
                guard recv(fd, scratch.baseAddress, scratch.count, Int32(MSG_DONTWAIT)) > 0 else {
                    return
                }
            }
        }

        private func fail(_ code: CInt, operation: String) {
            finish(
                SocketStreams.streamError(code, operation: operation, remote: remote), abort: false)
        }

        // MARK: The loop's side

        private func handle(_ readiness: Readiness) {
            turn {
                if readiness.contains(.error) {
                    let code = SocketStreams.pendingError(fd)
                    if code != 0 {
                        fail(code, operation: "recv")
                        return
                    }
                }
                if wantsInput { receive() }
            }
        }

        /// Runs `body` (which may call application code) as a callback of this
        /// connection, then settles what the application asked for.
        private func turn(_ body: () -> Void) {
            handling = true
            body()
            handling = false
            settle()
        }

        private var wantsInput: Bool {
            !isClosed && !inputFinished && !closeRequested && input.count < input.limit
        }

        /// Brings the socket in line with what the application asked: sends the queued
        /// bytes (and tells the application when room opens, a few rounds at most),
        /// half-closes or closes once they are gone, and asks the loop for the
        /// readiness still wanted.
        private func settle() {
            var rounds = 0
            while !isClosed {
                if !output.isEmpty {
                    guard sendOutput() != nil else { return }
                }
                // Room opened since a write was cut short (or since a writable()
                // promise was made, which only happens when there was none).
                if output.room > 0 && (writeWasCut || !writableWaiters.isEmpty) {
                    guard rounds < 4 else {
                        scheduleTurn()  // the rest next turn: others get the loop first
                        break
                    }
                    rounds += 1
                    writeWasCut = false
                    handling = true
                    writableHandler?()
                    wake(&writableWaiters)
                    handling = false
                    continue  // send what the handler wrote
                }
                if output.isEmpty && outputFinishing {
                    if closeRequested {
                        finish(nil, abort: false)
                        return
                    }
                    if !outputShutDown {
                        outputShutDown = true
                        if Glibc.shutdown(fd, Int32(SHUT_WR)) != 0 {
                            fail(errno, operation: "shutdown")
                            return
                        }
                    }
                    // Both sides have finished: nothing more can happen.
                    if inputFinished {
                        finish(nil, abort: false)
                        return
                    }
                }
                break
            }
            updateInterest()
        }

        private func updateInterest() {
            guard !isClosed else { return }
            var wanted: Interest = []
            if wantsInput { wanted.insert(.readable) }
            if !output.isEmpty { wanted.insert(.writable) }
            guard wanted != registered, !(wanted.isEmpty && registered == nil) else { return }
            let descriptor = FileDescriptor(rawValue: fd)
            do {
                if wanted.isEmpty {
                    try loop.deregister(descriptor)
                    registered = nil
                } else if registered == nil {
                    try loop.register(descriptor, interest: wanted) {
                        [connection = Unretained(self)] readiness in
                        connection.call { $0.handle(readiness) }
                    }
                    registered = wanted
                } else {
                    try loop.setInterest(wanted, for: descriptor)
                    registered = wanted
                }
            } catch {
                fail(error.errno, operation: "epoll_ctl")
            }
        }

        /// A pending promise kept in `waiters` (settled ones are dropped first).
        private func waiter(in waiters: inout [Promise<Void>]) -> Promise<Void> {
            waiters.removeAll { !$0.isPending }
            let promise = Promise<Void>(on: loop)
            waiters.append(promise)
            return promise
        }

        private func wake(_ waiters: inout [Promise<Void>]) {
            guard !waiters.isEmpty else { return }
            let woken = waiters
            waiters = []
            for waiter in woken { waiter.settle(.success(())) }
        }
    }
}

extension LoopError {
    /// The `errno` behind a loop error (EINVAL when there is none).
    fileprivate var errno: CInt {
        if case .epollControl(_, let code) = self { return code.rawValue }
        return EINVAL
    }
}
