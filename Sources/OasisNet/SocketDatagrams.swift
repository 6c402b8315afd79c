// The `Datagram` surface over the kernel's UDP sockets: the tutorial's unix-socket.

import Glibc
import OasisBits
import OasisLoop
import SystemPackage

/// ``DatagramService`` over kernel UDP sockets, one non-blocking socket per port,
/// bound to `address`, read by the loop. An application written against
/// ``DatagramService`` runs on this or on ``IPv4Stack`` unchanged.
public final class SocketDatagrams: DatagramService {
    /// The local address sockets bind to (`0.0.0.0` for every address).
    public let address: IPv4Address
    private let loop: EventLoop
    private let pool = BufferPool(limit: 256)
    private var sockets: [UInt16: CInt] = [:]
    /// The kernel receive buffer asked for each socket, or nil for the system default
    /// (about 200 KiB: a burst of a few hundred datagrams overflows it).
    public let receiveBufferBytes: Int?

    /// Sockets bound to `address`; with `receiveBufferBytes`, each socket's kernel
    /// receive buffer is set to it (`SO_RCVBUFFORCE` when privileged, else `SO_RCVBUF`,
    /// which the kernel caps at `net.core.rmem_max`).
    public init(address: IPv4Address = .any, on loop: EventLoop, receiveBufferBytes: Int? = nil) {
        self.address = address
        self.loop = loop
        self.receiveBufferBytes = receiveBufferBytes
    }

    public func listen(port: UInt16, _ handler: @escaping (Datagram) -> Void)
        throws(DatagramError)
    {
        guard sockets[port] == nil else { throw .portInUse(port) }
        let fd = try openSocket(port: port)
        sockets[port] = fd
        let local = DatagramEndpoint(address: address, port: port)
        do {
            try loop.register(FileDescriptor(rawValue: fd), interest: .readable) {
                [unowned self] _ in
                self.receive(on: fd, local: local, handler)
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
        if let receiveBufferBytes {
            var size = CInt(clamping: receiveBufferBytes)
            let length = socklen_t(MemoryLayout<CInt>.size)
            if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) != 0 {
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, length)
            }
        }
        var socketAddress = SocketDatagrams.socketAddress(address, port)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            Glibc.close(fd)
            if code == EADDRINUSE { throw .portInUse(port) }
            throw .system(operation: "bind", errno: code)
        }
        return fd
    }

    private func receive(on fd: CInt, local: DatagramEndpoint, _ handler: (Datagram) -> Void) {
        for _ in 0..<64 {
            guard var buffer = try? pool.allocate() else { return }
            var from = sockaddr_in()
            var fromLength = socklen_t(MemoryLayout<sockaddr_in>.size)
            var received = -1
            buffer.withUnsafeMutableTailroom { room in
                received = withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(fd, room.baseAddress, room.count, 0, $0, &fromLength)
                    }
                }
                return max(received, 0)
            }
            guard received >= 0 else { return }  // EAGAIN: drained (or an error to retry later)
            let source = DatagramEndpoint(
                address: IPv4Address(rawValue: UInt32(bigEndian: from.sin_addr.s_addr)),
                port: UInt16(bigEndian: from.sin_port))
            handler(Datagram(source: source, destination: local, payload: buffer))
        }
    }

    public func stopListening(port: UInt16) {
        guard let fd = sockets.removeValue(forKey: port) else { return }
        try? loop.deregister(FileDescriptor(rawValue: fd))
        Glibc.close(fd)
    }

    public func send(_ payload: Bits, to destination: DatagramEndpoint, from port: UInt16)
        throws(DatagramError)
    {
        guard payload.count <= maximumUDPPayload else { throw .payloadTooLarge(payload.count) }
        let fd: CInt
        if let existing = sockets[port] {
            fd = existing
        } else {
            // Sending from a port nobody listens on: bind a socket for it (replies to it
            // are then read by nobody and dropped, as on the Oasis stack).
            fd = try openSocket(port: port)
            sockets[port] = fd
        }
        var target = SocketDatagrams.socketAddress(destination.address, destination.port)
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

    /// Closes every socket.
    public func close() {
        for port in Array(sockets.keys) { stopListening(port: port) }
    }

    static func socketAddress(_ address: IPv4Address, _ port: UInt16) -> sockaddr_in {
        var result = sockaddr_in()
        result.sin_family = sa_family_t(AF_INET)
        result.sin_port = port.bigEndian
        result.sin_addr.s_addr = address.rawValue.bigEndian
        return result
    }
}
