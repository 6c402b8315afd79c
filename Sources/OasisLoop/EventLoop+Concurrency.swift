import Glibc

/// The loop as a Swift concurrency executor: tasks that prefer it (and their
/// `async let` and task-group children, which inherit the preference) run their
/// jobs from its ready queue, on its thread, interleaved with promise callbacks,
/// timers and descriptor handlers. An actor whose `unownedExecutor` is the loop's
/// runs there too.
extension EventLoop: SerialExecutor, TaskExecutor {
    /// Queues a job: straight onto the ready queue from the loop thread, through the
    /// locked inbox (and an eventfd wake-up) from any other thread.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        if inLoopThread {
            ready.append(.job(job))
        } else {
            submit(.job(job))
        }
    }

    /// This loop as a serial executor.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// This loop as a task executor.
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }

    /// Traps unless called on the loop's thread (used by `assumeIsolated`).
    public func checkIsolated() {
        precondition(inLoopThread, "not on the EventLoop's thread")
    }

    /// Starts `body` as a task on this loop and returns a promise of its result
    /// (async code seen as a promise). Cancelling the promise cancels the task. The
    /// task keeps ``run()`` going until it finishes.
    ///
    /// - Precondition: called on the loop's thread.
    public func promise<Value: Sendable>(
        _ body: sending @escaping () async throws -> Value
    ) -> Promise<Value> {
        assert(inLoopThread, "EventLoop.promise called off the loop thread")
        let promise = Promise<Value>(on: self)
        let bound = LoopBound(promise, on: self)
        outstandingTasks += 1
        let task = Task(executorPreference: self) { [self] in
            let outcome: Result<Value, any Error>
            do {
                outcome = .success(try await body())
            } catch {
                outcome = .failure(error)
            }
            finish(bound, outcome)
        }
        promise.cancelTarget = .action { task.cancel() }
        return promise
    }

    private func finish<Value>(
        _ bound: LoopBound<Promise<Value>>, _ outcome: Result<Value, any Error>
    )
    where Value: Sendable {
        // The task prefers this loop, so it normally ends here on the loop thread;
        // hop if the body ended on another executor.
        if inLoopThread {
            outstandingTasks -= 1
            bound.value.settle(outcome)
        } else {
            execute { [self] in
                outstandingTasks -= 1
                bound.value.settle(outcome)
            }
        }
    }

    /// Runs `body` as a task on this loop, runs the loop until it finishes, and
    /// returns its value (or throws its error). `body` is `sending`, not
    /// `@Sendable`: it may capture promises of this loop, since it runs there. Code in `body`, and in `async let`
    /// and task-group children it starts, runs on the calling thread.
    ///
    /// ```swift
    /// try EventLoop().run {
    ///     try await Time.sleep(.seconds(1))
    ///     print("Wake up sleepy!")
    /// }
    /// ```
    public func run<Value: Sendable>(
        _ body: sending @escaping () async throws -> Value
    ) throws -> Value {
        precondition(!isRunning, "EventLoop.run is not reentrant")
        owner.store(UInt(pthread_self()), ordering: .releasing)
        return try run(until: promise(body))
    }
}

extension Promise where Value: Sendable {
    /// Waits for the promise from async code and returns its value or throws its
    /// error. Safe from any task: off the loop thread it registers through
    /// ``EventLoop/execute(_:)``. Cancelling the waiting task cancels the promise,
    /// as a `bind` would (the wait then throws ``Cancelled``).
    public var value: Value {
        get async throws {
            let loop = self.loop
            if loop.inLoopThread, let outcome = result, !firePending {
                return try outcome.get()
            }
            let bound = LoopBound(self, on: loop)
            return try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation {
                    (continuation: UnsafeContinuation<Value, any Error>) in
                    if loop.inLoopThread {
                        bound.value.onResult { continuation.resume(with: $0) }
                    } else {
                        loop.execute { bound.value.onResult { continuation.resume(with: $0) } }
                    }
                }
            } onCancel: {
                loop.execute { bound.value.cancel() }
            }
        }
    }

    /// The same as ``value``.
    public func get() async throws -> Value {
        try await value
    }
}

/// Time for async code on the current loop: the Mirage tutorial's `OS.Time`.
public enum Time {
    /// Suspends the current task for `duration` on the clock of the loop it runs on
    /// (virtual time under a virtual clock). Task cancellation disarms the timer and
    /// throws `CancellationError`.
    ///
    /// - Throws: ``LoopError/noCurrentLoop`` if the task is not running on a loop.
    public static func sleep(_ duration: Duration) async throws {
        guard let loop = EventLoop.current else { throw LoopError.noCurrentLoop }
        try await loop.sleepTask(duration)
    }

    /// The current loop's ``EventLoop/now``, or nil off any loop.
    public static var now: Duration? { EventLoop.current?.now }
}
