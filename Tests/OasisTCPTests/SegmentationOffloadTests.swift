// The control block with TCP segmentation offload: segments of several MSS for a
// device to cut, the sequence space accounted for when some of the pieces are lost.

import OasisTCP
import OasisWire
import Testing

/// A 64 KiB IP packet less its header and the longest TCP header, as the stack's
/// layer sets it over a TAP with offloads.
let offloadLimit = 65_535 - 20 - 60

@Suite struct SegmentationOffloadTests {
    /// With the limit set, data goes in segments of whole MSS (the initial window's ten
    /// at first), each to be cut at the MSS; without it, one MSS at a time.
    @Test func multiMSSSegmentsOnlyWhenAllowed() throws {
        for allowed in [true, false] {
            var pair = try Pair()
            if allowed { pair.client.segmentationLimit = offloadLimit }
            try pair.handshake()
            let mss = pair.client.sendMSS
            let data = pattern(300_000, seed: 3)
            var offset = 0
            var received: [UInt8] = []
            for _ in 0..<2_000 {
                if offset < data.count {
                    offset += data[offset...].withUnsafeBytes { pair.client.write($0) }
                }
                try pair.run(rounds: 4)
                received += pair.serverReads()
                if received.count == data.count { break }
                try pair.advance(by: 1_000_000)
            }
            try pair.elapse(200_000_000)
            let same = received == data
            #expect(same)
            let dataSegments = pair.sentByClient.filter { !$0.payload.isEmpty }
            #expect(dataSegments.allSatisfy { $0.payload.count <= mss })
            if allowed {
                #expect(!pair.largeByClient.isEmpty)
                let first = try #require(pair.largeByClient.first)
                #expect(first.payload.count == 10 * mss, "the initial window in one segment")
                // Whole MSS each, but for the last data waiting.
                for segment in pair.largeByClient.dropLast() {
                    #expect(segment.payload.count % mss == 0, "\(segment)")
                    #expect(segment.payload.count <= offloadLimit)
                }
                #expect(pair.largeByClient.map(\.payload.count).max()! > 20 * mss)
                // Far fewer segments handed out than went on the wire.
                #expect(pair.largeByClient.count * 4 < dataSegments.count)
            } else {
                #expect(pair.largeByClient.isEmpty)
            }
            #expect(pair.client.bytesInFlight == 0)
            #expect(pair.client.statistics.retransmissions == 0)
        }
    }

    /// A short last piece goes only where Nagle lets a short segment go: with nothing
    /// outstanding the whole 2.5 MSS leave in one segment; behind unacknowledged data
    /// the segment stops at the last whole MSS and the half waits for the ACK.
    @Test func aShortLastPieceWaitsAsNagleSays() throws {
        var pair = try Pair()
        pair.client.segmentationLimit = offloadLimit
        try pair.handshake()
        let mss = pair.client.sendMSS
        _ = pair.clientWrites(pattern(5 * mss / 2, seed: 1))
        let firstOut = pair.client.nextSegment(now: pair.now)
        let first = try #require(firstOut)
        #expect(first.payloadLength == 5 * mss / 2)
        #expect(first.segmentSize == mss)
        #expect(first.header.flags.contains(.psh))
        _ = pair.clientWrites(pattern(5 * mss / 2, seed: 2))
        let secondOut = pair.client.nextSegment(now: pair.now)
        let second = try #require(secondOut)
        #expect(second.payloadLength == 2 * mss)
        #expect(second.segmentSize == mss)
        #expect(!second.header.flags.contains(.psh))
        let third = pair.client.nextSegment(now: pair.now)
        #expect(third == nil || third!.payloadLength == 0, "the half MSS waits")
    }

