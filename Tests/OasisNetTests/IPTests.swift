import OasisBits
import Testing

@testable import OasisNet

@Suite struct IPv4Tests {
    @Test func deconstruct() throws {
        let ip = try IPv4Packet(checking: packet(echoRequestFrame).shifted(by: 14))
        #expect(ip.headerLength == 20 && ip.totalLength == 84)
        #expect(ip.identification == 0x4ef1 && ip.dontFragment && !ip.moreFragments)
        #expect(ip.fragmentOffset == 0 && ip.timeToLive == 64 && ip.protocol == .icmp)
        #expect(ip.source == hostA && ip.destination == hostB)
        #expect(ip.header[IPv4Header.checksum] == 0x67b4)
        #expect(ip.verifyChecksum() && ip.options.isEmpty && ip.payload.count == 64)
    }

    @Test func parse() throws {
        let (repr, packet) = try IPv4Repr.parse(packet(echoRequestFrame).shifted(by: 14))
        #expect(
            repr
                == IPv4Repr(
                    source: hostA, destination: hostB, protocol: .icmp, payloadLength: 64,
                    identification: 0x4ef1, dontFragment: true))
        #expect(packet.payload.copyBytes() == Array(echoRequestFrame[34...]))
    }

    @Test func constructAndEmit() throws {
        let repr = IPv4Repr(
            source: hostB, destination: hostA, protocol: .icmp, payloadLength: 64,
            identification: 0x2c69)
        var bits = packet(Array(echoReplyFrame[34...]))
        try repr.emit(prependingTo: &bits)
        #expect(bits.copyBytes() == Array(echoReplyFrame[14...]))
    }

    @Test func fragmentFields() throws {
        let first = try IPv4Repr.parse(packet(bytes(hex: firstFragmentHex)).shifted(by: 14)).0
        #expect(first.moreFragments && first.fragmentOffset == 0 && first.payloadLength == 1480)
        let last = try IPv4Repr.parse(packet(bytes(hex: lastFragmentHex)).shifted(by: 14)).0
        #expect(!last.moreFragments && last.fragmentOffset == 1480 && last.payloadLength == 528)
        var rebuilt = packet(Array(bytes(hex: lastFragmentHex)[34...]))
        try last.emit(prependingTo: &rebuilt)
        #expect(rebuilt.copyBytes() == Array(bytes(hex: lastFragmentHex)[14...]))
    }

    /// A frame padded by Ethernet to 60 bytes, and a header with options.
    @Test func paddingAndOptions() throws {
        var padded = Array(dnsQueryFrame[14...]) + [0, 0, 0, 0]
        var (repr, ip) = try IPv4Repr.parse(packet(padded))
        #expect(ip.bits.count == 57 && ip.payload.count == 37 && repr.payloadLength == 37)
        // IHL 6 with a 4-byte NOP/EOL option; total length + 4, checksum recomputed.
        padded = Array(padded[0..<20]) + [0x01, 0x01, 0x01, 0x00] + Array(padded[20..<57])
        padded[0] = 0x46
        padded[3] += 4
        var withOptions = packet(padded)
        var view = try IPv4Packet(checking: withOptions)
        view.fillChecksum()
        (repr, ip) = try IPv4Repr.parse(withOptions)
        #expect(ip.options.copyBytes() == [1, 1, 1, 0] && ip.payload.count == 37)
        #expect(repr.payloadLength == 37)
        try withOptions.truncate(to: 22)
        #expect(throws: IPv4Error.badTotalLength(totalLength: 61, available: 22)) {
            try IPv4Packet(checking: withOptions)
        }
    }

    @Test func ttl() throws {
        var ip = try IPv4Packet(checking: packet(echoRequestFrame).shifted(by: 14))
        #expect(ip.decrementTimeToLive() == 63)
        #expect(ip.verifyChecksum())
    }

    @Test func badInput() throws {
        let body = Array(echoRequestFrame[14...])
        #expect(throws: IPv4Error.truncated(available: 19)) {
            try IPv4Repr.parse(packet(Array(body[0..<19])))
        }
        var v6 = body
        v6[0] = 0x65
        #expect(throws: IPv4Error.badVersion(6)) { try IPv4Repr.parse(packet(v6)) }
        var shortIHL = body
        shortIHL[0] = 0x44
        #expect(throws: IPv4Error.badHeaderLength(headerLength: 16, totalLength: 84)) {
            try IPv4Repr.parse(packet(shortIHL))
        }
        var longIHL = body
        longIHL[0] = 0x4f
        longIHL[3] = 40
        #expect(throws: IPv4Error.badHeaderLength(headerLength: 60, totalLength: 40)) {
            try IPv4Repr.parse(packet(longIHL))
        }
        #expect(throws: IPv4Error.badTotalLength(totalLength: 84, available: 83)) {
            try IPv4Repr.parse(packet(Array(body[0..<83])))
        }
        var corrupt = body
        corrupt[8] = 63  // TTL changed, checksum not
        #expect(throws: IPv4Error.badChecksum(found: 0x67b4)) {
            try IPv4Repr.parse(packet(corrupt))
        }
        #expect(try IPv4Repr.parse(packet(corrupt), verifyChecksum: false).0.timeToLive == 63)
        var big = Bits([UInt8](repeating: 0, count: 65_530), headroom: 20)
        #expect(throws: IPv4Error.payloadTooLarge(65_530)) {
            try IPv4Repr(source: hostA, destination: hostB, protocol: .udp, payloadLength: 0)
                .emit(prependingTo: &big)
        }
    }
}

