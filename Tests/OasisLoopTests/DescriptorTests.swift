import Glibc
import SystemPackage
import Testing

@testable import OasisLoop

/// Runs `body` on a new POSIX thread (not the cooperative pool, which a blocked
/// loop in another test could starve).
func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
    precondition(status == 0)
    return thread
}

func makePipe() -> (read: FileDescriptor, write: FileDescriptor) {
    var fds: [CInt] = [0, 0]
    precondition(pipe(&fds) == 0)
    return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
}

@Suite struct DescriptorTests {
    @Test func readablePromiseOnAPipe() throws {
        let loop = try EventLoop(clock: .virtual)
        let (r, w) = makePipe()
        defer {
            try? r.close()
            try? w.close()
        }
        let ready = loop.readable(r)
        loop.schedule(after: .seconds(1)) { _ = try? w.writeAll([1, 2, 3]) }
        try loop.run(until: ready)
        #expect(loop.now == .seconds(1))
        var buffer = [UInt8](repeating: 0, count: 8)
        let n = try buffer.withUnsafeMutableBytes { try r.read(into: $0) }
        #expect(n == 3)
        // The one-shot waiter left epoll: nothing keeps the loop alive.
        try loop.run()
    }

    @Test func cancelledWaiterWithdrawsInterest() throws {
        let loop = try EventLoop(clock: .virtual)
        let (r, w) = makePipe()
        defer {
            try? r.close()
            try? w.close()
        }
        let ready = loop.readable(r)
        ready.cancel()
        #expect(throws: Cancelled()) { try ready.result?.get() }
        try loop.run()  // returns: no registration left
    }

    @Test func persistentRegistrationOnAnEventfd() throws {
        let loop = try EventLoop(clock: .virtual)
        let counter = try EventFD()
        let efd = counter.fileDescriptor
        defer { try? counter.close() }
        var seen: [UInt64] = []
        try loop.register(efd, interest: .readable) { readiness in
            #expect(readiness.contains(.readable))
            seen.append((try? counter.consume()) ?? 0)
            if seen.count == 3 { try? loop.deregister(efd) }
        }
        #expect(throws: LoopError.alreadyRegistered(fd: efd.rawValue)) {
            try loop.register(efd, interest: .readable) { _ in }
        }
        for (i, n) in [UInt64(5), 2, 9].enumerated() {
            loop.schedule(after: .seconds(Int64(i + 1))) { try? counter.signal(n) }
        }
        try loop.run()  // ends once the handler deregisters
        #expect(seen == [5, 2, 9])
        #expect(loop.now == .seconds(3))
        #expect(throws: LoopError.notRegistered(fd: efd.rawValue)) { try loop.deregister(efd) }
    }

    @Test func regularFileIsRefused() throws {
        let loop = try EventLoop(clock: .virtual)
        let fd = try FileDescriptor.open("/proc/self/status", .readOnly)
        defer { try? fd.close() }
        #expect(throws: LoopError.epollControl(fd: fd.rawValue, .notPermitted)) {
            try loop.register(fd, interest: .readable) { _ in }
        }
        let p = loop.readable(fd)
        #expect(throws: LoopError.epollControl(fd: fd.rawValue, .notPermitted)) {
            try p.result?.get()
        }
    }

    @Test func asyncWaitReadable() throws {
        let loop = try EventLoop(clock: .virtual)
        let (r, w) = makePipe()
        defer {
            try? r.close()
            try? w.close()
        }
        loop.schedule(after: .seconds(2)) { _ = try? w.writeAll([7]) }
        let byte = try loop.run { () async throws -> UInt8 in
            try await loop.waitReadable(r)
            var buffer = [UInt8](repeating: 0, count: 1)
            _ = try buffer.withUnsafeMutableBytes { try r.read(into: $0) }
            return buffer[0]
        }
        #expect(byte == 7)
        #expect(loop.now == .seconds(2))
    }

    @Test func executeFromAnotherThreadWakesABlockedLoop() throws {
        let loop = try EventLoop()
        let (done, resolver) = loop.makePromise(of: Bool.self)
        let bound = LoopBound(resolver, on: loop)
        let thread = spawnThread {
            usleep(20_000)
            loop.execute { bound.value.resolve(loop.inLoopThread) }
        }
        let start = ContinuousClock.now
        // Nothing else to do: the loop blocks in epoll_wait until the eventfd fires.
        #expect(try loop.run(until: done))
        #expect(ContinuousClock.now - start >= .milliseconds(15))
        pthread_join(thread, nil)
    }

    @Test func manyThreadsFeedTheInbox() throws {
        let loop = try EventLoop()
        let (done, resolver) = loop.makePromise(of: Int.self)
        let bound = LoopBound(resolver, on: loop)
        let counter = LoopBound(Counter(), on: loop)
        let threads = (0..<4).map { _ in
            spawnThread {
                for _ in 0..<1000 {
                    loop.execute {
                        counter.value.n += 1
                        if counter.value.n == 4000 { bound.value.resolve(counter.value.n) }
                    }
                }
            }
        }
        #expect(try loop.run(until: done) == 4000)
        for t in threads { pthread_join(t, nil) }
    }

    @Test func stopFromAnotherThread() throws {
        let loop = try EventLoop()
        loop.schedule(after: .seconds(3600)) {}
        let thread = spawnThread {
            usleep(10_000)
            loop.stop()
        }
        try loop.run()  // would sleep an hour without stop()
        pthread_join(thread, nil)
        #expect(loop.timerCount == 1)
    }
}

final class Counter { var n = 0 }
