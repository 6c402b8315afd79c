// IPv4Stack over the memory pair, on the virtual clock: what the glue does with good
// and bad traffic. (The stack against the Linux kernel: Tests/OasisStackTests.)

import OasisBits
import OasisDevices
import OasisLoop
import OasisWire
import Testing

@testable import OasisNet

@Suite struct StackTests {
    let serverAddress = IPv4Address("192.0.2.2")!
    let clientAddress = IPv4Address("192.0.2.1")!

    /// A server stack on one end of a memory pair, and the raw other end.
    func makeServer(_ loop: EventLoop) throws -> (IPv4Stack<MemoryDevice>, MemoryDevice, [Bits]) {
        let (serverEnd, rawEnd) = MemoryDevice.pair(on: loop)
        let stack = IPv4Stack(
            device: serverEnd,
            configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!), on: loop)
        try stack.start()
        return (stack, rawEnd, [])
    }

    /// An IPv4 frame from the client to the server, built with our emitters.
    func frame(
        to destination: MACAddress, _ header: IPv4Repr, payload: [UInt8],
        corrupt: ((inout Bits) throws -> Void)? = nil
    ) throws -> Bits {
        var packet = Bits(payload, headroom: 128)
        try header.emit(prependingTo: &packet)
        if let corrupt { try corrupt(&packet) }
        try EthernetRepr(
            destination: destination, source: MACAddress(0x0200_0000_0001), etherType: .ipv4
        )
        .emit(prependingTo: &packet)
        return packet
    }

    func udp(_ bytes: [UInt8], port: UInt16) throws -> [UInt8] {
        var data = Bits(bytes, headroom: 64)
        try UDPRepr(sourcePort: 40_000, destinationPort: port).emit(
            prependingTo: &data, source: clientAddress, destination: serverAddress)
        return data.copyBytes()
    }

    @Test func badFramesAreCountedAndTheStackKeepsAnswering() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, raw, _) = try makeServer(loop)
        var replies: [[UInt8]] = []
        try raw.startEach { replies.append($0.copyBytes()) }
        try stack.listen(port: 7) { datagram in
            try? stack.send(datagram.payload, to: datagram.source, from: 7)
        }
        let mac = stack.device.macAddress
        let datagram = try udp(Array("hello".utf8), port: 7)
        let good = IPv4Repr(
            source: clientAddress, destination: serverAddress, protocol: .udp,
            payloadLength: datagram.count, identification: 1)
        // So that the reply needs no ARP round trip.
        loop.enqueue {
            try? raw.transmit(
                Bits(
                    [UInt8](repeating: 0xff, count: 6) + [2, 0, 0, 0, 0, 1, 0x08, 0x06]
                        + [0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 0, 2, 1]
                        + [0, 0, 0, 0, 0, 0, 192, 0, 2, 2] + [UInt8](repeating: 0, count: 18)))
        }
        try loop.advance(by: .milliseconds(1))
        replies.removeAll()

        let bad: [Bits] = [
            Bits([1, 2, 3]),  // shorter than an Ethernet header
            // IHL 6 (and so a bad checksum)
            try frame(to: mac, good, payload: datagram) { try $0.write(UInt8(0x46), at: 0) },
            // a bad header checksum
            try frame(to: mac, good, payload: datagram) { try $0.write(UInt16(0x1234), at: 10) },
            // a total length beyond the frame
            try frame(to: mac, good, payload: datagram) { try $0.write(UInt16(9000), at: 2) },
            // version 3
            try frame(to: mac, good, payload: datagram) { try $0.write(UInt8(0x35), at: 0) },
            // not our MAC
            try frame(to: MACAddress(0x0200_0000_0099), good, payload: datagram),
        ]
        loop.enqueue { for frame in bad { try? raw.transmit(frame) } }
        try loop.advance(by: .milliseconds(1))
        #expect(replies.isEmpty)
        let drops = stack.drops
        #expect(drops.ethernet[.tooShort] == 1)
        #expect(drops.ethernet[.notForUs] == 1)
        #expect(drops.ipv4[.badChecksum] + drops.ipv4[.badHeaderLength] == 2)
        #expect(drops.ipv4[.badTotalLength] == 1)
        #expect(drops.ipv4[.badVersion] == 1)

        loop.enqueue { try? raw.transmit(try! self.frame(to: mac, good, payload: datagram)) }
        try loop.advance(by: .milliseconds(1))
        #expect(replies.count == 1)
        #expect(replies.first.map { Array($0.suffix(5)) } == Array("hello".utf8))
    }

    @Test func aFloodOfIncompleteFragmentsStaysWithinTheMemoryBound() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, raw, _) = try makeServer(loop)
        try raw.start { _ in }
        let mac = stack.device.macAddress
        let chunk = [UInt8](repeating: 0xab, count: 1400)
        loop.enqueue {
            for id in 0..<5000 {
                var header = IPv4Repr(
                    source: self.clientAddress, destination: self.serverAddress, protocol: .udp,
                    payloadLength: chunk.count, identification: UInt16(truncatingIfNeeded: id))
                header.moreFragments = true  // a first fragment whose rest never comes
                try? raw.transmit(try! self.frame(to: mac, header, payload: chunk))
            }
        }
        try loop.advance(by: .seconds(1))
        let bound = stack.configuration.reassembly.maximumBytes
        #expect(stack.reassemblyBytesHeld <= bound)
        #expect(stack.reassemblyBytesHeld > 0)
        #expect(stack.drops.reassembly[.memoryBound] > 0)
        // After the reassembly timeout everything held is let go.
        try loop.advance(by: stack.configuration.reassembly.timeout + .seconds(1))
        #expect(stack.reassemblyBytesHeld == 0)
        #expect(stack.drops.reassembly[.timeout] > 0)
    }

    @Test func overlappingFragmentsDropTheDatagram() throws {
        let loop = try EventLoop(clock: .virtual)
        let (stack, raw, _) = try makeServer(loop)
        try raw.start { _ in }
        var delivered = 0
        try stack.listen(port: 7) { _ in delivered += 1 }
        let mac = stack.device.macAddress
        let datagram = try udp([UInt8](repeating: 1, count: 64), port: 7)
        var first = IPv4Repr(
            source: clientAddress, destination: serverAddress, protocol: .udp,
            payloadLength: 48, identification: 9, moreFragments: true)
        var second = first
        second.moreFragments = false
        second.fragmentOffset = 40  // overlaps the first's bytes 40..<48
        second.payloadLength = datagram.count - 40
        first.payloadLength = 48
        loop.enqueue {
            try? raw.transmit(try! self.frame(to: mac, first, payload: Array(datagram[0..<48])))
            try? raw.transmit(try! self.frame(to: mac, second, payload: Array(datagram[40...])))
        }
        try loop.advance(by: .milliseconds(1))
        #expect(delivered == 0)
        #expect(stack.drops.reassembly[.overlap] == 1)
    }

    @Test func asyncReceiverAndUnresolvableNextHop() throws {
        let loop = try EventLoop(clock: .virtual)
        let serverAddress = self.serverAddress
        let (answers, arpFailures) = try loop.run {
            let loop = EventLoop.current!
            let (serverEnd, clientEnd) = MemoryDevice.pair(on: loop)
            let server = IPv4Stack(
                device: serverEnd,
                configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!),
                on: loop)
            let client = IPv4Stack(
                device: clientEnd,
                configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.1/24")!),
                on: loop)
            try server.start()
            try client.start()
            let requests = try DatagramReceiver(listeningOn: 53, of: server)
            let replies = try DatagramReceiver(listeningOn: 40_000, of: client)
            for index in 0..<3 {
                try client.send(
                    [UInt8(index)], to: DatagramEndpoint(address: serverAddress, port: 53),
                    from: 40_000)
            }
            var answers: [UInt8] = []
            for await request in requests {
                try server.send(
                    request.payload.copyBytes().map { $0 + 100 }, to: request.source, from: 53)
                guard let reply = await replies.next() else { break }
                answers += reply.payload.copyBytes()
                if answers.count == 3 { requests.finish() }
            }
            // Nobody at 192.0.2.77: ARP gives up after its retries, the packet is dropped.
            try client.send(
                [1], to: DatagramEndpoint(address: IPv4Address("192.0.2.77")!, port: 9), from: 1)
            try await Time.sleep(.seconds(10))
            let failures = client.drops.arp[.resolutionFailed]
            server.stop()
            client.stop()
            return (answers, failures)
        }
        #expect(answers == [100, 101, 102])
        #expect(arpFailures >= 1)
    }
}