@Suite struct ICMPTests {
    @Test func deconstruct() throws {
        let message = try packet(echoRequestFrame).shifted(by: 34)
        let header = try message.header(ICMPv4Header.self)
        #expect(header[ICMPv4Header.type] == 8 && header[ICMPv4Header.code] == 0)
        #expect(header[ICMPv4Header.checksum] == 0x50bf)
        #expect(header[ICMPv4Header.identifier] == 0x5dc5)
        #expect(header[ICMPv4Header.sequenceNumber] == 1)
        #expect(header.payload.count == 56)
    }

    @Test func parse() throws {
        let (repr, data) = try ICMPv4Repr.parse(packet(echoRequestFrame).shifted(by: 34))
        #expect(repr == .echoRequest(identifier: 0x5dc5, sequenceNumber: 1))
        #expect(data.copyBytes() == Array(echoRequestFrame[42...]))
        #expect(!repr.isError)
    }

    @Test func constructAndEmit() throws {
        var data = packet(Array(echoRequestFrame[42...]))
        try ICMPv4Repr.echoRequest(identifier: 0x5dc5, sequenceNumber: 1).emit(prependingTo: &data)
        #expect(data.copyBytes() == Array(echoRequestFrame[34...]))
    }

    /// Replying in place: the reply's headers are prepended over the request's, in the
    /// same buffer, and the frame is the kernel's reply byte for byte.
    @Test func echoReplyInPlace() throws {
        let frame = packet(echoRequestFrame)
        let (_, payload) = try EthernetRepr.parse(frame)
        let (ip, ipPacket) = try IPv4Repr.parse(payload)
        let (icmp, data) = try ICMPv4Repr.parse(ipPacket.payload)
        var reply = data
        try #require(icmp.echoReply).emit(prependingTo: &reply)
        try IPv4Repr(
            source: ip.destination, destination: ip.source, protocol: .icmp,
            payloadLength: reply.count, identification: 0x2c69
        ).emit(prependingTo: &reply)
        try EthernetRepr(destination: theirs, source: ours, etherType: .ipv4)
            .emit(prependingTo: &reply)
        #expect(reply.copyBytes() == echoReplyFrame)
        #expect(reply.buffer === frame.buffer)
    }

    @Test func destinationUnreachable() throws {
        let (repr, quoted) = try ICMPv4Repr.parse(packet(portUnreachableFrame).shifted(by: 34))
        #expect(repr == .destinationUnreachable(.portUnreachable, nextHopMTU: 0) && repr.isError)
        #expect(quoted.copyBytes() == Array(portUnreachableFrame[42...]))
        // Build it again from the original query, as the kernel did (whole datagram
        // quoted here, since it is short; `quote` gives header + 8 bytes).
        let original = try IPv4Packet(checking: packet(Array(portUnreachableFrame[42...])))
        #expect(ICMPv4Repr.quote(original).count == 28)
        var message = packet(Array(portUnreachableFrame[42...]))
        try repr.emit(prependingTo: &message)
        #expect(message.copyBytes() == Array(portUnreachableFrame[34...]))
        // A quote cut after 8 bytes of data is fine; one cut inside the header is not.
        var short = packet(Array(portUnreachableFrame[34..<(42 + 28)]))
        try short.write(UInt16(0), at: 2)
        try short.write(InternetChecksum.checksum(of: short), at: 2)
        #expect(try ICMPv4Repr.parse(short).1.count == 28)
        var broken = packet(Array(portUnreachableFrame[34..<(42 + 24)]))
        try broken.write(UInt16(0), at: 2)
        try broken.write(InternetChecksum.checksum(of: broken), at: 2)
        #expect(throws: ICMPv4Error.badEmbeddedHeader(nil)) { try ICMPv4Repr.parse(broken) }
    }

