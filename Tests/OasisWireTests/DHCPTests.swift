import OasisBits
import OasisWire
import Testing

/// A DHCPOFFER laid out by hand from RFC 2131 §2 and RFC 2132: what dnsmasq sends for a
/// /24 with a router, two DNS servers, a 120 s lease and T1/T2.
private func sampleOffer() -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 240)
    bytes[0] = 2  // BOOTREPLY
    bytes[1] = 1
    bytes[2] = 6
    bytes[4...7] = [0xde, 0xad, 0xbe, 0xef]  // xid
    bytes[16...19] = [192, 0, 2, 50]  // yiaddr
    bytes[20...23] = [192, 0, 2, 1]  // siaddr
    bytes[28...33] = [2, 0, 0, 0, 0, 2]  // chaddr
    bytes[236...239] = [99, 130, 83, 99]
    bytes += [53, 1, 2]  // OFFER
    bytes += [54, 4, 192, 0, 2, 1]
    bytes += [51, 4, 0, 0, 0, 120]
    bytes += [58, 4, 0, 0, 0, 60]
    bytes += [59, 4, 0, 0, 0, 105]
    bytes += [1, 4, 255, 255, 255, 0]
    bytes += [28, 4, 192, 0, 2, 255]  // broadcast address: kept by code
    bytes += [3, 4, 192, 0, 2, 1]
    bytes += [6, 8, 192, 0, 2, 1, 192, 0, 2, 53]
    bytes += [15, 8] + Array("oasis.lo".utf8)
    bytes += [26, 2, 0x05, 0xdc]
    bytes += [0, 0, 255]  // pads, end
    bytes += [UInt8](repeating: 0, count: 20)
    return bytes
}

