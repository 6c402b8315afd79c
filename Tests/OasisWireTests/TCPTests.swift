import OasisBits
import OasisTestSupport
import OasisWire
import Testing

/// The TCP segment of a captured frame: after 14 bytes of Ethernet and 20 of IPv4.
func tcpSegment(_ frame: [UInt8]) -> [UInt8] { Array(frame[34...]) }

/// The captured SYN's fixed header with `options` in place of its own, the data
/// offset set to match (or to `dataOffset` words), then `payload`, and a checksum
/// that verifies from 192.0.2.1 to 192.0.2.2 (ours, summed from scratch).
func synSegment(options: [UInt8], dataOffset: Int? = nil, payload: [UInt8] = []) -> [UInt8] {
    var segment = Array(tcpSegment(tcpSynFrame)[0..<20]) + options + payload
    segment[12] = UInt8(dataOffset ?? (5 + options.count / 4)) << 4
    fillTCPChecksum(&segment, source: hostA, destination: hostB)
    return segment
}

/// Writes the checksum of `segment` summed from scratch (RFC 9293 §3.1).
func fillTCPChecksum(_ segment: inout [UInt8], source: IPv4Address, destination: IPv4Address) {
    segment[16] = 0
    segment[17] = 0
    var sum = IPv4Repr.pseudoHeaderChecksum(
        source: source, destination: destination, protocol: .tcp, length: segment.count)
    segment.withUnsafeBytes { sum.add($0) }
    segment[16] = UInt8(sum.checksum >> 8)
    segment[17] = UInt8(sum.checksum & 0xff)
}

/// What Linux put in the captured segments, field by field.
enum LinuxSegments {
    static let syn = TCPRepr(
        sourcePort: 50612, destinationPort: 5000, sequenceNumber: 0xbf67_8755, flags: .syn,
        window: 64240, maximumSegmentSize: 1460, windowScale: 10, sackPermitted: true,
        timestamps: TCPTimestamps(value: 0x613c_18ff, echoReply: 0))
    static let synAck = TCPRepr(
        sourcePort: 5000, destinationPort: 50612, sequenceNumber: 0x01ba_2cc3,
        acknowledgmentNumber: 0xbf67_8756, flags: [.syn, .ack], window: 65160,
        maximumSegmentSize: 1460, windowScale: 10, sackPermitted: true,
        timestamps: TCPTimestamps(value: 0x2117_a6a0, echoReply: 0x613c_18ff))
    static let data = TCPRepr(
        sourcePort: 5000, destinationPort: 50612, sequenceNumber: 0x01ba_2cc4,
        acknowledgmentNumber: 0xbf67_87ba, flags: [.psh, .ack], window: 64,
        timestamps: TCPTimestamps(value: 0x2117_a6a0, echoReply: 0x613c_18ff))
    static let sack = TCPRepr(
        sourcePort: 5001, destinationPort: 50144, sequenceNumber: 0x2ff5_6c8b,
        acknowledgmentNumber: 0x92b4_5feb, flags: .ack, window: 77,
        sackBlocks: TCPSACKBlocks([
            TCPSACKBlock(left: 0x92b4_768b, right: 0x92b4_7c33),
            TCPSACKBlock(left: 0x92b4_6593, right: 0x92b4_70e3),
        ]),
        timestamps: TCPTimestamps(value: 0xfb79_dddd, echoReply: 0x153f_adc2))
    static let synNoTimestamps = TCPRepr(
        sourcePort: 50160, destinationPort: 5001, sequenceNumber: 0x3ec9_ccb1, flags: .syn,
        window: 64240, maximumSegmentSize: 1460, windowScale: 10, sackPermitted: true)
    static let sackNoTimestamps = TCPRepr(
        sourcePort: 5001, destinationPort: 50160, sequenceNumber: 0xae61_ba21,
        acknowledgmentNumber: 0x3eca_4b6e, flags: .ack, window: 72,
        sackBlocks: TCPSACKBlocks([
            TCPSACKBlock(left: 0x3eca_8006, right: 0x3eca_8b6e),
            TCPSACKBlock(left: 0x3eca_4cb2, right: 0x3eca_7a52),
        ]))

