import OasisBits
import OasisTestSupport
import OasisWire
import Testing

@Suite struct IPv4Tests {
    @Test func deconstruct() throws {
        let frame = packet(echoRequestFrame, from: 14)
        let ip = try IPv4Packet(checking: frame.bytes)
        let lengths = (
            ip.headerLength, ip.totalLength, ip.optionBytes.byteCount, ip.payload.byteCount
        )
        #expect(lengths == (20, 84, 0, 64))
        let flags = (ip.identification, ip.dontFragment, ip.moreFragments, ip.fragmentOffset)
        #expect(flags == (0x4ef1, true, false, 0))
        let (ttl, proto, checksum) = (ip.timeToLive, ip.protocol, ip.checksum)
        #expect(ttl == 64 && proto == .icmp && checksum == 0x67b4)
        let (source, destination, valid) = (ip.source, ip.destination, ip.verifyChecksum())
        #expect(source == hostA && destination == hostB && valid)
    }

    @Test func parse() throws {
        var frame = packet(echoRequestFrame, from: 14)
        let repr = try IPv4Repr.parse(frame.bytes)
        #expect(
            repr
                == IPv4Repr(
                    source: hostA, destination: hostB, protocol: .icmp, payloadLength: 64,
                    identification: 0x4ef1, dontFragment: true))
        try frame.shift(by: IPv4Header.size)
        #expect(frame.copyBytes() == Array(echoRequestFrame[34...]))
    }

    @Test func constructAndEmit() throws {
        let repr = IPv4Repr(
            source: hostB, destination: hostA, protocol: .icmp, payloadLength: 64,
            identification: 0x2c69)
        var data = packet(echoReplyFrame, from: 34)
        try repr.emit(prependingTo: &data)
        #expect(data.copyBytes() == Array(echoReplyFrame[14...]))
    }

    @Test func fragmentFields() throws {
        let first = try IPv4Repr.parse(packet(bytes(hex: firstFragmentHex), from: 14).bytes)
        #expect(first.moreFragments && first.fragmentOffset == 0 && first.payloadLength == 1480)
        let last = try IPv4Repr.parse(packet(bytes(hex: lastFragmentHex), from: 14).bytes)
        #expect(!last.moreFragments && last.fragmentOffset == 1480 && last.payloadLength == 528)
        var rebuilt = packet(bytes(hex: lastFragmentHex), from: 34)
        try last.emit(prependingTo: &rebuilt)
        #expect(rebuilt.copyBytes() == Array(bytes(hex: lastFragmentHex)[14...]))
    }

    /// A frame padded by Ethernet to 60 bytes, and a header with options.
    @Test func paddingAndOptions() throws {
        var padded = Array(dnsQueryFrame[14...]) + [0, 0, 0, 0]
        do {
            let frame = packet(padded)
            let ip = try IPv4Packet(checking: frame.bytes)
            let repr = try IPv4Repr.parse(ip)
            let lengths = (ip.bytes.byteCount, ip.payload.byteCount, repr.payloadLength)
            #expect(lengths == (57, 37, 37))
        }
        // IHL 6 with a 4-byte NOP/EOL option; total length + 4, checksum recomputed.
        padded = Array(padded[0..<20]) + [0x01, 0x01, 0x01, 0x00] + Array(padded[20..<57])
        padded[0] = 0x46
        padded[3] += 4
        padded[10] = 0
        padded[11] = 0
        let sum = padded[0..<24].withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        padded[10] = UInt8(sum >> 8)
        padded[11] = UInt8(sum & 0xff)
        var withOptions = packet(padded)
        do {
            let ip = try IPv4Packet(checking: withOptions.bytes)
            let options = ip.optionBytes.withUnsafeBytes { Array($0) }
            let repr = try IPv4Repr.parse(ip)
            #expect(options == [1, 1, 1, 0] && ip.payload.byteCount == 37)
            #expect(repr.payloadLength == 37 && ip.headerLength == 24)
            try ip.validateOptions()
        }
        try withOptions.truncate(to: 22)
        #expect(throws: IPv4Error.badTotalLength(totalLength: 61, available: 22)) {
            _ = try IPv4Packet(checking: withOptions.bytes)
        }
    }

    /// Options are walked by their lengths: NOPs, a router alert, record route; a
    /// length of 1, or one that runs past the header, is malformed.
    @Test func optionsWalk() throws {
        func header(options: [UInt8]) -> [UInt8] {
            let ihl = 5 + options.count / 4
            var bytes: [UInt8] = [
                UInt8(0x40 | ihl), 0, 0, UInt8(ihl * 4), 0, 0, 0, 0, 64, 17, 0, 0,
            ]
            bytes += [192, 0, 2, 1, 192, 0, 2, 2] + options
            return bytes
        }
        let good = header(options: [1, 148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0])
        let frame = packet(good + [0])
        let ip = try IPv4Packet(checking: frame.bytes)
        var walk = ip.options
        var found: [(UInt8, Int)] = []
        while let next = walk.next() {
            let option = try next.get()
            found.append((option.type, option.length))
        }
        #expect(found.map(\.0) == [1, 148, 7] && found.map(\.1) == [1, 4, 7])
        try ip.validateOptions()
        // The shortest of each that Linux takes: record route of 3 (pointer 4, full), a
        // timestamp of 4 (pointer 5, full).
        for short in [[7, 3, 4, 0], [68, 4, 5, 0]] as [[UInt8]] {
            let frame = packet(header(options: short))
            try IPv4Packet(checking: frame.bytes).validateOptions()
        }
        // Malformed walks, then options too short for their layout (Linux refuses them
        // all): record route of 2 or with a pointer of 3, a timestamp of 3 or with a
        // pointer of 4, a router alert of 3.
        for bad in [
            [7, 1, 0, 0], [7, 9, 0, 0], [148, 0, 0, 0], [1, 1, 1, 131],
            [7, 2, 0, 0], [7, 3, 3, 0], [68, 3, 5, 0], [68, 4, 4, 0], [148, 3, 0, 0],
            [1, 131, 2, 0],
        ] as [[UInt8]] {
            let broken = packet(header(options: bad))
            let view = try IPv4Packet(checking: broken.bytes)
            #expect(throws: IPv4Error.self) { try view.validateOptions() }
        }
    }

    @Test func ttlRewrite() throws {
        var frame = packet(echoRequestFrame, from: 14)
        var bytes = frame.mutableBytes
        #expect(try IPv4Rewrite.decrementTimeToLive(in: &bytes) == 63)
        let ip = try IPv4Packet(checking: frame.bytes)
        let (ttl, valid) = (ip.timeToLive, ip.verifyChecksum())
        #expect(ttl == 63 && valid)
    }

    @Test func badInput() throws {
        let body = Array(echoRequestFrame[14...])
        #expect(throws: IPv4Error.truncated(available: 19)) {
            try IPv4Repr.parse(packet(Array(body[0..<19])).bytes)
        }
        var v6 = body
        v6[0] = 0x65
        #expect(throws: IPv4Error.badVersion(6)) { try IPv4Repr.parse(packet(v6).bytes) }
        var shortIHL = body
        shortIHL[0] = 0x44
        #expect(throws: IPv4Error.badHeaderLength(headerLength: 16, totalLength: 84)) {
            try IPv4Repr.parse(packet(shortIHL).bytes)
        }
        var longIHL = body
        longIHL[0] = 0x4f
        longIHL[3] = 40
        #expect(throws: IPv4Error.badHeaderLength(headerLength: 60, totalLength: 40)) {
            try IPv4Repr.parse(packet(longIHL).bytes)
        }
        #expect(throws: IPv4Error.badTotalLength(totalLength: 84, available: 83)) {
            try IPv4Repr.parse(packet(Array(body[0..<83])).bytes)
        }
        var corrupt = body
        corrupt[8] = 63  // TTL changed, checksum not
        #expect(throws: IPv4Error.badChecksum(found: 0x67b4)) {
            try IPv4Repr.parse(packet(corrupt).bytes)
        }
        #expect(try IPv4Repr.parse(packet(corrupt).bytes, verifyChecksum: false).timeToLive == 63)
        // A header alone (a quoted or cut datagram) may run short of its total length,
        // but the total length may not be less than the header.
        let cut = Array(body[0..<28])
        #expect(throws: Never.self) {
            try cut.withUnsafeBytes { _ = try IPv4Packet(checkingHeaderOnly: $0.bytes) }
        }
        var shortTotal = cut
        shortTotal[3] = 19
        #expect(throws: IPv4Error.badHeaderLength(headerLength: 20, totalLength: 19)) {
            try shortTotal.withUnsafeBytes { _ = try IPv4Packet(checkingHeaderOnly: $0.bytes) }
        }
        var big = packet([UInt8](repeating: 0, count: 65_530), headroom: 20)
        #expect(throws: IPv4Error.payloadTooLarge(65_530)) {
            try IPv4Repr(source: hostA, destination: hostB, protocol: .udp, payloadLength: 0)
                .emit(prependingTo: &big)
        }
    }
}

