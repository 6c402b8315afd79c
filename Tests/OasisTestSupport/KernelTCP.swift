// The Linux kernel's own TCP as a test peer: plain blocking sockets on 127.0.0.1,
// driven from threads of their own, so that nothing on that side is our code.

import Dispatch
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Plain blocking kernel TCP sockets on 127.0.0.1, with 20-second timeouts on every
/// call (a broken test fails instead of hanging).
public enum KernelTCP {
    public static func socket() -> CInt {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        let size = socklen_t(MemoryLayout<timeval>.size)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, size)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, size)
        return fd
    }

    /// A listening socket on an ephemeral port of 127.0.0.1, and the port.
    public static func listener(receiveBuffer: CInt? = nil) -> (CInt, UInt16) {
        let fd = socket()
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        }
        var address = socketAddress("127.0.0.1", 0)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        Glibc.listen(fd, 16)
        return (fd, localPort(fd))
    }

    /// A port nothing listens on (bound, learnt, released).
    public static func closedPort() -> UInt16 {
        let (fd, port) = listener()
        Glibc.close(fd)
        return port
    }

    public static func accept(_ listener: CInt) -> CInt {
        Glibc.accept(listener, nil, nil)
    }

    /// A connected socket, or -1.
    public static func connect(port: UInt16) -> CInt {
        let fd = socket()
        var address = socketAddress("127.0.0.1", port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            return -1
        }
        return fd
    }

    public static func localPort(_ fd: CInt) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return named == 0 ? UInt16(bigEndian: address.sin_port) : 0
    }

    @discardableResult
    public static func sendAll(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    /// Everything until end of stream; the errno that ended it (0 for a clean end).
    public static func receiveAll(_ fd: CInt) -> (bytes: [UInt8], errno: CInt) {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                bytes += chunk[0..<count]
                continue
            }
            if count < 0 && errno == EINTR { continue }
            return (bytes, count == 0 ? 0 : errno)
        }
    }

    /// Exactly `count` bytes, or fewer if the stream ends first.
    public static func receive(_ fd: CInt, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            guard n > 0 else { break }
            got += n
        }
        return Array(bytes[0..<got])
    }

    /// A client's whole exchange: connects to `port`, sends `request`, finishes
    /// sending, reads the reply to its end and closes. The errno that ended the reply
    /// (0: a clean end of stream) and the client's port come back with it.
    public static func ask(port: UInt16, _ request: [UInt8]) -> (
        reply: [UInt8], errno: CInt, port: UInt16
    ) {
        let fd = connect(port: port)
        guard fd >= 0 else { return ([], errno, 0) }
        defer { Glibc.close(fd) }
        sendAll(fd, request)
        shutdownWrite(fd)
        let (reply, code) = receiveAll(fd)
        return (reply, code, localPort(fd))
    }

    public static func shutdownWrite(_ fd: CInt) {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes with SO_LINGER {1, 0}: the kernel sends a reset.
    public static func resetAndClose(_ fd: CInt) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }
}

/// Runs `body` on a thread of its own (never on Swift's cooperative pool: it blocks).
public final class PeerThread: Sendable {
    private let finished = DispatchSemaphore(value: 0)

    public init(_ body: @escaping @Sendable () -> Void) {
        let finished = self.finished
        Thread.detachNewThread {
            body()
            finished.signal()
        }
    }

    /// Waits for the thread's body to return (recording an issue after 30 s).
    public func join() {
        if finished.wait(timeout: .now() + 30) == .timedOut {
            Issue.record("the kernel peer's thread did not finish")
        }
    }
}

/// A value the peer thread and the test share.
public final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public var value: Value {
        get { mutex.withLock { $0 } }
        set { mutex.withLock { $0 = newValue } }
    }
}
