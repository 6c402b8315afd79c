import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import Testing

// MARK: - The specification

@Suite struct ImpairmentSpecificationTests {
    @Test func theExampleReadsEveryField() throws {
        let configuration = try ImpairmentConfiguration(
            parsing:
                "loss=2%,dup=1%,reorder=1%,delay=5ms,jitter=1ms,corrupt=0.1%,rate=100mbit,seed=42")
        #expect(configuration.seed == 42)
        #expect(configuration.inbound == configuration.outbound)
        let both = configuration.inbound
        #expect(both.loss == Probability(percent: 2))
        #expect(both.duplicate == Probability(percent: 1))
        #expect(both.reorder == Probability(percent: 1))
        #expect(both.delay == .milliseconds(5))
        #expect(both.jitter == .milliseconds(1))
        #expect(both.corrupt.partsPerBillion == 1_000_000)
        #expect(both.rate == 100_000_000)
        #expect(both.reorderGap == 3 && both.limit == 1000 && both.burst == 16 * 1024)
    }

    @Test func directionsAndOverrides() throws {
        let configuration = try ImpairmentConfiguration(
            parsing: " loss=5% , in:loss=0, out:delay=1.5ms,in:rate=64kbit,burst=3000b,limit=10,"
                + "reorder-gap=7,reorder-timeout=250us,seed=0xff")
        #expect(configuration.inbound.loss == .zero)
        #expect(configuration.outbound.loss == Probability(percent: 5))
        #expect(configuration.inbound.delay == .zero)
        #expect(configuration.outbound.delay == .microseconds(1500))
        #expect(configuration.inbound.rate == 64_000 && configuration.outbound.rate == nil)
        #expect(configuration.inbound.burst == 3000 && configuration.outbound.limit == 10)
        #expect(configuration.outbound.reorderGap == 7)
        #expect(configuration.inbound.reorderTimeout == .microseconds(250))
        #expect(configuration.seed == 255)
        #expect(!configuration.inbound.isNone)
    }

