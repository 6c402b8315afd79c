import CXen

/// The hypervisor control interface (libxenctrl's `xc_interface_open`,
/// `/dev/xen/privcmd`). Minimal: open, the hypervisor's version, close.
///
/// libxenctrl logs failures to stderr when given no logger; this wrapper gives it a
/// silent one and reports failures as ``XenError`` instead.
///
/// Ownership: call ``close()``; `deinit` closes a handle still open, as a safety net
/// only. Not `Sendable`.
public final class XenControl {
    static let device = "/dev/xen/privcmd"

    private var handle: OpaquePointer?

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let handle { _ = xc_interface_close(handle) }
    }

    /// Opens the control interface (root in a privileged domain).
    public static func open() throws(XenError) -> XenControl {
        let quiet = oasis_xen_quiet_logger()
        guard let handle = xc_interface_open(quiet, quiet, 0) else {
            throw XenError.openFailure(device: device, errno: XenError.lastErrno)
        }
        return XenControl(handle: handle)
    }

    /// The running hypervisor's version, e.g. (4, 17) (XENVER_version).
    public func hypervisorVersion() throws(XenError) -> (major: Int, minor: Int) {
        guard let handle else { throw .closed("xenctrl interface") }
        let version = xc_version(handle, XENVER_version, nil)
        guard version >= 0 else {
            throw .operationFailed(operation: "xc_version", XenError.lastErrno)
        }
        return (Int(version >> 16), Int(version & 0xffff))
    }

    /// Closes the interface. Closing twice does nothing.
    public func close() {
        if let handle { _ = xc_interface_close(handle) }
        handle = nil
    }
}
