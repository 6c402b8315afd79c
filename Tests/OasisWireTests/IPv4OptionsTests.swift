import OasisBits
import OasisTestSupport
import OasisWire
import Testing

/// The options of the IPv4 packet in `frame` (after 14 bytes of Ethernet) as (type,
/// offset, length), and the first malformed one's offset, if any.
func walkOptions(_ frame: [UInt8]) throws -> ([IPv4Option], IPv4OptionError?) {
    let ip = packet(frame, from: 14)
    let view = try IPv4Packet(checking: ip.bytes)
    var walk = view.options
    var found: [IPv4Option] = []
    while let next = walk.next() {
        switch next {
        case .success(let option): found.append(option)
        case .failure(let error): return (found, error)
        }
    }
    return (found, nil)
}

/// `frame` with byte `offset` (counted from the Ethernet header) set to `value` and the
/// IPv4 header checksum summed again from scratch.
func patchIPv4(_ frame: [UInt8], at offset: Int, to value: UInt8) -> [UInt8] {
    var patched = frame
    patched[offset] = value
    let headerLength = Int(patched[14] & 0x0f) * 4
    patched[24] = 0
    patched[25] = 0
    let sum = patched[14..<(14 + headerLength)].withUnsafeBytes {
        InternetChecksum.checksum(of: $0)
    }
    patched[24] = UInt8(sum >> 8)
    patched[25] = UInt8(sum & 0xff)
    return patched
}