    @Test func badInput() throws {
        #expect(throws: ICMPv4Error.truncated(available: 7)) {
            try ICMPv4Repr.parse(packet(Array(echoRequestFrame[34..<41])))
        }
        var corrupt = Array(echoRequestFrame[34...])
        corrupt[20] ^= 0xff
        #expect(throws: ICMPv4Error.badChecksum(found: 0x50bf)) {
            try ICMPv4Repr.parse(packet(corrupt))
        }
    }

    @Test func tokenBucket() {
        var bucket = TokenBucket(ratePerSecond: 2, burst: 3, now: .zero)
        var taken = 0
        for _ in 0..<5 where bucket.take(now: .zero) { taken += 1 }
        #expect(taken == 3)
        let early = bucket.take(now: .milliseconds(400))
        let refilled = bucket.take(now: .milliseconds(500))
        let again = bucket.take(now: .milliseconds(500))
        #expect(!early && refilled && !again)
        taken = 0
        for _ in 0..<9 where bucket.take(now: .seconds(100)) { taken += 1 }
        #expect(taken == 3)
    }
}

@Suite struct UDPTests {
    @Test func deconstruct() throws {
        let datagram = try packet(dnsQueryFrame).shifted(by: 34)
        let header = try datagram.header(UDPHeader.self)
        #expect(header[UDPHeader.sourcePort] == 40000 && header[UDPHeader.destinationPort] == 53)
        #expect(header[UDPHeader.length] == 37 && header[UDPHeader.checksum] == 0xfd88)
    }

    @Test func parse() throws {
        let (udp, data) = try UDPRepr.parse(
            packet(dnsQueryFrame).shifted(by: 34), source: hostA, destination: hostB)
        #expect(udp == UDPRepr(sourcePort: 40000, destinationPort: 53))
        #expect(data.copyBytes() == Array(dnsQueryFrame[42...]))
    }

    @Test func constructAndEmit() throws {
        var data = packet(Array(dnsQueryFrame[42...]))
        try UDPRepr(sourcePort: 40000, destinationPort: 53)
            .emit(prependingTo: &data, source: hostA, destination: hostB)
        #expect(data.copyBytes() == Array(dnsQueryFrame[34...]))
    }

    @Test func zeroChecksum() throws {
        // No checksum: accepted as is (RFC 768).
        var unchecked = Array(dnsQueryFrame[34...])
        unchecked[6] = 0
        unchecked[7] = 0
        unchecked[20] ^= 1
        #expect(
            try UDPRepr.parse(packet(unchecked), source: hostA, destination: hostB).1.count == 29)
        // A datagram whose checksum computes to zero is sent as 0xffff: with data [0, 0]
        // the checksum is C = ~S; with C itself as data the sum is S + ~S = -0, so the
        // checksum computes to zero.
        var probe = packet([0, 0])
        try UDPRepr(sourcePort: 1, destinationPort: 2)
            .emit(prependingTo: &probe, source: hostA, destination: hostB)
        let first = try probe.read(UInt16.self, at: 6)
        var zero = packet([UInt8(first >> 8), UInt8(first & 0xff)])
        try UDPRepr(sourcePort: 1, destinationPort: 2)
            .emit(prependingTo: &zero, source: hostA, destination: hostB)
        let written = try zero.read(UInt16.self, at: 6)
        #expect(written == 0xffff)
        #expect(try UDPRepr.parse(zero, source: hostA, destination: hostB).1.count == 2)
    }

    @Test func badInput() throws {
        let body = Array(dnsQueryFrame[34...])
        #expect(throws: UDPError.truncated(available: 7)) {
            try UDPRepr.parse(packet(Array(body[0..<7])), source: hostA, destination: hostB)
        }
        #expect(throws: UDPError.badLength(length: 37, available: 36)) {
            try UDPRepr.parse(packet(Array(body[0..<36])), source: hostA, destination: hostB)
        }
        var tiny = body
        tiny[5] = 7
        #expect(throws: UDPError.badLength(length: 7, available: 37)) {
            try UDPRepr.parse(packet(tiny), source: hostA, destination: hostB)
        }
        #expect(throws: UDPError.badChecksum(found: 0xfd88)) {
            try UDPRepr.parse(packet(body), source: hostA, destination: IPv4Address(192, 0, 2, 3))
        }
    }
}
