internal import CSystem
import Glibc
import SystemPackage

/// The readiness a registration asks for.
public struct Interest: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    /// Creates an interest from its bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Data can be read without blocking (`EPOLLIN`).
    public static let readable = Interest(rawValue: 1)
    /// Data can be written without blocking (`EPOLLOUT`).
    public static let writable = Interest(rawValue: 2)
}

/// The readiness epoll reported for a descriptor.
public struct Readiness: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    /// Creates a readiness from its bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// `EPOLLIN`.
    public static let readable = Readiness(rawValue: 1)
    /// `EPOLLOUT`.
    public static let writable = Readiness(rawValue: 2)
    /// `EPOLLHUP` or `EPOLLRDHUP`: the peer closed; reads will see end of file.
    public static let hangup = Readiness(rawValue: 4)
    /// `EPOLLERR`: the next read or write reports the error.
    public static let error = Readiness(rawValue: 8)

    init(epollEvents events: UInt32) {
        var value: Readiness = []
        if events & EPOLLIN.rawValue != 0 { value.insert(.readable) }
        if events & EPOLLOUT.rawValue != 0 { value.insert(.writable) }
        if events & (EPOLLHUP.rawValue | EPOLLRDHUP.rawValue) != 0 { value.insert(.hangup) }
        if events & EPOLLERR.rawValue != 0 { value.insert(.error) }
        self = value
    }
}

/// Everything the loop watches on one descriptor: at most one persistent handler
/// plus any number of one-shot waiters. One epoll registration covers them all.
final class DescriptorRecord {
    let fd: CInt
    let generation: UInt32
    var handler: ((Readiness) -> Void)?
    var handlerInterest: Interest = []
    var readWaiters: [Promise<Void>] = []
    var writeWaiters: [Promise<Void>] = []
    /// The epoll mask currently registered, nil when not registered.
    var registeredMask: UInt32?

    init(fd: CInt, generation: UInt32) {
        self.fd = fd
        self.generation = generation
    }

    var token: UInt64 { UInt64(UInt32(bitPattern: fd)) | UInt64(generation) << 32 }

    var wantedMask: UInt32 {
        var mask: UInt32 = 0
        if handler != nil {
            if handlerInterest.contains(.readable) { mask |= EPOLLIN.rawValue }
            if handlerInterest.contains(.writable) { mask |= EPOLLOUT.rawValue }
        }
        if !readWaiters.isEmpty { mask |= EPOLLIN.rawValue }
        if !writeWaiters.isEmpty { mask |= EPOLLOUT.rawValue }
        return mask
    }

    var isIdle: Bool { handler == nil && readWaiters.isEmpty && writeWaiters.isEmpty }
}

extension EventLoop {
    /// Registers a persistent handler for `fd`: it runs on the loop thread on every
    /// loop iteration in which `fd` is ready for `interest` (or reports an error or
    /// hang-up), until ``deregister(_:)``. Readiness is **level-triggered**: a
    /// handler that leaves data unread is called again on the next iteration, so a
    /// device may read a bounded batch per call without losing wake-ups.
    ///
    /// ```swift
    /// try loop.register(tap.fd, interest: .readable) { _ in tap.receiveBatch() }
    /// ```
    ///
    /// - Throws: ``LoopError/alreadyRegistered(fd:)``, or ``LoopError/epollControl(fd:_:)``
    ///   (for instance `EPERM` for a regular file, which epoll cannot watch).
    public func register(
        _ fd: FileDescriptor, interest: Interest, handler: @escaping (Readiness) -> Void
    ) throws(LoopError) {
        assert(inLoopThread, "EventLoop.register called off the loop thread")
        let record = self.record(for: fd.rawValue)
        guard record.handler == nil else { throw .alreadyRegistered(fd: fd.rawValue) }
        record.handler = handler
        record.handlerInterest = interest
        do {
            try update(record)
        } catch {
            record.handler = nil
            try? update(record)
            throw error
        }
    }

