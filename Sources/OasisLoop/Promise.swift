/// A value that will exist later: Lwt's `'a Lwt.t`, confined to one ``EventLoop``.
///
/// A promise is *pending*, then *resolved* with a value or *failed* with an error,
/// exactly once. It is not `Sendable`: create, chain, settle and cancel it on its
/// loop's thread only (from another thread, go through ``EventLoop/execute(_:)``;
/// from async code, `await` its ``value``).
///
/// ## When callbacks run
/// Callbacks run **synchronously when the promise settles**, as in Lwt, so a packet
/// handled in one loop turn flows through the whole bind chain in that turn, with no
/// extra queue hops. Nested settlements are trampolined: a promise settled *inside*
/// another promise's callback has its callbacks queued and run as soon as the
/// current callback returns, before the outermost `resolve` returns. Stack depth
/// therefore stays constant however long a bind chain is. Callbacks of one promise
/// run in the order they were registered. A callback registered on a promise that
/// has already settled (and fired) runs immediately.
///
/// ## Failure
/// `bind`, `map` and `recover` pass a failure through unchanged; a throwing `map`
/// transform fails its result with the thrown error.
///
/// ## Cancellation
/// ``cancel()`` on a pending promise first cancels what it is waiting on (the
/// promise a `bind` waits for, the timer under a `sleep`, all inputs of a `join`,
/// `pick` or `choose`), then fails it with ``Cancelled`` if it is still pending.
/// Cancelling a promise that has settled does nothing.
///
/// Settling twice is not a crash: the second `resolve`/`fail` is ignored and returns
/// `false`. This happens legitimately when a cancellation races a wake-up.
///
/// A pending promise and the promises bound to it reference each other until one
/// of them settles. A resolver dropped without settling keeps that chain alive:
/// settle or cancel what you start.
public final class Promise<Value> {
    /// A callback receiving the outcome.
    public typealias Callback = (Result<Value, any Error>) -> Void

    /// The loop this promise belongs to.
    public let loop: EventLoop
    /// The outcome, or `nil` while pending.
    @inlinable public var result: Result<Value, any Error>? { outcome }
    @usableFromInline var outcome: Result<Value, any Error>?
    @usableFromInline var firstCallback: Callback?
    @usableFromInline var moreCallbacks: [Callback] = []
    /// Settled, callbacks not yet all run (they wait on the trampoline).
    @usableFromInline var firePending = false
    @usableFromInline var cancelTarget: CancelTarget = .none

    /// Creates a pending promise on `loop`. Prefer ``EventLoop/makePromise(of:)``,
    /// which also hands back the ``Resolver``.
    @inlinable
    public init(on loop: EventLoop) {
        self.loop = loop
    }

    /// Creates a promise already resolved with `value`.
    @inlinable
    public init(on loop: EventLoop, value: Value) {
        self.loop = loop
        self.outcome = .success(value)
    }

    /// Creates a promise already failed with `error`.
    @inlinable
    public init(on loop: EventLoop, error: any Error) {
        self.loop = loop
        self.outcome = .failure(error)
    }

    /// Lwt's `Lwt.task`: a pending promise on the loop running this thread, and the
    /// resolver that settles it.
    ///
    /// - Precondition: called on a thread running an ``EventLoop``.
    @inlinable
    public static func makePending() -> (promise: Promise<Value>, resolver: Resolver<Value>) {
        guard let loop = EventLoop.current else {
            preconditionFailure("Promise.makePending() needs a running EventLoop on this thread")
        }
        return loop.makePromise(of: Value.self)
    }

    /// True until the promise settles.
    @inlinable
    public var isPending: Bool { result == nil }

    /// Settles the promise. Returns false (and changes nothing) if it had settled.
    @inlinable
    @discardableResult
    public func settle(_ outcome: Result<Value, any Error>) -> Bool {
        if result != nil { return false }
        self.outcome = outcome
        cancelTarget = .none
        if firstCallback != nil {
            firePending = true
            loop.fire(self)
        }
        return true
    }

    /// Registers `callback` to receive the outcome (see "When callbacks run").
    @inlinable
    public func onResult(_ callback: @escaping Callback) {
        if let outcome = result, !firePending {
            callback(outcome)
            return
        }
        if firstCallback == nil {
            firstCallback = callback
        } else {
            moreCallbacks.append(callback)
        }
    }

    /// Registers `callback` to run with the value if the promise resolves.
    @inlinable
    public func onSuccess(_ callback: @escaping (Value) -> Void) {
        onResult { if case .success(let value) = $0 { callback(value) } }
    }

    /// Registers `callback` to run with the error if the promise fails.
    @inlinable
    public func onFailure(_ callback: @escaping (any Error) -> Void) {
        onResult { if case .failure(let error) = $0 { callback(error) } }
    }

    /// Registers `callback` to run if the promise fails with ``Cancelled`` (Lwt's
    /// `on_cancel`): how the owner of a resolver learns to stop its work.
    @inlinable
    public func onCancel(_ callback: @escaping () -> Void) {
        onResult { if case .failure(let error) = $0, error is Cancelled { callback() } }
    }

