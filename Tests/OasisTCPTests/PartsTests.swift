import OasisTCP
import OasisWire
import Testing

@Suite struct SequenceNumberTests {
    @Test func comparesAndSubtractsAcrossTheWrap() {
        let before = SequenceNumber(0xffff_fff0)
        let after = before + 32
        #expect(after.rawValue == 0x10)
        #expect(before < after && !(after < before))
        #expect(after - before == 32 && before - after == -32)
        #expect(SequenceNumber.latest(before, after) == after)
        #expect(SequenceNumber(5).isIn(before, after) && !SequenceNumber(0x20).isIn(before, after))
        // Half the space apart is the limit of comparison (RFC 1982).
        #expect(SequenceNumber(0) < SequenceNumber(0x7fff_ffff))
        #expect(SequenceNumber(0x8000_0001) < SequenceNumber(0))
    }
}

@Suite struct SipHashTests {
    /// The reference vectors of SipHash-2-4 (key 00..0f, messages 00, 00 01, ...).
    @Test func referenceVectors() {
        let key = SipHashKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)
        let expected: [(Int, UInt64)] = [
            (0, 0x726f_db47_dd0e_0e31), (1, 0x74f8_39c5_93dc_67fd), (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462), (15, 0xa129_ca61_49be_45e5), (16, 0x3f2a_cc7f_57c2_9bdb),
        ]
        for (length, value) in expected {
            let message = (0..<length).map { UInt8($0) }
            #expect(SipHash.hash(bytes: message, key: key) == value, "\(length) bytes")
        }
        // Words are their little-endian bytes: one word is the 8-byte vector.
        #expect(SipHash.hash([0x0706_0504_0302_0100], key: key) == 0x93f5_f579_9a93_2462)
    }
}

@Suite struct RetransmissionTimerTests {
    /// RFC 6298 §2: 1 s before any sample; SRTT = R, RTTVAR = R/2 after the first;
    /// the smoothing after; the minimum; doubling on timeout; a sample resets it.
    @Test func followsRFC6298() {
        var timer = RetransmissionTimer(minimum: 200_000_000)
        #expect(timer.timeout == 1_000_000_000)
        timer.sample(100_000_000)
        #expect(timer.smoothed == 100_000_000 && timer.variation == 50_000_000)
        #expect(timer.timeout == 300_000_000)  // 100 + 4·50
        timer.sample(200_000_000)
        // RTTVAR = 3/4·50 + 1/4·100 = 62.5; SRTT = 7/8·100 + 1/8·200 = 112.5
        #expect(timer.variation == 62_500_000 && timer.smoothed == 112_500_000)
        #expect(timer.timeout == 362_500_000)
        timer.backOff()
        timer.backOff()
        #expect(timer.timeout == 1_450_000_000 && timer.backoffs == 2)
        for _ in 0..<20 { timer.backOff() }
        #expect(timer.timeout == timer.maximum)
        var fast = RetransmissionTimer(minimum: 200_000_000)
        fast.sample(1_000_000)
        #expect(fast.timeout == 200_000_000)  // at least the minimum
    }
}

@Suite struct CongestionTests {
    @Test func slowStartThenAvoidanceWithNewReno() {
        var cc = CongestionController(.newReno, mss: 1000)
        #expect(cc.window == 10_000)  // RFC 6928: 10 MSS here (≤ 14 600 bytes... 10 000)
        cc.acknowledged(1000, now: 0, roundTrip: nil)
        #expect(cc.window == 11_000)
        cc.congestionEvent(now: 0, inFlight: 11_000)
        #expect(cc.slowStartThreshold == 5500 && cc.window == 5500 && !cc.inSlowStart)
        // Congestion avoidance: one MSS per window of bytes acknowledged.
        for _ in 0..<5 { cc.acknowledged(1000, now: 0, roundTrip: nil) }
        #expect(cc.window == 5500)
        cc.acknowledged(1000, now: 0, roundTrip: nil)
        #expect(cc.window == 6500)
        cc.retransmissionTimeout(now: 0, inFlight: 6500)
        #expect(cc.window == 1000 && cc.slowStartThreshold == 3250)
        // Application-limited: no growth (RFC 7661).
        cc.acknowledged(1000, now: 0, roundTrip: nil, limited: true)
        #expect(cc.window == 1000)
    }