@Suite struct ICMPTests {
    @Test func deconstruct() throws {
        let message = packet(echoRequestFrame, from: 34)
        let bytes = message.bytes
        let (type, code, checksum) = (
            bytes[ICMPv4Header.type], bytes[ICMPv4Header.code], bytes[ICMPv4Header.checksum]
        )
        let (identifier, sequence) = (
            bytes[ICMPv4Header.identifier], bytes[ICMPv4Header.sequenceNumber]
        )
        #expect(type == 8 && code == 0 && checksum == 0x50bf)
        #expect(identifier == 0x5dc5 && sequence == 1)
        #expect(message.count - ICMPv4Header.size == 56)
    }

    @Test func parse() throws {
        let repr = try ICMPv4Repr.parse(packet(echoRequestFrame, from: 34).bytes)
        #expect(repr == .echoRequest(identifier: 0x5dc5, sequenceNumber: 1))
        #expect(!repr.isError)
    }

    @Test func constructAndEmit() throws {
        var data = packet(echoRequestFrame, from: 42)
        try ICMPv4Repr.echoRequest(identifier: 0x5dc5, sequenceNumber: 1).emit(prependingTo: &data)
        #expect(data.copyBytes() == Array(echoRequestFrame[34...]))
    }

    /// Replying in place: the reply's headers are prepended over the request's, in the
    /// same buffer, and the frame is the kernel's reply byte for byte.
    @Test func echoReplyInPlace() throws {
        var frame = packet(echoRequestFrame)
        let buffer = frame.buffer
        let eth = try EthernetRepr.parse(frame.bytes)
        try frame.shift(by: eth.headerLength)
        let ip = try IPv4Repr.parse(frame.bytes)
        try frame.shift(by: IPv4Header.size)
        let icmp = try ICMPv4Repr.parse(frame.bytes)
        try frame.shift(by: ICMPv4Header.size)
        try #require(icmp.echoReply).emit(prependingTo: &frame)
        try IPv4Repr(
            source: ip.destination, destination: ip.source, protocol: .icmp,
            payloadLength: frame.count, identification: 0x2c69
        ).emit(prependingTo: &frame)
        try EthernetRepr(destination: theirs, source: ours, etherType: .ipv4)
            .emit(prependingTo: &frame)
        #expect(frame.copyBytes() == echoReplyFrame)
        let same = frame.buffer === buffer
        #expect(same)
    }

