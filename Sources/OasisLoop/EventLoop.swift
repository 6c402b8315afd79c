internal import CSystem
import DequeModule
import Glibc
import Synchronization
import SystemPackage

/// A cooperative, single-threaded scheduler on Linux epoll: the loop everything in
/// Oasis runs on.
///
/// It owns a FIFO ready queue, timers (a binary min-heap), file-descriptor
/// readiness registrations and an eventfd that wakes it when another thread hands it
/// work. See `README.md` in this folder for what runs when.
///
/// ```swift
/// let loop = try EventLoop()
/// try loop.run {
///     try await Time.sleep(.seconds(1))
///     print("Wake up sleepy!")
/// }
/// ```
///
/// Thread rules: a loop belongs to the thread that calls ``run()`` (before that, to
/// the thread that created it). Only ``execute(_:)``, ``stop()``, the executor entry
/// points and `Sendable` values are for other threads; every other member is called
/// on the loop's thread.
// @unchecked Sendable: the mutable state below is confined to the loop's thread (the
// thread-rules paragraph above, checked by `assert` in debug builds); what other
// threads touch is the inbox (a Mutex), the atomics and the immutable descriptors.
public final class EventLoop: @unchecked Sendable {
    // MARK: Immutable after init

    /// The clock this loop reads time from.
    public let clock: LoopClock
    let epollFD: CInt
    let wakeFD: CInt
    static let wakeToken = UInt64.max
    let eventCapacity: Int32 = 64
    let events: UnsafeMutablePointer<epoll_event>

    // MARK: Shared with other threads

    /// The thread this loop belongs to (`pthread_t` as an integer).
    let owner: Atomic<UInt>
    let inbox = Mutex(Deque<InboxWork>())
    /// Set when the inbox may be non-empty, so the loop never takes the lock for an
    /// empty inbox and producers write the eventfd once per batch.
    let inboxFlag = Atomic<Bool>(false)
    let stopFlag = Atomic<Bool>(false)

    // MARK: Confined to the loop's thread
    //
    // Exclusivity is not checked at run time for these (`@exclusivity(unchecked)`):
    // they are touched only on the loop's thread, and every access is short and calls
    // no user code while it lasts — a deque append or pop, a dictionary get or set, a
    // `TimerQueue` method (which hands actions back rather than running them). The
    // loop touches several of them per iteration, so each dynamic check (a runtime
    // call and a thread-local look-up) was a large part of an async hop's cost.

    @exclusivity(unchecked) @usableFromInline var ready = Deque<Work>()
    @exclusivity(unchecked) @usableFromInline var timers = TimerQueue()
    @exclusivity(unchecked) var virtualNow: Int64 = 0
    /// The clock as read when this turn of the loop began: see ``turnTime``.
    @exclusivity(unchecked) var turnNanoseconds: Int64 = 0
    @exclusivity(unchecked) var descriptors: [CInt: DescriptorRecord] = [:]
    @exclusivity(unchecked) var nextDescriptorGeneration: UInt32 = 0
    /// Trampoline state: true while promise callbacks are running. Unchecked
    /// exclusivity (as for `fireQueue`): loop-confined, and only ever accessed
    /// instantaneously, mostly from promise code inlined into other modules.
    @exclusivity(unchecked) @usableFromInline var firing = false
    /// Ready phases run since the last descriptor poll while the loop stayed busy.
    @exclusivity(unchecked) var busyPhases = 0
    /// How many busy ready phases may pass between two non-blocking polls.
    static let busyPhasesPerPoll = 32
    @exclusivity(unchecked) @usableFromInline var fireQueue = Deque<DeferredFire>()
    @exclusivity(unchecked) var inboxScratch = Deque<InboxWork>()
    /// Every live ``LoopSource``: what keeps a queued source alive.
    @exclusivity(unchecked) @usableFromInline var sources = SourceTable()
    @exclusivity(unchecked) var isRunning = false
    /// Tasks started by `promise(_:)` that have not finished: they keep `run()` alive.
    @exclusivity(unchecked) var outstandingTasks = 0
    /// See ``busyPoll``.
    @exclusivity(unchecked) var busyPollNanoseconds: Int64 = 0

