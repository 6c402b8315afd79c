// The netfront's features against xen/netback-sim (Xen's own io/netif.h structs and
// flags playing netback) in reflect mode: scatter-gather, checksum offload, GSO both
// ways, received frames copied out of the backend's reach, and reconnection.

import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import OasisWire
import Testing

@testable import OasisXen

#if canImport(Glibc)
    import Glibc
#endif

/// An Ethernet/IPv4/TCP frame with `payload` bytes of data, its TCP checksum left
/// partial (the pseudo-header sum in the field, as the stack leaves it for a device)
/// or complete.
func tcpFrame(payload: Int, partial: Bool, seed: Int = 0) -> [UInt8] {
    var frame: [UInt8] = [0x00, 0x16, 0x3e, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]
    let total = 20 + 20 + payload
    var ip: [UInt8] = [
        0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1, 0x40, 0, 64, 6, 0, 0,
        192, 0, 2, 1, 192, 0, 2, 2,
    ]
    let ipSum = ip.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
    ip[10] = UInt8(ipSum >> 8)
    ip[11] = UInt8(ipSum & 0xff)
    var tcp: [UInt8] = [0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff]
    tcp += [0, 0, 0, 0]
    for index in 0..<payload { tcp.append(UInt8(truncatingIfNeeded: index &* 31 &+ seed)) }
    var pseudo = InternetChecksum()
    pseudo.addPseudoHeader(
        source: 0xc000_0201, destination: 0xc000_0202, protocol: 6, length: UInt16(tcp.count))
    if partial {
        let sum = pseudo.sum
        tcp[16] = UInt8(sum >> 8)
        tcp[17] = UInt8(sum & 0xff)
    } else {
        tcp.withUnsafeBytes { pseudo.add($0) }
        let sum = pseudo.checksum
        tcp[16] = UInt8(sum >> 8)
        tcp[17] = UInt8(sum & 0xff)
    }
    frame += ip + tcp
    return frame
}

/// A packet of `bytes` in the device's pool, asking what `offload` asks.
func pooled<F: XenFacilities>(_ bytes: [UInt8], _ netfront: Netfront<F>, offload: PacketOffload)
    throws -> Packet
{
    var packet = try netfront.pool.allocatePacket()
    try packet.append(contentsOf: bytes)
    packet.offload = offload
    return packet
}

