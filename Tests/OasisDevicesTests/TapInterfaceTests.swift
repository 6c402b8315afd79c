import Foundation
import OasisDevices
import OasisTestSupport
import OasisWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// TapInterface against the Linux kernel, in a namespace each test creates and removes.
///
/// How the tests get into the namespace: `ip netns add` creates it (a file under
/// /run/netns); `NetworkNamespace.withEntered` moves only the calling thread into it
/// with setns(2) for the few synchronous lines that open the TAP and its control
/// socket, then moves the thread back. The descriptors stay bound to the namespace,
/// so everything after runs from whatever thread the test is on. Commands that must
/// see the namespace (`ip`, `ping`, `cat /sys/...`) run through `ip netns exec`.
@Suite struct TapInterfaceTests {
    static let mac = MACAddress(0x02_00_5e_00_53_01)

    @Test func nameTooLongIsRejectedBeforeTheKernel() {
        #expect(throws: TapError.nameTooLong("a-very-long-interface-name")) {
            _ = try TapInterface.open(name: "a-very-long-interface-name")
        }
    }

    @Test func macAddressFormatsLikeIPLink() {
        #expect(Self.mac.description == "02:00:5e:00:53:01")
        #expect(MACAddress(bytes: [2, 0, 0x5e, 0, 0x53, 1]) == Self.mac)
        #expect(MACAddress(bytes: [1, 2, 3]) == nil)
    }

    @Test func kernelPicksANameAndCloseIsFinal() throws {
        try withTestNamespace("kernelPicksANameAndCloseIsFinal") { namespace in
            let tap = try NetworkNamespace.withEntered(path: namespace.path) {
                try TapInterface.open()
            }
            #expect(tap.name.hasPrefix("tap"))
            #expect(try tap.index > 0)
            let shown = try namespace.run(["ip", "link", "show", "dev", tap.name])
            #expect(shown.status == 0, "the kernel does not list \(tap.name)")
            try tap.close()
            try tap.close()  // a second close does nothing
            #expect(tap.isClosed)
            #expect(throws: TapError.closed(interface: tap.name)) { _ = try tap.mtu }
            // A non-persistent TAP goes away with its last descriptor.
            let gone = try namespace.run(["ip", "link", "show", "dev", tap.name])
            #expect(gone.status != 0)
        }
    }

    @Test func settingsFramesAndCountersAgreeWithTheKernel() throws {
        try withTestNamespace("settingsFramesAndCountersAgreeWithTheKernel") { namespace in
            let tap = try NetworkNamespace.withEntered(path: namespace.path) {
                try TapInterface.open(name: "oasis0")
            }
            defer { try? tap.close() }
            #expect(tap.name == "oasis0")

            try tap.setMACAddress(Self.mac)
            try tap.setMTU(1400)
            try tap.setLinkUp(true)
            #expect(try tap.macAddress == Self.mac)
            #expect(try tap.mtu == 1400)
            #expect(try tap.isLinkUp)

            // The kernel's own view, through iproute2.
            let json = try namespace.runChecked(["ip", "-j", "link", "show", "dev", "oasis0"])
            let links = try JSONSerialization.jsonObject(with: Data(json.output.utf8))
            let link = try #require((links as? [[String: Any]])?.first)
            #expect(link["address"] as? String == "02:00:5e:00:53:01")
            #expect(link["mtu"] as? Int == 1400)
            let flags = link["flags"] as? [String] ?? []
            #expect(flags.contains("UP"))
            #expect(flags.contains("LOWER_UP"))  // carrier: our descriptor is attached

            // Kernel to fd: pinging a neighbour makes the kernel ask for it by ARP.
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "oasis0"])
            _ = try namespace.run(["ping", "-c", "1", "-W", "1", "192.0.2.2"])
            let arp = try #require(
                try readFrame(from: tap) { isARPRequest($0, for: [192, 0, 2, 2]) })
            #expect(Array(arp[0..<6]) == MACAddress.broadcast.bytes)
            #expect(Array(arp[6..<12]) == Self.mac.bytes)  // sent by the kernel side
            #expect(Array(arp[28..<32]) == [192, 0, 2, 1])  // sender protocol address

            // Fd to kernel: a frame we write is received by the interface.
            let before = try receivedPackets(namespace)
            let frame = experimentalFrame(source: MACAddress(0x02_00_5e_00_53_99), marker: 7)
            let written = try frame.withUnsafeBytes { try tap.write($0) }
            #expect(written)
            let after = try receivedPackets(namespace)
            #expect(after == before + 1)

            try tap.setLinkUp(false)
            #expect(try tap.isLinkUp == false)
        }
    }

    @Test func vnetHeaderOffloadAndMultiQueue() throws {
        try withTestNamespace("vnetHeaderOffloadAndMultiQueue") { namespace in
            let (first, second) = try NetworkNamespace.withEntered(path: namespace.path) {
                (
                    try TapInterface.open(name: "mq0", options: [.vnetHeader, .multiQueue]),
                    try TapInterface.open(name: "mq0", options: [.vnetHeader, .multiQueue])
                )
            }
            defer {
                try? first.close()
                try? second.close()
            }
            #expect(first.name == "mq0" && second.name == "mq0")
            #expect(try first.index == second.index)
            try first.setVnetHeaderSize(12)
            try first.setOffload([.checksum, .tcpSegmentationIPv4, .tcpSegmentationIPv6])
            try first.setOffload([])
            // A third queue with different flags does not match the interface.
            #expect(throws: TapError.self) {
                _ = try NetworkNamespace.withEntered(path: namespace.path) {
                    try TapInterface.open(name: "mq0")
                }
            }
        }
    }

    /// Reads frames until one satisfies `matches`, for up to two seconds.
    private func readFrame(from tap: TapInterface, matching matches: ([UInt8]) -> Bool)
        throws -> [UInt8]?
    {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let deadline = Deadline(seconds: 2)
        let descriptor = try tap.fileDescriptor.rawValue
        while !deadline.hasPassed {
            let count = try buffer.withUnsafeMutableBytes { try tap.read(into: $0) }
            guard let count else {
                _ = waitReadable(descriptor, milliseconds: 100)
                continue
            }
            let frame = Array(buffer[0..<count])
            if matches(frame) { return frame }
        }
        return nil
    }

    private func isARPRequest(_ frame: [UInt8], for target: [UInt8]) -> Bool {
        frame.count >= 42 && frame[12] == 0x08 && frame[13] == 0x06  // EtherType ARP
            && frame[20] == 0 && frame[21] == 1  // operation: request
            && Array(frame[38..<42]) == target
    }

    private func receivedPackets(_ namespace: TestNamespace) throws -> Int {
        // `ip netns exec` mounts the namespace's own /sys.
        let result = try namespace.runChecked(
            ["cat", "/sys/class/net/oasis0/statistics/rx_packets"])
        return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }
}