    /// How long the loop keeps polling its descriptors without blocking once it has
    /// run out of work, before it sleeps in the kernel (zero, the default: it sleeps
    /// at once).
    ///
    /// A sleeping loop is woken by an interrupt and the scheduler: tens of
    /// microseconds in a virtual machine, paid on every round trip when one request is
    /// outstanding at a time, and frames a busy device queue drops meanwhile. Polling
    /// trades a core's idle time for that latency, as Linux's `SO_BUSY_POLL` and Open
    /// vSwitch's poll-mode threads do: set it about as long as the gap between two
    /// requests you want to catch. Only for a monotonic loop; call it on the loop's
    /// thread or before ``run()``.
    ///
    /// ```swift
    /// let loop = try EventLoop()
    /// loop.busyPoll = .microseconds(200)
    /// ```
    public var busyPoll: Duration {
        get { .nanoseconds(busyPollNanoseconds) }
        set { busyPollNanoseconds = max(0, Nanoseconds.clamped(newValue)) }
    }

    /// Builds a loop reading time from `clock`.
    ///
    /// - Throws: ``LoopError/epollCreate(_:)`` or ``LoopError/eventfdCreate(_:)``.
    public init(clock: LoopClock = .monotonic) throws(LoopError) {
        self.clock = clock
        if clock == .monotonic { turnNanoseconds = Nanoseconds.monotonic() }
        let ep = epoll_create1(CInt(EPOLL_CLOEXEC))
        guard ep >= 0 else { throw .epollCreate(Errno(rawValue: errno)) }
        let wake = eventfd(0, CInt(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wake >= 0 else {
            let error = Errno(rawValue: errno)
            close(ep)
            throw .eventfdCreate(error)
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeToken
        guard epoll_ctl(ep, EPOLL_CTL_ADD, wake, &event) == 0 else {
            let error = Errno(rawValue: errno)
            close(ep)
            close(wake)
            throw .epollControl(fd: wake, error)
        }
        epollFD = ep
        wakeFD = wake
        events = .allocate(capacity: Int(eventCapacity))
        events.initialize(repeating: epoll_event(), count: Int(eventCapacity))
        owner = Atomic(UInt(pthread_self()))
    }

    deinit {
        events.deallocate()
        close(epollFD)
        close(wakeFD)
    }

    // MARK: The current loop

    /// The loop running on this thread (inside ``run()``, ``run(until:)``,
    /// ``run(_:)`` or ``advance(by:)``), or nil.
    public static var current: EventLoop? {
        guard let raw = pthread_getspecific(CurrentLoopKey.key) else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(raw).takeUnretainedValue()
    }

    /// True when called on the thread this loop belongs to.
    public var inLoopThread: Bool {
        pthread_equal(pthread_self(), pthread_t(owner.load(ordering: .relaxed))) != 0
    }

    // MARK: Time

    /// Time since the clock's origin (boot for `.monotonic`, zero for `.virtual`).
    public var now: Duration { .nanoseconds(nowNanoseconds) }

    /// The time this turn of the loop began (the clock read when its ready work
    /// started, and again when the poll returned), as libuv's `uv_now`: what code run
    /// per packet reads instead of the clock, which costs a call into the vDSO each
    /// time. At most one turn old; ``now`` for anything that needs the present.
    public var turnTime: Duration {
        .nanoseconds(clock == .virtual ? virtualNow : turnNanoseconds)
    }

    var nowNanoseconds: Int64 {
        switch clock {
        case .monotonic: return Nanoseconds.monotonic()
        case .virtual: return virtualNow
        }
    }

    // MARK: Ready queue

    /// Queues `work` to run on the loop thread, after the work already queued.
    /// Callable from any thread; from another thread it goes through the locked
    /// inbox and wakes the loop.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        if inLoopThread {
            ready.append(.closure(work))
        } else {
            submit(.closure(work))
        }
    }

    /// Queues `work` (which need not be `Sendable`) behind the work already queued.
    ///
    /// - Precondition: called on the loop's thread.
    @inlinable
    public func enqueue(_ work: @escaping () -> Void) {
        assert(inLoopThread, "EventLoop.enqueue called off the loop thread")
        ready.append(.closure(work))
    }

    /// Lwt's `pause`: a promise resolved from the ready queue, after the work queued
    /// before it. Lets a long computation give way to I/O and timers.
    public func pause() -> Promise<Void> {
        let promise = Promise<Void>(on: self)
        ready.append(.closure { promise.settle(.success(())) })
        return promise
    }

    /// Ends the current ``run()`` after the phase in progress. Callable from any
    /// thread. A `stop()` that arrives while the loop is not running ends the next run
    /// at its first iteration.
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        wake()
    }