    /// RFC 9438: β = 0.7; K = ∛((W_max − cwnd_epoch)/C); the window is back at W_max
    /// K seconds after the reduction and then grows past it (convex).
    @Test func cubicReducesByBetaAndReturnsToWMaxAfterK() {
        let mss = 1000
        var cc = CongestionController(.cubic, mss: mss)
        // Grow to 100 segments in slow start.
        while cc.window < 100 * mss { cc.acknowledged(mss, now: 0, roundTrip: 0) }
        cc.congestionEvent(now: 0, inFlight: 100 * mss)
        #expect(cc.window == 70 * mss && cc.slowStartThreshold == 70 * mss)
        // K = ∛(30 / 0.4) = ∛75 ≈ 4.217 s. Acknowledge a window every 100 ms (the RTT).
        let rtt: Int64 = 100_000_000
        var t: Int64 = 0
        var atK = 0
        // RFC 9438 Figure 1 at the checkpoints, the target taken one RTT ahead (§4.2):
        // W_cubic(t + RTT) = 0.4 · (t + 0.1 − 4.217)³ + 100 segments.
        var checkpoints: [Int64: Int] = [:]
        while t <= 8_000_000_000 {
            let window = cc.window
            for _ in 0..<(window / mss) { cc.acknowledged(mss, now: t, roundTrip: rtt) }
            t += rtt
            if t == 4_200_000_000 { atK = cc.window / mss }
            if t % 1_000_000_000 == 0 { checkpoints[t] = cc.window / mss }
        }
        for (time, segments) in checkpoints.sorted(by: { $0.key < $1.key })
        where time <= 7_000_000_000 {
            let x = Double(time) / 1e9 + 0.1 - 4.217
            let expected = 0.4 * x * x * x + 100
            #expect(
                abs(Double(segments) - expected) <= 3,
                "at \(time / 1_000_000_000) s: \(segments), RFC \(expected)")
        }
        #expect(abs(atK - 100) <= 5, "at K the window is W_max: \(atK) segments")
        #expect(cc.window > 110 * mss, "past K the window grows beyond W_max: \(cc.window / mss)")
        // Fast convergence: a loss below the last W_max sets W_max lower still.
        var again = cc
        again.congestionEvent(now: t, inFlight: again.window)
        #expect(again.window == Int(Double(cc.window) * 0.7))
    }

    /// RFC 9438 §4.3: α_cubic = 3(1 − β)/(1 + β) ≈ 0.529, the Reno-friendly slope:
    /// with a tiny RTT the cubic curve is flat, and the window follows W_est instead.
    @Test func cubicRenoFriendlyRegion() {
        let mss = 1000
        var cc = CongestionController(.cubic, mss: mss)
        while cc.window < 20 * mss { cc.acknowledged(mss, now: 0, roundTrip: 0) }
        cc.congestionEvent(now: 0, inFlight: 20 * mss)
        let start = cc.window / mss  // 14
        // 10 windows acknowledged within 10 ms: W_cubic barely moves; W_est adds
        // ≈ 0.529 segment per window.
        var t: Int64 = 0
        for _ in 0..<10 {
            let window = cc.window
            for _ in 0..<(window / mss) { cc.acknowledged(mss, now: t, roundTrip: 1_000_000) }
            t += 1_000_000
        }
        let grown = cc.window / mss - start
        #expect(grown >= 4 && grown <= 6, "W_est grew \(grown) segments in 10 windows")
    }
}

