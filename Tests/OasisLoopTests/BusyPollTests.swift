import Glibc
import SystemPackage
import Testing

@testable import OasisLoop

/// This thread's CPU time so far.
private func threadCPUTime() -> Duration {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
}

/// `EventLoop.busyPoll`: the loop polls before it sleeps, and still sleeps.
@Suite struct BusyPollTests {
    @Test func busyPollSetterClampsAndReadsBack() throws {
        let loop = try EventLoop()
        #expect(loop.busyPoll == .zero)
        loop.busyPoll = .microseconds(250)
        #expect(loop.busyPoll == .microseconds(250))
        loop.busyPoll = .seconds(-1)
        #expect(loop.busyPoll == .zero)
    }

    /// Every write another thread makes, spaced wider and narrower than the spin, is
    /// handled (whether the loop was spinning or asleep when it came).
    @Test func descriptorsAreServedWhileSpinningAndAfterSleeping() throws {
        let loop = try EventLoop()
        loop.busyPoll = .milliseconds(2)
        let (r, w) = makePipe()
        defer {
            try? r.close()
            try? w.close()
        }
        let writes = 20
        var received = 0
        let (done, resolver) = loop.makePromise(of: Void.self)
        try loop.register(r, interest: .readable) { _ in
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = (try? buffer.withUnsafeMutableBytes { try r.read(into: $0) }) ?? 0
            received += n
            if received == writes { resolver.resolve(()) }
        }
        let writer = spawnThread {
            for index in 0..<writes {
                // Alternately inside the 2 ms spin and well after it.
                usleep(index % 2 == 0 ? 500 : 6_000)
                _ = try? w.writeAll([UInt8(index)])
            }
        }
        try loop.run(until: done)
        pthread_join(writer, nil)
        try loop.deregister(r)
        #expect(received == writes)
    }

    /// After the spin the loop sleeps until its timer: an idle 300 ms costs a small
    /// part of 300 ms of CPU (a loop that never slept would burn all of it), and the
    /// timer fires no earlier than its deadline.
    @Test func theLoopSleepsAfterItsSpin() throws {
        let loop = try EventLoop()
        loop.busyPoll = .microseconds(500)
        let start = ContinuousClock.now
        var firedAfter: Duration?
        _ = loop.schedule(after: .milliseconds(300)) { firedAfter = ContinuousClock.now - start }
        let cpuBefore = threadCPUTime()
        try loop.run()
        let cpu = threadCPUTime() - cpuBefore
        let fired = try #require(firedAfter)
        #expect(fired >= .milliseconds(300))
        #expect(cpu < .milliseconds(150), "the loop spun instead of sleeping: \(cpu) of CPU")
    }

    /// A spin longer than the time to the next timer stops at the timer's deadline.
    @Test func aLongSpinStillFiresTimersOnTime() throws {
        let loop = try EventLoop()
        loop.busyPoll = .seconds(5)
        let start = ContinuousClock.now
        var firedAfter: Duration?
        _ = loop.schedule(after: .milliseconds(50)) { firedAfter = ContinuousClock.now - start }
        try loop.run()
        let fired = try #require(firedAfter)
        #expect(fired >= .milliseconds(50))
        #expect(fired < .seconds(2), "the spin ran past the timer: \(fired)")
    }
}