    func submit(_ work: InboxWork) {
        inbox.withLock { $0.append(work) }
        if !inboxFlag.exchange(true, ordering: .acquiringAndReleasing) {
            wake()
        }
    }

    func wake() {
        var one: UInt64 = 1
        // EAGAIN means the counter is saturated: the loop is already due to wake.
        _ = write(wakeFD, &one, 8)
    }

    func drainInbox() {
        guard inboxFlag.load(ordering: .acquiring) else { return }
        inboxFlag.store(false, ordering: .releasing)
        inbox.withLock { swap(&$0, &inboxScratch) }
        while let work = inboxScratch.popFirst() {
            switch work {
            case .closure(let body): ready.append(.closure(body))
            case .job(let job): ready.append(.job(job))
            }
        }
    }

    // MARK: Promises

    /// A pending promise on this loop and its resolver (Lwt's `task`/wakener pair).
    @inlinable
    public func makePromise<Value>(of type: Value.Type = Value.self) -> (
        promise: Promise<Value>, resolver: Resolver<Value>
    ) {
        let promise = Promise<Value>(on: self)
        return (promise, Resolver(promise))
    }

    /// The rest of the promise trampoline (see ``Promise``): runs the callbacks of
    /// promises settled inside a callback, in the order they settled, until none is
    /// left. Called by the outermost settle, with `firing` set.
    @usableFromInline
    func runDeferredFires() {
        while let next = fireQueue.popFirst() {
            next.run(next.node)
        }
    }

    // MARK: Running

    /// Runs until ``stop()`` or until there is no work left: nothing ready, no timer,
    /// no descriptor registered, no task started by ``promise(_:)`` outstanding.
    ///
    /// - Throws: ``LoopError/epollWait(_:)``.
    public func run() throws(LoopError) {
        try runLoop(until: nil, timeLimit: nil)
    }

    /// Runs until `promise` settles, then returns its value or throws its error.
    /// ``stop()`` ends it early with ``LoopError/stoppedBeforeSettled``.
    /// If nothing is left to do while the promise is pending, the loop blocks waiting
    /// for another thread's ``execute(_:)`` (a deadlock if none will come).
    public func run<Value>(until promise: Promise<Value>) throws -> Value {
        // The loop checks `done` every iteration; a flag set by a callback keeps that
        // check free of generic code (reading `promise.result` from this unspecialised
        // function costs a metadata lookup per iteration).
        let settled = SettledFlag()
        promise.onResult { _ in settled.value = true }
        try runLoop(until: settled, timeLimit: nil)
        guard let outcome = promise.result else {
            throw LoopError.stoppedBeforeSettled
        }
        return try outcome.get()
    }

    /// Moves virtual time forward by `duration`, running everything that falls due on
    /// the way: timers fire at their own deadlines (``now`` reads each one's deadline
    /// while it runs) and the ready queue is run between them.
    ///
    /// - Precondition: the loop uses ``LoopClock/virtual`` and is not running.
    public func advance(by duration: Duration) throws(LoopError) {
        precondition(clock == .virtual, "advance(by:) needs a loop with a virtual clock")
        let limit = Nanoseconds.adding(virtualNow, Nanoseconds.clamped(duration))
        try runLoop(until: nil, timeLimit: limit)
    }