    /// Changes the interest of `fd`'s persistent handler (a device asks for
    /// `.writable` only while its transmit queue is full). An empty interest pauses
    /// the handler except for errors and hang-ups.
    ///
    /// - Throws: ``LoopError/notRegistered(fd:)`` or ``LoopError/epollControl(fd:_:)``.
    public func setInterest(_ interest: Interest, for fd: FileDescriptor) throws(LoopError) {
        guard let record = descriptors[fd.rawValue], record.handler != nil else {
            throw .notRegistered(fd: fd.rawValue)
        }
        record.handlerInterest = interest
        try update(record)
    }

    /// Removes `fd`'s persistent handler. One-shot waiters on `fd` stay. Call it
    /// before closing the descriptor.
    ///
    /// - Throws: ``LoopError/notRegistered(fd:)`` or ``LoopError/epollControl(fd:_:)``.
    public func deregister(_ fd: FileDescriptor) throws(LoopError) {
        assert(inLoopThread, "EventLoop.deregister called off the loop thread")
        guard let record = descriptors[fd.rawValue], record.handler != nil else {
            throw .notRegistered(fd: fd.rawValue)
        }
        record.handler = nil
        record.handlerInterest = []
        try update(record)
    }

    /// A promise resolved the next time `fd` is readable (or reports an error or
    /// hang-up: the read will tell which). Cancelling it withdraws the interest.
    /// Fails with ``LoopError/epollControl(fd:_:)`` if epoll cannot watch `fd`.
    public func readable(_ fd: FileDescriptor) -> Promise<Void> {
        waiter(fd, writable: false)
    }

    /// A promise resolved the next time `fd` is writable (or reports an error).
    public func writable(_ fd: FileDescriptor) -> Promise<Void> {
        waiter(fd, writable: true)
    }

    /// Suspends the current task until `fd` is readable; task cancellation withdraws
    /// the interest and throws ``Cancelled``.
    public func waitReadable(_ fd: FileDescriptor) async throws {
        try await readable(fd).value
    }

    /// Suspends the current task until `fd` is writable.
    public func waitWritable(_ fd: FileDescriptor) async throws {
        try await writable(fd).value
    }

    // MARK: Internals

    func waiter(_ fd: FileDescriptor, writable: Bool) -> Promise<Void> {
        assert(inLoopThread, "EventLoop.readable/writable called off the loop thread")
        let promise = Promise<Void>(on: self)
        let record = self.record(for: fd.rawValue)
        if writable {
            record.writeWaiters.append(promise)
        } else {
            record.readWaiters.append(promise)
        }
        do {
            try update(record)
        } catch {
            removeWaiter(ObjectIdentifier(promise), fd: fd.rawValue, generation: record.generation)
            promise.settle(.failure(error))
            return promise
        }
        let id = ObjectIdentifier(promise)
        let generation = record.generation
        promise.cancelTarget = .action { [unowned self] in
            self.removeWaiter(id, fd: fd.rawValue, generation: generation)
        }
        return promise
    }

    func removeWaiter(_ id: ObjectIdentifier, fd: CInt, generation: UInt32) {
        guard let record = descriptors[fd], record.generation == generation else { return }
        record.readWaiters.removeAll { ObjectIdentifier($0) == id }
        record.writeWaiters.removeAll { ObjectIdentifier($0) == id }
        try? update(record)
    }

    func record(for fd: CInt) -> DescriptorRecord {
        if let record = descriptors[fd] { return record }
        let record = DescriptorRecord(fd: fd, generation: nextDescriptorGeneration)
        nextDescriptorGeneration &+= 1
        descriptors[fd] = record
        return record
    }