@Suite(.serialized) struct NetfrontFeatureTests {
    /// Everything asked and offered: the nodes netback reads, and the capabilities the
    /// stack reads.
    @Test func negotiatesWhatBothOffer() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop, bufferPages: 17 * 16, features: .all)
        defer { netfront.close() }
        #expect(netfront.features == .all)
        #expect(try xen.store.read("device/vif/0/feature-sg", in: .none) == "1")
        #expect(try xen.store.read("device/vif/0/feature-no-csum-offload", in: .none) == "0")
        #expect(try xen.store.read("device/vif/0/feature-gso-tcpv4", in: .none) == "1")
        #expect(netfront.capabilities.maximumSegmentationSize == 65_535 - 18)
        #expect(netfront.capabilities.transmitChecksums == .tcp)
        #expect(netfront.pool.pagesPerBuffer == 17)
    }

    /// A backend that offers nothing: one slot per frame, checksums complete, no GSO.
    @Test func fallsBackWhenTheBackendOffersNothing() throws {
        let simulator = try RunningNetbackSimulator(["--reflect", "--no-offloads"])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        try xen.store.write(
            "1", to: "/local/domain/0/backend/vif/1/0/feature-no-csum-offload", in: .none)
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop, features: .all)
        defer { netfront.close() }
        #expect(netfront.features == [])
        #expect(try xen.store.read("device/vif/0/feature-sg", in: .none) == "0")
        #expect(try xen.store.read("device/vif/0/feature-no-csum-offload", in: .none) == "1")
        #expect(netfront.capabilities.maximumSegmentationSize == 0)
        #expect(netfront.capabilities.transmitChecksums == [])
        // A partial checksum the stack should not have asked for is finished here.
        var received: [[UInt8]] = []
        var verified: [Bool] = []
        try netfront.startEach { frame in
            received.append(frame.copyBytes())
            verified.append(frame.offload.checksumVerified)
        }
        let partial = tcpFrame(payload: 300, partial: true)
        try netfront.transmit(
            pooled(
                partial, netfront, offload: PacketOffload(checksumSpan: 320, checksumField: 16)))
        try runLoop(loop, seconds: 10) { received.count >= 1 }
        #expect(received == [tcpFrame(payload: 300, partial: false)])
        #expect(verified == [false])
    }

    /// Scatter-gather: the simulator cuts every received frame into 1000-byte slots,
    /// so frames of 1001 bytes and more arrive over several; all come back whole.
    @Test func receivesFramesOverSeveralSlots() throws {
        let simulator = try RunningNetbackSimulator(["--reflect", "--rx-slot-size", "1000"])
        var log = ""
        defer {
            log = simulator.stop()
            print(log)
        }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop)
        #expect(netfront.features == .standard)
        var received: [[UInt8]] = []
        try netfront.startEach { frame in received.append(frame.copyBytes()) }
        var sent: [[UInt8]] = []
        var next = 0
        try runLoop(loop, seconds: 20) {
            while next < 400 && next - received.count < 40 {
                let frame = numberedFrame(next, size: 60 + (next * 37) % 1455)
                sent.append(frame.copyBytes())
                try? netfront.transmit(frame)
                next += 1
            }
            return received.count >= 400 || netfront.failure != nil
        }
        #expect(netfront.failure == nil)
        #expect(received == sent)
        #expect(netfront.counters.receiveDrops == 0)
        netfront.close()
        log = simulator.stop()
        #expect(log.contains("multi-slot"), "\(log)")
        #expect(!log.contains("multi-slot 0 "), "\(log)")
    }

    /// Jumbo frames with an MTU of 9000 from the backend: out over three slots from a
    /// three-page pool buffer, back over three.
    @Test func jumboFramesBothWays() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        defer { print(simulator.stop()) }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        try xen.store.write("9000", to: "/local/domain/0/backend/vif/1/0/mtu", in: .none)
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop, bufferPages: 3 * 64)
        defer { netfront.close() }
        #expect(netfront.capabilities.mtu == 9000)
        #expect(netfront.pool.pagesPerBuffer == 3)
        var received: [[UInt8]] = []
        try netfront.startEach { frame in received.append(frame.copyBytes()) }
        var sent: [[UInt8]] = []
        for number in 0..<20 {
            let bytes = numberedFrame(number, size: 9014 - number * 300).copyBytes()
            sent.append(bytes)
            try netfront.transmit(pooled(bytes, netfront, offload: .none))
        }
        // One from outside the pool, copied into it.
        let outside = numberedFrame(99, size: 9014)
        sent.append(outside.copyBytes())
        try netfront.transmit(outside)
        try runLoop(loop, seconds: 10) { received.count >= 21 || netfront.failure != nil }
        #expect(netfront.failure == nil)
        #expect(received == sent)
    }

    /// Checksum offload both ways: the partial TCP checksum leaves blank
    /// (NETTXF_csum_blank), comes back NETRXF_csum_blank, and is finished and vouched
    /// for by the netfront before anyone sees it.
    @Test func checksumsLeftBlankAreFinishedOnReceive() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        var log = ""
        defer {
            log = simulator.stop()
            print(log)
        }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop)
        var received: [[UInt8]] = []
        var verified: [Bool] = []
        try netfront.startEach { frame in
            received.append(frame.copyBytes())
            verified.append(frame.offload.checksumVerified)
        }
        for payload in [0, 1, 200, 1400] {
            try netfront.transmit(
                pooled(
                    tcpFrame(payload: payload, partial: true), netfront,
                    offload: PacketOffload(checksumSpan: UInt16(20 + payload), checksumField: 16)
                ))
        }
        try netfront.transmit(numberedFrame(7))  // asks nothing: comes back unmarked
        try runLoop(loop, seconds: 10) { received.count >= 5 }
        #expect(
            received == [0, 1, 200, 1400].map { tcpFrame(payload: $0, partial: false) } + [
                numberedFrame(7).copyBytes()
            ])
        #expect(verified == [true, true, true, true, false])
        netfront.close()
        log = simulator.stop()
        #expect(log.contains("csum-blank 4; rx gso 0 multi-slot 0 csum-blank 4"), "\(log)")
    }

    /// GSO both ways: a 60 000-byte TCP segment leaves in 15 slots with its GSO extra
    /// (MSS 1448) and comes back in one piece, its extra saying the MSS: one packet,
    /// coalesced, vouched for, byte for byte what was sent.
    @Test func largeSegmentsBothWays() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        var log = ""
        defer {
            log = simulator.stop()
            print(log)
        }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(
            facilities: xen, on: loop, bufferPages: 17 * 24, features: .all)
        #expect(netfront.features == .all)
        var received: [[UInt8]] = []
        var offloads: [PacketOffload] = []
        try netfront.startEach { frame in
            received.append(frame.copyBytes())
            offloads.append(frame.offload)
        }
        var sent: [[UInt8]] = []
        for (index, payload) in [60_000, 65_535 - 18 - 40, 3000, 100].enumerated() {
            let bytes = tcpFrame(payload: payload, partial: true, seed: index)
            sent.append(bytes)
            try netfront.transmit(
                pooled(
                    bytes, netfront,
                    offload: PacketOffload(
                        checksumSpan: UInt16(20 + payload), checksumField: 16,
                        segmentSize: payload > 1448 ? 1448 : 0)))
        }
        try runLoop(loop, seconds: 10) { received.count >= 4 || netfront.failure != nil }
        #expect(netfront.failure == nil)
        #expect(received.count == 4)
        // Coalesced ones keep their partial checksum (nobody reads it: the data never
        // crossed a wire), as a TAP leaves them; the short one is finished.
        #expect(received.prefix(3).elementsEqual(sent.prefix(3)))
        #expect(received.last == tcpFrame(payload: 100, partial: false, seed: 3))
        #expect(offloads.map(\.coalesced) == [true, true, true, false])
        #expect(offloads.map(\.segmentSize) == [1448, 1448, 1448, 0])
        #expect(offloads.map(\.checksumVerified) == [true, true, true, true])
        #expect(netfront.counters.segmentedTransmits == 3)
        #expect(netfront.counters.coalescedReceives == 3)
        // Too large for one packet's 16-bit size: refused before the ring.
        #expect(throws: DeviceError.self) {
            try netfront.transmit(
                pooled(
                    tcpFrame(payload: 65_535 - 40, partial: true), netfront,
                    offload: PacketOffload(
                        checksumSpan: UInt16(65_535 - 20), checksumField: 16, segmentSize: 1448)
                ))
        }
        netfront.close()
        log = simulator.stop()
        #expect(log.contains("tx gso 3 csum-blank 4; rx gso 3"), "\(log)")
    }

    /// The backend goes Closing after five packets and offers itself again (Closed,
    /// then InitWait): the netfront answers, connects again on the loop with new rings
    /// and a new channel, and frames flow again; the application kept its device.
    @Test(arguments: ["--close-after", "--vanish-after"])
    func reconnectsWhenTheBackendComesBack(how: String) throws {
        let simulator = try RunningNetbackSimulator(["--reflect", how, "5"])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop)
        defer { netfront.close() }
        var changes: [Bool] = []
        netfront.onLinkChange = { changes.append($0) }
        var received = 0
        try netfront.startEach { _ in received += 1 }
        var next = 0
        try runLoop(loop, seconds: 15) {
            if netfront.isLinkUp && next - received < 4 {
                try? netfront.transmit(numberedFrame(next))
                next += 1
            }
            return (netfront.reconnections == 1 && received >= 20) || netfront.failure != nil
        }
        #expect(netfront.failure == nil)
        #expect(netfront.reconnections == 1)
        #expect(changes == [false, true])
        #expect(netfront.isLinkUp)
        #expect(received >= 20)
        #expect(try xen.store.read("device/vif/0/state", in: .none) == "4")
        netfront.close()
        let log = simulator.stop()
        // Detaching, the netfront waited for the directory to go rather than write
        // Initialising into it (online 0).
        #expect(log.contains("detach-writes 0"), "\(log)")
    }

    /// What keeping received frames out of the backend's reach costs on this machine:
    /// the copy from the landing page into the pool, beside ending and renewing a
    /// page's grant on the simulated hypervisor (a bookkeeping byte here; on Xen an
    /// unshare and a share through gntalloc: ioctls, an munmap and an mmap).
    @Test func receiveIsolationCost() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let page = try xen.grants.share(pageCount: 1, with: XenDomainID(0), writable: true)
        let pool = BufferPool(limit: 4)
        let source = UnsafeRawBufferPointer(start: page.memory.baseAddress!, count: 1514)
        let rounds = 200_000
        let clock = ContinuousClock()
        let copying = clock.measure {
            for _ in 0..<rounds {
                var frame = try! pool.allocate()
                try! frame.append(contentsOf: source)
            }
        }
        var pages = page
        let granting = clock.measure {
            for _ in 0..<20_000 {
                try! xen.grants.unshare(pages)
                pages = try! xen.grants.share(pageCount: 1, with: XenDomainID(0), writable: true)
            }
        }
        let copy =
            Double(
                copying.components.attoseconds / 1_000_000_000 + copying.components.seconds
                    * 1_000_000_000) / Double(rounds)
        let grant =
            Double(
                granting.components.attoseconds / 1_000_000_000 + granting.components.seconds
                    * 1_000_000_000) / 20_000
        print(
            "receive isolation: copy of 1514 B \(copy) ns/frame; simulated end+renew of a grant \(grant) ns/frame"
        )
        #expect(copy > 0)
    }
}
