// The three Xen facilities a split driver needs, as small protocols, so that a netfront
// runs on the real libraries (in a Xen domain) or on the simulated hypervisor (anywhere).

import SystemPackage

/// The configuration tree: the subset of ``XenStore`` a frontend uses. Paths are
/// absolute or relative to the domain's home (`device/vif/0/state`).
public protocol XenStoreFacility: AnyObject {
    func read(_ path: String, in transaction: XenStore.Transaction) throws(XenError) -> String?
    func write(_ value: String, to path: String, in transaction: XenStore.Transaction)
        throws(XenError)
    func remove(_ path: String, in transaction: XenStore.Transaction) throws(XenError)
    func watch(_ path: String, token: String) throws(XenError)
    func unwatch(_ path: String, token: String) throws(XenError)
    /// Readable when a watch event waits; drain it with ``nextWatchEvent()`` until nil.
    var watchFileDescriptor: FileDescriptor { get throws(XenError) }
    func nextWatchEvent() throws(XenError) -> XenStore.WatchEvent?
    func close()
}

/// Sharing pages with another domain: the subset of ``XenGrantShare`` a frontend uses.
public protocol XenGrantFacility: AnyObject {
    func share(pageCount: Int, with domain: XenDomainID, writable: Bool) throws(XenError)
        -> XenSharedPages
    func unshare(_ pages: XenSharedPages) throws(XenError)
    func close()
}

/// Event channels: the subset of ``XenEventChannels`` a frontend uses.
public protocol XenEventChannelFacility: AnyObject {
    /// Readable when a port is pending; level-triggered.
    var fileDescriptor: FileDescriptor { get throws(XenError) }
    func allocateUnboundPort(for remote: XenDomainID) throws(XenError) -> XenEventChannelPort
    func notify(_ port: XenEventChannelPort) throws(XenError)
    func pending() throws(XenError) -> XenEventChannelPort?
    func unmask(_ port: XenEventChannelPort) throws(XenError)
    func unbind(_ port: XenEventChannelPort) throws(XenError)
    func close()
}

/// A set of the three facilities that belong together: the real libraries
/// (``XenLibraries``) or one simulated hypervisor (``SimulatedHypervisor``).
public protocol XenFacilities {
    associatedtype Store: XenStoreFacility
    associatedtype Grants: XenGrantFacility
    associatedtype EventChannels: XenEventChannelFacility
    var store: Store { get }
    var grants: Grants { get }
    var eventChannels: EventChannels { get }
    /// Closes all three.
    func close()
}

extension XenStore: XenStoreFacility {}
extension XenGrantShare: XenGrantFacility {}
extension XenEventChannels: XenEventChannelFacility {}

/// The real libraries: libxenstore, libxengnttab's gntshr and libxenevtchn. Opening
/// fails with ``XenError/notRunningUnderXen(_:)`` outside a Xen domain.
public struct XenLibraries: XenFacilities {
    public let store: XenStore
    public let grants: XenGrantShare
    public let eventChannels: XenEventChannels

    /// Opens the three, event channels first (the device every domain has), so that
    /// the error outside Xen names `/dev/xen/evtchn`.
    public static func open() throws(XenError) -> XenLibraries {
        let eventChannels = try XenEventChannels.open()
        let grants: XenGrantShare
        do {
            grants = try XenGrantShare.open()
        } catch {
            eventChannels.close()
            throw error
        }
        do {
            return XenLibraries(
                store: try XenStore.open(), grants: grants, eventChannels: eventChannels)
        } catch {
            grants.close()
            eventChannels.close()
            throw error
        }
    }

    public func close() {
        store.close()
        grants.close()
        eventChannels.close()
    }
}
