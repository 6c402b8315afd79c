import OasisBits
import OasisTestSupport
import OasisWire
import Testing

/// What the round trips draw: integers, bytes, addresses, optional values.
extension SplitMix64 {
    mutating func value<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        T.random(in: .min ... .max, using: &self)
    }
    mutating func bool() -> Bool { Bool.random(using: &self) }
    mutating func bytes(_ range: ClosedRange<Int>) -> [UInt8] {
        (0..<Int.random(in: range, using: &self)).map { _ in value(UInt8.self) }
    }
    mutating func mac() -> MACAddress { MACAddress(rawValue: value()) }
    mutating func ipv4() -> IPv4Address { IPv4Address(rawValue: value()) }
    mutating func maybe<T>(_ make: (inout SplitMix64) -> T) -> T? {
        bool() ? make(&self) : nil
    }
}

/// Emit → parse → the same representation, for every representation, over values a
/// seeded generator draws (a few thousand each; the seed is in every failure).
@Suite struct RoundTripTests {
    static let seed: UInt64 = 0x0a51_5f17_e5ee_d001
    static let rounds = 2000

    @Test func ethernet() throws {
        var random = SplitMix64(seed: Self.seed)
        for round in 0..<Self.rounds {
            func tag(_ tpid: EtherType, _ random: inout SplitMix64) -> VLANTag {
                VLANTag(
                    tpid: tpid, priority: .random(in: 0...7, using: &random),
                    dropEligible: random.bool(), vid: .random(in: 0...4095, using: &random))
            }
            let tags = Int.random(in: 0...2, using: &random)
            var type = EtherType(rawValue: .random(in: 0x0600...0xffff, using: &random))
            if type.isVLANTag { type = .ipv4 }
            let repr = EthernetRepr(
                destination: random.mac(), source: random.mac(),
                outerTag: tags > 0 ? tag(random.bool() ? .qinq : .vlan, &random) : nil,
                innerTag: tags > 1 ? tag(.vlan, &random) : nil, etherType: type)
            let payload = random.bytes(0...64)
            var frame = packet(payload)
            try repr.emit(prependingTo: &frame)
            let parsed = try EthernetRepr.parse(frame.bytes)
            #expect(parsed == repr, "seed \(Self.seed) round \(round)")
            try frame.shift(by: parsed.headerLength)
            #expect(frame.copyBytes() == payload, "seed \(Self.seed) round \(round)")
        }
    }

    @Test func arp() throws {
        var random = SplitMix64(seed: Self.seed)
        for round in 0..<Self.rounds {
            let repr = ArpRepr(
                operation: random.bool() ? .request : .reply,
                senderHardwareAddress: random.mac(), senderProtocolAddress: random.ipv4(),
                targetHardwareAddress: random.mac(), targetProtocolAddress: random.ipv4())
            var bytes = emptyPacket()
            try repr.emit(prependingTo: &bytes)
            #expect(try ArpRepr.parse(bytes.bytes) == repr, "seed \(Self.seed) round \(round)")
        }
    }

    /// A random IPv4 header for `payloadLength` bytes.
    static func ipv4(_ random: inout SplitMix64, payloadLength: Int) -> IPv4Repr {
        IPv4Repr(
            source: random.ipv4(), destination: random.ipv4(),
            protocol: IPProtocol(rawValue: random.value()), payloadLength: payloadLength,
            timeToLive: random.value(), typeOfService: random.value(),
            identification: random.value(), dontFragment: random.bool(),
            moreFragments: random.bool(),
            fragmentOffset: 8 * .random(in: 0...0x1fff, using: &random))
    }

    @Test func ipv4() throws {
        var random = SplitMix64(seed: Self.seed)
        for round in 0..<Self.rounds {
            let payload = random.bytes(0...64)
            let repr = Self.ipv4(&random, payloadLength: payload.count)
            var bytes = packet(payload)
            try repr.emit(prependingTo: &bytes)
            let parsed: IPv4Repr
            do {
                let view = try IPv4Packet(checking: bytes.bytes)
                let valid = view.verifyChecksum()
                #expect(valid, "seed \(Self.seed) round \(round)")
                parsed = try IPv4Repr.parse(view)
            }
            #expect(parsed == repr, "seed \(Self.seed) round \(round)")
            try bytes.shift(by: IPv4Header.size)
            #expect(bytes.copyBytes() == payload)
        }
    }

    @Test func icmpv4() throws {
        var random = SplitMix64(seed: Self.seed)
        let unreachable: [DestinationUnreachable] = [
            .netUnreachable, .hostUnreachable, .protocolUnreachable, .portUnreachable,
            .fragmentationNeeded, .sourceRouteFailed, .administrativelyProhibited,
        ]
        // Types with no case of their own and no quoted datagram.
        let plainTypes: [UInt8] = [9, 10, 13, 14, 15, 16, 17, 18, 30, 42, 43, 200]
        for round in 0..<Self.rounds {
            let repr: ICMPv4Repr
            switch Int.random(in: 0..<6, using: &random) {
            case 0: repr = .echoRequest(identifier: random.value(), sequenceNumber: random.value())
            case 1: repr = .echoReply(identifier: random.value(), sequenceNumber: random.value())
            case 2:
                let reason = unreachable.randomElement(using: &random)!
                repr = .destinationUnreachable(
                    reason, nextHopMTU: reason == .fragmentationNeeded ? random.value() : 0)
            case 3: repr = .timeExceeded(code: random.value())
            case 4:
                // Destination unreachable with a code we have no name for.
                repr = .other(type: 3, code: .random(in: 14...255, using: &random), restOfHeader: 0)
            default:
                repr = .other(
                    type: plainTypes.randomElement(using: &random)!, code: random.value(),
                    restOfHeader: random.value())
            }
            // An error quotes a datagram: an IPv4 header and at least 8 bytes of it.
            var data = packet(random.bytes(repr.isError ? 8...28 : 0...64))
            if repr.isError {
                try Self.ipv4(&random, payloadLength: data.count + 100).emit(prependingTo: &data)
            }
            try repr.emit(prependingTo: &data)
            #expect(try ICMPv4Repr.parse(data.bytes) == repr, "seed \(Self.seed) round \(round)")
        }
    }

