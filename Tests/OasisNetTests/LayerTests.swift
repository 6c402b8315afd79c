// Each layer against a fake of the layer below, on the virtual clock: IPv4 over a
// link that records what it is given, UDP and ICMP over an IP layer that does, the
// Ethernet link over one end of a memory pair whose other end the test drives.

import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import OasisWire
import Testing

@testable import OasisNet

/// A link that keeps what the IP layer sends, with the neighbour it was for.
final class FakeLink: LinkLayer {
    let loop: EventLoop
    var sent: [(nextHop: IPv4Address?, bytes: [UInt8])] = []
    var capabilities = DeviceCapabilities(mtu: 1500)
    let pool = BufferPool(limit: 64)

    init(loop: EventLoop) { self.loop = loop }

    var macAddress: MACAddress { ours }
    var headroom: Int { 14 }
    var allocationHeadroom: Int { pool.headroom }
    var now: Duration { loop.now }
    func allocatePacket() -> Packet? { try? pool.allocatePacket() }
    func send(_ packet: consuming Packet, to nextHop: IPv4Address) {
        sent.append((nextHop, packet.copyBytes()))
    }
    func broadcast(_ packet: consuming Packet) { sent.append((nil, packet.copyBytes())) }
}

/// What an IP layer hands up, kept.
final class Transports: IPv4Receiver {
    var protocols: Set<UInt8> = [IPProtocol.udp.rawValue]
    var received: [(info: IPv4Info, bytes: [UInt8])] = []
    func accepts(_ protocol: IPProtocol) -> Bool { protocols.contains(`protocol`.rawValue) }
    func receive(_ payload: consuming Packet, info: IPv4Info) {
        received.append((info, payload.copyBytes()))
    }
}

/// An IPv4 packet's bytes, as a peer would send it.
func ipv4Packet(_ header: IPv4Repr, _ payload: [UInt8]) throws -> Packet {
    var packet = Packet(copying: payload)
    try header.emit(prependingTo: &packet)
    return packet
}

@Suite struct IPv4LayerTests {
    let peer = IPv4Address(192, 0, 2, 1)

    func layer(_ loop: EventLoop, gateway: IPv4Address? = nil) -> (IPv4Layer<FakeLink>, FakeLink) {
        let link = FakeLink(loop: loop)
        var configuration = IPv4Configuration(network: IPv4Network("192.0.2.2/24")!)
        configuration.gateway = gateway
        configuration.reassembly.timeout = .seconds(2)
        return (IPv4Layer(link: link, configuration: configuration, on: loop), link)
    }

    @Test func routesToTheNeighbourTheGatewayOrEveryone() throws {
        let loop = try EventLoop(clock: .virtual)
        let (ip, link) = layer(loop, gateway: IPv4Address(192, 0, 2, 254))
        let sent1 = ip.send(Packet(copying: [1]), protocol: .udp, to: peer)
        #expect(sent1)
        let sent2 = ip.send(Packet(copying: [2]), protocol: .udp, to: IPv4Address(198, 51, 100, 7))
        #expect(sent2)
        let sent3 = ip.send(Packet(copying: [3]), protocol: .udp, to: IPv4Address(192, 0, 2, 255))
        #expect(sent3)
        let sent4 = ip.send(Packet(copying: [4]), protocol: .udp, to: .broadcast)
        #expect(sent4)
        #expect(link.sent.map(\.nextHop) == [peer, IPv4Address(192, 0, 2, 254), nil, nil])
        // What went out parses back to what was asked for.
        let first = try IPv4Repr.parse(Packet(copying: link.sent[0].bytes).bytes)
        #expect(first.source == ip.address && first.destination == peer && first.payloadLength == 1)
        // No gateway: beyond the subnet is no route, counted.
        let (isolated, _) = layer(loop)
        let sent5 = isolated.send(
            Packet(copying: [5]), protocol: .udp, to: IPv4Address(10, 0, 0, 1))
        #expect(!sent5)
        #expect(isolated.drops.ipv4[.noRoute] == 1)
    }

