import OasisBits
import OasisTestSupport
import OasisWire
import Testing

@testable import OasisOpenFlow

/// Actions applied to frames: every output sees the frame as the actions before it
/// left it, VLAN tags are pushed, changed and stripped, and every rewritten header's
/// checksums equal sums from scratch.
@Suite struct ApplyActionsTests {
    /// An Ethernet frame (optionally 802.1Q-tagged) with an IPv4 header and a TCP or UDP
    /// segment of `payload` bytes, every checksum right.
    static func frame(
        udp: Bool = false, tag: UInt16? = nil, udpChecksum: Bool = true, payload: Int = 20
    ) -> [UInt8] {
        let source: [UInt8] = [192, 0, 2, 1]
        let destination: [UInt8] = [192, 0, 2, 2]
        var transport: [UInt8]
        if udp {
            let length = 8 + payload
            transport = [0x30, 0x39, 0x00, 0x35, UInt8(length >> 8), UInt8(length & 0xff), 0, 0]
        } else {
            transport = [
                0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0x00, 0, 0, 0, 0,
            ]
        }
        transport += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        if !udp || udpChecksum {
            let sum = transportSum(transport, udp: udp, source: source, destination: destination)
            let field = udp ? 6 : 16
            transport[field] = UInt8(sum >> 8)
            transport[field + 1] = UInt8(sum & 0xff)
        }
        let total = 20 + transport.count
        var ip: [UInt8] = [
            0x45, 0x28, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0x00, 64,
            udp ? 17 : 6, 0, 0,
        ]
        ip += source + destination
        let headerSum = ip.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        ip[10] = UInt8(headerSum >> 8)
        ip[11] = UInt8(headerSum & 0xff)
        var link: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]
        if let tag { link += [0x81, 0x00, UInt8(tag >> 8), UInt8(tag & 0xff)] }
        link += [0x08, 0x00]
        return link + ip + transport
    }

    static func transportSum(_ segment: [UInt8], udp: Bool, source: [UInt8], destination: [UInt8])
        -> UInt16
    {
        var zeroed = segment
        let field = udp ? 6 : 16
        zeroed[field] = 0
        zeroed[field + 1] = 0
        var sum = IPv4Repr.pseudoHeaderChecksum(
            source: IPv4Address(source[0], source[1], source[2], source[3]),
            destination: IPv4Address(
                destination[0], destination[1], destination[2], destination[3]),
            protocol: udp ? .udp : .tcp, length: segment.count)
        zeroed.withUnsafeBytes { sum.add($0) }
        return udp && sum.checksum == 0 ? 0xffff : sum.checksum
    }

    /// Whether the IPv4 header checksum and the transport checksum of an (untagged or
    /// tagged) frame are what a sender would write.
    static func checksumsAreRight(_ frame: [UInt8]) -> Bool {
        let offset = frame[12] == 0x81 ? 18 : 14
        let ip = Array(frame[offset...])
        var header = Array(ip[0..<20])
        header[10] = 0
        header[11] = 0
        let headerSum = header.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        guard UInt16(ip[10]) << 8 | UInt16(ip[11]) == headerSum else { return false }
        let udp = ip[9] == 17
        let segment = Array(ip[20...])
        let field = udp ? 6 : 16
        let stored = UInt16(segment[field]) << 8 | UInt16(segment[field + 1])
        if udp && stored == 0 { return true }
        return stored
            == transportSum(
                segment, udp: udp, source: Array(ip[12..<16]), destination: Array(ip[16..<20]))
    }

    /// Applies `actions` to `bytes`; returns each output's port and frame.
    static func run(_ actions: [Action], on bytes: [UInt8]) throws -> [(UInt16, [UInt8])] {
        var packet = Packet(copying: bytes)
        var outputs: [(UInt16, [UInt8])] = []
        try FrameActions.apply(actions, to: &packet) { port, _, frame in
            outputs.append((port.rawValue, frame.copyBytes()))
        }
        return outputs
    }

    @Test func eachOutputSeesTheFrameAsTheActionsBeforeItLeftIt() throws {
        let original = Self.frame()
        let outputs = try Self.run(
            [
                .output(port: PortNumber(1)),
                .setDLDestination(MACAddress(rawValue: 0x0a0b_0c0d_0e0f)),
                .output(port: PortNumber(2)), .setTPDestination(8080), .output(port: .flood),
            ], on: original)
        #expect(outputs.map(\.0) == [1, 2, PortNumber.flood.rawValue])
        #expect(outputs[0].1 == original)
        #expect(outputs[1].1[0..<6] == [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f])
        #expect(outputs[1].1[6...] == original[6...])
        let last = outputs[2].1
        #expect(UInt16(last[36]) << 8 | UInt16(last[37]) == 8080 && Self.checksumsAreRight(last))
    }

    @Test(arguments: [false, true])
    func setFieldActionsKeepEveryChecksumRight(tagged: Bool) throws {
        for udp in [false, true] {
            let original = Self.frame(udp: udp, tag: tagged ? 0x2005 : nil)
            let outputs = try Self.run(
                [
                    .setNWSource(0xcb00_7107), .setNWDestination(0xc633_6463), .setNWToS(0xb9),
                    .setTPSource(4242), .setTPDestination(53), .output(port: PortNumber(3)),
                ], on: original)
            let out = outputs[0].1
            let ip = tagged ? 18 : 14
            #expect(Array(out[(ip + 12)..<(ip + 20)]) == [203, 0, 113, 7, 198, 51, 100, 99])
            // DSCP from the action, ECN (0x28 & 3 = 0) from the frame.
            #expect(out[ip + 1] == 0xb8)
            #expect(Array(out[(ip + 20)..<(ip + 24)]) == [0x10, 0x92, 0x00, 0x35])
            #expect(Self.checksumsAreRight(out), "udp \(udp) tagged \(tagged)")
        }
        // A UDP datagram sent without a checksum keeps none.
        let bare = Self.frame(udp: true, udpChecksum: false)
        let out = try Self.run(
            [.setNWSource(0x0a00_0001), .output(port: PortNumber(1))], on: bare)[0].1
        #expect(out[40] == 0 && out[41] == 0 && Self.checksumsAreRight(out))
    }

    @Test func vlanTagsArePushedChangedAndStripped() throws {
        let untagged = Self.frame()
        let outputs = try Self.run(
            [
                .setVLANID(10), .output(port: PortNumber(1)), .setVLANPriority(5),
                .output(port: PortNumber(2)), .stripVLAN, .output(port: PortNumber(3)),
            ], on: untagged)
        let pushed = outputs[0].1
        #expect(pushed.count == untagged.count + 4)
        #expect(Array(pushed[0..<12]) == Array(untagged[0..<12]))
        #expect(Array(pushed[12..<16]) == [0x81, 0x00, 0x00, 0x0a])
        #expect(Array(pushed[16...]) == Array(untagged[12...]))
        #expect(Array(outputs[1].1[12..<16]) == [0x81, 0x00, 0xa0, 0x0a])
        #expect(outputs[2].1 == untagged)
        // The tag's flow extraction agrees.
        let match = Match(frame: Bits(outputs[1].1), inPort: PortNumber(1))
        #expect(match.dlVlan == 10 && match.dlVlanPcp == 5 && match.dlType == 0x0800)
        // Stripping an untagged frame, or setting IP fields of an ARP frame, changes nothing.
        var arp = Self.frame()
        arp[12] = 0x08
        arp[13] = 0x06
        let unchanged = try Self.run(
            [.stripVLAN, .setNWSource(1), .output(port: PortNumber(1))], on: arp)
        #expect(unchanged[0].1 == arp)
    }

    /// An IPv4-typed frame cut inside its IP header: the IP rewrites leave it alone
    /// (the ToS rewrite read byte 1 of a 1-byte header and trapped; FuzzSwitch found it).
    @Test func ipRewritesLeaveACutIPv4HeaderAlone() throws {
        for cut in [15, 16, 20, 33] {
            let frame = Array(Self.frame().prefix(cut))
            let outputs = try Self.run(
                [
                    .setNWToS(0xb8), .setNWSource(1), .setTPDestination(9),
                    .output(port: PortNumber(1)),
                ],
                on: frame)
            #expect(outputs[0].1 == frame, "cut at \(cut)")
        }
    }

    @Test func aVendorActionIsRefused() {
        #expect(throws: ActionError.unsupportedVendor(0x2320)) {
            try Self.run(
                [.vendor(0x2320, body: Payload(Bits([UInt8](repeating: 0, count: 8))))],
                on: Self.frame())
        }
    }
}
