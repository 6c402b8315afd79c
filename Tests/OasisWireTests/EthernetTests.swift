import OasisBits
import OasisTestSupport
import OasisWire
import Testing

@Suite struct EthernetTests {
    @Test func deconstruct() throws {
        let frame = packet(echoRequestFrame)
        let view = try EthernetFrame(checking: frame.bytes)
        let (destination, source, type) = (view.destination, view.source, view.etherType)
        let (length, tags, payload) = (view.headerLength, view.tagCount, view.payload.byteCount)
        #expect(destination == ours && source == theirs && type == .ipv4)
        #expect(length == 14 && tags == 0 && payload == echoRequestFrame.count - 14)
    }

    @Test func parse() throws {
        let frame = packet(arpRequestFrame)
        let eth = try EthernetRepr.parse(frame.bytes)
        #expect(eth == EthernetRepr(destination: .broadcast, source: theirs, etherType: .arp))
        #expect(eth.headerLength == 14 && frame.count - eth.headerLength == 28)
        #expect(eth.vid == nil)
    }

    @Test func constructAndEmit() throws {
        var payload = packet(echoRequestFrame, from: 14)
        try EthernetRepr(destination: ours, source: theirs, etherType: .ipv4)
            .emit(prependingTo: &payload)
        #expect(payload.copyBytes() == echoRequestFrame)
    }

    /// The captured echo request with an 802.1Q tag inserted (PCP 5, DEI 1, VID 100),
    /// and with a QinQ outer tag (VID 7) in front of that.
    @Test func vlanTags() throws {
        let tagged: [UInt8] =
            Array(echoRequestFrame[0..<12]) + [0x81, 0x00, 0xb0, 0x64]
            + Array(echoRequestFrame[12...])
        var frame = packet(tagged)
        let eth = try EthernetRepr.parse(frame.bytes)
        #expect(eth.outerTag == VLANTag(priority: 5, dropEligible: true, vid: 100))
        #expect(eth.innerTag == nil && eth.etherType == .ipv4 && eth.vid == 100)
        try frame.shift(by: eth.headerLength)
        #expect(frame.copyBytes() == Array(echoRequestFrame[14...]))
        var rebuilt = packet(echoRequestFrame, from: 14)
        try eth.emit(prependingTo: &rebuilt)
        #expect(rebuilt.copyBytes() == tagged)

        let qinq: [UInt8] = Array(tagged[0..<12]) + [0x88, 0xa8, 0x00, 0x07] + Array(tagged[12...])
        let outer = try EthernetRepr.parse(packet(qinq).bytes)
        #expect(outer.outerTag == VLANTag(tpid: .qinq, vid: 7))
        #expect(outer.innerTag == VLANTag(priority: 5, dropEligible: true, vid: 100))
        #expect(
            outer.vid == 100 && outer.etherType == .ipv4 && qinq.count - outer.headerLength == 84)
        var again = packet(echoRequestFrame, from: 14)
        try outer.emit(prependingTo: &again)
        #expect(again.copyBytes() == qinq)