    @Test func fragmentsWhatExceedsTheMTUAndReassemblesItOnTheOtherSide() throws {
        let loop = try EventLoop(clock: .virtual)
        let (ip, link) = layer(loop)
        link.capabilities = DeviceCapabilities(mtu: 576)
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let large = Packet(Bits(data, headroom: 128))
        let sent = ip.send(large, protocol: .udp, to: peer)
        #expect(sent)
        #expect(link.sent.count == 6 && link.sent.allSatisfy { $0.bytes.count <= 576 })
        // A second layer, the peer, puts them back together, in any order.
        let (receiver, _) = layer(loop)
        let transports = Transports()
        for fragment in link.sent.reversed() {
            var packet = Packet(copying: fragment.bytes)
            // Addressed to 192.0.2.1: rewrite the destination for the receiving layer.
            var bytes = packet.mutableBytes
            try IPv4Rewrite.setDestination(receiver.address, in: &bytes)
            try IPv4Rewrite.setSource(peer, in: &bytes)
            receiver.receive(packet, linkBroadcast: false, to: transports)
        }
        #expect(transports.received.count == 1)
        #expect(transports.received.first?.bytes == data)
        #expect(transports.received.first?.info.wasReassembled == true)
        #expect(receiver.reassemblyBytesHeld == 0)
    }

    @Test func anIncompleteDatagramIsDroppedWhenItsTimeIsUp() throws {
        let loop = try EventLoop(clock: .virtual)
        let (ip, _) = layer(loop)
        let transports = Transports()
        let fragment = IPv4Repr(
            source: peer, destination: ip.address, protocol: .udp, payloadLength: 8,
            identification: 9, moreFragments: true)
        ip.receive(
            try ipv4Packet(fragment, [UInt8](repeating: 1, count: 8)), linkBroadcast: false,
            to: transports)
        #expect(ip.reassemblyBytesHeld > 0)
        try loop.advance(by: .seconds(3))
        #expect(ip.reassemblyBytesHeld == 0 && ip.drops.reassembly[.timeout] == 1)
        #expect(transports.received.isEmpty)
    }

    /// RFC 1122 §3.2.2.1: a datagram for a protocol nobody takes is answered with ICMP
    /// protocol unreachable quoting its header and first 8 bytes; never for a broadcast.
    @Test func protocolUnreachable() throws {
        let loop = try EventLoop(clock: .virtual)
        let (ip, link) = layer(loop)
        let transports = Transports()
        let header = IPv4Repr(
            source: peer, destination: ip.address, protocol: IPProtocol(rawValue: 253),
            payloadLength: 12, identification: 5)
        let payload: [UInt8] = Array(1...12)
        let original = try ipv4Packet(header, payload).copyBytes()
        ip.receive(try ipv4Packet(header, payload), linkBroadcast: false, to: transports)
        #expect(ip.drops.ipv4[.unknownProtocol] == 1 && ip.unreachablesSent == 1)
        try #require(link.sent.count == 1)
        var reply = Packet(copying: link.sent[0].bytes)
        let outer = try IPv4Repr.parse(reply.bytes)
        #expect(outer.destination == peer && outer.protocol == .icmp)
        try reply.shift(by: IPv4Header.size)
        let icmp = try ICMPv4Repr.parse(reply.bytes)
        #expect(icmp == .destinationUnreachable(.protocolUnreachable, nextHopMTU: 0))
        try reply.shift(by: ICMPv4Header.size)
        #expect(reply.copyBytes() == Array(original[0..<28]))
        // To the subnet's broadcast address: counted, not answered.
        var broadcast = header
        broadcast.destination = IPv4Address(192, 0, 2, 255)
        ip.receive(try ipv4Packet(broadcast, payload), linkBroadcast: true, to: transports)
        #expect(ip.drops.ipv4[.unknownProtocol] == 2 && link.sent.count == 1)
    }

    @Test func unreachablesAreRateLimited() throws {
        let loop = try EventLoop(clock: .virtual)
        let (ip, link) = layer(loop)
        let transports = Transports()
        let header = IPv4Repr(
            source: peer, destination: ip.address, protocol: IPProtocol(rawValue: 253),
            payloadLength: 8)
        for _ in 0..<50 {
            ip.receive(
                try ipv4Packet(header, Array(repeating: 0, count: 8)), linkBroadcast: false,
                to: transports)
        }
        #expect(link.sent.count == ip.configuration.icmpErrorBurst)
        #expect(ip.icmpErrorDrops[.rateLimited] == UInt64(50 - ip.configuration.icmpErrorBurst))
    }

