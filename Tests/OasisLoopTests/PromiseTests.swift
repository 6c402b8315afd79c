import Testing

@testable import OasisLoop

struct Boom: Error, Equatable { let tag: Int }

@Suite struct ReadyQueueTests {
    @Test func readyQueueIsFIFO() throws {
        let loop = try EventLoop(clock: .virtual)
        var log: [Int] = []
        for i in 0..<5 {
            loop.enqueue {
                log.append(i)
                // Queued during the phase: runs after everything queued before it.
                if i == 0 { loop.enqueue { log.append(100) } }
            }
        }
        try loop.run()
        #expect(log == [0, 1, 2, 3, 4, 100])
    }

    @Test func pauseResolvesFromTheReadyQueue() throws {
        let loop = try EventLoop(clock: .virtual)
        var log: [String] = []
        loop.enqueue { log.append("queued") }
        let paused = loop.pause().map { log.append("paused") }
        #expect(paused.isPending)
        try loop.run()
        #expect(log == ["queued", "paused"])
    }
}

@Suite struct PromiseTests {
    @Test func resolveRunsCallbacksSynchronouslyInRegistrationOrder() throws {
        let loop = try EventLoop(clock: .virtual)
        let (p, r) = loop.makePromise(of: Int.self)
        var log: [String] = []
        p.onResult { log.append("a\(try! $0.get())") }
        p.onSuccess { log.append("b\($0)") }
        #expect(log.isEmpty)
        #expect(r.resolve(7))
        #expect(log == ["a7", "b7"])
        p.onSuccess { log.append("late\($0)") }
        #expect(log == ["a7", "b7", "late7"])
    }

    @Test func secondSettleIsIgnored() throws {
        let loop = try EventLoop(clock: .virtual)
        let (p, r) = loop.makePromise(of: Int.self)
        #expect(r.resolve(1))
        #expect(!r.resolve(2))
        #expect(!r.fail(Boom(tag: 0)))
        #expect(try p.result?.get() == 1)
    }

    @Test func bindAndMapChain() throws {
        let loop = try EventLoop(clock: .virtual)
        let (p, r) = loop.makePromise(of: Int.self)
        let q = p.bind { v in loop.sleep(.seconds(1)).map { v * 2 } }.map { "\($0)" }
        r.resolve(21)
        #expect(q.isPending)
        #expect(try loop.run(until: q) == "42")
        #expect(loop.now == .seconds(1))
    }

    /// Values of every size live in the promise (in place, or in a cell when larger
    /// than its storage) and are released with it.
    @Test func valuesOfAnySizeAreKeptAndReleased() throws {
        final class Token {}
        struct Large { var token: Token; var words: (Int, Int, Int, Int, Int, Int) }
        let loop = try EventLoop(clock: .virtual)
        weak var small: Token?
        weak var large: Token?
        do {
            let (p, r) = loop.makePromise(of: Token.self)
            let (q, s) = loop.makePromise(of: Large.self)
            let mapped = q.map { $0.words.5 }
            do {
                let a = Token()
                let b = Token()
                small = a
                large = b
                r.resolve(a)
                s.resolve(Large(token: b, words: (1, 2, 3, 4, 5, 6)))
            }
            #expect(p.result.map { try? $0.get() } != nil)
            #expect(try q.result?.get().words.5 == 6)
            #expect(try mapped.result?.get() == 6)
            #expect(
                Promise(on: loop, value: Large(token: Token(), words: (0, 0, 0, 0, 0, 7))).result
                    .map { try? $0.get().words.5 } == 7)
            #expect(small != nil && large != nil)
        }
        #expect(small == nil)
        #expect(large == nil)
    }

    @Test func bindOnSettledPromiseRunsImmediately() throws {
        let loop = try EventLoop(clock: .virtual)
        let q = Promise(on: loop, value: 1).bind { Promise(on: loop, value: $0 + 1) }.map {
            $0 * 10
        }
        #expect(try q.result?.get() == 20)
    }

    @Test func failurePropagatesThroughBindAndMap() throws {
        let loop = try EventLoop(clock: .virtual)
        let (p, r) = loop.makePromise(of: Int.self)
        var ran = false
        let q = p.bind { v -> Promise<Int> in
            ran = true
            return Promise(on: loop, value: v)
        }.map { $0 + 1 }
        r.fail(Boom(tag: 1))
        #expect(!ran)
        #expect(throws: Boom(tag: 1)) { try q.result?.get() }
    }

    @Test func throwingMapFails() throws {
        let loop = try EventLoop(clock: .virtual)
        let q = Promise(on: loop, value: 1).map { _ -> Int in throw Boom(tag: 2) }
        #expect(throws: Boom(tag: 2)) { try q.result?.get() }
        let recovered = q.recover { _ in Promise(on: loop, value: 5) }
        #expect(try recovered.result?.get() == 5)
    }

    @Test func longBindChainDoesNotGrowTheStack() throws {
        let loop = try EventLoop(clock: .virtual)
        let (root, r) = loop.makePromise(of: Int.self)
        var tail = root
        for _ in 0..<200_000 {
            tail = tail.map { $0 + 1 }
        }
        r.resolve(0)
        #expect(try tail.result?.get() == 200_000)
    }

    @Test func nestedSettlementIsTrampolined() throws {
        let loop = try EventLoop(clock: .virtual)
        let (a, ra) = loop.makePromise(of: Void.self)
        let (b, rb) = loop.makePromise(of: Void.self)
        var log: [String] = []
        a.onResult { _ in
            log.append("a1")
            rb.resolve()
            log.append("a1 done")
        }
        a.onResult { _ in log.append("a2") }
        b.onResult { _ in log.append("b") }
        ra.resolve()
        // b's callbacks wait until a's have all run, but before resolve returns.
        #expect(log == ["a1", "a1 done", "a2", "b"])
    }

    @Test func joinWaitsForAllAndFailsWithTheFirstFailure() throws {
        let loop = try EventLoop(clock: .virtual)
        let slow = loop.sleep(.seconds(3)).map { 3 }
        let failsAt2 = loop.sleep(.seconds(2)).map { _ -> Int in throw Boom(tag: 2) }
        let failsAt1 = loop.sleep(.seconds(1)).map { _ -> Int in throw Boom(tag: 1) }
        let joined = loop.join([slow, failsAt2, failsAt1])
        #expect(throws: Boom(tag: 1)) { try loop.run(until: joined) }
        #expect(loop.now == .seconds(3))  // waited for every input
        #expect(try slow.result?.get() == 3)
    }

    @Test func allKeepsInputOrder() throws {
        let loop = try EventLoop(clock: .virtual)
        let ps = [3, 1, 2].map { s in loop.sleep(.seconds(Int64(s))).map { s } }
        #expect(try loop.run(until: loop.all(ps)) == [3, 1, 2])
        #expect(try loop.run(until: loop.all([Promise<Int>]())) == [])
    }

    @Test func pickCancelsTheLosers() throws {
        let loop = try EventLoop(clock: .virtual)
        let fast = loop.sleep(.seconds(1)).map { "fast" }
        let slowSleep = loop.sleep(.seconds(5))
        let slow = slowSleep.map { "slow" }
        let winner = loop.pick([slow, fast])
        #expect(try loop.run(until: winner) == "fast")
        #expect(throws: Cancelled()) { try slow.result?.get() }
        // The loser's timer left the heap: nothing keeps the loop busy.
        #expect(loop.timerCount == 0)
        #expect(throws: Cancelled()) { try slowSleep.result?.get() }
        try loop.run()
        #expect(loop.now == .seconds(1))
    }

    @Test func chooseLeavesTheLosersRunning() throws {
        let loop = try EventLoop(clock: .virtual)
        let fast = loop.sleep(.seconds(1)).map { "fast" }
        let slow = loop.sleep(.seconds(5)).map { "slow" }
        let winner = loop.choose([slow, fast])
        #expect(try loop.run(until: winner) == "fast")
        #expect(slow.isPending)
        try loop.run()
        #expect(try slow.result?.get() == "slow")
        #expect(loop.now == .seconds(5))
    }

    @Test func pickOfAnAlreadySettledPromise() throws {
        let loop = try EventLoop(clock: .virtual)
        let pending = loop.sleep(.seconds(1))
        let done = Promise<Void>(on: loop, value: ())
        let winner = loop.pick([pending, done])
        #expect(winner.result != nil)
        #expect(throws: Cancelled()) { try pending.result?.get() }
    }
}