    /// Brings epoll in line with what `record` wants; forgets idle records.
    func update(_ record: DescriptorRecord) throws(LoopError) {
        if record.isIdle {
            descriptors[record.fd] = nil
            if record.registeredMask != nil {
                record.registeredMask = nil
                var event = epoll_event()
                // A descriptor closed before deregistration has left epoll already.
                if epoll_ctl(epollFD, EPOLL_CTL_DEL, record.fd, &event) != 0,
                    errno != ENOENT && errno != EBADF
                {
                    throw .epollControl(fd: record.fd, Errno(rawValue: errno))
                }
            }
            return
        }
        let mask = record.wantedMask
        if record.registeredMask == mask { return }
        var event = epoll_event()
        event.events = mask
        event.data.u64 = record.token
        let operation = record.registeredMask == nil ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
        guard epoll_ctl(epollFD, operation, record.fd, &event) == 0 else {
            let error = Errno(rawValue: errno)
            if record.registeredMask == nil { descriptors[record.fd] = nil }
            throw .epollControl(fd: record.fd, error)
        }
        record.registeredMask = mask
    }

    /// One `epoll_wait`; dispatches what it reports. Returns the number of events.
    func poll(timeout: CInt) throws(LoopError) -> Int {
        var count: CInt
        repeat {
            count = epoll_wait(epollFD, events, eventCapacity, timeout)
        } while count < 0 && errno == EINTR
        guard count >= 0 else { throw .epollWait(Errno(rawValue: errno)) }
        if count > 0 { turnNanoseconds = nowNanoseconds }
        for index in 0..<Int(count) {
            let event = events[index]
            let token = event.data.u64
            if token == Self.wakeToken {
                var counter: UInt64 = 0
                _ = read(wakeFD, &counter, 8)
                continue
            }
            let fd = CInt(bitPattern: UInt32(truncatingIfNeeded: token))
            let generation = UInt32(truncatingIfNeeded: token >> 32)
            // A handler earlier in this batch may have deregistered (or replaced) it.
            guard let record = descriptors[fd], record.generation == generation else { continue }
            dispatch(Readiness(epollEvents: event.events), to: record)
        }
        return Int(count)
    }

    func dispatch(_ readiness: Readiness, to record: DescriptorRecord) {
        let failed = !readiness.isDisjoint(with: [.error, .hangup])
        if let handler = record.handler {
            let wanted = Readiness(rawValue: record.handlerInterest.rawValue)
            if failed || !readiness.isDisjoint(with: wanted) { handler(readiness) }
        }
        var changed = false
        if failed || readiness.contains(.readable), !record.readWaiters.isEmpty {
            let waiters = record.readWaiters
            record.readWaiters = []
            changed = true
            for waiter in waiters { waiter.settle(.success(())) }
        }
        if failed || readiness.contains(.writable), !record.writeWaiters.isEmpty {
            let waiters = record.writeWaiters
            record.writeWaiters = []
            changed = true
            for waiter in waiters { waiter.settle(.success(())) }
        }
        if changed, descriptors[record.fd] === record {
            try? update(record)
        }
    }
}

/// Carries a loop-confined value (a promise, a resolver, a device) through a
/// `@Sendable` closure, typically one handed to ``EventLoop/execute(_:)`` from
/// another thread. Reading ``value`` off the loop's thread is a programmer error,
/// caught by an assertion in debug builds.
///
/// ```swift
/// let bound = LoopBound(resolver, on: loop)
/// worker.start { result in loop.execute { bound.value.resolve(result) } }
/// ```
// @unchecked Sendable: the wrapped value is only read on its loop's thread (checked
// in debug builds); moving the reference between threads is what it is for.
public struct LoopBound<Value>: @unchecked Sendable {
    @usableFromInline let wrapped: Value
    /// The loop whose thread may read the value.
    public let loop: EventLoop

    /// Binds `value` to `loop`.
    @inlinable
    public init(_ value: Value, on loop: EventLoop) {
        self.wrapped = value
        self.loop = loop
    }

    /// The value. Read it on the loop's thread only.
    @inlinable
    public var value: Value {
        precondition(loop.inLoopThread, "LoopBound.value read off its loop's thread")
        return wrapped
    }
}