    /// Lwt's `>>=`: when this promise resolves, `transform` starts the next step,
    /// and the returned promise settles as that step does. A failure skips
    /// `transform` and passes through. Cancelling the result cancels whichever
    /// promise it is waiting on at that moment.
    ///
    /// ```swift
    /// let reply = device.readable().bind { _ in stack.receive() }.bind { frame in stack.answer(frame) }
    /// ```
    @inlinable
    public func bind<NewValue>(
        _ transform: @escaping (Value) -> Promise<NewValue>
    ) -> Promise<NewValue> {
        if let outcome = result, !firePending {
            switch outcome {
            case .success(let value): return transform(value)
            case .failure(let error): return Promise<NewValue>(on: loop, error: error)
            }
        }
        let next = Promise<NewValue>(on: loop)
        next.cancelTarget = .promise(self)
        onResult { outcome in
            switch outcome {
            case .success(let value):
                // Cancelled in the short window between this promise settling and its
                // callbacks running: nobody can observe the next step any more.
                guard next.result == nil else { return }
                next.follow(transform(value))
            case .failure(let error):
                next.settle(.failure(error))
            }
        }
        return next
    }

    /// The SwiftNIO spelling of ``bind(_:)``.
    @inlinable
    public func flatMap<NewValue>(
        _ transform: @escaping (Value) -> Promise<NewValue>
    ) -> Promise<NewValue> {
        bind(transform)
    }

    /// Lwt's `>|=`: a promise of `transform` applied to the value. A thrown error
    /// fails the result; a failure of this promise passes through.
    @inlinable
    public func map<NewValue>(
        _ transform: @escaping (Value) throws -> NewValue
    ) -> Promise<NewValue> {
        if let outcome = result, !firePending {
            return Promise<NewValue>.settled(
                on: loop, outcome.flatMap { v in Result { try transform(v) } })
        }
        let next = Promise<NewValue>(on: loop)
        next.cancelTarget = .promise(self)
        onResult { outcome in
            next.settle(outcome.flatMap { v in Result { try transform(v) } })
        }
        return next
    }

    /// Lwt's `catch`: on failure (``Cancelled`` included), `handler` supplies the
    /// promise to continue with; a value passes through.
    @inlinable
    public func recover(_ handler: @escaping (any Error) -> Promise<Value>) -> Promise<Value> {
        let next = Promise<Value>(on: loop)
        next.cancelTarget = .promise(self)
        onResult { outcome in
            switch outcome {
            case .success: next.settle(outcome)
            case .failure(let error):
                guard next.result == nil else { return }
                next.follow(handler(error))
            }
        }
        return next
    }

    /// Cancels the promise (see "Cancellation"). Does nothing once it has settled.
    public func cancel() {
        guard result == nil else { return }
        let target = cancelTarget
        cancelTarget = .none
        switch target {
        case .none: break
        case .promise(let upstream): upstream.cancel()
        case .timer(let id): loop.cancelTimerForPromise(id)
        case .action(let action): action()
        }
        settle(.failure(Cancelled()))
    }

    /// Settles like `other` does; cancelling self meanwhile cancels `other`.
    @inlinable
    func follow(_ other: Promise<Value>) {
        if let outcome = other.result, !other.firePending {
            settle(outcome)
            return
        }
        cancelTarget = .promise(other)
        other.onResult { self.settle($0) }
    }

    @inlinable
    static func settled(on loop: EventLoop, _ outcome: Result<Value, any Error>) -> Promise<Value> {
        let p = Promise(on: loop)
        p.outcome = outcome
        return p
    }
}

@available(*, unavailable, message: "a Promise is confined to its EventLoop's thread")
extension Promise: Sendable {}

extension Promise: PromiseNode {
    /// Runs the callbacks of a settled promise (called by the loop's trampoline).
    @usableFromInline
    func runCallbacks() {
        guard let outcome = result else { return }
        while true {
            if let callback = firstCallback {
                firstCallback = nil
                callback(outcome)
                continue
            }
            if moreCallbacks.isEmpty { break }
            let batch = moreCallbacks
            moreCallbacks = []
            for callback in batch { callback(outcome) }
        }
        firePending = false
    }
}

/// A promise seen without its value type: what the trampoline and cancellation
/// propagation need.
@usableFromInline
protocol PromiseNode: AnyObject {
    func runCallbacks()
    func cancel()
}

/// What cancelling a pending promise must cancel first. Cases other than `action`
/// avoid allocating a closure for the common bind and sleep.
@usableFromInline
enum CancelTarget {
    case none
    case promise(any PromiseNode)
    case timer(TimerID)
    case action(() -> Void)
}

/// Lwt's wakener: the capability to settle one promise.
public struct Resolver<Value> {
    /// The promise this resolver settles.
    public let promise: Promise<Value>

    /// Wraps `promise`.
    @inlinable
    public init(_ promise: Promise<Value>) {
        self.promise = promise
    }

    /// Resolves the promise with `value`. Returns false (ignored) if it had settled,
    /// for instance because it was cancelled.
    @inlinable
    @discardableResult
    public func resolve(_ value: Value) -> Bool {
        promise.settle(.success(value))
    }

    /// Fails the promise with `error`. Returns false (ignored) if it had settled.
    @inlinable
    @discardableResult
    public func fail(_ error: any Error) -> Bool {
        promise.settle(.failure(error))
    }

    /// Settles the promise with `outcome`. Returns false (ignored) if it had settled.
    @inlinable
    @discardableResult
    public func settle(_ outcome: Result<Value, any Error>) -> Bool {
        promise.settle(outcome)
    }
}

extension Resolver where Value == Void {
    /// Resolves a `Promise<Void>`.
    @inlinable
    @discardableResult
    public func resolve() -> Bool {
        promise.settle(.success(()))
    }
}

@available(*, unavailable, message: "a Resolver is confined to its EventLoop's thread")
extension Resolver: Sendable {}