    @Test func checksOptionsAndSources() throws {
        let loop = try EventLoop(clock: .virtual)
        let (ip, _) = layer(loop)
        let transports = Transports()
        // A malformed option (length 1) is a malformed header.
        var bytes: [UInt8] = [0x46, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]
        bytes += [192, 0, 2, 1, 192, 0, 2, 2, 7, 1, 0, 0] + Array(repeating: 0, count: 4)
        let sum = bytes[0..<24].withUnsafeBytes { InternetChecksum.checksum(of: $0) }
        bytes[10] = UInt8(sum >> 8)
        bytes[11] = UInt8(sum & 0xff)
        ip.receive(Packet(copying: bytes), linkBroadcast: false, to: transports)
        #expect(ip.drops.ipv4[.badHeaderLength] == 1)
        // A multicast source may not be answered, so it is dropped.
        let fromMulticast = IPv4Repr(
            source: IPv4Address(224, 0, 0, 9), destination: ip.address, protocol: .udp,
            payloadLength: 8)
        ip.receive(
            try ipv4Packet(fromMulticast, Array(repeating: 0, count: 8)), linkBroadcast: false,
            to: transports)
        #expect(ip.drops.ipv4[.badSourceAddress] == 1 && transports.received.isEmpty)
    }
}

/// An IP layer that keeps what a transport sends and the errors it asks for.
final class FakeIP: IPLayer {
    let loop: EventLoop
    let pool = BufferPool(limit: 64)
    var sent: [(protocol: IPProtocol, destination: IPv4Address, bytes: [UInt8])] = []
    var unreachables: [(DestinationUnreachable, IPv4Info)] = []
    init(loop: EventLoop) { self.loop = loop }
    var address: IPv4Address { hostB }
    var network: IPv4Network { IPv4Network("192.0.2.2/24")! }
    var now: Duration { loop.now }
    var headroom: Int { 34 }
    var receiveChecksums: ChecksumOffloads { [] }
    var transmitChecksums: ChecksumOffloads { [] }
    func allocatePacket() -> Packet? { try? pool.allocatePacket() }
    func maximumPayload(to destination: IPv4Address) -> Int { 1480 }
    func send(_ payload: consuming Packet, protocol: IPProtocol, to destination: IPv4Address)
        -> Bool
    {
        sent.append((`protocol`, destination, payload.copyBytes()))
        return true
    }
    func sendUnreachable(
        _ code: DestinationUnreachable, about datagram: consuming Packet, info: IPv4Info
    ) {
        unreachables.append((code, info))
    }
}

@Suite struct UDPLayerTests {
    func datagram(from port: UInt16, to destination: UInt16, _ data: [UInt8]) throws -> Packet {
        var packet = Packet(copying: data)
        try UDPRepr(sourcePort: port, destinationPort: destination).emit(
            prependingTo: &packet, source: hostA, destination: hostB)
        return packet
    }

    var info: IPv4Info { IPv4Info(source: hostA, destination: hostB, protocol: .udp) }

    @Test func datagramsOfABatchReachTheirListenersAsBatches() throws {
        let loop = try EventLoop(clock: .virtual)
        let udp = UDPLayer(ip: FakeIP(loop: loop))
        var seven: [[UInt8]] = []
        var batches: [Int] = []
        try udp.listen(port: 7) { (batch: inout DatagramBatch) in
            batches.append(batch.count)
            for index in batch.indices {
                if let datagram = batch.take(at: index) {
                    seven.append(datagram.payload.copyBytes())
                }
            }
        }
        var nine: [UInt16] = []
        try udp.listen(port: 9) { (datagram: consuming Datagram) in
            nine.append(datagram.source.port)
        }
        for (index, port) in [7, 9, 7, 7, 9].enumerated() {
            udp.receive(
                try datagram(from: UInt16(1000 + index), to: UInt16(port), [UInt8(index)]),
                info: info)
        }
        #expect(seven.isEmpty && nine.isEmpty)  // nothing until the batch ends
        udp.deliverPending()
        #expect(seven == [[0], [2], [3]] && batches == [3] && nine == [1001, 1004])
        #expect(udp.datagramsDelivered == 5)
    }