@Suite struct CancellationTests {
    @Test func cancellingABoundChainCancelsTheSleepUnderneath() throws {
        let loop = try EventLoop(clock: .virtual)
        let sleep = loop.sleep(.seconds(10))
        var stepRan = false
        let chain = sleep.bind { _ -> Promise<Int> in
            stepRan = true
            return Promise(on: loop, value: 1)
        }.map { $0 + 1 }
        #expect(loop.timerCount == 1)
        chain.cancel()
        #expect(throws: Cancelled()) { try chain.result?.get() }
        #expect(throws: Cancelled()) { try sleep.result?.get() }
        #expect(loop.timerCount == 0)
        #expect(!stepRan)
        try loop.run()
        #expect(loop.now == .zero)
    }

    @Test func cancelReachesTheInnerPromiseAfterTheFirstStep() throws {
        let loop = try EventLoop(clock: .virtual)
        var inner: Promise<Void>?
        let chain = loop.sleep(.seconds(1)).bind { _ in
            let p = loop.sleep(.seconds(10))
            inner = p
            return p
        }
        try loop.advance(by: .seconds(2))
        #expect(chain.isPending)
        chain.cancel()
        #expect(throws: Cancelled()) { try inner?.result?.get() }
        #expect(loop.timerCount == 0)
    }

    @Test func cancellingASettledPromiseDoesNothing() throws {
        let loop = try EventLoop(clock: .virtual)
        let p = Promise(on: loop, value: 5)
        p.cancel()
        #expect(try p.result?.get() == 5)
        let (q, r) = loop.makePromise(of: Int.self)
        r.fail(Boom(tag: 9))
        q.cancel()
        #expect(throws: Boom(tag: 9)) { try q.result?.get() }
    }

    @Test func onCancelTellsTheResolverOwner() throws {
        let loop = try EventLoop(clock: .virtual)
        let (p, r) = loop.makePromise(of: Int.self)
        var cancelled = false
        p.onCancel { cancelled = true }
        p.cancel()
        #expect(cancelled)
        #expect(!r.resolve(1))
    }

    @Test func cancellingJoinCancelsItsInputs() throws {
        let loop = try EventLoop(clock: .virtual)
        let a = loop.sleep(.seconds(1))
        let b = loop.sleep(.seconds(2))
        let joined = loop.join([a, b])
        joined.cancel()
        #expect(throws: Cancelled()) { try a.result?.get() }
        #expect(throws: Cancelled()) { try b.result?.get() }
        #expect(throws: Cancelled()) { try joined.result?.get() }
    }
}
