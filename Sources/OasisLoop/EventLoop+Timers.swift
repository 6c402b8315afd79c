extension EventLoop {
    /// Runs `body` on the loop thread once `delay` has passed on the loop's clock.
    /// Timers with equal deadlines fire in the order they were scheduled.
    ///
    /// - Precondition: called on the loop's thread.
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> TimerID {
        assert(inLoopThread, "EventLoop.schedule called off the loop thread")
        let deadline = Nanoseconds.adding(nowNanoseconds, Nanoseconds.clamped(delay))
        return timers.insert(deadline: deadline, action: .closure(body))
    }

    /// Runs `body` when the loop's clock reads `deadline` (see ``now``).
    ///
    /// - Precondition: called on the loop's thread.
    @discardableResult
    public func schedule(at deadline: Duration, _ body: @escaping () -> Void) -> TimerID {
        assert(inLoopThread, "EventLoop.schedule called off the loop thread")
        return timers.insert(deadline: Nanoseconds.clamped(deadline), action: .closure(body))
    }

    /// Disarms a timer. Returns false if it had already fired or been cancelled.
    /// A timer that belongs to a ``sleep(_:)`` promise is disarmed by cancelling the
    /// promise instead.
    @discardableResult
    public func cancelTimer(_ id: TimerID) -> Bool {
        assert(inLoopThread, "EventLoop.cancelTimer called off the loop thread")
        guard let action = timers.cancel(id) else { return false }
        settleCancelled(action)
        return true
    }

    /// Number of armed timers.
    public var timerCount: Int { timers.count }

    /// Lwt's `sleep`: a promise resolved once `duration` has passed on the loop's
    /// clock. Cancelling the promise removes its timer from the heap.
    ///
    /// - Precondition: called on the loop's thread.
    public func sleep(_ duration: Duration) -> Promise<Void> {
        assert(inLoopThread, "EventLoop.sleep called off the loop thread")
        let promise = Promise<Void>(on: self)
        let deadline = Nanoseconds.adding(nowNanoseconds, Nanoseconds.clamped(duration))
        promise.cancelTarget = .timer(timers.insert(deadline: deadline, action: .promise(promise)))
        return promise
    }

    /// Cancellation of a sleep promise: the promise settles itself right after.
    func cancelTimerForPromise(_ id: TimerID) {
        _ = timers.cancel(id)
    }

    /// Suspends the current task on this loop for `duration`; honours task
    /// cancellation by disarming the timer and throwing `CancellationError`.
    ///
    /// - Precondition: the task runs on this loop (see ``Time/sleep(_:)``).
    func sleepTask(_ duration: Duration) async throws {
        try Task.checkCancellation()
        let deadline = Nanoseconds.adding(nowNanoseconds, Nanoseconds.clamped(duration))
        // Reserve the slot first so that the cancellation handler, which may run on
        // any thread and before the continuation exists, can name the timer.
        let id = timers.reserve()
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation {
                (continuation: UnsafeContinuation<Void, any Error>) in
                if !timers.arm(id, deadline: deadline, action: .continuation(continuation)) {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            self.execute { _ = self.cancelTimer(id) }
        }
    }

    /// Fires the timers due now that were armed before this phase began.
    func fireDueTimers() {
        guard let first = timers.nextDeadline else { return }
        let now = nowNanoseconds
        guard first <= now else { return }
        let limit = timers.nextSequence
        while let action = timers.popDue(now: now, sequenceLimit: limit) {
            switch action {
            case .closure(let body): body()
            case .promise(let promise): promise.settle(.success(()))
            case .continuation(let continuation): continuation.resume()
            case .reserved: break
            }
        }
    }

    /// What a cancelled timer owes its waiter.
    func settleCancelled(_ action: TimerAction) {
        switch action {
        case .closure, .reserved: break
        case .promise(let promise): promise.settle(.failure(Cancelled()))
        case .continuation(let continuation): continuation.resume(throwing: CancellationError())
        }
    }
}