@Suite struct ScoreboardTests {
    /// RFC 6675: a hole is lost with DupThresh ranges (or 3·SMSS... 2·SMSS + 1 bytes)
    /// SACKed above it; pipe counts what is neither SACKed nor lost; NextSeg finds the
    /// first lost hole.
    @Test func isLostPipeAndNextSeg() {
        let mss = 100
        let una = SequenceNumber(1000)
        let nxt = una + 1000
        var board = Scoreboard()
        var blocks = TCPSACKBlocks()
        blocks.append(TCPSACKBlock(left: 1100, right: 1200))
        board.update(una: una, nxt: nxt, blocks: blocks)
        #expect(!board.isLost(una, mss: mss))
        #expect(board.pipe(una: una, nxt: nxt, mss: mss) == 900)
        blocks.append(TCPSACKBlock(left: 1300, right: 1400))
        blocks.append(TCPSACKBlock(left: 1500, right: 1600))
        board.update(una: una, nxt: nxt, blocks: blocks)
        #expect(board.isLost(una, mss: mss))  // three ranges above
        // Two ranges and 200 bytes above 1200: not more than (DupThresh − 1)·SMSS.
        #expect(!board.isLost(una + 200, mss: mss))
        #expect(!board.isLost(una + 400, mss: mss))  // one range above
        // In flight: the holes not lost (1200..1300, 1400..1500, 1600..2000).
        #expect(board.pipe(una: una, nxt: nxt, mss: mss) == 600)
        #expect(board.nextLoss(una: una, nxt: nxt, mss: mss) == una..<(una + 100))
        board.retransmitted(upTo: una + 100)
        // The next hole is not lost yet: nothing more to send under rule 1.
        #expect(board.nextLoss(una: una, nxt: nxt, mss: mss) == nil)
        #expect(board.nextUnsacked(una: una, nxt: nxt, mss: mss) == (una + 200)..<(una + 300))
        // The retransmission is in flight again.
        #expect(board.pipe(una: una, nxt: nxt, mss: mss) == 700)
        // One more range above 1200 makes it lost.
        blocks = TCPSACKBlocks()
        blocks.append(TCPSACKBlock(left: 1700, right: 1800))
        board.update(una: una, nxt: nxt, blocks: blocks)
        #expect(board.isLost(una + 200, mss: mss))
        #expect(board.nextLoss(una: una, nxt: nxt, mss: mss) == (una + 200)..<(una + 300))
        // The cumulative ACK moves past the first ranges: they go.
        board.update(una: una + 400, nxt: nxt, blocks: TCPSACKBlocks())
        #expect(board.highestSacked == una + 800 && board.sackedBytes == 200)
        // A block beyond what was sent is ignored (RFC 2018 §3).
        var bogus = TCPSACKBlocks()
        bogus.append(TCPSACKBlock(left: 2500, right: 2600))
        board.update(una: una + 400, nxt: nxt, blocks: bogus)
        #expect(board.sackedBytes == 200)
    }

    @Test func rangesAcrossTheSequenceWrap() {
        let una = SequenceNumber(0xffff_ff00)
        var board = Scoreboard()
        var blocks = TCPSACKBlocks()
        blocks.append(TCPSACKBlock(left: 0xffff_ff80, right: 0x40))
        board.update(una: una, nxt: una + 0x200, blocks: blocks)
        #expect(board.isSacked(SequenceNumber(0x10)) && board.isSacked(SequenceNumber(0xffff_ffff)))
        #expect(!board.isSacked(una) && board.sackedBytes == 0xc0)
    }
}

@Suite struct BufferTests {
    @Test func sendBufferWrapsAndReadsInTwoPieces() {
        var buffer = SendBuffer(limit: 16 * 1024)
        let first = pattern(16 * 1024 - 100)
        #expect(first.withUnsafeBytes { buffer.append($0) } == first.count)
        buffer.release(10_000)
        let second = pattern(5000, seed: 3)
        #expect(second.withUnsafeBytes { buffer.append($0) } == 5000)
        #expect(buffer.count == first.count - 10_000 + 5000)
        var out = [UInt8](repeating: 0, count: buffer.count)
        out.withUnsafeMutableBytes { buffer.copy(at: 0, length: $0.count, to: $0.baseAddress!) }
        #expect(out == Array(first[10_000...]) + second)
        // Up to the limit, and no more.
        let room = buffer.room
        let third = pattern(20_000)
        #expect(third.withUnsafeBytes { buffer.append($0) } == room)
        #expect(buffer.count == buffer.limit && third.withUnsafeBytes { buffer.append($0) } == 0)
    }