    func runLoop(until done: SettledFlag?, timeLimit: Int64?) throws(LoopError) {
        precondition(!isRunning, "EventLoop.run is not reentrant")
        isRunning = true
        // The loop now belongs to this thread (and stays with it after `run` returns).
        owner.store(UInt(pthread_self()), ordering: .releasing)
        let previousCurrent = pthread_getspecific(CurrentLoopKey.key)
        pthread_setspecific(CurrentLoopKey.key, Unmanaged.passUnretained(self).toOpaque())
        defer {
            pthread_setspecific(CurrentLoopKey.key, previousCurrent)
            isRunning = false
        }

        while true {
            if stopFlag.load(ordering: .acquiring) {
                stopFlag.store(false, ordering: .relaxed)
                return
            }
            if let done, done.value { return }

            turnNanoseconds = nowNanoseconds
            // 1. Work other threads handed over, behind what is already ready.
            drainInbox()
            // 2. The ready queue, as it stood when this phase began.
            var budget = ready.count
            while budget > 0, let work = ready.popFirst() {
                budget -= 1
                run(work)
            }
            // 3. Timers due now, armed before this phase began.
            if let first = timers.nextDeadline, first <= nowNanoseconds { fireDueTimers() }

            if let done, done.value { return }
            let hasPendingInbox = inboxFlag.load(ordering: .relaxed)
            let busy = !ready.isEmpty || hasPendingInbox
            if let limit = timeLimit, !busy {
                if let next = timers.nextDeadline, next <= limit {
                    // fall through to poll, then jump to `next`.
                } else {
                    virtualNow = max(virtualNow, limit)
                    return
                }
            }
            if done == nil && timeLimit == nil && !busy && timers.count == 0
                && descriptors.isEmpty && outstandingTasks == 0
            {
                return
            }

            // 4. Descriptor readiness (and the wake-up eventfd). While work keeps
            // arriving, a non-blocking poll costs a system call per phase; poll only
            // every `busyPhasesPerPoll` phases then, so an async hop or a promise
            // chain does not pay a syscall, while descriptors still get their turn.
            if busy {
                busyPhases += 1
                if busyPhases < EventLoop.busyPhasesPerPoll { continue }
            }
            busyPhases = 0
            // Virtual clock, nothing ready and no descriptor registered: a poll could
            // report only the wake-up eventfd, and what it announces (inbox work, a
            // stop) the loop reads from its flags without a system call. Jump to the
            // next deadline straight away. With any descriptor registered, it is
            // polled (without blocking) before every jump, as before.
            if clock == .virtual, !busy, descriptors.isEmpty, let next = timers.nextDeadline {
                virtualNow = max(virtualNow, min(next, timeLimit ?? next))
                continue
            }
            var handled = 0
            var timeout = pollTimeout(busy: busy)
            if timeout != 0, busyPollNanoseconds > 0, clock == .monotonic {
                // Spin before sleeping (see `busyPoll`), no later than the next timer.
                let start = Nanoseconds.monotonic()
                var end = start &+ busyPollNanoseconds
                if let next = timers.nextDeadline { end = min(end, next) }
                repeat {
                    handled = try poll(timeout: 0)
                } while handled == 0 && Nanoseconds.monotonic() < end
                if handled == 0 { timeout = pollTimeout(busy: false) }
            }
            if handled == 0 { handled = try poll(timeout: timeout) }

            // 5. Virtual time: nothing happened, so jump to the next deadline.
            if clock == .virtual, handled == 0, ready.isEmpty,
                !inboxFlag.load(ordering: .relaxed), let next = timers.nextDeadline
            {
                virtualNow = max(virtualNow, min(next, timeLimit ?? next))
            }
        }
    }

    /// How long the next descriptor poll may block: not at all while work is ready,
    /// until the next timer, or indefinitely.
    func pollTimeout(busy: Bool) -> CInt {
        if busy { return 0 }
        guard let next = timers.nextDeadline else { return -1 }
        switch clock {
        case .virtual: return 0
        case .monotonic:
            let wait = next - Nanoseconds.monotonic()
            // Round up: waking a little late is fine, waking early spins.
            return wait <= 0 ? 0 : CInt(clamping: (wait + 999_999) / 1_000_000)
        }
    }

    @inline(__always)
    func run(_ work: Work) {
        switch work {
        case .closure(let body): body()
        case .source(let source): run(source)
        case .job(let job):
            job.runSynchronously(
                isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        }
    }
}

/// Work in the ready queue.
@usableFromInline
enum Work {
    case closure(() -> Void)
    case job(UnownedJob)
    /// A ``LoopSource``, held by the loop's source table, not by the queue.
    case source(Unmanaged<LoopSource>)
}

/// Work handed over by another thread.
enum InboxWork: Sendable {
    case closure(@Sendable () -> Void)
    case job(UnownedJob)
}

enum CurrentLoopKey {
    /// The thread-local slot holding the running loop (unretained: `run` keeps it alive).
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key, nil)
        precondition(status == 0, "pthread_key_create failed: \(status)")
        return key
    }()
}

/// Set once by a promise callback; read by ``EventLoop/run(until:)`` each iteration.
final class SettledFlag {
    @exclusivity(unchecked) var value = false
}
