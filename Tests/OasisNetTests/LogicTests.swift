import OasisBits
import OasisTestSupport
import OasisWire
import Testing

@testable import OasisNet

@Suite struct ArpCacheTests {
    let hostC = IPv4Address(192, 0, 2, 3)

    @Test func answersRequestsAndLearns() throws {
        var cache = ArpCache(mac: ours, address: hostB)
        let requestBits = try packet(arpRequestFrame).shifted(by: 14)
        let request = try ArpRepr.parse(requestBits.bytes)
        let reception = cache.receive(request, now: .zero)
        var reply = emptyPacket()
        let answer = try #require(reception.reply)
        try answer.emit(prependingTo: &reply)
        try answer.ethernetHeader.emit(prependingTo: &reply)
        #expect(reply.copyBytes() == arpReplyFrame)
        #expect(cache.lookup(hostA, now: .seconds(1)) == theirs)
    }

    @Test func mergeOnlyUpdatesExistingEntries() {
        var cache = ArpCache(mac: ours, address: hostB)
        // Not for us, sender unknown: not learned (RFC 826: add only if we are the target).
        _ = cache.receive(.request(from: theirs, hostA, for: hostC), now: .zero)
        #expect(cache.lookup(hostA, now: .zero) == nil)
        cache.insert(hostA, theirs, now: .zero)
        // Not for us, sender known: refreshed (the merge flag).
        _ = cache.receive(.gratuitous(mac: theirs, address: hostA), now: .seconds(30))
        #expect(cache.lookupWithExpiry(hostA, now: .seconds(31))?.expires == .seconds(90))
        // Someone claiming our own address, or a multicast sender, is refused.
        _ = cache.receive(.gratuitous(mac: theirs, address: hostB), now: .seconds(1))
        _ = cache.receive(.request(from: .broadcast, hostC, for: hostB), now: .seconds(1))
        #expect(cache.drops[.addressConflict] == 1 && cache.drops[.badSenderHardwareAddress] == 1)
        #expect(cache.lookup(hostC, now: .seconds(1)) == nil)
    }

