import OasisBits
import OasisDevices
import Testing

@testable import OasisNet

let ours = MACAddress("02:00:00:00:00:02")!
let theirs = MACAddress("02:00:00:00:00:01")!
let hostA = IPv4Address("192.0.2.1")!
let hostB = IPv4Address("192.0.2.2")!

/// An empty view with room in front for headers.
func emptyPacket(headroom: Int = 128) -> Bits {
    Bits([UInt8](), headroom: headroom)
}

/// `bytes` with room in front for headers.
func packet(_ bytes: [UInt8], headroom: Int = 128) -> Bits {
    Bits(bytes, headroom: headroom)
}

@Suite struct AddressTests {
    @Test func mac() {
        let mac = MACAddress("02:00:00:00:00:01")!
        #expect(mac.description == "02:00:00:00:00:01")
        #expect(mac == MACAddress(2, 0, 0, 0, 0, 1))
        #expect(!mac.isMulticast && mac.isUnicast)
        #expect(MACAddress.broadcast.isMulticast && MACAddress.broadcast.isBroadcast)
        #expect(MACAddress("01:00:5e:00:00:fb")!.isMulticast)
        #expect(MACAddress("02:00:00:00:00") == nil)
        #expect(MACAddress("02:00:00:00:00:01:03") == nil)
        #expect(MACAddress("0g:00:00:00:00:01") == nil)
        #expect(MACAddress("AA-BB-CC-DD-EE-FF")!.description == "aa:bb:cc:dd:ee:ff")
    }

    @Test func ipv4() {
        let a = IPv4Address("192.0.2.1")!
        #expect(a.rawValue == 0xc000_0201)
        #expect(a.description == "192.0.2.1")
        #expect(IPv4Address("256.0.0.1") == nil)
        #expect(IPv4Address("1.2.3") == nil)
        #expect(IPv4Address("01.2.3.4") == nil)
        #expect(IPv4Address("1.2.3.4.") == nil)
        #expect(IPv4Address("224.0.0.1")!.isMulticast)
        #expect(IPv4Address.broadcast.description == "255.255.255.255")
    }

    @Test func network() {
        let net = IPv4Network("192.0.2.2/24")!
        #expect(net.address == hostB && net.prefixLength == 24)
        #expect(net.netmask.description == "255.255.255.0")
        #expect(net.broadcast.description == "192.0.2.255")
        #expect(net.networkAddress.description == "192.0.2.0")
        #expect(net.contains(IPv4Address("192.0.2.77")!))
        #expect(!net.contains(IPv4Address("192.0.3.1")!))
        #expect(IPv4Network("0.0.0.0/0")!.contains(hostA))
        #expect(IPv4Network("10.0.0.1/32")!.broadcast.description == "10.0.0.1")
        #expect(IPv4Network("10.0.0.1/33") == nil)
        #expect(IPv4Network("10.0.0.1") == nil)
        #expect(net.description == "192.0.2.2/24")
    }
}

@Suite struct EthernetTests {
    @Test func deconstruct() throws {
        let frame = packet(echoRequestFrame)
        let header = try frame.header(EthernetHeader.self)
        #expect(try frame.readMAC(at: EthernetHeader.destination) == ours)
        #expect(try frame.readMAC(at: EthernetHeader.source) == theirs)
        #expect(header[EthernetHeader.etherType] == 0x0800)
    }

    @Test func parse() throws {
        let (eth, payload) = try EthernetRepr.parse(packet(arpRequestFrame))
        #expect(eth == EthernetRepr(destination: .broadcast, source: theirs, etherType: .arp))
        #expect(payload.count == 28)
        #expect(eth.vid == nil)
    }

    @Test func constructAndEmit() throws {
        var payload = packet(Array(echoRequestFrame[14...]))
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
        let (eth, payload) = try EthernetRepr.parse(packet(tagged))
        #expect(eth.outerTag == VLANTag(priority: 5, dropEligible: true, vid: 100))
        #expect(eth.innerTag == nil && eth.etherType == .ipv4 && eth.vid == 100)
        #expect(payload.copyBytes() == Array(echoRequestFrame[14...]))
        var rebuilt = packet(Array(echoRequestFrame[14...]))
        try eth.emit(prependingTo: &rebuilt)
        #expect(rebuilt.copyBytes() == tagged)

        let qinq: [UInt8] = Array(tagged[0..<12]) + [0x88, 0xa8, 0x00, 0x07] + Array(tagged[12...])
        let (outer, inner) = try EthernetRepr.parse(packet(qinq))
        #expect(outer.outerTag == VLANTag(tpid: .qinq, vid: 7))
        #expect(outer.innerTag == VLANTag(priority: 5, dropEligible: true, vid: 100))
        #expect(outer.vid == 100 && outer.etherType == .ipv4 && inner.count == 84)
        var again = packet(Array(echoRequestFrame[14...]))
        try outer.emit(prependingTo: &again)
        #expect(again.copyBytes() == qinq)

        let triple: [UInt8] = Array(qinq[0..<12]) + [0x88, 0xa8, 0x00, 0x08] + Array(qinq[12...])
        #expect(throws: EthernetError.tooManyVLANTags) { try EthernetRepr.parse(packet(triple)) }
    }