    @Test func fractionsNoneAndUnits() throws {
        #expect(
            try ImpairmentConfiguration(parsing: "loss=0.02").inbound.loss
                == Probability(percent: 2))
        #expect(try ImpairmentConfiguration(parsing: "none").isNone)
        #expect(try ImpairmentConfiguration(parsing: "").isNone)
        #expect(try ImpairmentConfiguration(parsing: "loss=0%,delay=0").isNone)
        let units = try ImpairmentConfiguration(
            parsing: "delay=2s,jitter=100ns,rate=1.5gbit,burst=1mb")
        #expect(units.outbound.delay == .seconds(2) && units.outbound.jitter == .nanoseconds(100))
        #expect(units.outbound.rate == 1_500_000_000 && units.outbound.burst == 1 << 20)
        #expect(Probability(percent: 0.1).description == "0.1%")
        #expect(Probability(percent: 12.3456789).description == "12.3456789%")
        #expect(Probability(percent: 100).description == "100%")
    }

    @Test func theDescriptionParsesBack() throws {
        for text in [
            "loss=2%,dup=1%,reorder=1%,delay=5ms,jitter=1ms,corrupt=0.1%,rate=100mbit,seed=42",
            "in:loss=0.5%,out:delay=1500us,in:rate=9600bit,out:burst=3000b,limit=7",
            "reorder=3%,reorder-gap=9,reorder-timeout=2s,in:corrupt=100%", "none",
            "out:jitter=3ns,in:jitter=1s,seed=18446744073709551615", "in:rate=1mbit,out:rate=none",
        ] {
            let configuration = try ImpairmentConfiguration(parsing: text)
            let again = try ImpairmentConfiguration(parsing: configuration.description)
            #expect(again == configuration, "\(text) → \(configuration)")
        }
        #expect(
            try ImpairmentConfiguration(parsing: "loss=2%,out:delay=5ms,seed=42").description
                == "loss=2%,in:delay=0,out:delay=5ms,seed=42")
    }

    @Test(arguments: [
        ("loos=2%", ImpairmentSpecificationError.unknownField("loos")),
        ("loss", .missingValue(field: "loss")),
        ("loss=", .missingValue(field: "loss")),
        (
            "loss=abc",
            .invalidValue(field: "loss", value: "abc", expected: "a probability such as 2% or 0.02")
        ),
        ("loss=150%", .outOfRange(field: "loss", value: "150%", allowed: "0% to 100%")),
        ("dup=1.5", .outOfRange(field: "dup", value: "1.5", allowed: "0% to 100%")),
        (
            "loss=nan",
            .invalidValue(field: "loss", value: "nan", expected: "a probability such as 2% or 0.02")
        ),
        (
            "loss=1e5%",
            .invalidValue(
                field: "loss", value: "1e5%", expected: "a probability such as 2% or 0.02")
        ),
        (
            "loss=-1%",
            .invalidValue(field: "loss", value: "-1%", expected: "a probability such as 2% or 0.02")
        ),
        (
            "delay=5",
            .invalidValue(
                field: "delay", value: "5", expected: "a duration such as 5ms, 500us, 1s or 100ns")
        ),
        (
            "jitter=1h",
            .invalidValue(
                field: "jitter", value: "1h", expected: "a duration such as 5ms, 500us, 1s or 100ns"
            )
        ),
        ("delay=61s", .outOfRange(field: "delay", value: "61s", allowed: "0 to 60s")),
        ("rate=0mbit", .outOfRange(field: "rate", value: "0mbit", allowed: "1bit to 1000gbit")),
        (
            "rate=100mb",
            .invalidValue(
                field: "rate", value: "100mb",
                expected: "a rate such as 100mbit, 1gbit, 64kbit or 9600bit")
        ),
        ("burst=65mb", .outOfRange(field: "burst", value: "65mb", allowed: "1b to 64mb")),
        ("limit=0", .outOfRange(field: "limit", value: "0", allowed: "1 to 100000")),
        ("limit=1.5", .invalidValue(field: "limit", value: "1.5", expected: "a whole number")),
        (
            "reorder-gap=99999999999999999999",
            .invalidValue(
                field: "reorder-gap", value: "99999999999999999999", expected: "a whole number")
        ),
        ("up:loss=1%", .unknownDirection(field: "up:loss=1%", direction: "up")),
        ("in:seed=1", .seedHasNoDirection),
        ("seed=1,seed=2", .repeated(field: "seed")),
        (
            "seed=-1",
            .invalidValue(
                field: "seed", value: "-1", expected: "an unsigned 64-bit integer (decimal or 0x…)")
        ),
        (
            "seed=18446744073709551616",
            .invalidValue(
                field: "seed", value: "18446744073709551616",
                expected: "an unsigned 64-bit integer (decimal or 0x…)")
        ),
        ("loss=1%,,dup=1%", .emptyField(position: 2)),
        ("loss=1%,", .emptyField(position: 2)),
    ])
    func badSpecificationsAreTypedErrors(text: String, expected: ImpairmentSpecificationError) {
        #expect(throws: expected) { try ImpairmentConfiguration(parsing: text) }
    }

    @Test func errorMessagesNameTheField() {
        for (text, field) in [
            ("loos=2%", "loos"), ("delay=5", "delay"), ("rate=7", "rate"), ("limit=0", "limit"),
        ] {
            do {
                _ = try ImpairmentConfiguration(parsing: text)
                Issue.record("\(text) parsed")
            } catch {
                #expect(error.description.contains("`\(field)"), "\(error)")
            }
        }
    }
}

// MARK: - Decisions

@Suite struct ImpairmentDecisionTests {
    static let example = try! ImpairmentConfiguration(
        parsing: "loss=2%,dup=1%,reorder=1%,delay=5ms,jitter=1ms,corrupt=0.5%,seed=42")

    struct Decision: Equatable {
        var lost, duplicated, reordered: Bool
        var bit: Int?
        var delay: Int64
    }

    func decisions(_ impairment: Impairment, seed: UInt64, count: Int) -> [Decision] {
        var decisions = ImpairmentDecisions(impairment, seed: seed, direction: .outbound)
        return (0..<count).map { index in
            Decision(
                lost: decisions.loses(), duplicated: decisions.duplicates(),
                reordered: decisions.reorders(),
                bit: decisions.corruptedBit(frameLength: 60 + index % 1400),
                delay: decisions.delay())
        }
    }

