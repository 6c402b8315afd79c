import CXen
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// An event channel port (evtchn_port_t), local to this domain unless said otherwise.
public struct XenEventChannelPort: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "port \(rawValue)" }
}

/// Event channels through libxenevtchn (`/dev/xen/evtchn`): Xen's doorbells between
/// domains. A pending event is read from ``fileDescriptor`` (made nonblocking here,
/// for the scheduler) with ``pending()``, then re-enabled with ``unmask(_:)``.
///
/// Ownership: call ``close()``, which unbinds every port bound through this handle;
/// `deinit` closes a handle still open, as a safety net only. Not `Sendable`.
public final class XenEventChannels {
    static let device = "/dev/xen/evtchn"

    private var handle: OpaquePointer?

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let handle { _ = xenevtchn_close(handle) }
    }

    /// Opens `/dev/xen/evtchn`.
    public static func open() throws(XenError) -> XenEventChannels {
        guard let handle = xenevtchn_open(oasis_xen_quiet_logger(), 0) else {
            throw XenError.openFailure(device: device, errno: XenError.lastErrno)
        }
        let channels = XenEventChannels(handle: handle)
        let descriptor = xenevtchn_fd(handle)
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw .operationFailed(operation: "fcntl(O_NONBLOCK) on evtchn", XenError.lastErrno)
        }
        return channels
    }

    /// The descriptor that becomes readable when a port is pending. Owned by the
    /// handle: do not close it.
    public var fileDescriptor: FileDescriptor {
        get throws(XenError) { FileDescriptor(rawValue: xenevtchn_fd(try openHandle())) }
    }

    /// Allocates a port that `remote` may bind to (the frontend's half of a channel;
    /// the port number is then published in xenstore).
    public func allocateUnboundPort(for remote: XenDomainID) throws(XenError)
        -> XenEventChannelPort
    {
        let port = xenevtchn_bind_unbound_port(try openHandle(), UInt32(remote.rawValue))
        guard port >= 0 else {
            throw .operationFailed(
                operation: "xenevtchn_bind_unbound_port \(remote)", XenError.lastErrno)
        }
        return XenEventChannelPort(UInt32(port))
    }

    /// Connects to `remotePort`, allocated by `remote` for us (the backend's half).
    /// Returns the local port.
    public func bindInterdomain(remote: XenDomainID, remotePort: XenEventChannelPort)
        throws(XenError) -> XenEventChannelPort
    {
        let port = xenevtchn_bind_interdomain(
            try openHandle(), UInt32(remote.rawValue), remotePort.rawValue)
        guard port >= 0 else {
            throw .operationFailed(
                operation: "xenevtchn_bind_interdomain \(remote) \(remotePort)",
                XenError.lastErrno)
        }
        return XenEventChannelPort(UInt32(port))
    }

    /// Releases a local port.
    public func unbind(_ port: XenEventChannelPort) throws(XenError) {
        guard xenevtchn_unbind(try openHandle(), port.rawValue) == 0 else {
            throw .operationFailed(operation: "xenevtchn_unbind \(port)", XenError.lastErrno)
        }
    }

    /// Rings the other end of `port`.
    public func notify(_ port: XenEventChannelPort) throws(XenError) {
        guard xenevtchn_notify(try openHandle(), port.rawValue) == 0 else {
            throw .operationFailed(operation: "xenevtchn_notify \(port)", XenError.lastErrno)
        }
    }

    /// The next port that fired, or nil when none has. The port stays masked until
    /// ``unmask(_:)``.
    public func pending() throws(XenError) -> XenEventChannelPort? {
        let port = xenevtchn_pending(try openHandle())
        if port >= 0 { return XenEventChannelPort(UInt32(port)) }
        let errno = XenError.lastErrno
        if errno == .wouldBlock { return nil }
        throw .operationFailed(operation: "xenevtchn_pending", errno)
    }

    /// Re-enables delivery on `port` after handling it.
    public func unmask(_ port: XenEventChannelPort) throws(XenError) {
        guard xenevtchn_unmask(try openHandle(), port.rawValue) == 0 else {
            throw .operationFailed(operation: "xenevtchn_unmask \(port)", XenError.lastErrno)
        }
    }

    /// Closes the handle. Closing twice does nothing.
    public func close() {
        if let handle { _ = xenevtchn_close(handle) }
        handle = nil
    }

    private func openHandle() throws(XenError) -> OpaquePointer {
        guard let handle else { throw .closed("event channel handle") }
        return handle
    }
}