    @Test func badInput() {
        #expect(throws: EthernetError.truncated(needed: 14, available: 13)) {
            try EthernetRepr.parse(packet(Array(arpRequestFrame[0..<13])))
        }
        #expect(throws: EthernetError.truncated(needed: 18, available: 16)) {
            try EthernetRepr.parse(packet(Array(arpRequestFrame[0..<12]) + [0x81, 0x00, 0, 1]))
        }
        #expect(throws: EthernetError.notEthernetII(lengthField: 0x0026)) {
            try EthernetRepr.parse(packet(Array(arpRequestFrame[0..<12]) + [0x00, 0x26, 0, 0]))
        }
        var full = Bits([UInt8](repeating: 0, count: 4))
        #expect(throws: EthernetError.buffer(.noHeadroom(needed: 14, available: 0))) {
            try EthernetRepr(destination: ours, source: theirs, etherType: .ipv4)
                .emit(prependingTo: &full)
        }
    }
}

@Suite struct ArpTests {
    @Test func deconstruct() throws {
        let arp = try packet(arpReplyFrame).shifted(by: 14)
        let header = try arp.header(ArpHeader.self)
        #expect(header[ArpHeader.hardwareType] == 1)
        #expect(header[ArpHeader.protocolType] == 0x0800)
        #expect(header[ArpHeader.operation] == 2)
        #expect(header[ArpHeader.senderProtocolAddress] == hostB.rawValue)
        #expect(try arp.readMAC(at: ArpHeader.targetHardwareAddress) == theirs)
    }

    @Test func parse() throws {
        let request = try ArpRepr.parse(packet(arpRequestFrame).shifted(by: 14))
        #expect(request == .request(from: theirs, hostA, for: hostB))
        let reply = try ArpRepr.parse(packet(arpReplyFrame).shifted(by: 14))
        #expect(
            reply
                == ArpRepr(
                    operation: .reply, senderHardwareAddress: ours, senderProtocolAddress: hostB,
                    targetHardwareAddress: theirs, targetProtocolAddress: hostA))
        let gratuitous = try ArpRepr.parse(packet(gratuitousArpFrame).shifted(by: 14))
        #expect(gratuitous == .gratuitous(mac: theirs, address: hostA))
    }

    @Test func constructAndEmit() throws {
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: ours, senderProtocolAddress: hostB,
            targetHardwareAddress: theirs, targetProtocolAddress: hostA)
        var bits = emptyPacket()
        try reply.emit(prependingTo: &bits)
        try reply.ethernetHeader.emit(prependingTo: &bits)
        #expect(bits.copyBytes() == arpReplyFrame)
        var announce = emptyPacket()
        let gratuitous = ArpRepr.gratuitous(mac: theirs, address: hostA)
        try gratuitous.emit(prependingTo: &announce)
        try gratuitous.ethernetHeader.emit(prependingTo: &announce)
        #expect(announce.copyBytes() == gratuitousArpFrame)
    }

    @Test func badInput() throws {
        let body = Array(arpRequestFrame[14...])
        #expect(throws: ArpError.truncated(available: 27)) {
            try ArpRepr.parse(packet(Array(body[0..<27])))
        }
        var ipv6 = body
        ipv6[2] = 0x86
        ipv6[3] = 0xdd
        #expect(
            throws: ArpError.unsupportedFormat(
                hardwareType: 1, protocolType: 0x86dd, hardwareLength: 6, protocolLength: 4)
        ) { try ArpRepr.parse(packet(ipv6)) }
        var rarp = body
        rarp[7] = 3
        #expect(throws: ArpError.unknownOperation(3)) { try ArpRepr.parse(packet(rarp)) }
    }
}