    @Test func theSameSeedMakesTheSameDecisions() {
        let first = decisions(Self.example.outbound, seed: 42, count: 20_000)
        let second = decisions(Self.example.outbound, seed: 42, count: 20_000)
        #expect(first == second)
        let other = decisions(Self.example.outbound, seed: 43, count: 20_000)
        #expect(first != other)
        // The two directions of one device choose differently.
        var inbound = ImpairmentDecisions(Self.example.inbound, seed: 42, direction: .inbound)
        var outbound = ImpairmentDecisions(Self.example.outbound, seed: 42, direction: .outbound)
        let inLosses = (0..<5000).map { _ in inbound.loses() }
        let outLosses = (0..<5000).map { _ in outbound.loses() }
        #expect(inLosses != outLosses)
        // The generator itself: a fixed sequence for a fixed seed.
        var a = ImpairmentRandom(seed: 7)
        var b = ImpairmentRandom(seed: 7)
        #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in b.next() })
    }

    @Test func turningOneImpairmentOnLeavesTheOthersChoicesAlone() {
        var lossOnly = Impairment()
        lossOnly.loss = Probability(percent: 5)
        var lossAndMore = lossOnly
        lossAndMore.duplicate = Probability(percent: 30)
        lossAndMore.corrupt = Probability(percent: 30)
        let a = decisions(lossOnly, seed: 9, count: 10_000).map(\.lost)
        let b = decisions(lossAndMore, seed: 9, count: 10_000).map(\.lost)
        #expect(a == b)
    }

    /// Within five standard deviations of the binomial mean, over 100 000 frames.
    func expectRate(_ hits: Int, _ probability: Double, frames: Int, _ what: String) {
        let mean = Double(frames) * probability
        let deviation = (mean * (1 - probability)).squareRoot()
        #expect(abs(Double(hits) - mean) <= 5 * deviation + 1, "\(what): \(hits) of \(frames)")
    }

    @Test func eachRateIsWithinStatisticalBounds() {
        let frames = 100_000
        for seed: UInt64 in [1, 42, 0xdead_beef] {
            let all = decisions(Self.example.outbound, seed: seed, count: frames)
            expectRate(all.filter(\.lost).count, 0.02, frames: frames, "loss")
            expectRate(all.filter(\.duplicated).count, 0.01, frames: frames, "dup")
            expectRate(all.filter(\.reordered).count, 0.01, frames: frames, "reorder")
            expectRate(all.filter { $0.bit != nil }.count, 0.005, frames: frames, "corrupt")
            // Delay: 5 ms ± 1 ms, uniform: mean 5 ms, nothing outside.
            #expect(all.allSatisfy { (4_000_000...6_000_000).contains($0.delay) })
            let mean = Double(all.map(\.delay).reduce(0, +)) / Double(frames)
            #expect(abs(mean - 5e6) < 1e4, "mean delay \(mean)")
            // Corruption lands past the Ethernet header, inside the frame, on every bit.
            var bitsHit = Set<Int>()
            for (index, decision) in all.enumerated() {
                guard let bit = decision.bit else { continue }
                #expect(bit >= 14 * 8 && bit < (60 + index % 1400) * 8)
                bitsHit.insert(bit % 8)
            }
            #expect(bitsHit.count == 8)
        }
        // Certainty and never.
        var always = Impairment()
        always.loss = .one
        let lost = decisions(always, seed: 1, count: 1000).allSatisfy(\.lost)
        #expect(lost)
        #expect(
            decisions(Impairment(), seed: 1, count: 1000).allSatisfy { !$0.lost && $0.bit == nil })
    }
}

// MARK: - The device

/// A memory pair with one end impaired, on the virtual clock, and what the other end
/// received, with the time each frame arrived.
final class ImpairedPair {
    let loop: EventLoop
    let plain: MemoryDevice
    let impaired: ImpairedDevice<MemoryDevice>
    /// Frames received by whichever end is the receiver, with their arrival times.
    var received: [(bytes: [UInt8], at: Duration)] = []