/// IPv4 options as Linux sends them (RFC 791 §3.1): record route, timestamps, router
/// alert (RFC 2113), loose source route.
@Suite struct IPv4OptionsTests {
    @Test func deconstructRecordRoute() throws {
        let ip = packet(recordRouteRequestFrame, from: 14)
        let view = try IPv4Packet(checking: ip.bytes)
        let lengths = (view.headerLength, view.totalLength, view.payload.byteCount)
        let options = view.optionBytes.withUnsafeBytes { Array($0) }
        let valid = view.verifyChecksum()
        #expect(lengths == (60, 124, 64) && valid)
        // NOP, then type 7, length 39, pointer 8, and 192.0.2.1 in the first slot.
        #expect(
            options[0..<8] == [1, 7, 39, 8, 192, 0, 2, 1] && options[8...].allSatisfy { $0 == 0 })
        let (found, failure) = try walkOptions(recordRouteRequestFrame)
        #expect(
            found == [
                IPv4Option(type: IPv4Option.noOperation, offset: 0, length: 1),
                IPv4Option(type: IPv4Option.recordRoute, offset: 1, length: 39),
            ] && failure == nil)
        #expect(!found[1].isCopied)  // RFC 791: record route is not copied on fragmenting
        try view.validateOptions()
        // The reply's route ends in an end-of-list octet, which ends the walk.
        let (reply, _) = try walkOptions(recordRouteReplyFrame)
        #expect(reply == [IPv4Option(type: IPv4Option.recordRoute, offset: 0, length: 39)])
    }

    @Test func parseAroundOptions() throws {
        var ip = packet(recordRouteRequestFrame, from: 14)
        let repr: IPv4Repr
        let headerLength: Int
        do {
            let view = try IPv4Packet(checking: ip.bytes)
            try view.validateOptions()
            repr = try IPv4Repr.parse(view)
            headerLength = view.headerLength
        }
        #expect(
            repr
                == IPv4Repr(
                    source: hostA, destination: hostB, protocol: .icmp, payloadLength: 64,
                    identification: 0x3e33, dontFragment: true))
        try ip.shift(by: headerLength)
        let icmp = try ICMPv4Repr.parse(ip.bytes)
        #expect(icmp == .echoRequest(identifier: 0x24c2, sequenceNumber: 1))
        let reply = try IPv4Repr.parse(packet(recordRouteReplyFrame, from: 14).bytes)
        #expect(reply.source == hostB && reply.payloadLength == 64 && !reply.dontFragment)
    }

    /// We never emit options: re-emitting a parsed header writes 20 bytes that mean
    /// the same, the options dropped (as smoltcp's `Ipv4Repr` does).
    @Test func emitDropsOptions() throws {
        let original = packet(recordRouteRequestFrame, from: 14)
        let repr = try IPv4Repr.parse(original.bytes)
        var again = packet(recordRouteRequestFrame, from: 14 + 60)
        try repr.emit(prependingTo: &again)
        #expect(again.count == 20 + 64)
        #expect(try IPv4Repr.parse(again.bytes) == repr)
        #expect(again.copyBytes()[20...] == recordRouteRequestFrame[(14 + 60)...])
    }

    @Test func timestamps() throws {
        let (found, failure) = try walkOptions(timestampFrame)
        #expect(found == [IPv4Option(type: IPv4Option.timestamp, offset: 0, length: 40)])
        #expect(failure == nil && !found[0].isCopied)
        let ip = packet(timestampFrame, from: 14)
        let view = try IPv4Packet(checking: ip.bytes)
        let options = view.optionBytes
        // Pointer 9 (one stamp taken), overflow 0 and flag 0 (stamps only), the stamp.
        let (pointer, flags, stamp) = (
            options[UInt8.self, at: 2], options[UInt8.self, at: 3], options[UInt32.self, at: 4]
        )
        #expect(pointer == 9 && flags == 0 && stamp == 0x0297_f441)
        #expect(try IPv4Repr.parse(view).payloadLength == 64)
    }

    @Test func routerAlert() throws {
        let (found, failure) = try walkOptions(routerAlertFrame)
        #expect(found == [IPv4Option(type: IPv4Option.routerAlert, offset: 0, length: 4)])
        #expect(failure == nil && found[0].isCopied)
        let repr = try IPv4Repr.parse(packet(routerAlertFrame, from: 14).bytes)
        #expect(
            repr
                == IPv4Repr(
                    source: hostA, destination: IPv4Address(224, 0, 0, 22),
                    protocol: IPProtocol(rawValue: 2), payloadLength: 16, timeToLive: 1,
                    typeOfService: 0xc0, dontFragment: true))
        #expect(repr.destination.isMulticast)
    }

    /// A loose source route is copied into fragments. Linux sums the UDP checksum under
    /// it over the address the header carries (the first hop), not over the final
    /// destination at the end of the route, which is what tshark sums over and why it
    /// calls this checksum bad: a receiver takes the pseudo-header from the header.
    @Test func looseSourceRoute() throws {
        let (found, failure) = try walkOptions(looseSourceRouteFrame)
        #expect(
            found == [
                IPv4Option(type: IPv4Option.noOperation, offset: 0, length: 1),
                IPv4Option(type: IPv4Option.looseSourceRoute, offset: 1, length: 11),
            ] && failure == nil && found[1].isCopied)
        var ip = packet(looseSourceRouteFrame, from: 14)
        let repr: IPv4Repr
        let finalDestination: IPv4Address
        do {
            let view = try IPv4Packet(checking: ip.bytes)
            repr = try IPv4Repr.parse(view)
            finalDestination = view.optionBytes[ipv4: 1 + 11 - 4]
            let headerLength = view.headerLength
            #expect(headerLength == 32)
        }
        #expect(repr.destination == hostB && finalDestination == IPv4Address(192, 0, 2, 9))
        try ip.shift(by: 32)
        let udp = try UDPRepr.parse(ip.bytes, source: hostA, destination: repr.destination)
        #expect(udp == UDPRepr(sourcePort: 0xa5d1, destinationPort: 7))
        #expect(throws: UDPError.badChecksum(found: 0xf713)) {
            try UDPRepr.parse(ip.bytes, source: hostA, destination: finalDestination)
        }
    }

    /// An option of length 1 or 0, or one that runs past the header, is malformed
    /// (what Linux's ip_options_compile refuses): the walk stops there, and
    /// `validateOptions` names the offset in the header.
    @Test func badOptions() throws {
        for (offset, value, bad) in [
            (14 + 22, 40, 21),  // record route one byte longer than the header
            (14 + 22, 1, 21),  // record route of length 1
            (14 + 22, 0, 21),  // record route of length 0
        ] as [(Int, UInt8, Int)] {
            let broken = patchIPv4(recordRouteRequestFrame, at: offset, to: value)
            let ip = packet(broken, from: 14)
            let view = try IPv4Packet(checking: ip.bytes)
            #expect(throws: IPv4Error.badOption(offset: bad)) { try view.validateOptions() }
            #expect(try walkOptions(broken).1 == IPv4OptionError(offset: bad - 20))
            let valid = view.verifyChecksum()
            #expect(valid)
        }
        // Three NOPs, then a router alert's type in the last byte, with no room for its
        // length.
        var cut = routerAlertFrame
        for (index, value) in [1, 1, 1, 148].enumerated() {
            cut = patchIPv4(cut, at: 14 + 20 + index, to: UInt8(value))
        }
        let (nops, failure) = try walkOptions(cut)
        #expect(nops.count == 3 && failure == IPv4OptionError(offset: 3))
    }
}