    /// With no-delay, the short last piece goes at once, and a FIN rides on the last
    /// segment the device cuts.
    @Test func noDelaySendsTheTailAndTheFinRidesOnTheLastPiece() throws {
        var configuration = TCPConfiguration()
        configuration.noDelay = true
        var pair = try Pair(client: configuration, server: configuration)
        pair.client.segmentationLimit = offloadLimit
        try pair.handshake()
        let mss = pair.client.sendMSS
        let data = pattern(7 * mss + 100, seed: 4)
        #expect(pair.clientWrites(data) == data.count)
        pair.client.shutdownWrite()
        try pair.pump()
        let large = try #require(pair.largeByClient.last)
        #expect(large.payload.count == 7 * mss + 100)
        #expect(large.header.flags.contains(.fin))
        let pieces = pair.sentByClient.filter { !$0.payload.isEmpty }
        #expect(pieces.count == 8)
        #expect(pieces.dropLast().allSatisfy { !$0.header.flags.contains(.fin) })
        #expect(pieces.last!.header.flags.contains(.fin))
        try pair.run()
        #expect(pair.serverReads() == data)
        #expect(pair.server.state == .closeWait)
        #expect(pair.client.state == .finWait2)
    }

    /// Loss of some pieces of large segments (every 9th piece on the wire, the first
    /// time): SACK recovery or NewReno repairs it, every byte arrives in order, and
    /// the sender's sequence accounting ends where the data does.
    @Test(arguments: [true, false])
    func partOfALargeSegmentLost(sack: Bool) throws {
        let configuration = configuration(sack: sack, timestamps: true)
        var pair = try Pair(client: configuration, server: configuration)
        pair.client.segmentationLimit = offloadLimit
        try pair.handshake()
        let start = pair.client.sendNext
        let data = pattern(600_000, seed: 5)
        var offset = 0
        var received: [UInt8] = []
        var pieces = 0
        var dropped = Set<UInt32>()
        let drop: (WireSegment, Bool) -> Bool = { segment, toServer in
            guard toServer, !segment.payload.isEmpty else { return false }
            pieces += 1
            if pieces % 9 == 0 && !dropped.contains(segment.header.sequenceNumber) {
                dropped.insert(segment.header.sequenceNumber)
                return true
            }
            return false
        }
        for _ in 0..<20_000 {
            if offset < data.count {
                offset += data[offset...].withUnsafeBytes { pair.client.write($0) }
            }
            try pair.run(rounds: 4, drop: drop)
            received += pair.serverReads()
            if received.count == data.count { break }
            try pair.advance(by: 5_000_000)
        }
        let same = received == data
        #expect(same)
        #expect(!dropped.isEmpty)
        #expect(!pair.largeByClient.isEmpty)
        let statistics = pair.client.statistics
        #expect(statistics.fastRetransmissions > 0, "\(statistics)")
        #expect(statistics.timeouts <= (sack ? 2 : 6), "\(statistics)")
        #expect(pair.client.sendUnacknowledged == start + data.count)
        #expect(pair.client.sendNext == pair.client.sendUnacknowledged)
        #expect(pair.client.bytesInFlight == 0)
        #expect(pair.client.sendBuffer.count == 0)
        #expect(pair.server.receiveNext == start + data.count)
    }

