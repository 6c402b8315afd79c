import CTap
import OasisWire
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What went wrong with a TAP interface, and on which interface.
public enum TapError: Error, Equatable, CustomStringConvertible {
    /// `/dev/net/tun` could not be opened (missing tun module, no permission).
    case tunUnavailable(Errno)
    /// The requested name does not fit in IFNAMSIZ (15 bytes and a NUL).
    case nameTooLong(String)
    /// TUNSETIFF refused to create or attach the interface (EPERM without
    /// CAP_NET_ADMIN, EBUSY when it is already attached, EINVAL for flags that do not
    /// match an existing interface).
    case attachFailed(name: String, Errno)
    /// An interface call failed; `operation` names it (SIOCSIFMTU, TUNSETOFFLOAD, ...).
    case ioctlFailed(operation: String, interface: String, Errno)
    /// read(2) on the TAP descriptor failed with something other than EAGAIN.
    case readFailed(interface: String, Errno)
    /// write(2) on the TAP descriptor failed with something other than EAGAIN.
    case writeFailed(interface: String, Errno)
    /// The kernel took fewer bytes than the frame holds (a TAP write is all or nothing,
    /// so this means a frame larger than the interface accepts).
    case shortWrite(interface: String, written: Int, expected: Int)
    /// The interface was used after `close()`.
    case closed(interface: String)

    public var description: String {
        switch self {
        case .tunUnavailable(let errno):
            return "cannot open /dev/net/tun: \(errno)"
        case .nameTooLong(let name):
            return "interface name '\(name)' is longer than 15 bytes"
        case .attachFailed(let name, let errno):
            return "TUNSETIFF for TAP '\(name)' failed: \(errno)"
        case .ioctlFailed(let operation, let interface, let errno):
            return "\(operation) on '\(interface)' failed: \(errno)"
        case .readFailed(let interface, let errno):
            return "read from TAP '\(interface)' failed: \(errno)"
        case .writeFailed(let interface, let errno):
            return "write to TAP '\(interface)' failed: \(errno)"
        case .shortWrite(let interface, let written, let expected):
            return "write to TAP '\(interface)' took \(written) of \(expected) bytes"
        case .closed(let interface):
            return "TAP '\(interface)' is closed"
        }
    }
}