    /// `direction` says which side is impaired: `.outbound` impairs the sender,
    /// `.inbound` the receiver.
    init(
        _ specification: String, direction: ImpairmentDecisions.Direction = .outbound,
        queueLimit: Int = 1024
    )
        throws
    {
        loop = try EventLoop(clock: .virtual)
        let (a, b) = MemoryDevice.pair(on: loop, queueLimit: queueLimit)
        let configuration = try ImpairmentConfiguration(parsing: specification)
        self.direction = direction
        switch direction {
        case .outbound:
            plain = b
            impaired = ImpairedDevice(a, configuration: configuration, on: loop)
        case .inbound:
            plain = a
            impaired = ImpairedDevice(b, configuration: configuration, on: loop)
        }
        let receiver: any NetworkDevice = direction == .outbound ? plain : impaired
        try receiver.startEach { [unowned self] frame in
            received.append((frame.copyBytes(), loop.now))
        }
    }

    let direction: ImpairmentDecisions.Direction

    var sender: any NetworkDevice { direction == .outbound ? impaired : plain }

    var counters: ImpairmentCounters {
        direction == .outbound ? impaired.outboundCounters : impaired.inboundCounters
    }

    /// Sends frames numbered `range`, `perTurn` per loop turn (the memory queue holds
    /// 1024), then runs the loop for `after`.
    func send(
        _ range: Range<Int>, size: Int = 100, perTurn: Int = 500, after: Duration = .seconds(1)
    )
        throws
    {
        var next = range.lowerBound
        while next < range.upperBound {
            let end = min(next + perTurn, range.upperBound)
            for index in next..<end {
                try sender.transmit(Packet(copying: numberedFrame(index, size: size)))
            }
            next = end
            try loop.advance(by: .zero)
        }
        try loop.advance(by: after)
    }
}

/// A 14-byte Ethernet header, the index in 8 bytes, then bytes that depend on it: a
/// frame that says whether it is intact.
func numberedFrame(_ index: Int, size: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xff, count: 12) + [0x88, 0xb5]
    withUnsafeBytes(of: UInt64(index).bigEndian) { bytes += $0 }
    let mixed = UInt64(index) &* 0x9e37_79b9_7f4a_7c15
    while bytes.count < size {
        bytes.append(
            UInt8(truncatingIfNeeded: mixed >> (UInt64(bytes.count % 8) * 8))
                ^ UInt8(bytes.count & 0xff))
    }
    return bytes
}

/// The index a frame carries, or nil if it was damaged.
func intactIndex(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 22 else { return nil }
    let index = bytes[14..<22].reduce(0) { $0 << 8 | Int($1) }
    guard index >= 0, index < 1 << 40, bytes == numberedFrame(index, size: bytes.count) else {
        return nil
    }
    return index
}

@Suite struct ImpairedDeviceTests {
    @Test func noImpairmentPassesEverythingUntouched() throws {
        for direction in [ImpairmentDecisions.Direction.inbound, .outbound] {
            let pair = try ImpairedPair("none", direction: direction)
            try pair.send(0..<2000)
            #expect(pair.received.map { intactIndex($0.bytes) } == Array(0..<2000))
            #expect(pair.impaired.impairmentPool.buffersCreated == 0)
            #expect(pair.counters == ImpairmentCounters())
        }
    }