    @Test func queuesUntilResolved() throws {
        var cache = ArpCache(mac: ours, address: hostB)
        #expect(cache.lookup(hostA, now: .zero) == nil)
        guard
            case .queued(let request?) = cache.enqueue(Packet(packet([1])), for: hostA, now: .zero)
        else { Issue.record("expected a request"); return }
        #expect(request == .request(from: ours, hostB, for: hostA))
        guard case .queued(nil) = cache.enqueue(Packet(packet([2])), for: hostA, now: .zero) else {
            Issue.record("expected no second request")
            return
        }
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: theirs, senderProtocolAddress: hostA,
            targetHardwareAddress: ours, targetProtocolAddress: hostB)
        let reception = cache.receive(reply, now: .milliseconds(10))
        #expect(reception.reply == nil)
        #expect(reception.resolved?.address == hostA && reception.resolved?.mac == theirs)
        let first = cache.takeWaiting(for: hostA)?.copyBytes()
        let second = cache.takeWaiting(for: hostA)?.copyBytes()
        let none = cache.takeWaiting(for: hostA) == nil
        #expect(first == [1] && second == [2] && none)
        #expect(cache.lookup(hostA, now: .seconds(1)) == theirs)
        // Expiry after the lifetime; kept (stale) for another minute, then gone.
        #expect(cache.lookup(hostA, now: .seconds(61)) == nil)
        #expect(cache.poll(now: .seconds(61)) == nil && cache.count == 1)
        #expect(cache.poll(now: .milliseconds(120_010)) == nil && cache.count == 0)
    }

    @Test func retriesThenGivesUp() {
        var configuration = ArpCache.Configuration()
        configuration.waitingPerAddress = 2
        var cache = ArpCache(mac: ours, address: hostB, configuration: configuration)
        for byte in 0..<3 {
            _ = cache.enqueue(Packet(packet([UInt8(byte)])), for: hostA, now: .zero)
        }
        #expect(cache.drops[.queueFull] == 1)
        #expect(cache.poll(now: .milliseconds(500)) == nil)
        #expect(cache.nextDeadline == .seconds(1))
        #expect(cache.poll(now: .seconds(1)) == .request(from: ours, hostB, for: hostA))
        #expect(cache.poll(now: .seconds(1)) == nil)
        #expect(cache.poll(now: .seconds(2)) == .request(from: ours, hostB, for: hostA))
        #expect(cache.poll(now: .seconds(3)) == nil)
        #expect(cache.drops[.resolutionFailed] == 2 && cache.count == 0)
    }

    @Test func boundedWithOldestEvicted() {
        var configuration = ArpCache.Configuration()
        configuration.capacity = 4
        var cache = ArpCache(mac: ours, address: hostB, configuration: configuration)
        for index in 0..<6 {
            cache.insert(IPv4Address(10, 0, 0, UInt8(index)), theirs, now: .seconds(Int64(index)))
        }
        #expect(cache.count == 4 && cache.drops[.evicted] == 2)
        #expect(cache.lookup(IPv4Address(10, 0, 0, 0), now: .seconds(6)) == nil)
        #expect(cache.lookup(IPv4Address(10, 0, 0, 5), now: .seconds(6)) == theirs)
    }

    /// Issue 19, item 2: forged ARP does not move a fresh entry to another station;
    /// RFC 826's merge still refreshes it, and a station that really changed its
    /// address is learned once the entry is past its lifetime, from a packet to us.
    @Test func forgedArpDoesNotMoveAFreshEntry() {
        let evil = MACAddress(2, 0x66, 0x66, 0x66, 0x66, 0x66)
        var cache = ArpCache(mac: ours, address: hostB)
        cache.insert(hostA, theirs, now: .zero)
        let forgedReply = ArpRepr(
            operation: .reply, senderHardwareAddress: evil, senderProtocolAddress: hostA,
            targetHardwareAddress: ours, targetProtocolAddress: hostB)
        // The Ethernet source is the real station's, the ARP sender the forger's.
        _ = cache.receive(forgedReply, linkSource: theirs, now: .seconds(1))
        #expect(cache.drops[.senderMismatch] == 1)
        // Consistent forgeries: a reply nobody asked for, a gratuitous ARP, a request
        // for another host, a request to us.
        _ = cache.receive(forgedReply, linkSource: evil, now: .seconds(2))
        _ = cache.receive(
            .gratuitous(mac: evil, address: hostA), linkSource: evil, now: .seconds(3))
        _ = cache.receive(
            .request(from: evil, hostA, for: hostC), linkSource: evil, now: .seconds(4))
        let request = cache.receive(
            .request(from: evil, hostA, for: hostB), linkSource: evil, now: .seconds(5))
        #expect(request.reply != nil)
        #expect(cache.drops[.unsolicitedChange] == 4)
        #expect(cache.lookup(hostA, now: .seconds(5)) == theirs)
        // Past its lifetime, a packet to us with a new address is believed.
        _ = cache.receive(forgedReply, linkSource: evil, now: .seconds(61))
        #expect(cache.lookup(hostA, now: .seconds(61)) == evil)
        // Someone claiming our own address: a conflict to report, never learned.
        let claim = cache.receive(.gratuitous(mac: evil, address: hostB), now: .seconds(62))
        #expect(claim.conflict == evil && cache.lookup(hostB, now: .seconds(62)) == nil)
    }

    /// Issue 19, item 2: an entry past its lifetime is still used while it is asked
    /// again (one request on first use, retries from poll); answered, it is fresh again;
    /// unanswered, it goes.
    @Test func aStaleEntryIsUsedWhileItIsRefreshed() {
        var cache = ArpCache(mac: ours, address: hostB)
        cache.insert(hostA, theirs, now: .zero)
        #expect(cache.lookup(hostA, now: .seconds(61)) == nil)
        let first = cache.staleLookup(hostA, now: .seconds(61))
        #expect(first?.mac == theirs && first?.request == .request(from: ours, hostB, for: hostA))
        let second = cache.staleLookup(hostA, now: .seconds(61))
        #expect(second?.mac == theirs && second?.request == nil)
        #expect(cache.nextDeadline == .seconds(62))
        let reply = ArpRepr(
            operation: .reply, senderHardwareAddress: theirs, senderProtocolAddress: hostA,
            targetHardwareAddress: ours, targetProtocolAddress: hostB)
        _ = cache.receive(reply, linkSource: theirs, now: .milliseconds(61_500))
        #expect(cache.lookup(hostA, now: .seconds(62)) == theirs)
        // Stale again, asked, never answered: retried, then dropped.
        _ = cache.staleLookup(hostA, now: .seconds(130))
        #expect(cache.poll(now: .seconds(131)) == .request(from: ours, hostB, for: hostA))
        #expect(cache.poll(now: .seconds(132)) == .request(from: ours, hostB, for: hostA))
        #expect(cache.staleLookup(hostA, now: .seconds(132))?.mac == theirs)
        #expect(cache.poll(now: .seconds(133)) == nil && cache.count == 0)
        #expect(cache.staleLookup(hostA, now: .seconds(133)) == nil)
        // Past the stale lifetime as well, an entry is not used.
        cache.insert(hostA, theirs, now: .seconds(200))
        #expect(cache.staleLookup(hostA, now: .seconds(320)) == nil)
    }

    /// Issue 19, item 2: a flood towards addresses that never answer (a spoofed-SYN
    /// flood's SYN-ACKs) fills the table with pending entries; they evict each other,
    /// not the neighbour that answers.
    @Test func aFloodOfPendingEntriesDoesNotEvictAResolvedOne() {
        var configuration = ArpCache.Configuration()
        configuration.capacity = 4
        var cache = ArpCache(mac: ours, address: hostB, configuration: configuration)
        cache.insert(hostA, theirs, now: .zero)
        for index in 0..<100 {
            _ = cache.enqueue(
                Packet(packet([1])), for: IPv4Address(192, 0, 2, UInt8(10 + index)),
                now: .milliseconds(Int64(index)))
        }
        #expect(cache.count == 4)
        #expect(cache.lookup(hostA, now: .seconds(1)) == theirs)
    }

    @Test func gratuitousFrame() throws {
        let cache = ArpCache(mac: theirs, address: hostA)
        var frame = emptyPacket()
        try cache.gratuitous.emit(prependingTo: &frame)
        try cache.gratuitous.ethernetHeader.emit(prependingTo: &frame)
        // arping's, but with a zero target hardware address (RFC 5227 §2.3, as Linux).
        var expected = gratuitousArpFrame
        expected.replaceSubrange(32..<38, with: [UInt8](repeating: 0, count: 6))
        #expect(frame.copyBytes() == expected)
    }
}