    /// A listener that stops another port while the batch is delivered: the datagrams
    /// already gathered for that port go nowhere (counted), not to the port that took
    /// its slot in the table.
    @Test func datagramsForAPortStoppedDuringDeliveryAreDroppedNotMisdelivered() throws {
        let loop = try EventLoop(clock: .virtual)
        let udp = UDPLayer(ip: FakeIP(loop: loop))
        var fiftyThree = 0
        try udp.listen(port: 7) { (_: consuming Datagram) in
            udp.stopListening(port: 9)
            try? udp.listen(port: 53) { (_: consuming Datagram) in fiftyThree += 1 }
        }
        try udp.listen(port: 9) { (_: consuming Datagram) in Issue.record("port 9 stopped") }
        udp.receive(try datagram(from: 1000, to: 7, [0]), info: info)
        udp.receive(try datagram(from: 1001, to: 9, [1]), info: info)
        udp.deliverPending()
        #expect(fiftyThree == 0)
        #expect(udp.datagramsDelivered == 1)
        #expect(udp.drops[.noListener] == 1)
        // The new listener gets what arrives for it from now on.
        udp.receive(try datagram(from: 1002, to: 53, [2]), info: info)
        udp.deliverPending()
        #expect(fiftyThree == 1)
    }

    @Test func noListenerAsksForPortUnreachableAndBadOnesAreCounted() throws {
        let loop = try EventLoop(clock: .virtual)
        let ip = FakeIP(loop: loop)
        let udp = UDPLayer(ip: ip)
        udp.receive(try datagram(from: 1, to: 4242, [1, 2, 3]), info: info)
        #expect(ip.unreachables.count == 1 && ip.unreachables.first?.0 == .portUnreachable)
        #expect(udp.drops[.noListener] == 1)
        var corrupt = try datagram(from: 1, to: 7, [1, 2, 3])
        try corrupt.write(UInt8(0x55), at: 9)
        udp.receive(corrupt, info: info)
        #expect(udp.drops[.badChecksum] == 1)
        udp.receive(Packet(copying: [0, 1, 0, 2, 0, 3]), info: info)
        #expect(udp.drops[.tooShort] == 1)
        #expect(throws: DatagramError.portInUse(7)) {
            try udp.listen(port: 7) { (_: inout DatagramBatch) in }
            try udp.listen(port: 7) { (_: inout DatagramBatch) in }
        }
    }

    @Test func sendBuildsTheHeaderInFrontOrCopiesWhenThereIsNoRoom() throws {
        let loop = try EventLoop(clock: .virtual)
        let ip = FakeIP(loop: loop)
        let udp = UDPLayer(ip: ip)
        let destination = DatagramEndpoint(address: hostA, port: 53)
        try udp.send(Packet(copying: [9, 9], headroom: 0), to: destination, from: 5353)
        try udp.send([1, 2, 3], to: destination, from: 5353)
        #expect(ip.sent.count == 2 && ip.sent.allSatisfy { $0.protocol == .udp })
        let repr = try UDPRepr.parse(
            Packet(copying: ip.sent[1].bytes).bytes, source: hostB, destination: hostA)
        #expect(repr == UDPRepr(sourcePort: 5353, destinationPort: 53))
        #expect(
            Array(ip.sent[0].bytes[8...]) == [9, 9] && Array(ip.sent[1].bytes[8...]) == [1, 2, 3])
        // `send(bytes)` writes into a buffer of the device's pool: no page of its own
        // (the pool made one buffer and lends it again and again). The count is the
        // pool's: a global one would see the buffers of tests running beside this one.
        let made = ip.pool.buffersCreated
        for _ in 0..<20 { try udp.send([4, 5], to: destination, from: 5353) }
        #expect(ip.pool.buffersCreated - made <= 1)
        #expect(throws: DatagramError.payloadTooLarge(70_000)) {
            try udp.send([UInt8](repeating: 0, count: 70_000), to: destination, from: 1)
        }
    }
}

@Suite struct ICMPLayerTests {
    @Test func answersEchoInPlaceAndIgnoresBroadcastEcho() throws {
        let loop = try EventLoop(clock: .virtual)
        let ip = FakeIP(loop: loop)
        let icmp = ICMPv4Layer(ip: ip)
        var request = Packet(copying: Array(echoRequestFrame[42...]))
        try ICMPv4Repr.echoRequest(identifier: 0x5dc5, sequenceNumber: 1).emit(
            prependingTo: &request)
        let info = IPv4Info(source: hostA, destination: hostB, protocol: .icmp)
        icmp.receive(request, info: info)
        #expect(ip.sent.count == 1 && ip.sent[0].destination == hostA)
        #expect(ip.sent[0].bytes == Array(echoReplyFrame[34...]))
        var broadcast = Packet(copying: Array(echoRequestFrame[42...]))
        try ICMPv4Repr.echoRequest(identifier: 1, sequenceNumber: 2).emit(prependingTo: &broadcast)
        var toAll = info
        toAll.isBroadcast = true
        icmp.receive(broadcast, info: toAll)
        #expect(ip.sent.count == 1 && icmp.broadcastEchoesIgnored == 1)
        icmp.receive(Packet(copying: [3, 3, 0, 0]), info: info)
        #expect(icmp.drops[.tooShort] == 1)
    }
}