        let triple: [UInt8] = Array(qinq[0..<12]) + [0x88, 0xa8, 0x00, 0x08] + Array(qinq[12...])
        #expect(throws: EthernetError.tooManyVLANTags) {
            try EthernetRepr.parse(packet(triple).bytes)
        }
    }

    /// An IEEE 802.3 frame: its type field is a length; with an LLC/SNAP header the
    /// EtherType is inside it (what OpenFlow's flow extraction reads).
    @Test func lengthFramesAndSNAP() throws {
        let snap: [UInt8] =
            Array(arpRequestFrame[0..<12]) + [0x00, 0x26, 0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06]
            + Array(arpRequestFrame[14...])
        let frame = packet(snap)
        let view = try EthernetFrame(checking: frame.bytes)
        let (isII, type, carried) = (view.isEthernetII, view.etherType, view.snapEtherType)
        #expect(!isII && type.rawValue == 0x26 && carried == .arp)
        #expect(throws: EthernetError.notEthernetII(lengthField: 0x0026)) {
            try EthernetRepr.parse(frame.bytes)
        }
        let llc: [UInt8] = Array(arpRequestFrame[0..<12]) + [0x00, 0x26, 0x42, 0x42, 0x03]
        let plain = packet(llc)
        let noSNAP = try EthernetFrame(checking: plain.bytes).snapEtherType
        #expect(noSNAP == nil)
    }

    /// QinQ as it is on the wire (scapy's frame, sent on a veth and captured): an
    /// 802.1ad S-tag around an 802.1Q C-tag, each with its PCP, before the type.
    @Test func deconstructQinQ() throws {
        let frame = packet(qinqEchoFrame)
        let view = try EthernetFrame(checking: frame.bytes)
        let (tags, length, type) = (view.tagCount, view.headerLength, view.etherType)
        let (outer, inner) = (view.outerTag, view.innerTag)
        #expect(tags == 2 && length == 22 && type == .ipv4)
        #expect(outer == VLANTag(tpid: .qinq, priority: 3, vid: 100))
        #expect(inner == VLANTag(tpid: .vlan, priority: 5, vid: 200))
        let ip = try IPv4Repr.parse(view.payload)
        #expect(ip.source == IPv4Address(198, 51, 100, 1) && ip.identification == 7)
    }

    @Test func parseAndEmitQinQ() throws {
        var frame = packet(qinqEchoFrame)
        let eth = try EthernetRepr.parse(frame.bytes)
        #expect(
            eth
                == EthernetRepr(
                    destination: ours, source: theirs,
                    outerTag: VLANTag(tpid: .qinq, priority: 3, vid: 100),
                    innerTag: VLANTag(priority: 5, vid: 200), etherType: .ipv4))
        #expect(eth.vid == 200 && eth.headerLength == 22)
        try frame.shift(by: eth.headerLength)
        try frame.shift(by: IPv4Header.size)
        #expect(
            try ICMPv4Repr.parse(frame.bytes) == .echoRequest(identifier: 0x4242, sequenceNumber: 1)
        )
        var rebuilt = packet(qinqEchoFrame, from: 22)
        try eth.emit(prependingTo: &rebuilt)
        #expect(rebuilt.copyBytes() == qinqEchoFrame)

        var arp = packet(qinqArpFrame)
        let arpEth = try EthernetRepr.parse(arp.bytes)
        #expect(arpEth.outerTag?.vid == 100 && arpEth.innerTag?.vid == 200)
        #expect(arpEth.etherType == .arp && arpEth.destination == .broadcast)
        try arp.shift(by: arpEth.headerLength)
        let request = try ArpRepr.parse(arp.bytes)
        #expect(
            request
                == .request(
                    from: theirs, IPv4Address(198, 51, 100, 1), for: IPv4Address(198, 51, 100, 2)))
        var again = emptyPacket()
        try request.emit(prependingTo: &again)
        try arpEth.emit(prependingTo: &again)
        #expect(again.copyBytes() == qinqArpFrame)
    }

    /// An IEEE 802.3 frame with LLC/SNAP: its type field is its length, the EtherType
    /// is the SNAP header's, and the IPv4 packet follows the 8 bytes of LLC and SNAP.
    @Test func deconstructSNAP() throws {
        var frame = packet(snapUDPFrame)
        let (isII, length, snapType, headerLength): (Bool, UInt16, EtherType?, Int)
        do {
            let view = try EthernetFrame(checking: frame.bytes)
            (isII, length, snapType) = (
                view.isEthernetII, view.etherType.rawValue, view.snapEtherType
            )
            headerLength = view.headerLength
        }
        #expect(!isII && length == 40 && Int(length) == snapUDPFrame.count - 14)
        #expect(snapType == .ipv4 && headerLength == 14)
        #expect(throws: EthernetError.notEthernetII(lengthField: 40)) {
            try EthernetRepr.parse(frame.bytes)
        }
        try frame.shift(by: headerLength + 8)
        let ip = try IPv4Repr.parse(frame.bytes)
        try frame.shift(by: IPv4Header.size)
        let udp = try UDPRepr.parse(frame.bytes, source: ip.source, destination: ip.destination)
        #expect(udp == UDPRepr(sourcePort: 1234, destinationPort: 7))
    }

    /// A bridge's BPDU: 802.3 with LLC 42-42-03 and no SNAP header, so no EtherType.
    @Test func llcWithoutSNAP() throws {
        let frame = packet(stpFrame)
        let view = try EthernetFrame(checking: frame.bytes)
        let (isII, length, snapType) = (
            view.isEthernetII, view.etherType.rawValue, view.snapEtherType
        )
        let source = view.source
        #expect(!isII && length == 38 && snapType == nil)
        #expect(source == MACAddress(2, 0, 0, 0, 0, 3))
        // Cut inside the LLC/SNAP header: no EtherType either.
        let short = packet(Array(snapUDPFrame[0..<21]))
        let cut = try EthernetFrame(checking: short.bytes).snapEtherType
        #expect(cut == nil)
    }

    @Test func badInput() {
        #expect(throws: EthernetError.truncated(needed: 14, available: 13)) {
            try EthernetRepr.parse(packet(Array(arpRequestFrame[0..<13])).bytes)
        }
        #expect(throws: EthernetError.truncated(needed: 18, available: 16)) {
            try EthernetRepr.parse(
                packet(Array(arpRequestFrame[0..<12]) + [0x81, 0x00, 0, 1]).bytes)
        }
        #expect(throws: EthernetError.notEthernetII(lengthField: 0x0026)) {
            try EthernetRepr.parse(
                packet(Array(arpRequestFrame[0..<12]) + [0x00, 0x26, 0, 0]).bytes)
        }
        var full = packet([UInt8](repeating: 0, count: 4), headroom: 0)
        #expect(throws: EthernetError.buffer(.noHeadroom(needed: 14, available: 0))) {
            try EthernetRepr(destination: ours, source: theirs, etherType: .ipv4)
                .emit(prependingTo: &full)
        }
    }
}

