import CXen
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A grant reference (grant_ref_t): names one page that a domain has shared.
public struct XenGrantReference: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "gref \(rawValue)" }
}

/// The size of the pages grants are made of.
public let xenPageSize = 4096

/// Pages this domain shares with another, as ``XenGrantShare/share(pageCount:with:writable:)``
/// returns them: the local mapping and one grant reference per page, to publish in
/// xenstore or put in a ring request.
public struct XenSharedPages {
    /// The pages, mapped here; `pageCount * xenPageSize` bytes.
    public let memory: UnsafeMutableRawBufferPointer
    /// One reference per page, in order.
    public let references: [XenGrantReference]
    /// The domain they are shared with.
    public let domain: XenDomainID
}

/// Pages another domain shared with us, mapped here by ``XenGrantTable/map(_:from:writable:)``.
public struct XenMappedGrants {
    /// The pages, contiguous; `references.count * xenPageSize` bytes.
    public let memory: UnsafeMutableRawBufferPointer
    /// The references they were mapped from.
    public let references: [XenGrantReference]
    /// The domain that granted them.
    public let domain: XenDomainID
}

/// Sharing our pages with another domain (libxengnttab's gntshr, `/dev/xen/gntalloc`):
/// how a frontend offers ring pages and packet buffers to its backend.
///
/// Ownership: call ``unshare(_:)`` for each share and ``close()`` for the handle;
/// `deinit` closes a handle still open, as a safety net only. Not `Sendable`.
public final class XenGrantShare {
    static let device = "/dev/xen/gntalloc"

    private var handle: OpaquePointer?

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let handle { _ = xengntshr_close(handle) }
    }

    /// Opens `/dev/xen/gntalloc`.
    public static func open() throws(XenError) -> XenGrantShare {
        guard let handle = xengntshr_open(oasis_xen_quiet_logger(), 0) else {
            throw XenError.openFailure(device: device, errno: XenError.lastErrno)
        }
        return XenGrantShare(handle: handle)
    }

    /// Allocates `pageCount` zeroed pages and grants `domain` access to them.
    public func share(pageCount: Int, with domain: XenDomainID, writable: Bool = true)
        throws(XenError) -> XenSharedPages
    {
        let share = try openHandle()
        var references = [UInt32](repeating: 0, count: pageCount)
        let address = xengntshr_share_pages(
            share, UInt32(domain.rawValue), CInt(clamping: pageCount), &references,
            writable ? 1 : 0)
        guard let address else {
            throw .operationFailed(
                operation: "xengntshr_share_pages \(pageCount) to \(domain)", XenError.lastErrno)
        }
        return XenSharedPages(
            memory: UnsafeMutableRawBufferPointer(start: address, count: pageCount * xenPageSize),
            references: references.map(XenGrantReference.init(rawValue:)), domain: domain)
    }

    /// Ends the share: unmaps the pages here and revokes the grants (the pages are
    /// freed once the other domain has unmapped them too).
    public func unshare(_ pages: XenSharedPages) throws(XenError) {
        let share = try openHandle()
        guard let address = pages.memory.baseAddress else { return }
        guard xengntshr_unshare(share, address, UInt32(pages.references.count)) == 0 else {
            throw .operationFailed(operation: "xengntshr_unshare", XenError.lastErrno)
        }
    }

    /// Closes the handle. Closing twice does nothing.
    public func close() {
        if let handle { _ = xengntshr_close(handle) }
        handle = nil
    }

    private func openHandle() throws(XenError) -> OpaquePointer {
        guard let handle else { throw .closed("grant share handle") }
        return handle
    }
}

/// Mapping pages other domains granted us (libxengnttab, `/dev/xen/gntdev`): how a
/// backend reaches a frontend's ring and buffers.
///
/// Ownership: call ``unmap(_:)`` for each mapping and ``close()`` for the handle;
/// `deinit` closes a handle still open, as a safety net only. Not `Sendable`.
public final class XenGrantTable {
    static let device = "/dev/xen/gntdev"

    private var handle: OpaquePointer?

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit {
        // Safety net only: an owner is expected to call close().
        if let handle { _ = xengnttab_close(handle) }
    }

    /// Opens `/dev/xen/gntdev`.
    public static func open() throws(XenError) -> XenGrantTable {
        guard let handle = xengnttab_open(oasis_xen_quiet_logger(), 0) else {
            throw XenError.openFailure(device: device, errno: XenError.lastErrno)
        }
        return XenGrantTable(handle: handle)
    }

    /// Maps the pages `references` name, granted by `domain`, into one contiguous range.
    public func map(
        _ references: [XenGrantReference], from domain: XenDomainID, writable: Bool = true
    ) throws(XenError) -> XenMappedGrants {
        let table = try openHandle()
        var raw = references.map(\.rawValue)
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        let address = xengnttab_map_domain_grant_refs(
            table, UInt32(raw.count), UInt32(domain.rawValue), &raw, protection)
        guard let address else {
            throw .operationFailed(
                operation: "xengnttab_map_domain_grant_refs \(raw.count) from \(domain)",
                XenError.lastErrno)
        }
        return XenMappedGrants(
            memory: UnsafeMutableRawBufferPointer(
                start: address, count: references.count * xenPageSize),
            references: references, domain: domain)
    }

    /// Unmaps pages mapped by ``map(_:from:writable:)``.
    public func unmap(_ mapping: XenMappedGrants) throws(XenError) {
        let table = try openHandle()
        guard let address = mapping.memory.baseAddress else { return }
        guard xengnttab_unmap(table, address, UInt32(mapping.references.count)) == 0 else {
            throw .operationFailed(operation: "xengnttab_unmap", XenError.lastErrno)
        }
    }

    /// Closes the handle. Closing twice does nothing.
    public func close() {
        if let handle { _ = xengnttab_close(handle) }
        handle = nil
    }

    private func openHandle() throws(XenError) -> OpaquePointer {
        guard let handle else { throw .closed("grant table handle") }
        return handle
    }
}