    @Test func destinationUnreachable() throws {
        let repr = try ICMPv4Repr.parse(packet(portUnreachableFrame, from: 34).bytes)
        #expect(repr == .destinationUnreachable(.portUnreachable, nextHopMTU: 0) && repr.isError)
        // Build it again from the original query, as the kernel did (whole datagram
        // quoted here, since it is short; a quote is at most header + 8 bytes).
        let original = packet(portUnreachableFrame, from: 42)
        let quote = ICMPv4Repr.quoteLength(of: try IPv4Packet(checking: original.bytes))
        #expect(quote == 28)
        var message = packet(portUnreachableFrame, from: 42)
        try repr.emit(prependingTo: &message)
        #expect(message.copyBytes() == Array(portUnreachableFrame[34...]))
        // A quote cut after 8 bytes of data is fine; one cut inside the header is not.
        var short = Array(portUnreachableFrame[34..<(42 + 28)])
        short[2] = 0
        short[3] = 0
        var sum = short.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        short[2] = UInt8(sum >> 8)
        short[3] = UInt8(sum & 0xff)
        #expect(try ICMPv4Repr.parse(packet(short).bytes).isError)
        var broken = Array(portUnreachableFrame[34..<(42 + 24)])
        broken[2] = 0
        broken[3] = 0
        sum = broken.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        broken[2] = UInt8(sum >> 8)
        broken[3] = UInt8(sum & 0xff)
        #expect(throws: ICMPv4Error.badEmbeddedHeader(nil)) {
            try ICMPv4Repr.parse(packet(broken).bytes)
        }
        // A datagram with less than 8 bytes of data is quoted whole, and parses.
        var tiny = packet([1, 2, 3, 4], headroom: 64)
        try IPv4Repr(
            source: hostB, destination: hostA, protocol: IPProtocol(rawValue: 253),
            payloadLength: 4
        ).emit(prependingTo: &tiny)
        try ICMPv4Repr.destinationUnreachable(.protocolUnreachable, nextHopMTU: 0)
            .emit(prependingTo: &tiny)
        #expect(tiny.count == 8 + 24)
        let parsedTiny = try ICMPv4Repr.parse(tiny.bytes)
        #expect(parsedTiny == .destinationUnreachable(.protocolUnreachable, nextHopMTU: 0))
    }

    @Test func badInput() throws {
        #expect(throws: ICMPv4Error.truncated(available: 7)) {
            try ICMPv4Repr.parse(packet(Array(echoRequestFrame[34..<41])).bytes)
        }
        var corrupt = Array(echoRequestFrame[34...])
        corrupt[20] ^= 0xff
        #expect(throws: ICMPv4Error.badChecksum(found: 0x50bf)) {
            try ICMPv4Repr.parse(packet(corrupt).bytes)
        }
    }
}

