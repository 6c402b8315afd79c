import CXen
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What went wrong talking to Xen, and which device or call it was.
public enum XenError: Error, Equatable, CustomStringConvertible {
    /// The Xen device node a library needs is absent: the program is not running in a
    /// Xen domain (or the Xen drivers are not loaded). The text names the node, e.g.
    /// "/dev/xen/evtchn not present: not running under Xen".
    case notRunningUnderXen(String)
    /// The device exists but the library could not open it (EACCES without root, ...).
    case openFailed(device: String, Errno)
    /// A library call failed; `operation` names it and what it was given.
    case operationFailed(operation: String, Errno)
    /// A watch event from xenstored did not have the path and token it must carry.
    case malformedWatchEvent
    /// The handle was used after `close()`.
    case closed(String)
    /// The simulated hypervisor (xen/netback-sim) answered something unexpected, or went
    /// away.
    case simulator(String)

    public var description: String {
        switch self {
        case .notRunningUnderXen(let text): return text
        case .openFailed(let device, let errno): return "cannot open \(device): \(errno)"
        case .operationFailed(let operation, let errno): return "\(operation) failed: \(errno)"
        case .malformedWatchEvent: return "xenstore watch event without path and token"
        case .closed(let what): return "\(what) is closed"
        case .simulator(let text): return "simulated hypervisor: \(text)"
        }
    }

    /// The error for a library open that returned NULL: not-under-Xen when the device
    /// node is missing, otherwise the errno the library left.
    static func openFailure(device: String, errno: Errno) -> XenError {
        if errno == .noSuchFileOrDirectory || access(device, F_OK) != 0 {
            return .notRunningUnderXen("\(device) not present: not running under Xen")
        }
        return .openFailed(device: device, errno)
    }

    /// The calling thread's errno, read right after a failed library call.
    static var lastErrno: Errno { Errno(rawValue: oasis_xen_errno()) }
}

/// A Xen domain id (domid_t). Dom0 is 0.
public struct XenDomainID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// The control domain.
    public static let dom0 = XenDomainID(0)

    public var description: String { "dom\(rawValue)" }
}

/// CPU barriers with the meaning `io/ring.h` gives them (xen_mb/xen_rmb/xen_wmb from
/// xenctrl.h for this architecture). Shared-ring code written in Swift calls these
/// where the C macros would.
public enum XenMemoryBarrier {
    /// Full barrier: no load or store moves across it.
    @inline(__always) public static func full() { oasis_xen_mb() }
    /// Loads before it complete before loads after it.
    @inline(__always) public static func read() { oasis_xen_rmb() }
    /// Stores before it become visible before stores after it.
    @inline(__always) public static func write() { oasis_xen_wmb() }
}