@Suite struct EthernetLinkTests {
    func link(_ loop: EventLoop, arp: ArpCache.Configuration = .init())
        -> (EthernetLink<MemoryDevice>, MemoryDevice)
    {
        // Our end at `ours` (192.0.2.2), the peer's at `theirs`, as in the captures.
        let (near, far) = MemoryDevice.pair(on: loop, addresses: (ours, theirs))
        return (EthernetLink(device: near, address: hostB, arp: arp, on: loop), far)
    }

    /// Packets for an unresolved neighbour wait (copies, bounded) behind one ARP
    /// request, retried each second; the reply sends them in order.
    @Test func resolvesThenSendsWhatWaited() throws {
        let loop = try EventLoop(clock: .virtual)
        var configuration = ArpCache.Configuration()
        configuration.waitingPerAddress = 2
        let (link, peer) = link(loop, arp: configuration)
        var frames: [[UInt8]] = []
        try peer.startEach { frames.append($0.copyBytes()) }
        for byte in [1, 2, 3] as [UInt8] { link.send(Packet(copying: [byte]), to: hostA) }
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 1 && frames[0][12...13] == [0x08, 0x06])  // one request
        try loop.advance(by: .seconds(1))
        #expect(frames.count == 2)  // the retry
        // The peer answers; the two that waited leave, in order, to its address.
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: theirs, senderProtocolAddress: hostA,
            targetHardwareAddress: ours, targetProtocolAddress: hostB)
        var frame = Packet(copying: [])
        try reply.emit(prependingTo: &frame)
        try reply.ethernetHeader.emit(prependingTo: &frame)
        final class Upper: LinkReceiver {
            func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool) {}
        }
        link.receive(frame, to: Upper())
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 4)
        #expect(frames[2].suffix(1) == [1] && frames[3].suffix(1) == [2])
        #expect(MACAddress(Array(frames[2][0..<6])) == theirs)
        #expect(link.drops.arp[.queueFull] == 1)
        // Now known: straight out.
        link.send(Packet(copying: [4]), to: hostA)
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 5 && frames[4].suffix(1) == [4])
    }

    /// Issue 19, item 2: past its lifetime a neighbour's entry is still used while it
    /// is asked again (Linux's STALE and PROBE states): the packet leaves at once to
    /// the address known, behind one request; the answer makes the entry fresh.
    @Test func aStaleNeighbourIsUsedWhileItIsAskedAgain() throws {
        let loop = try EventLoop(clock: .virtual)
        let (link, peer) = link(loop)
        var frames: [[UInt8]] = []
        try peer.startEach { frames.append($0.copyBytes()) }
        final class Upper: LinkReceiver {
            func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool) {}
        }
        func receive(_ message: ArpRepr) throws {
            var frame = Packet(copying: [])
            try message.emit(prependingTo: &frame)
            try message.ethernetHeader.emit(prependingTo: &frame)
            link.receive(frame, to: Upper())
        }
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: theirs, senderProtocolAddress: hostA,
            targetHardwareAddress: ours, targetProtocolAddress: hostB)
        // The peer asks for us: learned.
        try receive(.request(from: theirs, hostA, for: hostB))
        try loop.advance(by: .milliseconds(10))
        frames.removeAll()  // our reply
        try loop.advance(by: .seconds(61))
        for byte in [1, 2, 3] as [UInt8] { link.send(Packet(copying: [byte]), to: hostA) }
        try loop.advance(by: .milliseconds(10))
        let isArp = frames.map { $0[12...13] == [0x08, 0x06] }
        #expect(isArp == [true, false, false, false])
        #expect(frames.dropFirst().allSatisfy { MACAddress(Array($0[0..<6])) == theirs })
        try receive(reply)
        link.send(Packet(copying: [4]), to: hostA)
        try loop.advance(by: .seconds(2))
        #expect(frames.count == 5 && frames[4].suffix(1) == [4])  // no retry: answered
    }

    /// `--workers`: ARP lands on one queue, so a link tells its siblings what it hears
    /// (`onArpReceived`) and a sibling takes it in (`learn(fromSibling:)`) under its own
    /// cache's rules: a reply to its own request sends what waited; a request it did not
    /// receive is learned from but not answered (the receiving link answered it).
    @Test func aSiblingLearnsWhatAnotherLinkHeardWithoutAnswering() throws {
        let loop = try EventLoop(clock: .virtual)
        let (link, peer) = link(loop)
        var frames: [[UInt8]] = []
        try peer.startEach { frames.append($0.copyBytes()) }
        var heard: [(ArpRepr, MACAddress)] = []
        link.onArpReceived = { heard.append(($0, $1)) }
        // A packet for the peer waits behind a request; the reply came to a sibling.
        link.send(Packet(copying: [7]), to: hostA)
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 1 && frames[0][12...13] == [0x08, 0x06])
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: theirs, senderProtocolAddress: hostA,
            targetHardwareAddress: ours, targetProtocolAddress: hostB)
        link.learn(fromSibling: reply, linkSource: theirs)
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 2 && frames[1].suffix(1) == [7])
        #expect(MACAddress(Array(frames[1][0..<6])) == theirs)
        #expect(heard.isEmpty)  // not told back to the siblings
        // A request for us heard by a sibling: not answered here.
        link.learn(fromSibling: .request(from: theirs, hostA, for: hostB), linkSource: theirs)
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 2)
        // One from the wire is answered, and told.
        var frame = Packet(copying: [])
        let request = ArpRepr.request(from: theirs, hostA, for: hostB)
        try request.emit(prependingTo: &frame)
        try request.ethernetHeader.emit(prependingTo: &frame)
        final class Upper: LinkReceiver {
            func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool) {}
        }
        link.receive(frame, to: Upper())
        try loop.advance(by: .milliseconds(10))
        #expect(frames.count == 3 && frames[2][12...13] == [0x08, 0x06])
        #expect(heard.count == 1 && heard.first?.0 == request && heard.first?.1 == theirs)
    }

    /// Issue 19, item 2 (RFC 5227 §2.4): another station claiming our address is told
    /// about and answered with one gratuitous ARP, not more often than every 10 s.
    @Test func anAddressConflictIsToldAndDefended() throws {
        let loop = try EventLoop(clock: .virtual)
        let (link, peer) = link(loop)
        var frames: [[UInt8]] = []
        try peer.startEach { frames.append($0.copyBytes()) }
        var claimants: [MACAddress] = []
        link.onAddressConflict = { claimants.append($0) }
        final class Upper: LinkReceiver {
            func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool) {}
        }
        let claim = ArpRepr.gratuitous(mac: theirs, address: hostB)
        for wait in [1, 10, 1] as [Int64] {  // claims at 0, 1 and 11 s
            var frame = Packet(copying: [])
            try claim.emit(prependingTo: &frame)
            try claim.ethernetHeader.emit(prependingTo: &frame)
            link.receive(frame, to: Upper())
            try loop.advance(by: .seconds(wait))
        }
        #expect(claimants == [theirs, theirs, theirs])
        #expect(frames.count == 2)  // at 0 s and at 11 s, not at 1 s
        #expect(frames.allSatisfy { Array($0[6..<12]) == ours.bytes })
        #expect(link.drops.arp[.addressConflict] == 3)
    }

    @Test func dropsTaggedForeignAndMalformedFrames() throws {
        let loop = try EventLoop(clock: .virtual)
        let (link, _) = link(loop)
        final class Upper: LinkReceiver {
            var count = 0
            func receiveIPv4(_ packet: consuming Packet, linkBroadcast: Bool) { count += 1 }
        }
        let upper = Upper()
        var batch = PacketBatch(capacity: 8)
        let toUs = Array(echoRequestFrame)
        var tagged = Array(toUs[0..<12]) + [0x81, 0, 0, 5] + Array(toUs[12...])
        tagged[0] = 0x02
        var foreign = toUs
        foreign[5] = 0x77
        batch.append(Packet(copying: toUs))
        batch.append(Packet(copying: tagged))
        batch.append(Packet(copying: foreign))
        batch.append(Packet(copying: Array(toUs[0..<10])))
        batch.append(Packet(copying: Array(toUs[0..<12]) + [0x86, 0xdd] + Array(toUs[14...])))
        link.receive(&batch, to: upper)
        #expect(upper.count == 1)
        let drops = link.drops.ethernet
        #expect(drops[.unsupportedFormat] == 1 && drops[.notForUs] == 1)
        #expect(drops[.tooShort] == 1 && drops[.unknownEtherType] == 1)
    }
}