@Suite struct ArpTests {
    @Test func deconstruct() throws {
        let arp = packet(arpReplyFrame, from: 14)
        let bytes = arp.bytes
        let (htype, ptype) = (bytes[ArpHeader.hardwareType], bytes[ArpHeader.protocolType])
        let (operation, sender) = (
            bytes[ArpHeader.operation], bytes[ArpHeader.senderProtocolAddress]
        )
        let target = bytes[mac: ArpHeader.targetHardwareAddress]
        #expect(htype == 1 && ptype == 0x0800 && operation == 2)
        #expect(sender == hostB.rawValue && target == theirs)
        #expect(try arp.readMAC(at: ArpHeader.targetHardwareAddress) == theirs)
    }

    @Test func parse() throws {
        let request = try ArpRepr.parse(packet(arpRequestFrame, from: 14).bytes)
        #expect(request == .request(from: theirs, hostA, for: hostB))
        let reply = try ArpRepr.parse(packet(arpReplyFrame, from: 14).bytes)
        #expect(
            reply
                == ArpRepr(
                    operation: .reply, senderHardwareAddress: ours, senderProtocolAddress: hostB,
                    targetHardwareAddress: theirs, targetProtocolAddress: hostA))
        // arping's announcement: all ones where we (and RFC 5227, and Linux) put zero.
        var gratuitous = try ArpRepr.parse(packet(gratuitousArpFrame, from: 14).bytes)
        #expect(gratuitous.targetHardwareAddress == .broadcast)
        gratuitous.targetHardwareAddress = .zero
        #expect(gratuitous == .gratuitous(mac: theirs, address: hostA))
    }

    @Test func constructAndEmit() throws {
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: ours, senderProtocolAddress: hostB,
            targetHardwareAddress: theirs, targetProtocolAddress: hostA)
        var frame = emptyPacket()
        try reply.emit(prependingTo: &frame)
        try reply.ethernetHeader.emit(prependingTo: &frame)
        #expect(frame.copyBytes() == arpReplyFrame)
        var announce = emptyPacket()
        let gratuitous = ArpRepr.gratuitous(mac: theirs, address: hostA)
        try gratuitous.emit(prependingTo: &announce)
        try gratuitous.ethernetHeader.emit(prependingTo: &announce)
        var expected = gratuitousArpFrame
        expected.replaceSubrange(32..<38, with: [UInt8](repeating: 0, count: 6))
        #expect(announce.copyBytes() == expected)
    }

    @Test func badInput() throws {
        let body = Array(arpRequestFrame[14...])
        #expect(throws: ArpError.truncated(available: 27)) {
            try ArpRepr.parse(packet(Array(body[0..<27])).bytes)
        }
        var ipv6 = body
        ipv6[2] = 0x86
        ipv6[3] = 0xdd
        #expect(
            throws: ArpError.unsupportedFormat(
                hardwareType: 1, protocolType: 0x86dd, hardwareLength: 6, protocolLength: 4)
        ) { try ArpRepr.parse(packet(ipv6).bytes) }
        var rarp = body
        rarp[7] = 3
        #expect(throws: ArpError.unknownOperation(3)) { try ArpRepr.parse(packet(rarp).bytes) }
    }
}