    /// 100 000 frames through loss, duplication and corruption: what arrives is what the
    /// counters say, each damaged frame has one bit flipped, and the rates hold.
    @Test(arguments: [ImpairmentDecisions.Direction.inbound, .outbound])
    func lossDuplicationAndCorruptionOverTheWire(direction: ImpairmentDecisions.Direction) throws {
        let pair = try ImpairedPair("loss=2%,dup=1%,corrupt=0.5%,seed=5", direction: direction)
        let frames = 100_000
        try pair.send(0..<frames, size: 80)
        let counters = pair.counters
        #expect(counters.frames == UInt64(frames))
        #expect(pair.received.count == frames - Int(counters.lost) + Int(counters.duplicated))
        let damaged = pair.received.filter { intactIndex($0.bytes) == nil }
        #expect(damaged.count == Int(counters.corrupted))
        for frame in damaged {
            let guess = frame.bytes  // one bit differs from some frame of the same size
            #expect(
                guess[0..<14] == numberedFrame(0, size: 80)[0..<14], "the Ethernet header is spared"
            )
        }
        func within(_ count: UInt64, _ probability: Double) -> Bool {
            let mean = Double(frames) * probability
            return abs(Double(count) - mean) <= 5 * (mean * (1 - probability)).squareRoot()
        }
        #expect(within(counters.lost, 0.02), "\(counters)")
        #expect(within(counters.duplicated, 0.98 * 0.01), "\(counters)")
        #expect(within(counters.corrupted, 0.005 * (1 + 0.0098)), "\(counters)")
        // Duplicates follow their original; intact frames otherwise keep their order.
        let indices = pair.received.compactMap { intactIndex($0.bytes) }
        #expect(zip(indices, indices.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(pair.impaired.heldFrames == 0)
    }

    @Test func theSameSeedDeliversTheSameFrames() throws {
        let spec = "loss=5%,dup=2%,reorder=3%,delay=1ms,jitter=500us,corrupt=1%,seed="
        let first = try ImpairedPair(spec + "77")
        let second = try ImpairedPair(spec + "77")
        try first.send(0..<5000)
        try second.send(0..<5000)
        #expect(first.received.map(\.bytes) == second.received.map(\.bytes))
        #expect(first.received.map(\.at) == second.received.map(\.at))
        let third = try ImpairedPair(spec + "78")
        try third.send(0..<5000)
        #expect(first.received.map(\.bytes) != third.received.map(\.bytes))
    }

    @Test(arguments: [ImpairmentDecisions.Direction.inbound, .outbound])
    func delayHoldsFramesForTheirVirtualTime(direction: ImpairmentDecisions.Direction) throws {
        let pair = try ImpairedPair("delay=5ms", direction: direction)
        try pair.sender.transmit(Packet(copying: numberedFrame(1, size: 60)))
        try pair.loop.advance(by: .microseconds(4999))
        #expect(pair.received.isEmpty)
        #expect(pair.impaired.heldFrames == 1)
        try pair.loop.advance(by: .microseconds(1))
        #expect(pair.received.count == 1)
        #expect(pair.received.first?.at == .milliseconds(5))
        #expect(pair.counters.delayed == 1 && pair.impaired.heldFrames == 0)
        // Frames sent later leave later, each 5 ms after it was sent.
        try pair.loop.advance(by: .milliseconds(1))
        try pair.sender.transmit(Packet(copying: numberedFrame(2, size: 60)))
        try pair.loop.advance(by: .milliseconds(2))
        try pair.sender.transmit(Packet(copying: numberedFrame(3, size: 60)))
        try pair.loop.advance(by: .milliseconds(10))
        #expect(
            pair.received.map(\.at) == [.milliseconds(5), .milliseconds(11), .milliseconds(13)])
    }

    @Test func jitterSpreadsDelaysButKeepsTheOrder() throws {
        let pair = try ImpairedPair("delay=10ms,jitter=4ms,seed=3")
        for index in 0..<2000 {
            try pair.sender.transmit(Packet(copying: numberedFrame(index, size: 60)))
            try pair.loop.advance(by: .microseconds(100))
        }
        try pair.loop.advance(by: .seconds(1))
        let indices = pair.received.map { intactIndex($0.bytes) }
        #expect(indices == Array(0..<2000))
        for (index, frame) in pair.received.enumerated() {
            let sent = Duration.microseconds(100 * index)
            let waited = frame.at - sent
            // 6...14 ms, or later when it waited behind an earlier frame.
            #expect(waited >= .milliseconds(6), "frame \(index) waited \(waited)")
        }
        let waits = pair.received.enumerated().map { $1.at - .microseconds(100 * $0) }
        #expect(
            waits.contains { $0 < .milliseconds(9) } && waits.contains { $0 > .milliseconds(11) })
        #expect(waits.allSatisfy { $0 <= .milliseconds(14) })
    }

    @Test func reorderedFramesComeAfterTheNextFew() throws {
        let pair = try ImpairedPair("reorder=5%,reorder-gap=3,seed=11")
        for index in 0..<10_000 {
            try pair.sender.transmit(Packet(copying: numberedFrame(index, size: 60)))
            if index % 100 == 0 { try pair.loop.advance(by: .zero) }
        }
        try pair.loop.advance(by: .seconds(1))
        let indices = pair.received.compactMap { intactIndex($0.bytes) }
        #expect(indices.sorted() == Array(0..<10_000), "every frame arrives once")
        // A frame is late when a later-numbered one arrived before it.
        var highest = -1
        var late = 0
        for index in indices {
            if index < highest { late += 1 }
            highest = max(highest, index)
        }
        #expect(late > 0 && UInt64(late) <= pair.counters.reordered)
        #expect(
            Double(pair.counters.reordered) > 0.04 * 10_000
                && Double(pair.counters.reordered) < 0.06 * 10_000)
        // Held back, then overtaken by three (a lone frame overtaken by the frames after it).
        let position = Dictionary(uniqueKeysWithValues: indices.enumerated().map { ($1, $0) })
        let displaced = (0..<10_000).filter { position[$0]! > $0 }
        #expect(displaced.allSatisfy { position[$0]! - $0 <= 3 * 4 }, "displaced by at most a few")
    }

    @Test func aFrameHeldForReorderingLeavesAfterTheTimeout() throws {
        let pair = try ImpairedPair("reorder=100%,reorder-timeout=2ms")
        try pair.sender.transmit(Packet(copying: numberedFrame(1, size: 60)))
        try pair.loop.advance(by: .milliseconds(1))
        #expect(pair.received.isEmpty)
        try pair.loop.advance(by: .milliseconds(1))
        #expect(pair.received.map(\.at) == [.milliseconds(2)])
    }

    @Test func theRateLimitPacesFramesAndDropsBeyondItsQueue() throws {
        // 8 Mbit/s is 1000 bytes per millisecond; the bucket holds 16 KiB.
        let pair = try ImpairedPair("rate=8mbit,burst=16kb,limit=50")
        for index in 0..<100 {
            try pair.sender.transmit(Packet(copying: numberedFrame(index, size: 1000)))
        }
        try pair.loop.advance(by: .seconds(1))
        // 16 frames from the bucket at once, 50 queued, 34 dropped.
        #expect(pair.received.count == 66)
        #expect(pair.counters.rateDropped == 34)
        #expect(pair.received.prefix(16).allSatisfy { $0.at == .zero })
        // Then one every millisecond (the 384 bytes left in the bucket count for the first).
        let last = try #require(pair.received.last)
        #expect(last.at >= .microseconds(49_616) && last.at <= .microseconds(49_617), "\(last.at)")
        #expect(pair.received.map { intactIndex($0.bytes) } == Array(0..<66))
    }

    /// Frames beyond the queue are dropped and counted; the pool never makes more
    /// buffers than the queues hold, and all come back.
    @Test(arguments: [ImpairmentDecisions.Direction.inbound, .outbound])
    func memoryIsBoundedWhenTheQueueOverflows(direction: ImpairmentDecisions.Direction) throws {
        let pair = try ImpairedPair("delay=1s,dup=50%,limit=100,seed=1", direction: direction)
        try pair.send(0..<5000, perTurn: 500, after: .milliseconds(500))
        #expect(pair.impaired.heldFrames == 100)
        #expect(pair.counters.delayed == 100)
        #expect(pair.counters.queueFull == 5000 + pair.counters.duplicated - 100)
        let created = pair.impaired.impairmentPool.buffersCreated
        #expect(created <= 3 * 100 + 2 * deviceReceiveBatch)
        try pair.loop.advance(by: .seconds(1))
        #expect(pair.received.count == 100)
        #expect(pair.impaired.heldFrames == 0)
        pair.received.removeAll()
        #expect(
            pair.impaired.impairmentPool.freeCount == pair.impaired.impairmentPool.buffersCreated)
        // The base's pool is back where it was too: nothing of it was held.
        let basePool = pair.impaired.base.pool
        #expect(basePool.freeCount == basePool.buffersCreated)
    }

    @Test func closingDropsWhatIsHeldAndDisarmsTheTimer() throws {
        let pair = try ImpairedPair("delay=5ms,reorder=50%,rate=1mbit")
        for index in 0..<50 {
            try pair.sender.transmit(Packet(copying: numberedFrame(index, size: 200)))
        }
        #expect(pair.impaired.heldFrames > 0)
        pair.impaired.close()
        #expect(pair.impaired.heldFrames == 0)
        #expect(throws: DeviceError.closed(device: "memory0")) {
            try pair.impaired.transmit(Packet(copying: numberedFrame(1, size: 60)))
        }
        try pair.loop.advance(by: .seconds(1))
        #expect(pair.received.isEmpty)
        #expect(pair.loop.timerCount == 0)
    }
}

