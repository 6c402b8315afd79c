import CXen
import OasisTestSupport
import Testing

@testable import OasisXen

#if canImport(Glibc)
    import Glibc
#endif

/// On a machine that is not a Xen domain every open must fail with the typed
/// not-under-Xen error naming the missing device, and nothing may crash or print.
@Suite struct XenWithoutXenTests {
    static let underXen = access("/dev/xen", F_OK) == 0

    static func expectNotUnderXen(device: String, _ open: () throws(XenError) -> Void) throws {
        if underXen {
            // Reported as skipped, never as passed.
            try skip(device, "/dev/xen exists: this machine is a Xen domain")
        }
        do {
            try open()
            Issue.record("open succeeded without /dev/xen")
        } catch {
            #expect(error == .notRunningUnderXen("\(device) not present: not running under Xen"))
            #expect(error.description.contains(device))
            #expect(error.description.contains("not running under Xen"))
        }
    }

    @Test func eventChannelsOpenFails() throws {
        try Self.expectNotUnderXen(device: "/dev/xen/evtchn") { () throws(XenError) in
            _ = try XenEventChannels.open()
        }
    }

    @Test func grantShareOpenFails() throws {
        try Self.expectNotUnderXen(device: "/dev/xen/gntalloc") { () throws(XenError) in
            _ = try XenGrantShare.open()
        }
    }

    @Test func grantTableOpenFails() throws {
        try Self.expectNotUnderXen(device: "/dev/xen/gntdev") { () throws(XenError) in
            _ = try XenGrantTable.open()
        }
    }

    @Test func xenStoreOpenFails() throws {
        try Self.expectNotUnderXen(device: "/dev/xen/xenbus") { () throws(XenError) in
            _ = try XenStore.open()
        }
    }

    @Test func controlOpenFails() throws {
        try Self.expectNotUnderXen(device: "/dev/xen/privcmd") { () throws(XenError) in
            _ = try XenControl.open()
        }
    }
}

/// Xen's own io/ring.h macros, compiled in the C shim, work on a page.
@Suite struct XenRingMacroTests {
    @Test func netifTxRingPushesOneRequest() throws {
        let page = UnsafeMutableRawPointer.allocate(byteCount: xenPageSize, alignment: xenPageSize)
        defer { page.deallocate() }
        page.initializeMemory(as: UInt8.self, repeating: 0xa5, count: xenPageSize)
        var ringSize: UInt32 = 0
        var notify: Int32 = 0
        let requestProducer = oasis_xen_ring_selftest(page, &ringSize, &notify)
        #expect(requestProducer == 1)
        // netif_tx: 12-byte requests and 4-byte responses in a 16-byte-aligned union
        // slot; (4096 - 64) / 12 rounds down to 256.
        #expect(ringSize == 256)
        // SHARED_RING_INIT sets req_event to 1, so the first request asks for a kick.
        #expect(notify == 1)
        // The shared header as the backend would read it: req_prod, req_event,
        // rsp_prod, rsp_event.
        let header = page.assumingMemoryBound(to: UInt32.self)
        #expect(header[0] == 1)
        #expect(header[1] == 1)
        #expect(header[2] == 0)
        #expect(header[3] == 1)
    }

    @Test func barriersAreCallable() throws {
        XenMemoryBarrier.full()
        XenMemoryBarrier.read()
        XenMemoryBarrier.write()
    }
}