    @Test func receiveBufferKeepsBytesAheadOfAGapAndJoinsThem() {
        var buffer = ReceiveBuffer(limit: 1000)
        let data = pattern(600)
        // 200..<400 first (ahead of the gap), then 400..<600, then 0..<200.
        let ahead = data.withUnsafeBytes {
            buffer.store(at: 200, UnsafeRawBufferPointer(rebasing: $0[200..<400]))
        }
        #expect(ahead.advanced == 0 && ahead.stored && buffer.hasGap && buffer.count == 0)
        _ = data.withUnsafeBytes {
            buffer.store(at: 400, UnsafeRawBufferPointer(rebasing: $0[400..<600]))
        }
        #expect(buffer.ranges.count == 1 && buffer.ranges[0].range == 200..<600)
        let filled = data.withUnsafeBytes {
            buffer.store(at: 0, UnsafeRawBufferPointer(rebasing: $0[0..<200]))
        }
        #expect(filled.advanced == 600 && !buffer.hasGap && Array(buffer.bytes) == data)
        #expect(buffer.window == 400)
        buffer.consume(600)
        #expect(buffer.count == 0 && buffer.window == 1000)
        // Beyond the window: cut.
        let far = pattern(2000)
        let cut = far.withUnsafeBytes { buffer.store(at: 0, $0) }
        #expect(cut.advanced == 1000 && buffer.window == 0)
    }

    /// Buffers sharing a ``ReceiveMemory``: bytes ahead of a gap may not grow a buffer
    /// past the budget (counted), bytes in order may; the account follows every
    /// allocation and release.
    @Test func receiveMemoryBoundsGrowthForBytesAheadOfAGap() {
        let memory = ReceiveMemory(budget: 32 * 1024)
        let byte: [UInt8] = [1]
        var first = ReceiveBuffer(limit: 256 * 1024)
        first.memory = memory
        // One byte at the window's far edge would take the whole 256 KiB: refused.
        let far = byte.withUnsafeBytes { first.store(at: 200_000, $0) }
        #expect(!far.stored && memory.refusals == 1 && memory.allocated == 0)
        // In order: allowed (16 KiB, the first allocation).
        let data = pattern(1000)
        let inOrder = data.withUnsafeBytes { first.store(at: 0, $0) }
        #expect(inOrder.advanced == 1000 && memory.allocated == 16 * 1024)
        do {
            var second = ReceiveBuffer(limit: 256 * 1024)
            second.memory = memory
            // Ahead of a gap but within the budget: 16 + 16 KiB.
            let near = byte.withUnsafeBytes { second.store(at: 100, $0) }
            #expect(near.stored && memory.allocated == 32 * 1024)
            // Past it: refused; within what the buffer has: kept.
            let past = byte.withUnsafeBytes { second.store(at: 20_000, $0) }
            #expect(!past.stored && memory.refusals == 2)
            let within = byte.withUnsafeBytes { second.store(at: 10_000, $0) }
            #expect(within.stored)
            _ = consume second
        }
        #expect(memory.allocated == 16 * 1024)
        // In order past the budget is still taken: the window bounds it.
        let more = pattern(40_000)
        first.consume(1000)
        let big = more.withUnsafeBytes { first.store(at: 0, $0) }
        #expect(big.advanced == 40_000 && memory.allocated > memory.budget)
        first.consume(40_000)
        first.releaseMemory()
        #expect(memory.allocated == 0)
    }

    @Test func receiveBufferBoundsThePieces() {
        var buffer = ReceiveBuffer(limit: 100_000)
        let byte: [UInt8] = [1]
        for index in 0..<ReceiveBuffer.maximumRanges {
            let result = byte.withUnsafeBytes { buffer.store(at: 10 + index * 10, $0) }
            #expect(result.stored)
        }
        let refused = byte.withUnsafeBytes { buffer.store(at: 5000, $0) }
        #expect(!refused.stored)
        // Joining an existing piece is fine.
        let joined = byte.withUnsafeBytes { buffer.store(at: 11, $0) }
        #expect(joined.stored)
    }
}