    @Test func udp() throws {
        var random = SplitMix64(seed: Self.seed)
        for round in 0..<Self.rounds {
            let repr = UDPRepr(sourcePort: random.value(), destinationPort: random.value())
            let (source, destination) = (random.ipv4(), random.ipv4())
            let payload = random.bytes(0...64)
            var datagram = packet(payload)
            try repr.emit(prependingTo: &datagram, source: source, destination: destination)
            let parsed = try UDPRepr.parse(datagram.bytes, source: source, destination: destination)
            #expect(parsed == repr, "seed \(Self.seed) round \(round)")
            let checksum = try datagram.read(UInt16.self, at: 6)
            #expect(checksum != 0)
            try datagram.shift(by: UDPHeader.size)
            #expect(datagram.copyBytes() == payload)
        }
    }

    @Test func tcp() throws {
        var random = SplitMix64(seed: Self.seed)
        var emitted = 0
        for round in 0..<Self.rounds {
            var blocks = TCPSACKBlocks()
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                blocks.append(TCPSACKBlock(left: random.value(), right: random.value()))
            }
            let repr = TCPRepr(
                sourcePort: random.value(), destinationPort: random.value(),
                sequenceNumber: random.value(), acknowledgmentNumber: random.value(),
                flags: TCPFlags(rawValue: random.value()), window: random.value(),
                urgentPointer: random.value(), maximumSegmentSize: random.maybe { $0.value() },
                windowScale: random.maybe { $0.value() }, sackPermitted: random.bool(),
                sackBlocks: blocks,
                timestamps: random.maybe { TCPTimestamps(value: $0.value(), echoReply: $0.value()) }
            )
            let (source, destination) = (random.ipv4(), random.ipv4())
            let payload = random.bytes(0...64)
            var segment = packet(payload)
            guard repr.optionsLength <= 40 else {
                #expect(throws: TCPError.optionsTooLong(repr.optionsLength)) {
                    try repr.emit(prependingTo: &segment, source: source, destination: destination)
                }
                continue
            }
            try repr.emit(prependingTo: &segment, source: source, destination: destination)
            let parsed = try TCPRepr.parse(segment.bytes, source: source, destination: destination)
            #expect(parsed == repr, "seed \(Self.seed) round \(round)")
            #expect(
                parsed.headerLength == repr.headerLength
                    && segment.count == repr.headerLength + payload.count)
            try segment.shift(by: parsed.headerLength)
            #expect(segment.copyBytes() == payload)
            emitted += 1
        }
        #expect(emitted > Self.rounds / 2)
    }

    /// Every rewrite of random TCP and UDP packets (fragments among them) leaves
    /// checksums equal to those summed again from scratch.
    @Test func rewrites() throws {
        var random = SplitMix64(seed: Self.seed)
        for round in 0..<Self.rounds {
            let isTCP = random.bool()
            let payload = random.bytes(0...64)
            var ip = packet(payload)
            let (source, destination) = (random.ipv4(), random.ipv4())
            if isTCP {
                try TCPRepr(
                    sourcePort: random.value(), destinationPort: random.value(),
                    sequenceNumber: random.value(), flags: .ack, window: random.value(),
                    timestamps: random.maybe { TCPTimestamps(value: $0.value(), echoReply: 0) }
                ).emit(prependingTo: &ip, source: source, destination: destination)
            } else {
                try UDPRepr(sourcePort: random.value(), destinationPort: random.value())
                    .emit(prependingTo: &ip, source: source, destination: destination)
            }
            var header = Self.ipv4(&random, payloadLength: ip.count)
            (header.source, header.destination) = (source, destination)
            header.protocol = isTCP ? .tcp : .udp
            let fragment = random.bool()
            if !fragment { (header.moreFragments, header.fragmentOffset) = (false, 0) }
            try header.emit(prependingTo: &ip)
            let before = ip.copyBytes()
            let rewrite = Rewrite.allCases.randomElement(using: &random)!
            try rewrite.apply(to: &ip, port: random.value())
            let after = ip.copyBytes()
            let context = "seed \(Self.seed) round \(round): \(rewrite)"
            #expect(word(after, 10) == headerChecksumFromScratch(after), "\(context)")
            if header.fragmentOffset != 0 {
                #expect(after[20...] == before[20...], "\(context)")
            } else {
                let newSource = IPv4Address(
                    rawValue: UInt32(word(after, 12)) << 16 | UInt32(word(after, 14)))
                let newDestination = IPv4Address(
                    rawValue: UInt32(word(after, 16)) << 16 | UInt32(word(after, 18)))
                let segment = Array(after[20...])
                #expect(
                    word(segment, isTCP ? 16 : 6)
                        == transportChecksumFromScratch(
                            segment, protocol: header.protocol, source: newSource,
                            destination: newDestination), "\(context)")
            }
        }
    }
}