    /// Each capture with its fields, its direction and its IPv4 identification.
    static let all: [(frame: [UInt8], repr: TCPRepr, fromA: Bool, identification: UInt16)] = [
        (tcpSynFrame, syn, true, 0x882a), (tcpSynAckFrame, synAck, false, 0),
        (tcpDataFrame, data, false, 0xc273), (tcpSACKFrame, sack, false, 0x1986),
        (tcpSynNoTimestampsFrame, synNoTimestamps, true, 0x52a1),
        (tcpSACKNoTimestampsFrame, sackNoTimestamps, false, 0x1086),
    ]
}

@Suite struct TCPTests {
    @Test func deconstruct() throws {
        let bytes = packet(tcpSegment(tcpSynFrame))
        let tcp = try TCPSegment(checking: bytes.bytes)
        let ports = (tcp.sourcePort, tcp.destinationPort)
        let numbers = (tcp.sequenceNumber, tcp.acknowledgmentNumber)
        let (headerLength, flags, window) = (tcp.headerLength, tcp.flags, tcp.window)
        let (checksum, urgent, payload) = (tcp.checksum, tcp.urgentPointer, tcp.payload.byteCount)
        #expect(ports == (50612, 5000) && numbers == (0xbf67_8755, 0))
        #expect(headerLength == 40 && flags == .syn && flags.description == "S")
        #expect(window == 64240 && checksum == 0x2ed3 && urgent == 0 && payload == 0)
        let valid = tcp.verifyChecksum(source: hostA, destination: hostB)
        let elsewhere = tcp.verifyChecksum(source: hostA, destination: IPv4Address(192, 0, 2, 3))
        #expect(valid && !elsewhere)
        // MSS, SACK-permitted, timestamps, NOP, window scale: kind, offset, length.
        var walk = tcp.options
        var found: [TCPOption] = []
        while let next = walk.next() { found.append(try next.get()) }
        #expect(
            found == [
                TCPOption(kind: 2, offset: 0, length: 4), TCPOption(kind: 4, offset: 4, length: 2),
                TCPOption(kind: 8, offset: 6, length: 10),
                TCPOption(kind: 1, offset: 16, length: 1),
                TCPOption(kind: 3, offset: 17, length: 3),
            ])
        let data = packet(tcpSegment(tcpDataFrame))
        let segment = try TCPSegment(checking: data.bytes)
        let text = segment.payload.withUnsafeBytes { Array($0) }
        let (dataFlags, dataHeader) = (segment.flags, segment.headerLength)
        #expect(dataFlags == [.psh, .ack] && dataFlags.description == "P." && dataHeader == 32)
        #expect(text == Array("oasis wire test ok\r\n".utf8))
    }

    @Test func parse() throws {
        for (frame, expected, fromA, _) in LinuxSegments.all {
            let (source, destination) = fromA ? (hostA, hostB) : (hostB, hostA)
            let segment = packet(tcpSegment(frame))
            let repr = try TCPRepr.parse(segment.bytes, source: source, destination: destination)
            #expect(repr == expected)
            #expect(repr.headerLength == Int(frame[46] >> 4) * 4 && repr.unknownOptions == 0)
        }
    }

    /// The options as we lay them out are the bytes Linux sends for the same fields:
    /// the whole frame, Ethernet and IPv4 headers included, equals the capture.
    @Test func constructAndEmit() throws {
        for (frame, repr, fromA, identification) in LinuxSegments.all {
            let (source, destination) = fromA ? (hostA, hostB) : (hostB, hostA)
            let (sourceMAC, destinationMAC) = fromA ? (theirs, ours) : (ours, theirs)
            var built = packet(Array(frame[(34 + repr.headerLength)...]))
            try repr.emit(prependingTo: &built, source: source, destination: destination)
            #expect(built.copyBytes() == tcpSegment(frame))
            try IPv4Repr(
                source: source, destination: destination, protocol: .tcp,
                payloadLength: built.count, identification: identification, dontFragment: true
            ).emit(prependingTo: &built)
            try EthernetRepr(destination: destinationMAC, source: sourceMAC, etherType: .ipv4)
                .emit(prependingTo: &built)
            #expect(built.copyBytes() == frame, "\(repr)")
        }
    }

    /// With `.offload` the checksum field holds the pseudo-header sum; a device that
    /// sums the segment from there on (virtio's NEEDS_CSUM) arrives at Linux's checksum.
    @Test func offloadedChecksum() throws {
        var built = emptyPacket()
        try LinuxSegments.syn.emit(
            prependingTo: &built, source: hostA, destination: hostB, checksum: .offload)
        let partial = try built.read(UInt16.self, at: 16)
        let pseudo = IPv4Repr.pseudoHeaderChecksum(
            source: hostA, destination: hostB, protocol: .tcp, length: 40)
        #expect(partial == pseudo.sum)
        let finished = built.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        #expect(finished == 0x2ed3)
    }

    /// NOPs and an end-of-list pad the options; what follows the end of the list is
    /// not read (RFC 9293 §3.2: "the end of the option list").
    @Test func paddingWithNOPAndEndOfList() throws {
        let padded = synSegment(options: [2, 4, 5, 0xb4, 1, 1, 1, 0, 0, 0, 0, 0])
        let repr = try TCPRepr.parse(packet(padded).bytes, source: hostA, destination: hostB)
        #expect(repr.maximumSegmentSize == 1460 && repr.unknownOptions == 0)
        #expect(repr.windowScale == nil && repr.timestamps == nil && !repr.sackPermitted)
        let afterEnd = synSegment(options: [2, 4, 5, 0xb4, 0, 3, 3, 7, 8, 1, 0xff, 0xff])
        let cut = try TCPRepr.parse(packet(afterEnd).bytes, source: hostA, destination: hostB)
        #expect(cut.maximumSegmentSize == 1460 && cut.windowScale == nil)
    }

    /// The data starts where the data offset says, however the options were padded or
    /// whatever unknown options they held: `headerLength` of a parsed segment is the
    /// header length as received, so that the bytes after it are the data.
    @Test func parsedHeaderLengthIsTheReceivedOne() throws {
        let data = Array("payload".utf8)
        for options: [UInt8] in [
            [2, 4, 5, 0xb4, 1, 1, 1, 0, 0, 0, 0, 0],  // padding after the MSS
            [30, 4, 0x00, 0x81, 2, 4, 5, 0xb4],  // an MPTCP option before it
            [2, 3, 5, 1],  // an MSS of the wrong length, ignored
        ] {
            let segment = synSegment(options: options, payload: data)
            let bytes = packet(segment)
            let repr = try TCPRepr.parse(bytes.bytes, source: hostA, destination: hostB)
            #expect(repr.headerLength == 20 + options.count, "\(options)")
            #expect(Array(segment[repr.headerLength...]) == data, "\(options)")
        }
        // A repr made by hand (or changed) has the length emit writes.
        var made = LinuxSegments.syn
        #expect(made.headerLength == 40)
        made.timestamps = nil
        #expect(made.headerLength == 32)
    }

    /// Options of kinds we do not know (MPTCP, 30; an experiment, 254) are skipped by
    /// their length and counted; the known ones around them still count.
    @Test func unknownOptionsAreSkippedAndCounted() throws {
        let segment = synSegment(options: [
            30, 4, 0x00, 0x81, 254, 6, 0xf9, 0x89, 0, 0, 1, 3, 3, 7, 2, 4, 0x05, 0xb4, 0, 0,
        ])
        let repr = try TCPRepr.parse(packet(segment).bytes, source: hostA, destination: hostB)
        #expect(repr.unknownOptions == 2)
        #expect(repr.windowScale == 7 && repr.maximumSegmentSize == 1460)
    }

    /// A known kind with the wrong length is ignored, as Linux's tcp_parse_options
    /// ignores it, and the walk goes on by the length it gives.
    @Test func knownKindsWithWrongLengthsAreIgnored() throws {
        // MSS of 3 bytes, window scale of 4, SACK-permitted of 3, timestamps of 8, SACK
        // of 9; then a good MSS and a NOP.
        let segment = synSegment(options: [
            2, 3, 5, 3, 4, 7, 0, 4, 3, 0, 8, 8, 0, 0, 0, 1, 0, 0, 5, 9, 0, 0, 0, 1, 0, 0, 0,
            2, 4, 0x02, 0x18, 1,
        ])
        let repr = try TCPRepr.parse(packet(segment).bytes, source: hostA, destination: hostB)
        #expect(repr.windowScale == nil && !repr.sackPermitted && repr.timestamps == nil)
        #expect(repr.sackBlocks.isEmpty && repr.unknownOptions == 0)
        #expect(repr.maximumSegmentSize == 536)
    }

    /// A length of 0 or 1, a length that runs past the header, and a kind with no room
    /// left for its length are malformed (RFC 9293 §3.1): `.badOption` with the
    /// offset of the option in the header.
    @Test func illegalOptionLengths() throws {
        for (options, offset) in [
            ([2, 0, 5, 0xb4], 20), ([1, 1, 8, 1], 22), ([2, 4, 5, 0xb4, 8, 10, 0, 0], 24),
            ([1, 1, 1, 3], 23), ([30, 5, 0, 0], 20),
        ] as [([UInt8], Int)] {
            let segment = packet(synSegment(options: options))
            #expect(throws: TCPError.badOption(offset: offset), "\(options)") {
                try TCPRepr.parse(segment.bytes, source: hostA, destination: hostB)
            }
            let view = try TCPSegment(checking: segment.bytes)
            var walk = view.options
            var failure: TCPOptionError?
            while let next = walk.next() {
                if case .failure(let error) = next { failure = error }
            }
            #expect(failure == TCPOptionError(offset: offset - 20))
        }
    }

    @Test func badInput() throws {
        let syn = tcpSegment(tcpSynFrame)
        #expect(throws: TCPError.truncated(available: 19)) {
            try TCPRepr.parse(packet(Array(syn[0..<19])).bytes, source: hostA, destination: hostB)
        }
        for words in 0..<5 {
            let short = packet(synSegment(options: [], dataOffset: words))
            #expect(throws: TCPError.badDataOffset(headerLength: words * 4, available: 20)) {
                _ = try TCPSegment(checking: short.bytes)
            }
        }
        let long = packet(synSegment(options: [1, 1, 1, 1], dataOffset: 15))
        #expect(throws: TCPError.badDataOffset(headerLength: 60, available: 24)) {
            try TCPRepr.parse(long.bytes, source: hostA, destination: hostB)
        }
        var corrupt = syn
        corrupt[14] ^= 0x01  // the window, under the checksum
        #expect(throws: TCPError.badChecksum(found: 0x2ed3)) {
            try TCPRepr.parse(packet(corrupt).bytes, source: hostA, destination: hostB)
        }
        let unchecked = try TCPRepr.parse(
            packet(corrupt).bytes, source: hostA, destination: hostB, verifyChecksum: false)
        #expect(unchecked.window == 64240 ^ 0x0100)
        // Emitting: more options than 40 bytes, no headroom, more than IPv4 carries.
        var tooMany = LinuxSegments.sack
        for index in 0..<2 {
            tooMany.sackBlocks.append(TCPSACKBlock(left: UInt32(index), right: UInt32(index + 1)))
        }
        var room = emptyPacket()
        #expect(throws: TCPError.optionsTooLong(48)) {
            try tooMany.emit(prependingTo: &room, source: hostB, destination: hostA)
        }
        var full = packet([1, 2, 3], headroom: 39)
        #expect(throws: TCPError.buffer(.noHeadroom(needed: 40, available: 39))) {
            try LinuxSegments.syn.emit(prependingTo: &full, source: hostA, destination: hostB)
        }
        var big = packet([UInt8](repeating: 0, count: 65_500), headroom: 40)
        #expect(throws: TCPError.payloadTooLarge(65_500)) {
            try LinuxSegments.syn.emit(prependingTo: &big, source: hostA, destination: hostB)
        }
    }

    @Test func sackBlocksHoldFour() {
        var blocks = TCPSACKBlocks()
        for index in 0..<5 {
            let kept = blocks.append(TCPSACKBlock(left: UInt32(index), right: UInt32(index + 1)))
            #expect(kept == (index < 4))
        }
        #expect(blocks.count == 4 && blocks.last == TCPSACKBlock(left: 3, right: 4))
        let copy = TCPSACKBlocks(blocks)
        #expect(copy == blocks && copy.hashValue == blocks.hashValue)
        #expect(
            TCPFlags(rawValue: 0xff).description == "SFRPUEW." && TCPFlags().description == "none")
    }
}
