// The `Datagram` surface over the kernel's UDP sockets: the tutorial's unix-socket.

import CSocket
import Glibc
import OasisBits
import OasisLoop
import OasisWire
import SystemPackage

/// ``DatagramService`` over kernel UDP sockets, one non-blocking socket per port,
/// bound to `address`, read by the loop. An application written against
/// ``DatagramService`` runs on this or on ``IPv4Stack`` unchanged.
public final class SocketDatagrams: DatagramService {
    /// The local address sockets bind to (`0.0.0.0` for every address).
    public let address: IPv4Address
    private let loop: EventLoop
    private let pool = BufferPool(limit: 256)
    /// Datagrams read per batch, and replies per `sendmmsg`.
    static let batch = 32
    // The batch's message headers, vectors and addresses, made once: the kernel reads
    // and writes them in place.
    private let receiveAddresses = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: batch)
    /// A buffer read into without a datagram to keep (none waiting, or one cut short),
    /// kept for the next read.
    private var spare: Packet?
    /// The datagrams of the batch being handled.
    private var received = DatagramBatch(capacity: batch)
    private let sendHeaders = UnsafeMutablePointer<oasis_mmsghdr>.allocate(capacity: batch)
    private let sendVectors = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
    private let sendAddresses = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: batch)
    /// The replies queued for the next `sendmmsg`: they own the bytes the vectors point
    /// at until it has run.
    private var pendingPayloads = Batch<Packet>(capacity: batch)
    private var pendingCount: Int { pendingPayloads.count }
    private var pendingFD: CInt = -1
    /// Inside a receive batch: replies wait for the batch's `sendmmsg`.
    private var batching = false
    /// Replies the kernel refused (a full socket buffer): counted, not retried.
    public private(set) var sendFailures: UInt64 = 0
    /// Datagrams longer than a buffer's tailroom (a page less its headroom, about
    /// 3 900 bytes): the kernel could hand over only their start, so they are dropped
    /// and counted, never passed on cut short.
    public private(set) var oversizeDrops: UInt64 = 0
    /// Datagrams read and dropped because no buffer was free (the application holds
    /// them all): read all the same, so that a level-triggered socket does not wake the
    /// loop on every turn until a buffer comes back.
    public private(set) var noBufferDrops: UInt64 = 0
    private var sockets: [UInt16: CInt] = [:]
    /// The port last sent from and its socket: replies to a batch come from one port.
    private var lastPort: UInt16?
    private var lastFD: CInt = -1
    /// The kernel receive buffer asked for each socket, or nil for the system default
    /// (about 200 KiB: a burst of a few hundred datagrams overflows it).
    public let receiveBufferBytes: Int?
    /// Sockets opened from now on share their port with other sockets that set it too
    /// (`SO_REUSEPORT`): the kernel spreads datagrams over them by a hash of the flow,
    /// one socket per worker loop.
    public var reusePort = false

    /// Sockets bound to `address`; with `receiveBufferBytes`, each socket's kernel
    /// receive buffer is set to it (`SO_RCVBUFFORCE` when privileged, else `SO_RCVBUF`,
    /// which the kernel caps at `net.core.rmem_max`).
    public init(address: IPv4Address = .any, on loop: EventLoop, receiveBufferBytes: Int? = nil) {
        self.address = address
        self.loop = loop
        self.receiveBufferBytes = receiveBufferBytes
    }

    public func listen(
        port: UInt16, batches handler: @escaping (inout DatagramBatch) -> Void
    ) throws(DatagramError) {
        guard sockets[port] == nil else { throw .portInUse(port) }
        let fd = try openSocket(port: port)
        sockets[port] = fd
        let local = DatagramEndpoint(address: address, port: port)
        let service = Unretained(self)
        do {
            try loop.register(FileDescriptor(rawValue: fd), interest: .readable) { _ in
                service.call { $0.receive(on: fd, local: local, handler) }
            }
        } catch {
            Glibc.close(fd)
            sockets[port] = nil
            throw .system(operation: "epoll_ctl", errno: EINVAL)
        }
    }

    private func openSocket(port: UInt16) throws(DatagramError) -> CInt {
        let fd = socket(
            AF_INET,
            Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size))
        }
        if let receiveBufferBytes {
            var size = CInt(clamping: receiveBufferBytes)
            let length = socklen_t(MemoryLayout<CInt>.size)
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) != 0 {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, length)
            }
        }
        let code = SocketDatagrams.bind(fd, address, port)
        guard code == 0 else {
            Glibc.close(fd)
            if code == EADDRINUSE { throw .portInUse(port) }
            throw .system(operation: "bind", errno: code)
        }
        return fd
    }

    /// Reads what is waiting, up to a batch of datagrams straight into pool buffers,
    /// hands the batch to `handler`, and sends the replies the handler produced in one
    /// `sendmmsg`. Datagrams are read with one `recvfrom` each: measured here, the
    /// kernel's per-message `msghdr` handling in `recvmmsg` cost more than the system
    /// calls it saves (about 0.25 µs of kernel time per query on loopback), while on
    /// the sending side one `sendmmsg` per batch is the cheaper.
    private func receive(
        on fd: CInt, local: DatagramEndpoint, _ handler: (inout DatagramBatch) -> Void
    ) {
        for _ in 0..<4 {
            var count = 0
            var drained = false
            // Reads, not datagrams kept, bound the batch: a flood of oversize ones
            // still hands the loop back.
            var reads = 0
            while reads < SocketDatagrams.batch {
                reads += 1
                // The buffer left from the last read, or a new one.
                var buffer: Packet
                if let kept = spare.take() {
                    buffer = kept
                } else {
                    guard let fresh = try? pool.allocatePacket() else {
                        // A read of no bytes takes the datagram off the socket whole.
                        if oasis_recvfrom(fd, nil, 0, nil, nil) < 0 {
                            drained = true
                        } else {
                            noBufferDrops &+= 1
                        }
                        if drained { break }
                        continue
                    }
                    buffer = fresh
                }
                // The datagram lands in the packet's tailroom, which then holds it.
                var got = -1
                var cut = false
                let address = receiveAddresses + count
                buffer.withUnsafeMutableTailroom { tailroom -> Int in
                    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                    got = address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        oasis_recvfrom(fd, tailroom.baseAddress, tailroom.count, $0, &length)
                    }
                    // The whole length came back (MSG_TRUNC): more than the room means
                    // the kernel kept only the start.
                    cut = got > tailroom.count
                    return cut ? 0 : max(got, 0)
                }
                guard got >= 0 else {
                    drained = true  // EAGAIN (or an error to retry on the next readiness)
                    spare = consume buffer
                    break
                }
                if cut {
                    oversizeDrops &+= 1  // the same buffer takes the next datagram
                    spare = consume buffer
                    continue
                }
                let from = receiveAddresses[count]
                let source = DatagramEndpoint(
                    address: IPv4Address(rawValue: UInt32(bigEndian: from.sin_addr.s_addr)),
                    port: UInt16(bigEndian: from.sin_port))
                received.append(Datagram(source: source, destination: local, payload: buffer))
                count += 1
            }
            guard count > 0 else { return }  // nothing waiting (or nothing kept)
            batching = true
            handler(&received)
            received.removeAll()
            batching = false
            flush()
            if drained { return }
        }
    }

    /// Sends the replies queued during a receive batch, in one `sendmmsg` per socket
    /// (the queue is flushed early when the socket changes or it is full).
    private func flush() {
        var start = 0
        while start < pendingCount {
            let sent = Int(
                oasis_sendmmsg(pendingFD, sendHeaders + start, UInt32(pendingCount - start)))
            if sent <= 0 {
                sendFailures &+= UInt64(pendingCount - start)
                break
            }
            start += sent
        }
        pendingPayloads.removeAll()
    }

    /// Queues a reply for the batch's `sendmmsg`.
    private func enqueue(_ payload: consuming Packet, to target: sockaddr_in, fd: CInt) {
        if pendingCount > 0 && (pendingFD != fd || pendingCount == SocketDatagrams.batch) {
            flush()
        }
        pendingFD = fd
        let index = pendingCount
        sendVectors[index] = iovec(
            iov_base: payload.buffer.baseAddress + payload.offset, iov_len: payload.count)
        pendingPayloads.append(payload)
        sendAddresses[index] = target
        sendHeaders[index] = oasis_mmsghdr(
            msg_hdr: msghdr(
                msg_name: UnsafeMutableRawPointer(sendAddresses + index),
                msg_namelen: socklen_t(MemoryLayout<sockaddr_in>.size),
                msg_iov: sendVectors + index, msg_iovlen: 1, msg_control: nil, msg_controllen: 0,
                msg_flags: 0),
            msg_len: 0)
    }

    public func stopListening(port: UInt16) {
        guard let fd = sockets.removeValue(forKey: port) else { return }
        if lastPort == port { lastPort = nil }
        try? loop.deregister(FileDescriptor(rawValue: fd))
        Glibc.close(fd)
    }

    public func allocatePayload() throws(DatagramError) -> Packet {
        guard let packet = try? pool.allocatePacket() else { throw .noBuffers }
        return packet
    }

    public func send(
        _ payload: consuming Packet, to destination: DatagramEndpoint, from port: UInt16
    ) throws(DatagramError) {
        guard payload.count <= maximumUDPPayload else { throw .payloadTooLarge(payload.count) }
        let fd: CInt
        if port == lastPort {
            fd = lastFD
        } else if let existing = sockets[port] {
            fd = existing
            lastPort = port
            lastFD = existing
        } else {
            // Sending from a port nobody listens on: bind a socket for it (replies to it
            // are then read by nobody and dropped, as on the Oasis stack).
            fd = try openSocket(port: port)
            sockets[port] = fd
        }
        var target = SocketDatagrams.socketAddress(destination.address, destination.port)
        if batching {
            enqueue(payload, to: target, fd: fd)
            return
        }
        let sent = payload.withUnsafeBytes { bytes in
            withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(
                        fd, bytes.baseAddress, bytes.count, 0, $0,
                        socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent >= 0 else { throw .system(operation: "sendto", errno: errno) }
    }

    deinit {
        // The loop's registrations hold this service unretained: they go first.
        close()
        receiveAddresses.deallocate()
        sendHeaders.deallocate()
        sendVectors.deallocate()
        sendAddresses.deallocate()
    }

    /// Closes every socket.
    public func close() {
        for port in Array(sockets.keys) { stopListening(port: port) }
    }

    /// Binds `fd` to `address`:`port`: 0, or the `errno` of the failure.
    /// Throws ``DatagramError/portInUse(_:)`` when a UDP socket (of any process) holds
    /// `address`:`port`: a probe bound with neither `SO_REUSEADDR` nor `SO_REUSEPORT`
    /// cannot share it. Call it before opening sockets with ``reusePort``, which would
    /// otherwise silently join another server's on the port.
    public static func ensurePortFree(address: IPv4Address, port: UInt16) throws(DatagramError) {
        let probe = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw .system(operation: "socket", errno: errno) }
        let code = bind(probe, address, port)
        Glibc.close(probe)
        if code == EADDRINUSE { throw .portInUse(port) }
        if code != 0 { throw .system(operation: "bind", errno: code) }
    }

    static func bind(_ fd: CInt, _ address: IPv4Address, _ port: UInt16) -> CInt {
        var local = socketAddress(address, port)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return bound == 0 ? 0 : errno
    }

    static func socketAddress(_ address: IPv4Address, _ port: UInt16) -> sockaddr_in {
        var result = sockaddr_in()
        result.sin_family = sa_family_t(AF_INET)
        result.sin_port = port.bigEndian
        result.sin_addr.s_addr = address.rawValue.bigEndian
        return result
    }
}