    /// SACK recovery sends a hole of several lost MSS again in one segment, within the
    /// pipe's room: here the three middle pieces of a large segment are lost, and the
    /// receiver answers the whole segment with one ACK (its SACK blocks show the loss:
    /// RFC 6675 §5 counts it as a duplicate though it is cumulative).
    @Test func aLostHoleGoesAgainInOneSegment() throws {
        var pair = try Pair()
        pair.client.segmentationLimit = offloadLimit
        try pair.handshake()
        let mss = pair.client.sendMSS
        _ = pair.clientWrites(pattern(10 * mss, seed: 6))
        let base = pair.client.sendNext
        let lost = (base.rawValue &+ UInt32(3 * mss))..<(base.rawValue &+ UInt32(6 * mss))
        var dropOnce = true
        try pair.run(rounds: 1) { segment, toServer in
            toServer && dropOnce && lost.contains(segment.header.sequenceNumber)
        }
        dropOnce = false
        try pair.run()
        let resent = pair.largeByClient.dropFirst()
        #expect(
            resent.contains {
                $0.header.sequenceNumber == lost.lowerBound && $0.payload.count == 3 * mss
            }, "\(pair.largeByClient)")
        let same = pair.serverReads() == pattern(10 * mss, seed: 6)
        #expect(same)
        #expect(pair.client.bytesInFlight == 0)
        #expect(pair.client.statistics.timeouts == 0)
    }

    /// While our receive queue has a gap, every header carries SACK blocks, and every
    /// piece the device cuts carries that header: the pieces are cut that much
    /// shorter, so that each still fits the path.
    @Test func piecesCarryingSACKBlocksStillFitThePath() throws {
        var pair = try Pair()
        pair.client.segmentationLimit = offloadLimit
        try pair.handshake()
        let mss = pair.client.sendMSS
        let up = pattern(400_000, seed: 11)
        let down = pattern(400_000, seed: 12)
        var upOffset = 0
        var downOffset = 0
        var received: [UInt8] = []
        var receivedDown: [UInt8] = []
        var pieces = 0
        var dropped = Set<UInt32>()
        let drop: (WireSegment, Bool) -> Bool = { segment, toServer in
            guard !toServer, !segment.payload.isEmpty else { return false }
            pieces += 1
            if pieces % 9 == 0 && !dropped.contains(segment.header.sequenceNumber) {
                dropped.insert(segment.header.sequenceNumber)
                return true
            }
            return false
        }
        for _ in 0..<20_000 {
            if upOffset < up.count {
                upOffset += up[upOffset...].withUnsafeBytes { pair.client.write($0) }
            }
            if downOffset < down.count {
                downOffset += down[downOffset...].withUnsafeBytes { pair.server.write($0) }
            }
            try pair.run(rounds: 4, drop: drop)
            received += pair.serverReads()
            receivedDown += pair.clientReads()
            if received.count == up.count && receivedDown.count == down.count { break }
            try pair.advance(by: 5_000_000)
        }
        let same = received == up && receivedDown == down
        #expect(same)
        let withBlocks = pair.sentByClient.filter {
            !$0.payload.isEmpty && !$0.header.sackBlocks.isEmpty
        }
        #expect(!withBlocks.isEmpty, "some data went while the client held a gap")
        #expect(pair.largeByClient.contains { !$0.header.sackBlocks.isEmpty })
        for piece in withBlocks {
            #expect(
                piece.payload.count + 4 + 8 * piece.header.sackBlocks.count <= mss, "\(piece)")
        }
    }

    /// A segment holding several MSS (the peer's TSO never cut it, or GRO joined it)
    /// counts as that many full segments: it is acknowledged at once, not delayed.
    @Test func aCoalescedSegmentIsAcknowledgedAtOnce() throws {
        var pair = try Pair()
        try pair.handshake()
        let mss = pair.client.sendMSS
        pair.client.segmentationLimit = offloadLimit
        _ = pair.clientWrites(pattern(4 * mss, seed: 8))
        let segmentOut = pair.client.nextSegment(now: pair.now)
        let segment = try #require(segmentOut)
        #expect(segment.payloadLength == 4 * mss)
        let whole = try wire(
            segment, from: pair.client, source: clientAddress, destination: serverAddress)
        var header = whole.header
        header.flags.remove(.psh)  // no push: only the count can ask for the ACK
        whole.payload.withUnsafeBytes {
            pair.server.receive(header, payload: $0, now: pair.now)
        }
        let answerOut = pair.server.nextSegment(now: pair.now)
        let answer = try #require(answerOut)
        #expect(answer.header.flags.contains(.ack))
        #expect(
            answer.header.acknowledgmentNumber == segment.header.sequenceNumber &+ UInt32(4 * mss))
    }
}