@Suite struct ReassemblyTests {
    func fragment(_ hex: String) throws -> (IPv4Repr, Bits) {
        try parseIPv4(packet(bytes(hex: hex)).shifted(by: 14))
    }

    /// The two captured fragments of `ping -s 2000`, in either order.
    @Test(arguments: [false, true]) func realFragments(reversed: Bool) throws {
        var reassembler = IPv4Reassembler()
        var parts = [try fragment(firstFragmentHex), try fragment(lastFragmentHex)]
        if reversed { parts.reverse() }
        guard case .incomplete = reassembler.insert(parts[0].0, payload: parts[0].1, now: .zero)
        else { Issue.record("expected incomplete"); return }
        #expect(reassembler.bytesHeld > 0)
        guard
            case .complete(let whole, let payload) = reassembler.insert(
                parts[1].0, payload: parts[1].1, now: .seconds(1))
        else { Issue.record("expected complete"); return }
        #expect(whole.payloadLength == 2008 && !whole.isFragment && whole.identification == 0x4f42)
        let icmp = try ICMPv4Repr.parse(payload.bytes)
        #expect(icmp == .echoRequest(identifier: 0x5df1, sequenceNumber: 1))
        #expect(payload.count - ICMPv4Header.size == 2000)
        #expect(reassembler.count == 0 && reassembler.bytesHeld == 0)
    }

    func header(offset: Int, more: Bool, id: UInt16 = 7) -> IPv4Repr {
        IPv4Repr(
            source: hostA, destination: hostB, protocol: .udp, payloadLength: 0,
            identification: id, moreFragments: more, fragmentOffset: offset)
    }

    @Test func overlapDropsTheDatagram() {
        var reassembler = IPv4Reassembler()
        _ = reassembler.insert(
            header(offset: 0, more: true), payload: packet(.init(repeating: 1, count: 16)),
            now: .zero)
        guard
            case .dropped(.duplicate) = reassembler.insert(
                header(offset: 0, more: true), payload: packet(.init(repeating: 1, count: 16)),
                now: .zero)
        else { Issue.record("expected duplicate"); return }
        guard
            case .dropped(.overlap) = reassembler.insert(
                header(offset: 8, more: false), payload: packet(.init(repeating: 2, count: 16)),
                now: .zero)
        else { Issue.record("expected overlap"); return }
        #expect(reassembler.count == 0 && reassembler.drops[.overlap] == 1)
        #expect(reassembler.bytesHeld == 0)
    }

