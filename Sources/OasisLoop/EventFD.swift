internal import CSystem
import Glibc
import SystemPackage

/// A Linux eventfd: a 64-bit counter behind a descriptor that epoll can watch.
/// Devices use it as a doorbell (the simulated Xen event channel is one); the loop
/// uses one to be woken by other threads. Non-blocking and close-on-exec.
///
/// Ownership follows swift-system: `close()` is explicit, and there is no `deinit`.
public struct EventFD: Hashable, Sendable {
    /// The descriptor, for ``EventLoop/register(_:interest:handler:)``.
    public let fileDescriptor: FileDescriptor

    /// Creates an eventfd whose counter starts at `initialValue`.
    public init(initialValue: UInt32 = 0) throws(Errno) {
        let fd = eventfd(initialValue, CInt(EFD_CLOEXEC | EFD_NONBLOCK))
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        fileDescriptor = FileDescriptor(rawValue: fd)
    }

    /// Adds `count` to the counter, making the descriptor readable.
    public func signal(_ count: UInt64 = 1) throws(Errno) {
        var value = count
        guard write(fileDescriptor.rawValue, &value, 8) == 8 else { throw Errno(rawValue: errno) }
    }

    /// Reads and resets the counter; nil if it was zero.
    public func consume() throws(Errno) -> UInt64? {
        var value: UInt64 = 0
        if read(fileDescriptor.rawValue, &value, 8) == 8 { return value }
        if errno == EAGAIN { return nil }
        throw Errno(rawValue: errno)
    }

    /// Closes the descriptor (deregister it from any loop first).
    public func close() throws(Errno) {
        guard Glibc.close(fileDescriptor.rawValue) == 0 else { throw Errno(rawValue: errno) }
    }
}