/// A Linux TAP interface: one descriptor of `/dev/net/tun` attached to an Ethernet
/// interface, through which whole frames are read and written.
///
/// The interface owns two descriptors: the TAP descriptor (nonblocking, for the
/// scheduler's readiness loop) and a datagram socket for the `SIOC*` interface
/// ioctls. Both are created in the network namespace of the calling thread, so an
/// interface opened inside ``NetworkNamespace/withEntered(path:_:)`` stays in that
/// namespace for every later call, from any thread.
///
/// Ownership: call ``close()`` when done. `deinit` closes descriptors that are still
/// open, as a safety net only. The type is not `Sendable`: use it from one thread
/// (the scheduler's).
///
/// ```swift
/// let tap = try TapInterface.open(name: "tap0")
/// try tap.setMACAddress(MACAddress(0x02_00_00_00_00_01))
/// try tap.setLinkUp(true)
/// var frame = [UInt8](repeating: 0, count: 1514)
/// let count = try frame.withUnsafeMutableBytes { try tap.read(into: $0) }
/// ```
public final class TapInterface {
    /// How the interface is created.
    public struct Options: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// IFF_VNET_HDR: each frame carries a `virtio_net_hdr` in front (its size set
        /// by ``TapInterface/setVnetHeaderSize(_:)``, 10 bytes by default).
        public static let vnetHeader = Options(rawValue: Int32(OASIS_TAP_VNET_HDR))
        /// IFF_MULTI_QUEUE: several `TapInterface`s may attach to the same interface,
        /// each a queue of its own. Must match how the interface was first created.
        public static let multiQueue = Options(rawValue: Int32(OASIS_TAP_MULTI_QUEUE))
    }

    /// Offloads the kernel may hand us (TUNSETOFFLOAD). Anything but `[]` requires
    /// ``Options/vnetHeader``, since the virtio header says what was offloaded.
    public struct Offload: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let checksum = Offload(rawValue: UInt32(OASIS_TUN_F_CSUM))
        public static let tcpSegmentationIPv4 = Offload(rawValue: UInt32(OASIS_TUN_F_TSO4))
        public static let tcpSegmentationIPv6 = Offload(rawValue: UInt32(OASIS_TUN_F_TSO6))
        public static let tcpSegmentationECN = Offload(rawValue: UInt32(OASIS_TUN_F_TSO_ECN))
        public static let udpFragmentation = Offload(rawValue: UInt32(OASIS_TUN_F_UFO))
    }

    /// The interface name the kernel assigned (the one requested, or `tapN`).
    public let name: String
    /// The options the interface was opened with.
    public let options: Options

    private var tapDescriptor: CInt
    private var controlSocket: CInt

    private init(name: String, options: Options, tapDescriptor: CInt, controlSocket: CInt) {
        self.name = name
        self.options = options
        self.tapDescriptor = tapDescriptor
        self.controlSocket = controlSocket
    }

    deinit {
        // Safety net only: an owner is expected to call close().
        if tapDescriptor >= 0 { _ = Glibc.close(tapDescriptor) }
        if controlSocket >= 0 { _ = Glibc.close(controlSocket) }
    }

    /// Opens `/dev/net/tun` and attaches it to the TAP interface `name`, creating the
    /// interface if it does not exist (needs CAP_NET_ADMIN). With `name` nil the
    /// kernel picks one (`tap0`, `tap1`, ...); read it back from ``name``.
    ///
    /// The descriptor is nonblocking and close-on-exec.
    public static func open(name: String? = nil, options: Options = []) throws(TapError)
        -> TapInterface
    {
        if let name, name.utf8.count >= Int(OASIS_IFNAMSIZ) { throw .nameTooLong(name) }
        let tun = Glibc.open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard tun >= 0 else { throw .tunUnavailable(Errno(rawValue: oasis_tap_errno())) }

        var assigned = [CChar](repeating: 0, count: Int(OASIS_IFNAMSIZ))
        let status = assigned.withUnsafeMutableBufferPointer { buffer in
            oasis_tap_attach(tun, name, options.rawValue, buffer.baseAddress)
        }
        guard status == 0 else {
            _ = Glibc.close(tun)
            throw .attachFailed(name: name ?? "", Errno(rawValue: -status))
        }
        let assignedName = String(
            decoding: assigned.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)

        let control = oasis_if_control_socket()
        guard control >= 0 else {
            _ = Glibc.close(tun)
            throw .ioctlFailed(
                operation: "socket(AF_INET, SOCK_DGRAM)", interface: assignedName,
                Errno(rawValue: -control))
        }
        return TapInterface(
            name: assignedName, options: options, tapDescriptor: tun, controlSocket: control)
    }

    /// The TAP descriptor, nonblocking, for the scheduler to wait on. It stays owned by
    /// this interface: do not close it.
    public var fileDescriptor: FileDescriptor {
        get throws(TapError) { FileDescriptor(rawValue: try openDescriptor()) }
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { tapDescriptor < 0 }

    /// Reads one frame into `buffer`. Returns its length, or nil when no frame is
    /// waiting (EAGAIN). A frame longer than `buffer` is truncated by the kernel.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TapError) -> Int? {
        let descriptor = try openDescriptor()
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            let errno = Errno(rawValue: oasis_tap_errno())
            switch errno {
            case .interrupted: continue
            case .wouldBlock: return nil
            default: throw .readFailed(interface: name, errno)
            }
        }
    }

    /// Writes one whole frame. Returns false when the kernel would block (EAGAIN):
    /// wait for the descriptor to become writable and try again.
    @discardableResult
    public func write(_ frame: UnsafeRawBufferPointer) throws(TapError) -> Bool {
        let descriptor = try openDescriptor()
        while true {
            let count = Glibc.write(descriptor, frame.baseAddress, frame.count)
            if count == frame.count { return true }
            if count >= 0 {
                throw .shortWrite(interface: name, written: count, expected: frame.count)
            }
            let errno = Errno(rawValue: oasis_tap_errno())
            switch errno {
            case .interrupted: continue
            case .wouldBlock: return false
            default: throw .writeFailed(interface: name, errno)
            }
        }
    }

    /// TUNSETOFFLOAD: which offloads the kernel may leave to us.
    public func setOffload(_ offload: Offload) throws(TapError) {
        let status = oasis_tap_set_offload(try openDescriptor(), offload.rawValue)
        try check(status, "TUNSETOFFLOAD")
    }

    /// TUNSETVNETHDRSZ: the size of the virtio header in front of each frame
    /// (10, or 12 with mergeable receive buffers).
    public func setVnetHeaderSize(_ size: Int) throws(TapError) {
        let status = oasis_tap_set_vnet_header_size(try openDescriptor(), CInt(clamping: size))
        try check(status, "TUNSETVNETHDRSZ")
    }

    /// The interface's hardware address (SIOCGIFHWADDR).
    public var macAddress: MACAddress {
        get throws(TapError) {
            var bytes = [UInt8](repeating: 0, count: 6)
            let status = oasis_if_get_mac(try openControlSocket(), name, &bytes)
            try check(status, "SIOCGIFHWADDR")
            return MACAddress(bytes: bytes) ?? MACAddress(0)
        }
    }

    /// Sets the interface's hardware address (SIOCSIFHWADDR).
    public func setMACAddress(_ address: MACAddress) throws(TapError) {
        let status = oasis_if_set_mac(try openControlSocket(), name, address.bytes)
        try check(status, "SIOCSIFHWADDR")
    }

    /// The interface's MTU (SIOCGIFMTU).
    public var mtu: Int {
        get throws(TapError) {
            var value: CInt = 0
            try check(oasis_if_get_mtu(try openControlSocket(), name, &value), "SIOCGIFMTU")
            return Int(value)
        }
    }

    /// Sets the interface's MTU (SIOCSIFMTU; 68 to 65521 for a TAP).
    public func setMTU(_ mtu: Int) throws(TapError) {
        let status = oasis_if_set_mtu(try openControlSocket(), name, CInt(clamping: mtu))
        try check(status, "SIOCSIFMTU")
    }

    /// Whether the interface is administratively up (IFF_UP).
    public var isLinkUp: Bool {
        get throws(TapError) {
            var up: CInt = 0
            try check(oasis_if_get_up(try openControlSocket(), name, &up), "SIOCGIFFLAGS")
            return up != 0
        }
    }

    /// Brings the interface up or down (SIOCSIFFLAGS, IFF_UP).
    public func setLinkUp(_ up: Bool) throws(TapError) {
        let status = oasis_if_set_up(try openControlSocket(), name, up ? 1 : 0)
        try check(status, "SIOCSIFFLAGS")
    }

    /// The interface index (SIOCGIFINDEX).
    public var index: Int {
        get throws(TapError) {
            var value: CInt = 0
            try check(oasis_if_get_index(try openControlSocket(), name, &value), "SIOCGIFINDEX")
            return Int(value)
        }
    }

    /// Closes both descriptors. For a non-persistent TAP the kernel removes the
    /// interface when its last descriptor closes. Closing twice does nothing.
    public func close() throws(TapError) {
        let tap = tapDescriptor
        let control = controlSocket
        tapDescriptor = -1
        controlSocket = -1
        var firstError: TapError?
        if control >= 0, Glibc.close(control) != 0 {
            firstError = .ioctlFailed(
                operation: "close(control socket)", interface: name,
                Errno(rawValue: oasis_tap_errno()))
        }
        if tap >= 0, Glibc.close(tap) != 0, firstError == nil {
            firstError = .ioctlFailed(
                operation: "close(tap)", interface: name, Errno(rawValue: oasis_tap_errno()))
        }
        if let firstError { throw firstError }
    }

    /// Brings any interface of this namespace up or down by name (SIOCSIFFLAGS,
    /// IFF_UP): the interface under a pcap or AF_XDP port, as a switch does for a
    /// PORT_MOD that takes a port down.
    public static func setLinkUp(_ up: Bool, interface name: String) throws(TapError) {
        if name.utf8.count >= Int(OASIS_IFNAMSIZ) { throw .nameTooLong(name) }
        let control = oasis_if_control_socket()
        guard control >= 0 else {
            throw .ioctlFailed(operation: "socket", interface: name, Errno(rawValue: -control))
        }
        defer { _ = Glibc.close(control) }
        let status = oasis_if_set_up(control, name, up ? 1 : 0)
        guard status == 0 else {
            throw .ioctlFailed(operation: "SIOCSIFFLAGS", interface: name, Errno(rawValue: -status))
        }
    }

    private func openDescriptor() throws(TapError) -> CInt {
        guard tapDescriptor >= 0 else { throw .closed(interface: name) }
        return tapDescriptor
    }

    private func openControlSocket() throws(TapError) -> CInt {
        guard controlSocket >= 0 else { throw .closed(interface: name) }
        return controlSocket
    }

    private func check(_ status: CInt, _ operation: String) throws(TapError) {
        guard status == 0 else {
            throw .ioctlFailed(operation: operation, interface: name, Errno(rawValue: -status))
        }
    }
}