@Suite struct DHCPTests {
    @Test func parseOffer() throws {
        let offer = try DHCPMessage.parse(sampleOffer())
        #expect(offer.operation == .reply && offer.transactionID == 0xdead_beef)
        #expect(offer.yourAddress == IPv4Address(192, 0, 2, 50))
        #expect(offer.clientHardwareAddress == MACAddress(2, 0, 0, 0, 0, 2))
        let options = offer.options
        #expect(options.messageType == .offer)
        #expect(options.serverIdentifier == IPv4Address(192, 0, 2, 1))
        #expect(
            options.leaseTime == 120 && options.renewalTime == 60 && options.rebindingTime == 105)
        #expect(options.subnetMask == IPv4Address(255, 255, 255, 0))
        #expect(options.routers == [IPv4Address(192, 0, 2, 1)])
        #expect(
            options.domainNameServers == [IPv4Address(192, 0, 2, 1), IPv4Address(192, 0, 2, 53)])
        #expect(options.domainName == "oasis.lo" && options.interfaceMTU == 1500)
        #expect(options.value(of: 28) == [192, 0, 2, 255])
    }

    @Test func parseFromSpan() throws {
        let packet = Packet(copying: sampleOffer())
        let offer = try DHCPMessage.parse(packet.bytes)
        #expect(offer.options.messageType == .offer)
    }

    @Test func roundTrip() throws {
        var request = DHCPMessage(
            operation: .request, transactionID: 7,
            clientHardwareAddress: MACAddress(2, 0, 0, 0, 0, 9))
        request.broadcast = true
        request.seconds = 3
        request.clientAddress = IPv4Address(10, 0, 0, 9)
        request.options.messageType = .request
        request.options.requestedAddress = IPv4Address(10, 0, 0, 9)
        request.options.serverIdentifier = IPv4Address(10, 0, 0, 1)
        request.options.parameterRequestList = [1, 3, 6, 15, 26, 51, 58, 59]
        request.options.clientIdentifier = [1, 2, 0, 0, 0, 0, 9]
        request.options.hostName = "oasis"
        request.options.maximumMessageSize = 1500
        request.options.other = [(200, Array(repeating: 7, count: 300))]  // split in two
        let bytes = request.encoded()
        #expect(bytes.count >= 300)
        #expect(bytes[10] == 0x80)
        let parsed = try DHCPMessage.parse(bytes)
        #expect(parsed == request)
    }

    @Test func shortMessagesArePadded() {
        var release = DHCPMessage(
            operation: .request, transactionID: 1, clientHardwareAddress: .zero)
        release.options.messageType = .release
        let bytes = release.encoded()
        #expect(bytes.count == 300)
        #expect(Array(bytes[240..<244]) == [53, 1, 7, 255])
    }

    @Test func overloadedFieldsHoldOptions() throws {
        var bytes = sampleOffer()
        // Option 52 = 3: `file` then `sname` hold options too.
        bytes.insert(contentsOf: [52, 1, 3], at: 240)
        bytes[108..<116] = [12, 5] + Array("host1".utf8) + [255]  // in file: host name
        bytes[44...50] = [58, 4, 0, 0, 0, 61, 255]  // in sname: T1 again, joined → bad length
        #expect(throws: DHCPError.badOptionLength(code: 58, length: 8)) {
            try DHCPMessage.parse(bytes)
        }
        bytes[44...50] = [66, 4, 1, 2, 3, 4, 255]
        let parsed = try DHCPMessage.parse(bytes)
        #expect(parsed.options.hostName == "host1")
        #expect(parsed.options.value(of: 66) == [1, 2, 3, 4])
        #expect(parsed.serverName.isEmpty && parsed.bootFile.isEmpty)
    }

    @Test func repeatedOptionsAreJoined() throws {
        var bytes = Array(sampleOffer()[0..<240])
        bytes += [53, 1, 5, 6, 4, 1, 1, 1, 1, 6, 4, 8, 8, 8, 8, 255]
        let parsed = try DHCPMessage.parse(bytes)
        #expect(
            parsed.options.domainNameServers == [IPv4Address(1, 1, 1, 1), IPv4Address(8, 8, 8, 8)])
        #expect(parsed.options.messageType == .ack)
    }

    @Test func missingEndIsTolerated() throws {
        let bytes = Array(sampleOffer()[0..<243])
        #expect(try DHCPMessage.parse(bytes).options.messageType == .offer)
    }

    @Test func badInputIsATypedError() {
        let good = sampleOffer()
        #expect(throws: DHCPError.truncated(available: 239)) {
            try DHCPMessage.parse(Array(good[0..<239]))
        }
        var bytes = good
        bytes[0] = 3
        #expect(throws: DHCPError.badOperation(3)) { try DHCPMessage.parse(bytes) }
        bytes = good
        bytes[2] = 16
        #expect(throws: DHCPError.unsupportedHardware(type: 1, length: 16)) {
            try DHCPMessage.parse(bytes)
        }
        bytes = good
        bytes[239] = 0
        #expect(throws: DHCPError.badMagicCookie(0x6382_5300)) { try DHCPMessage.parse(bytes) }
        bytes = Array(good[0..<240]) + [53, 1, 9, 255]
        #expect(throws: DHCPError.unknownMessageType(9)) { try DHCPMessage.parse(bytes) }
        bytes = Array(good[0..<240]) + [53, 2, 1, 1, 255]
        #expect(throws: DHCPError.badOptionLength(code: 53, length: 2)) {
            try DHCPMessage.parse(bytes)
        }
        bytes = Array(good[0..<240]) + [3, 6, 1, 2, 3, 4, 5, 6, 255]
        #expect(throws: DHCPError.badOptionLength(code: 3, length: 6)) {
            try DHCPMessage.parse(bytes)
        }
        bytes = Array(good[0..<240]) + [6, 20, 1, 2]
        #expect(throws: DHCPError.optionTruncated(code: 6)) { try DHCPMessage.parse(bytes) }
        bytes = Array(good[0..<240]) + [6]
        #expect(throws: DHCPError.optionTruncated(code: 6)) { try DHCPMessage.parse(bytes) }
        bytes = Array(good[0..<240]) + [52, 1, 4, 255]
        #expect(throws: DHCPError.badOverload(4)) { try DHCPMessage.parse(bytes) }
        bytes = Array(good[0..<240]) + [26, 2, 0, 10, 255]
        #expect(throws: DHCPError.badOptionLength(code: 26, length: 10)) {
            try DHCPMessage.parse(bytes)
        }
        bytes = Array(good[0..<240]) + [12, 2, 0xff, 0xfe, 255]
        #expect(throws: DHCPError.badText(code: 12)) { try DHCPMessage.parse(bytes) }
    }
}
