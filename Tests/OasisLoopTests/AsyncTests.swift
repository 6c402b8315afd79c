import Glibc
import Testing

@testable import OasisLoop

@Suite struct AsyncBridgeTests {
    @Test func sleepOneThenTwoReadsThreeVirtualSeconds() throws {
        let loop = try EventLoop(clock: .virtual)
        let start = ContinuousClock.now
        let (elapsed, onLoop) = try loop.run {
            try await Time.sleep(.seconds(1))
            try await Time.sleep(.seconds(2))
            return (Time.now, EventLoop.current === loop)
        }
        #expect(elapsed == .seconds(3))
        #expect(onLoop)
        #expect(ContinuousClock.now - start < .seconds(1))
    }

    @Test func headsOrTailsWithAsyncLetTakesTwoSecondsNotThree() throws {
        let loop = try EventLoop(clock: .virtual)
        let thread = pthread_self()
        let lines = try loop.run { () async throws -> [String] in
            async let heads: (String, Duration, Bool) = {
                try await Time.sleep(.seconds(1))
                return ("Heads", loop.now, pthread_equal(pthread_self(), thread) != 0)
            }()
            async let tails: (String, Duration, Bool) = {
                try await Time.sleep(.seconds(2))
                return ("Tails", loop.now, pthread_equal(pthread_self(), thread) != 0)
            }()
            let (h, t) = try await (heads, tails)
            #expect(h.1 == .seconds(1) && h.2)
            #expect(t.1 == .seconds(2) && t.2)
            return [h.0, t.0, "Finished at \(loop.now)"]
        }
        #expect(lines == ["Heads", "Tails", "Finished at 2.0 seconds"])
        #expect(loop.now == .seconds(2))
    }

    @Test func taskGroupChildrenStayOnTheLoop() throws {
        let loop = try EventLoop(clock: .virtual)
        let order = try loop.run { () async throws -> [Int] in
            try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for i in [3, 1, 2] {
                    group.addTask {
                        try await Time.sleep(.seconds(Int64(i)))
                        return (i, EventLoop.current === loop && loop.inLoopThread)
                    }
                }
                var order: [Int] = []
                for try await (i, onLoop) in group {
                    #expect(onLoop)
                    order.append(i)
                }
                return order
            }
        }
        #expect(order == [1, 2, 3])
        #expect(loop.now == .seconds(3))
    }

    @Test func taskCancellationDisarmsTheSleepTimer() throws {
        let loop = try EventLoop(clock: .virtual)
        let outcome = try loop.run { () async -> String in
            let sleeper = Task(executorPreference: loop) {
                do {
                    try await Time.sleep(.seconds(3600))
                    return "woke"
                } catch is CancellationError {
                    return "cancelled at \(loop.now)"
                } catch {
                    return "other"
                }
            }
            try? await Time.sleep(.seconds(1))
            #expect(loop.timerCount == 1)
            sleeper.cancel()
            let result = await sleeper.value
            #expect(loop.timerCount == 0)
            return result
        }
        #expect(outcome == "cancelled at 1.0 seconds")
        #expect(loop.now == .seconds(1))
    }

    @Test func awaitingAPromise() throws {
        let loop = try EventLoop(clock: .virtual)
        let p = loop.sleep(.seconds(5)).map { 42 }
        let failing = loop.sleep(.seconds(1)).map { _ -> Int in throw Boom(tag: 3) }
        let value = try loop.run { () async throws -> Int in
            await #expect(throws: Boom(tag: 3)) { try await failing.value }
            return try await p.value
        }
        #expect(value == 42)
        #expect(loop.now == .seconds(5))
    }

    @Test func cancellingTheAwaitingTaskCancelsThePromise() throws {
        let loop = try EventLoop(clock: .virtual)
        let sleep = loop.sleep(.seconds(100))
        let bound = LoopBound(sleep, on: loop)
        let waiter = loop.promise { () async -> Bool in
            do {
                try await bound.value.value
                return false
            } catch {
                return error is Cancelled
            }
        }
        try loop.advance(by: .seconds(1))
        var taskSawCancelled = false
        waiter.cancel()  // cancels the task, which cancels what it awaits (one hop later)
        #expect(throws: Cancelled()) { try waiter.result?.get() }
        #expect(sleep.isPending)
        let finished = loop.makePromise(of: Void.self)
        sleep.onCancel {
            taskSawCancelled = true; finished.resolver.resolve()
        }
        try loop.run(until: finished.promise)
        #expect(taskSawCancelled)
        #expect(throws: Cancelled()) { try sleep.result?.get() }
        #expect(loop.timerCount == 0)
    }

    @Test func asyncCodeAsAPromise() throws {
        let loop = try EventLoop(clock: .virtual)
        let p = loop.promise { () async throws -> Int in
            try await Time.sleep(.seconds(2))
            return 7
        }
        let doubled = p.map { $0 * 2 }
        #expect(try loop.run(until: doubled) == 14)
        #expect(loop.now == .seconds(2))
    }

    @Test func plainRunWaitsForOutstandingTasks() throws {
        let loop = try EventLoop(clock: .virtual)
        var done = false
        let p = loop.promise { () async throws -> Void in try await Time.sleep(.seconds(1)) }
        p.onSuccess { done = true }
        try loop.run()
        #expect(done)
    }

    @Test func sleepOffTheLoopThrows() async {
        await #expect(throws: LoopError.noCurrentLoop) { try await Time.sleep(.seconds(1)) }
    }

    @Test func actorOnTheLoopExecutor() throws {
        let loop = try EventLoop(clock: .virtual)
        let counter = LoopCounter(loop: loop)
        let total = try loop.run { () async throws -> Int in
            for _ in 0..<10 { await counter.bump() }
            return await counter.count
        }
        #expect(total == 10)
    }
}

actor LoopCounter {
    let loop: EventLoop
    var count = 0
    init(loop: EventLoop) { self.loop = loop }
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    func bump() {
        loop.preconditionIsolated()
        count += 1
    }
}
