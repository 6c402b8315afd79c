import Foundation
import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import SystemPackage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// XdpDevice against the Linux kernel: a veth pair in a namespace the test creates and
/// removes, the device on one end (`va`), the kernel's stack on the other (`vb`,
/// 192.0.2.1/24). The device is opened from a thread moved into the namespace, like the
/// TAP tests, because the socket and the interface index belong to the namespace the
/// opening thread is in.
@Suite(.serialized) struct XdpDeviceTests {
    /// Creates the veth pair and opens the device on `va`.
    private func withVeth(
        _ test: String, _ body: (TestNamespace, XdpDevice, EventLoop) throws -> Void
    ) throws {
        if let reason = xdpUnavailableReason { try skip(test, reason) }
        try withTestNamespace(test) { namespace in
            try namespace.addVethPair(kernelChecksums: false)
            let loop = try EventLoop()
            let device = try NetworkNamespace.withEntered(path: namespace.path) {
                try XdpDevice(interface: "va", on: loop, frameCount: 256, ringSize: 64)
            }
            defer { device.close() }
            try body(namespace, device, loop)
        }
    }

    /// Runs the loop for `seconds`.
    private func turn(_ loop: EventLoop, seconds: Double = 0.2) throws {
        loop.schedule(after: .milliseconds(Int(seconds * 1000))) { loop.stop() }
        try loop.run()
    }

    private func counter(_ namespace: TestNamespace, _ path: String) throws -> Int {
        let text = try namespace.runChecked(["cat", "/sys/class/net/\(path)"]).output
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test func framesFromTheKernelArriveAndOursReachIt() throws {
        try withVeth("xdp frames both ways") { namespace, device, loop in
            // The program is attached, in the driver (veth has native XDP).
            let link = try namespace.runChecked(["ip", "-d", "link", "show", "dev", "va"])
            #expect(link.output.contains("xdp"), "\(link.output)")
            #expect(device.isNative)
            #expect(device.isCopyMode)  // veth has no zero-copy
            let kernelMAC = try namespace.runChecked([
                "cat", "/sys/class/net/va/address",
            ]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(device.macAddress.description == kernelMAC)
            #expect(device.mtu == 1500)
            #expect(device.isLinkUp)

            var received: [[UInt8]] = []
            try device.startEach { frame in received.append(frame.copyBytes()) }
            // Kernel to device: pinging a neighbour on vb makes the kernel ask for it
            // by ARP; the request arrives on va, where the program hands it to us.
            _ = try namespace.run(["ping", "-c", "1", "-W", "1", "192.0.2.2"])
            try turn(loop)
            let arp = received.first { frame in
                frame.count >= 42 && frame[12] == 0x08 && frame[13] == 0x06
                    && Array(frame[38..<42]) == [192, 0, 2, 2]
            }
            #expect(arp != nil, "\(received.count) frames, none an ARP request for 192.0.2.2")
            #expect(device.counters.receivedPackets == UInt64(received.count))

            // Device to kernel: a frame built in a pool buffer, the same view again (the
            // frame is held until both sends complete), and bytes from outside the UMEM
            // (copied into it once).
            let freeBefore = device.pool.freeCount
            let before = try counter(namespace, "vb/statistics/rx_packets")
            let bytes = experimentalFrame(source: device.macAddress, marker: 9)
            var inPlace = try device.pool.allocate()
            try inPlace.append(contentsOf: bytes)
            try device.transmit(inPlace)
            try device.transmit(inPlace)
            try device.transmit(Bits(bytes))
            inPlace = Bits([])
            try turn(loop)
            #expect(try counter(namespace, "vb/statistics/rx_packets") == before + 3)
            #expect(device.counters.transmittedPackets == 3)
            #expect(device.counters.transmitDrops == 0 && device.counters.transmitErrors == 0)
            // Every frame came back from the kernel's completion ring to the pool.
            #expect(device.pool.freeCount == freeBefore)
            let statistics = try #require(device.kernelStatistics)
            #expect(statistics.receiveInvalid == 0 && statistics.transmitInvalid == 0)

            // Too large for the link: a typed error, nothing sent.
            var large = try device.pool.allocate()
            try large.append(contentsOf: [UInt8](repeating: 0, count: 1519))
            #expect(throws: DeviceError.frameTooLarge(device: "va", size: 1519, limit: 1518)) {
                try device.transmit(large)
            }
        }
    }

    @Test func aSecondDeviceOnTheQueueIsRefusedAndCloseGivesTheQueueBack() throws {
        try withVeth("xdp busy and close") { namespace, device, loop in
            let second = Result {
                try NetworkNamespace.withEntered(path: namespace.path) {
                    try XdpDevice(interface: "va", on: loop, frameCount: 16, ringSize: 8)
                }
            }
            guard case .failure(let error) = second else {
                Issue.record("a second device opened the same queue")
                return
            }
            #expect(
                error as? DeviceError
                    == .xdp(.openFailed(interface: "va", queue: 0, .resourceBusy)), "\(error)")
            device.close()
            device.close()  // a second close does nothing
            #expect(throws: DeviceError.closed(device: "va")) {
                try device.transmit(Bits(experimentalFrame(source: device.macAddress, marker: 1)))
            }
            let link = try namespace.runChecked(["ip", "-d", "link", "show", "dev", "va"])
            #expect(!link.output.contains("prog/xdp"), "\(link.output)")
            // The queue is free again: a new device gets it.
            let third = try NetworkNamespace.withEntered(path: namespace.path) {
                try XdpDevice(interface: "va", on: loop, frameCount: 16, ringSize: 8)
            }
            third.close()
        }
    }

    @Test func aMissingInterfaceIsATypedError() throws {
        try withTestNamespace("xdp missing interface") { namespace in
            let loop = try EventLoop()
            #expect(
                throws: DeviceError.xdp(
                    .interfaceInfo(interface: "nothere0", .operationNotSupportedByDevice))
            ) {
                _ = try NetworkNamespace.withEntered(path: namespace.path) {
                    try XdpDevice(interface: "nothere0", on: loop)
                }
            }
        }
    }
}