    /// A 65 000-byte datagram in 552-byte fragments (a 576-byte MTU): 118 fragments,
    /// in order or backwards, one piece as it grows; every byte where it belongs.
    @Test(arguments: [false, true]) func manySmallFragmentsInOrder(backwards: Bool) throws {
        var reassembler = IPv4Reassembler()
        let data = (0..<65_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var offsets = Array(stride(from: 0, to: data.count, by: 552))
        if backwards { offsets.reverse() }
        var result: [UInt8]? = nil
        for offset in offsets {
            let end = min(offset + 552, data.count)
            let outcome = reassembler.insert(
                header(offset: offset, more: end < data.count),
                payload: packet(Array(data[offset..<end])), now: .zero)
            if case .complete(_, let payload) = outcome { result = payload.copyBytes() }
        }
        #expect(offsets.count == 118)
        #expect(result == data)
        #expect(reassembler.count == 0 && reassembler.bytesHeld == 0)
    }

    /// Issue 19, item 3 (RFC 791 §3.2: every host accepts a 576-byte datagram): its
    /// 556 bytes of payload in 8-byte fragments, 70 of them, in order, backwards,
    /// every other one first, and shuffled, are reassembled each time.
    @Test func a576ByteDatagramIn8ByteFragmentsInAnyOrder() throws {
        let data = (0..<556).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let inOrder = Array(stride(from: 0, to: data.count, by: 8))
        var random = SplitMix64(seed: 576)
        var orders = [
            inOrder, inOrder.reversed(),
            inOrder.enumerated().sorted {
                ($0.offset % 2, $0.offset) < ($1.offset % 2, $1.offset)
            }.map(\.element),
        ]
        for _ in 0..<20 {
            var shuffled = inOrder
            for index in stride(from: shuffled.count - 1, to: 0, by: -1) {
                shuffled.swapAt(index, Int(random.next() % UInt64(index + 1)))
            }
            orders.append(shuffled)
        }
        #expect(inOrder.count == 70)
        for (number, order) in orders.enumerated() {
            var reassembler = IPv4Reassembler()
            var result: [UInt8]? = nil
            for offset in order {
                let end = min(offset + 8, data.count)
                let outcome = reassembler.insert(
                    header(offset: offset, more: end < data.count, id: UInt16(number)),
                    payload: packet(Array(data[offset..<end])), now: .zero)
                if case .complete(_, let payload) = outcome { result = payload.copyBytes() }
            }
            #expect(result == data, "order \(number)")
            #expect(reassembler.count == 0 && reassembler.bytesHeld == 0)
        }
    }

    /// Fragments with gaps between them are separate pieces: more than
    /// `maximumFragments` of them drop the datagram. A duplicate of bytes already held
    /// (inside a merged piece) is harmless; the same place with other bytes is not.
    @Test func piecesAreBoundedAndDuplicatesInsideAPieceAreRecognised() {
        var reassembler = IPv4Reassembler()
        let pieces = IPv4Reassembler.maximumFragments
        for index in 0..<pieces {
            guard
                case .incomplete = reassembler.insert(
                    header(offset: index * 16, more: true),
                    payload: packet(.init(repeating: UInt8(index), count: 8)), now: .zero)
            else { Issue.record("piece \(index)"); return }
        }
        // Joining two pieces adds none: accepted even at the bound.
        guard
            case .incomplete = reassembler.insert(
                header(offset: 8, more: true), payload: packet(.init(repeating: 9, count: 8)),
                now: .zero)
        else { Issue.record("a joining fragment was refused"); return }
        // 0..<24 is one piece now; 8..<16 again, same bytes: a duplicate.
        guard
            case .dropped(.duplicate) = reassembler.insert(
                header(offset: 8, more: true), payload: packet(.init(repeating: 9, count: 8)),
                now: .zero)
        else { Issue.record("expected duplicate"); return }
        // Pieces with gaps on both sides: the bound again, then one too many.
        guard
            case .incomplete = reassembler.insert(
                header(offset: pieces * 16 + 8, more: true),
                payload: packet(.init(repeating: 1, count: 8)), now: .zero)
        else { Issue.record("a piece within the bound was refused"); return }
        guard
            case .dropped(.badFragment) = reassembler.insert(
                header(offset: pieces * 16 + 32, more: true),
                payload: packet(.init(repeating: 1, count: 8)), now: .zero)
        else { Issue.record("expected the bound"); return }
        #expect(reassembler.count == 0 && reassembler.bytesHeld == 0)
        // Other bytes where bytes are held: an overlap.
        _ = reassembler.insert(
            header(offset: 0, more: true), payload: packet(.init(repeating: 1, count: 16)),
            now: .zero)
        guard
            case .dropped(.overlap) = reassembler.insert(
                header(offset: 8, more: true), payload: packet(.init(repeating: 2, count: 8)),
                now: .zero)
        else { Issue.record("expected overlap"); return }
    }

    @Test func badFragments() {
        var reassembler = IPv4Reassembler()
        guard
            case .dropped(.badFragment) = reassembler.insert(
                header(offset: 0, more: true), payload: packet([1, 2, 3]), now: .zero)
        else { Issue.record("non-multiple of 8"); return }
        guard
            case .dropped(.badFragment) = reassembler.insert(
                header(offset: 65_528, more: false),
                payload: packet(.init(repeating: 0, count: 16)),
                now: .zero)
        else { Issue.record("ping of death"); return }
        #expect(reassembler.drops[.badFragment] == 2 && reassembler.count == 0)
    }

    @Test func timeout() {
        var reassembler = IPv4Reassembler()
        _ = reassembler.insert(
            header(offset: 0, more: true), payload: packet(.init(repeating: 1, count: 8)),
            now: .zero)
        #expect(reassembler.nextDeadline == .seconds(30))
        reassembler.expire(now: .seconds(29))
        #expect(reassembler.count == 1)
        reassembler.expire(now: .seconds(30))
        #expect(reassembler.count == 0 && reassembler.drops[.timeout] == 1)
    }

    @Test func floodStaysWithinBounds() {
        var configuration = IPv4Reassembler.Configuration()
        configuration.maximumBytes = 64 * 1024
        configuration.maximumDatagrams = 8
        var reassembler = IPv4Reassembler(configuration: configuration)
        for id in 0..<1000 {
            _ = reassembler.insert(
                header(offset: 8 * (id % 5000), more: true, id: UInt16(id)),
                payload: packet(.init(repeating: 0, count: 8)), now: .milliseconds(Int64(id)))
            #expect(reassembler.bytesHeld <= configuration.maximumBytes)
            #expect(reassembler.count <= configuration.maximumDatagrams)
        }
        #expect(reassembler.drops[.memoryBound] == 992)
    }
}

@Suite struct FragmenterTests {
    @Test func splitsAndReassembles() throws {
        let data = (0..<2008).map { UInt8(truncatingIfNeeded: $0) }
        let header = IPv4Repr(
            source: hostA, destination: hostB, protocol: .icmp, payloadLength: 2008,
            identification: 0x4f42)
        var fragmenter = try IPv4Fragmenter(header: header, payload: packet(data), mtu: 1500)
        var reassembler = IPv4Reassembler()
        var fragments = 0
        var result: [UInt8] = []
        while !fragmenter.isFinished {
            var frame = emptyBits()
            try fragmenter.nextFragment(into: &frame)
            #expect(frame.count <= 1500)
            let (repr, payload) = try parseIPv4(frame)
            #expect(repr.fragmentOffset % 8 == 0)
            if case .complete(_, let payload) = reassembler.insert(
                repr, payload: payload, now: .zero)
            {
                result = payload.copyBytes()
            }
            fragments += 1
        }
        #expect(fragments == 2 && result == data)
        // Same split as Linux: the first fragment matches the capture's IP header.
        var again = try IPv4Fragmenter(header: header, payload: packet(data), mtu: 1500)
        var first = emptyBits()
        try again.nextFragment(into: &first)
        let captured = try parseIPv4(packet(bytes(hex: firstFragmentHex)).shifted(by: 14)).0
        var expected = captured
        expected.dontFragment = false
        expected.timeToLive = 64
        #expect(try parseIPv4(first).0 == expected)
    }

    @Test func refusals() throws {
        let header = IPv4Repr(
            source: hostA, destination: hostB, protocol: .udp, payloadLength: 100,
            dontFragment: true)
        #expect(throws: IPv4Fragmenter.Failure.dontFragment(mtu: 68)) {
            try IPv4Fragmenter(
                header: header, payload: packet(.init(repeating: 0, count: 100)), mtu: 68)
        }
        #expect(throws: IPv4Fragmenter.Failure.mtuTooSmall(27)) {
            try IPv4Fragmenter(header: header, payload: packet([]), mtu: 27)
        }
        var single = try IPv4Fragmenter(header: header, payload: packet([1, 2, 3]), mtu: 1500)
        var frame = emptyBits()
        try single.nextFragment(into: &frame)
        let parsed = try parseIPv4(frame).0
        #expect(single.isFinished && !parsed.isFragment)
    }
}