@Suite struct UDPTests {
    @Test func deconstruct() throws {
        let datagram = packet(dnsQueryFrame, from: 34)
        let udp = try UDPDatagram(checking: datagram.bytes)
        let ports = (udp.sourcePort, udp.destinationPort)
        let (length, checksum, payload) = (udp.length, udp.checksum, udp.payload.byteCount)
        #expect(ports == (40000, 53) && length == 37 && checksum == 0xfd88 && payload == 29)
    }

    @Test func parse() throws {
        var datagram = packet(dnsQueryFrame, from: 34)
        let udp = try UDPRepr.parse(datagram.bytes, source: hostA, destination: hostB)
        #expect(udp == UDPRepr(sourcePort: 40000, destinationPort: 53))
        try datagram.shift(by: UDPHeader.size)
        #expect(datagram.copyBytes() == Array(dnsQueryFrame[42...]))
    }

    @Test func constructAndEmit() throws {
        var data = packet(dnsQueryFrame, from: 42)
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
            try UDPRepr.parse(packet(unchecked).bytes, source: hostA, destination: hostB)
                == UDPRepr(sourcePort: 40000, destinationPort: 53))
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
        let view = try UDPDatagram(checking: zero.bytes)
        let (valid, payload) = (
            view.verifyChecksum(source: hostA, destination: hostB), view.payload.byteCount
        )
        #expect(valid && payload == 2)
    }

    @Test func badInput() throws {
        let body = Array(dnsQueryFrame[34...])
        #expect(throws: UDPError.truncated(available: 7)) {
            try UDPRepr.parse(packet(Array(body[0..<7])).bytes, source: hostA, destination: hostB)
        }
        #expect(throws: UDPError.badLength(length: 37, available: 36)) {
            try UDPRepr.parse(packet(Array(body[0..<36])).bytes, source: hostA, destination: hostB)
        }
        var tiny = body
        tiny[5] = 7
        #expect(throws: UDPError.badLength(length: 7, available: 37)) {
            try UDPRepr.parse(packet(tiny).bytes, source: hostA, destination: hostB)
        }
        #expect(throws: UDPError.badChecksum(found: 0xfd88)) {
            try UDPRepr.parse(
                packet(body).bytes, source: hostA, destination: IPv4Address(192, 0, 2, 3))
        }
    }
}