@Suite struct StackSourceAddressTests {
    /// An echo request from `source`, sent to the stack at 192.0.2.2; returns the number
    /// of frames the stack sent back.
    func answers(from source: IPv4Address, toLinkBroadcast: Bool = false) throws -> Int {
        let loop = try EventLoop(clock: .virtual)
        let (serverEnd, raw) = MemoryDevice.pair(on: loop)
        var configuration = IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!)
        configuration.gratuitousArp = false
        let stack = IPv4Stack(device: serverEnd, configuration: configuration, on: loop)
        try stack.start()
        var replies = 0
        try raw.startEach { _ in replies += 1 }
        var message = Bits([UInt8](repeating: 0x5a, count: 32), headroom: 128)
        try ICMPv4Repr.echoRequest(identifier: 1, sequenceNumber: 1).emit(prependingTo: &message)
        try IPv4Repr(
            source: source, destination: IPv4Address("192.0.2.2")!, protocol: .icmp,
            payloadLength: message.count
        ).emit(prependingTo: &message)
        try EthernetRepr(
            destination: toLinkBroadcast ? .broadcast : serverEnd.macAddress,
            source: MACAddress(0x0200_0000_0001), etherType: .ipv4
        ).emit(prependingTo: &message)
        let frame = message
        loop.enqueue { try? raw.transmit(frame) }
        try loop.advance(by: .seconds(5))
        return replies
    }

    @Test func answersAnOrdinaryNeighbour() throws {
        // The reply waits for ARP: the stack asks (1 request, then retries) — it sends.
        #expect(try answers(from: IPv4Address("192.0.2.1")!) > 0)
    }

    @Test func neverAnswersImpossibleSources() throws {
        for source in ["192.0.2.255", "0.0.0.0", "127.0.0.1", "240.0.0.1", "192.0.2.2"] {
            #expect(try answers(from: IPv4Address(source)!) == 0, "answered \(source)")
        }
    }

    @Test func dropsUnicastIPInALinkBroadcast() throws {
        #expect(try answers(from: IPv4Address("192.0.2.1")!, toLinkBroadcast: true) == 0)
    }
}

@Suite struct DatagramReceiverTests {
    @Test func cancellingAWaitingReaderEndsItsWaitWithNil() throws {
        let loop = try EventLoop(clock: .virtual)
        let (endedWithNil, elapsed) = try loop.run {
            let loop = EventLoop.current!
            let (serverEnd, _) = MemoryDevice.pair(on: loop)
            let server = IPv4Stack(
                device: serverEnd,
                configuration: IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!),
                on: loop)
            let receiver = try DatagramReceiver(listeningOn: 53, of: server)
            let start = Time.now!
            let reader = Task(executorPreference: loop) { await receiver.next() == nil }
            try await Time.sleep(.seconds(1))
            reader.cancel()
            let endedWithNil = await reader.value
            return (endedWithNil, Time.now! - start)
        }
        #expect(endedWithNil)
        #expect(elapsed < .seconds(2))
    }
}