// MARK: - Random specifications

@Suite struct ImpairmentPropertyTests {
    static let values: [String: [String]] = [
        "loss": ["0%", "1%", "50%", "100%", "0.3", "2.5%", "x", "101%", ""],
        "dup": ["0%", "5%", "100%", "0.01", "-", "1%%"],
        "reorder": ["1%", "30%", "100%", "0", "1e9"],
        "reorder-gap": ["1", "3", "10000", "0", "20000", "a"],
        "reorder-timeout": ["0", "1ns", "1ms", "60s", "61s", "1"],
        "corrupt": ["0.1%", "100%", "0%", "?"],
        "delay": ["0", "1us", "5ms", "1.5ms", "2s", "60s", "-1ms"],
        "jitter": ["0", "1ns", "1ms", "10ms", "3s", "1m"],
        "rate": ["none", "1bit", "9600bit", "1mbit", "100mbit", "1000gbit", "0bit", "1tbit"],
        "burst": ["1", "1b", "1500b", "16kb", "64mb", "65mb"],
        "limit": ["1", "2", "10", "100000", "100001", "-3"],
        "seed": ["0", "1", "0xffffffffffffffff", "18446744073709551615", "x"],
        "bogus": ["1"],
    ]

    /// Random specifications, most of them sensible and some not, never trap: they
    /// parse or fail with a typed error, and a device built from one carries frames of
    /// every size both ways, holds no more than its queues allow, and lets everything go
    /// in time.
    @Test func randomSpecificationsNeverTrap() throws {
        var random = SplitMix64(seed: 2024)
        let names = Self.values.keys.sorted()
        var parsed = 0
        for round in 0..<150 {
            var fields: [String] = []
            for _ in 0..<(1 + random.below(5)) {
                let name = names[random.below(names.count)]
                let choices = Self.values[name]!
                let prefix = ["", "", "in:", "out:", "up:"][random.below(5)]
                fields.append("\(prefix)\(name)=\(choices[random.below(choices.count)])")
            }
            if random.below(10) == 0 {
                // Plain garbage, too.
                fields = [
                    String(
                        (0..<random.below(40)).map { _ in
                            Character(UnicodeScalar(UInt8(32 + random.below(95))))
                        })
                ]
            }
            let text = fields.joined(separator: ",")
            let configuration: ImpairmentConfiguration
            do {
                configuration = try ImpairmentConfiguration(parsing: text)
            } catch {
                #expect(!error.description.isEmpty)
                continue
            }
            parsed += 1
            #expect(
                try ImpairmentConfiguration(parsing: configuration.description) == configuration,
                "\(text)")
            try exercise(configuration, round: round)
        }
        #expect(parsed > 20)
    }

    func exercise(_ configuration: ImpairmentConfiguration, round: Int) throws {
        let loop = try EventLoop(clock: .virtual)
        let (a, b) = MemoryDevice.pair(on: loop)
        let left = ImpairedDevice(a, configuration: configuration, on: loop)
        let right = ImpairedDevice(b, configuration: configuration, on: loop)
        var arrived = 0
        try left.startEach { _ in arrived += 1 }
        try right.startEach { _ in arrived += 1 }
        var random = SplitMix64(seed: UInt64(round))
        for turn in 0..<40 {
            for _ in 0..<25 {
                let size = [1, 14, 15, 60, 1514, 1518][random.below(6)]
                let bytes = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                let device: any NetworkDevice = random.below(2) == 0 ? left : right
                try device.transmit(Packet(copying: bytes))
            }
            try loop.advance(by: .microseconds(random.below(2000)))
            let bound = 3 * (configuration.inbound.limit + configuration.outbound.limit)
            #expect(left.heldFrames <= bound && right.heldFrames <= bound, "turn \(turn)")
        }
        // Everything is released in time (but frames queued for a rate of 1 bit/s, which
        // closing drops).
        try loop.advance(by: .seconds(130))
        if configuration.inbound.rate == nil && configuration.outbound.rate == nil {
            #expect(left.heldFrames == 0 && right.heldFrames == 0)
        }
        left.close()
        right.close()
        #expect(left.heldFrames == 0 && right.heldFrames == 0)
        #expect(loop.timerCount == 0)
        _ = arrived
    }
}
