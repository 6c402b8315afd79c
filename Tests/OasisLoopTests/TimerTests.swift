import Glibc
import Testing

@testable import OasisLoop

@Suite struct TimerTests {
    @Test func equalDeadlinesFireInInsertionOrder() throws {
        let loop = try EventLoop(clock: .virtual)
        var log: [Int] = []
        for i in 0..<50 {
            loop.schedule(after: .seconds(i % 2 == 0 ? 1 : 2)) { log.append(i) }
        }
        try loop.run()
        #expect(
            log == Array(stride(from: 0, to: 50, by: 2)) + Array(stride(from: 1, to: 50, by: 2)))
    }

    @Test func thousandTimersOverAnHourOfVirtualTime() throws {
        let loop = try EventLoop(clock: .virtual)
        var fired: [(Int, Duration)] = []
        // Scrambled deadlines between 0 and 3600 s.
        for i in 0..<1000 {
            let seconds = (i * 7919) % 3600
            loop.schedule(after: .seconds(seconds)) { fired.append((seconds, loop.now)) }
        }
        let start = ContinuousClock.now
        try loop.run()
        let real = ContinuousClock.now - start
        #expect(fired.count == 1000)
        #expect(fired.map(\.0) == fired.map(\.0).sorted())
        // Each timer runs at its own deadline.
        #expect(fired.allSatisfy { Duration.seconds($0.0) == $0.1 })
        #expect(loop.now == .seconds(3599))
        #expect(real < .seconds(1))
    }

    @Test func cancelledTimerDoesNotFire() throws {
        let loop = try EventLoop(clock: .virtual)
        var log: [String] = []
        let a = loop.schedule(after: .seconds(1)) { log.append("a") }
        loop.schedule(after: .seconds(2)) { log.append("b") }
        #expect(loop.cancelTimer(a))
        #expect(!loop.cancelTimer(a))
        try loop.run()
        #expect(log == ["b"])
    }

    @Test func heapStaysOrderedUnderRandomCancellation() throws {
        let loop = try EventLoop(clock: .virtual)
        var generator = SplitMix(seed: 42)
        var expected: [Int] = []
        var fired: [Int] = []
        var ids: [(TimerID, Int)] = []
        for i in 0..<2000 {
            let ms = Int(generator.next() % 10_000)
            let id = loop.schedule(after: .milliseconds(ms)) { fired.append(ms) }
            ids.append((id, ms))
            _ = i
        }
        for (index, entry) in ids.enumerated() {
            if index % 3 == 0 { loop.cancelTimer(entry.0) } else { expected.append(entry.1) }
        }
        try loop.run()
        #expect(fired == expected.sorted())
    }

    @Test func advanceStepsVirtualTime() throws {
        let loop = try EventLoop(clock: .virtual)
        var log: [Duration] = []
        loop.schedule(after: .seconds(1)) { log.append(loop.now) }
        loop.schedule(after: .seconds(3)) { log.append(loop.now) }
        try loop.advance(by: .milliseconds(500))
        #expect(log.isEmpty)
        #expect(loop.now == .milliseconds(500))
        try loop.advance(by: .seconds(1))
        #expect(log == [.seconds(1)])
        #expect(loop.now == .milliseconds(1500))
        try loop.advance(by: .seconds(10))
        #expect(log == [.seconds(1), .seconds(3)])
        #expect(loop.now == .milliseconds(11_500))
    }

    @Test func timerArmedByATimerWaitsOneIteration() throws {
        let loop = try EventLoop(clock: .virtual)
        var log: [String] = []
        loop.schedule(after: .seconds(1)) {
            log.append("first")
            loop.schedule(after: .zero) { log.append("zero") }
            loop.enqueue { log.append("ready") }
        }
        loop.schedule(after: .seconds(1)) { log.append("second") }
        try loop.run()
        #expect(log == ["first", "second", "ready", "zero"])
    }

    @Test func realClockTimerSleeps() throws {
        let loop = try EventLoop()
        let start = loop.now
        try loop.run(until: loop.sleep(.milliseconds(20)))
        #expect(loop.now - start >= .milliseconds(20))
    }
}

/// A tiny deterministic generator for tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
