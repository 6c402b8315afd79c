import DequeModule

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
// Not `final`: `map` and `bind` make internal subclasses that carry their transform, so
// that a pending step costs one object, not an object and a closure context. No member
// is overridable (all are `final`), and nothing outside this module can subclass it.
//
// Exclusivity: the mutable state below is `@exclusivity(unchecked)`. A promise is
// confined to its loop's thread, and no access to it is ever long-lived: every read
// and write is instantaneous (callbacks are moved to locals before they run, so a
// callback that registers another callback or settles another promise never overlaps
// an access in progress). Dynamic checks would only cost a runtime call per access
// (most of them inlined into client modules, which cannot prove it themselves).
public class Promise<Value> {
    /// A callback receiving the outcome.
    public typealias Callback = (Result<Value, any Error>) -> Void

    /// The loop this promise belongs to.
    public final let loop: EventLoop
    /// The outcome, or `nil` while pending.
    @inlinable public final var result: Result<Value, any Error>? { outcome }
    @exclusivity(unchecked) @usableFromInline final var state = PromiseState.pending
    @exclusivity(unchecked) @usableFromInline final var failure: (any Error)?
    /// The resolved value, in place when it fits (see `valueAddress`).
    @exclusivity(unchecked) @usableFromInline final var storage: PromiseStorage = (0, 0, 0, 0)
    @exclusivity(unchecked) @usableFromInline final var firstCallback: Callback?
    @exclusivity(unchecked) @usableFromInline final var moreCallbacks: [Callback] = []
    /// Settled, callbacks not yet all run (they wait on the trampoline).
    @exclusivity(unchecked) @usableFromInline final var firePending = false
    @exclusivity(unchecked) @usableFromInline final var cancelTarget: CancelTarget = .none

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
        store(.success(value))
    }

    /// Creates a promise already failed with `error`.
    @inlinable
    public init(on loop: EventLoop, error: any Error) {
        self.loop = loop
        store(.failure(error))
    }

    // MARK: The outcome's storage
    //
    // The value lives in `storage`, raw words inside the object, rather than in a
    // `Result<Value, any Error>?` property. The difference is the deinitialiser: a
    // generic class's deinit runs unspecialised, and destroying a `Result<Value, _>?`
    // (or even a `Value?`) there means looking up the metadata of that type in the
    // runtime's cache — two look-ups, several hundred instructions, for every promise
    // that dies. Destroying a `Value` at an address needs only `Value`'s own metadata,
    // which the object's class already holds. Values larger than the storage (rare:
    // four words) go to a heap cell whose address the storage holds instead.

    /// Whether a `Value` fits in `storage`.
    @inlinable
    static var storesInPlace: Bool {
        MemoryLayout<Value>.size <= MemoryLayout<PromiseStorage>.size
            && MemoryLayout<Value>.alignment <= MemoryLayout<PromiseStorage>.alignment
    }

    /// Runs `body` with the address of the value (`state` must be `.resolved`).
    @inlinable
    final func withValue<R>(_ body: (UnsafeMutablePointer<Value>) -> R) -> R {
        withUnsafeMutablePointer(to: &storage) { words in
            if Self.storesInPlace {
                return body(UnsafeMutableRawPointer(words).assumingMemoryBound(to: Value.self))
            }
            let cell = UnsafeMutableRawPointer(bitPattern: UInt(words.pointee.0))!
            return body(cell.assumingMemoryBound(to: Value.self))
        }
    }

    /// The outcome, or `nil` while pending.
    @inlinable
    final var outcome: Result<Value, any Error>? {
        switch state {
        case .pending: return nil
        case .resolved: return .success(withValue { $0.pointee })
        case .failed: return .failure(failure!)
        }
    }

    /// Records the outcome of a pending promise (no callbacks run).
    @inlinable
    final func store(_ outcome: Result<Value, any Error>) {
        switch outcome {
        case .success(let value):
            withUnsafeMutablePointer(to: &storage) { words in
                if Self.storesInPlace {
                    UnsafeMutableRawPointer(words).initializeMemory(as: Value.self, to: value)
                } else {
                    let cell = UnsafeMutablePointer<Value>.allocate(capacity: 1)
                    cell.initialize(to: value)
                    words.pointee.0 = UInt64(UInt(bitPattern: cell))
                }
            }
            state = .resolved
        case .failure(let error):
            failure = error
            state = .failed
        }
    }

    deinit {
        guard state == .resolved else { return }
        withUnsafeMutablePointer(to: &storage) { words in
            if Self.storesInPlace {
                UnsafeMutableRawPointer(words).assumingMemoryBound(to: Value.self)
                    .deinitialize(count: 1)
            } else {
                let cell = UnsafeMutableRawPointer(bitPattern: UInt(words.pointee.0))!
                cell.assumingMemoryBound(to: Value.self).deinitialize(count: 1)
                cell.deallocate()
            }
        }
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
    public final var isPending: Bool { state == .pending }

    /// Settles the promise. Returns false (and changes nothing) if it had settled.
    @inlinable
    @discardableResult
    public final func settle(_ outcome: Result<Value, any Error>) -> Bool {
        if state != .pending { return false }
        store(outcome)
        cancelTarget = .none
        if firstCallback != nil {
            firePending = true
            fire()
        }
        return true
    }

    /// The trampoline (see "When callbacks run"): runs the callbacks now, or, inside
    /// another promise's callback, queues them to run right after it returns. Inlined,
    /// so both paths run code specialised for `Value`: the queue holds the promise and
    /// a context-free function that runs its callbacks, not an existential.
    @inlinable
    final func fire() {
        let loop = self.loop
        if loop.firing {
            loop.fireQueue.append(
                DeferredFire(node: self) {
                    unsafeDowncast($0, to: Promise<Value>.self).runCallbacks()
                })
            return
        }
        loop.firing = true
        runCallbacks()
        if !loop.fireQueue.isEmpty { loop.runDeferredFires() }
        loop.firing = false
    }

    /// Runs the callbacks of a settled promise, in registration order, including any
    /// registered while they run.
    @inlinable
    final func runCallbacks() {
        guard let outcome = self.outcome else { return }
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

    /// Registers `callback` to receive the outcome (see "When callbacks run").
    @inlinable
    public final func onResult(_ callback: @escaping Callback) {
        if state != .pending, !firePending, let outcome = self.outcome {
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
    public final func onSuccess(_ callback: @escaping (Value) -> Void) {
        onResult { if case .success(let value) = $0 { callback(value) } }
    }

    /// Registers `callback` to run with the error if the promise fails.
    @inlinable
    public final func onFailure(_ callback: @escaping (any Error) -> Void) {
        onResult { if case .failure(let error) = $0 { callback(error) } }
    }

    /// Registers `callback` to run if the promise fails with ``Cancelled`` (Lwt's
    /// `on_cancel`): how the owner of a resolver learns to stop its work.
    @inlinable
    public final func onCancel(_ callback: @escaping () -> Void) {
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
    public final func bind<NewValue>(
        _ transform: @escaping (Value) -> Promise<NewValue>
    ) -> Promise<NewValue> {
        if state != .pending, !firePending, let outcome = self.outcome {
            switch outcome {
            case .success(let value): return transform(value)
            case .failure(let error): return Promise<NewValue>(on: loop, error: error)
            }
        }
        // The step object carries the transform; the callback captures only it, so
        // the closure needs no context of its own.
        let next = BoundPromise<Value, NewValue>(on: loop, transform)
        next.cancelTarget = .promise(self)
        onResult { [next] outcome in next.step(outcome) }
        return next
    }

    /// The SwiftNIO spelling of ``bind(_:)``.
    @inlinable
    public final func flatMap<NewValue>(
        _ transform: @escaping (Value) -> Promise<NewValue>
    ) -> Promise<NewValue> {
        bind(transform)
    }

    /// Lwt's `>|=`: a promise of `transform` applied to the value. A thrown error
    /// fails the result; a failure of this promise passes through.
    @inlinable
    public final func map<NewValue>(
        _ transform: @escaping (Value) throws -> NewValue
    ) -> Promise<NewValue> {
        if state != .pending, !firePending, let outcome = self.outcome {
            return Promise<NewValue>.settled(
                on: loop, outcome.flatMap { v in Result { try transform(v) } })
        }
        let next = MappedPromise<Value, NewValue>(on: loop, transform)
        next.cancelTarget = .promise(self)
        onResult { [next] outcome in next.step(outcome) }
        return next
    }

    /// Lwt's `catch`: on failure (``Cancelled`` included), `handler` supplies the
    /// promise to continue with; a value passes through.
    @inlinable
    public final func recover(_ handler: @escaping (any Error) -> Promise<Value>) -> Promise<Value>
    {
        let next = Promise<Value>(on: loop)
        next.cancelTarget = .promise(self)
        onResult { outcome in
            switch outcome {
            case .success: next.settle(outcome)
            case .failure(let error):
                guard next.state == .pending else { return }
                next.follow(handler(error))
            }
        }
        return next
    }

    /// Cancels the promise (see "Cancellation"). Does nothing once it has settled.
    public final func cancel() {
        guard state == .pending else { return }
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
    final func follow(_ other: Promise<Value>) {
        if let outcome = other.outcome, !other.firePending {
            settle(outcome)
            return
        }
        cancelTarget = .promise(other)
        other.onResult { [self] outcome in self.settle(outcome) }
    }

    @inlinable
    static func settled(on loop: EventLoop, _ outcome: Result<Value, any Error>) -> Promise<Value> {
        let p = Promise(on: loop)
        p.store(outcome)
        return p
    }
}

@available(*, unavailable, message: "a Promise is confined to its EventLoop's thread")
extension Promise: Sendable {}

extension Promise: PromiseNode {}

/// The result of a pending ``Promise/map(_:)``: a promise that holds its transform
/// until the input settles.
@usableFromInline
final class MappedPromise<Input, Value>: Promise<Value> {
    @exclusivity(unchecked) @usableFromInline var transform: ((Input) throws -> Value)?

    @inlinable
    init(on loop: EventLoop, _ transform: @escaping (Input) throws -> Value) {
        self.transform = transform
        super.init(on: loop)
    }

    /// The input settled: settle with the transformed value (or pass the failure on).
    @inlinable
    func step(_ input: Result<Input, any Error>) {
        guard let transform else { return }
        self.transform = nil  // released once used, as a callback closure would be
        settle(input.flatMap { v in Result { try transform(v) } })
    }
}

/// The result of a pending ``Promise/bind(_:)``: a promise that holds its transform
/// until the input settles, then follows the promise the transform returns.
@usableFromInline
final class BoundPromise<Input, Value>: Promise<Value> {
    @exclusivity(unchecked) @usableFromInline var transform: ((Input) -> Promise<Value>)?

    @inlinable
    init(on loop: EventLoop, _ transform: @escaping (Input) -> Promise<Value>) {
        self.transform = transform
        super.init(on: loop)
    }

    @inlinable
    func step(_ input: Result<Input, any Error>) {
        guard let transform else { return }
        self.transform = nil
        switch input {
        case .success(let value):
            // Cancelled in the short window between the input settling and its
            // callbacks running: nobody can observe the next step any more.
            guard state == .pending else { return }
            follow(transform(value))
        case .failure(let error):
            settle(.failure(error))
        }
    }
}

/// Where a promise is in its life.
@usableFromInline
enum PromiseState: UInt8 {
    case pending, resolved, failed
}

/// Raw words holding a promise's value in place (see `Promise.storesInPlace`).
@usableFromInline
typealias PromiseStorage = (UInt64, UInt64, UInt64, UInt64)

/// A promise seen without its value type: what cancellation propagation needs.
@usableFromInline
protocol PromiseNode: AnyObject {
    func cancel()
}

/// A settled promise whose callbacks wait on the trampoline, and the function that
/// runs them (specialised for its value type where it was queued; no context).
@usableFromInline
struct DeferredFire {
    @usableFromInline let node: AnyObject
    @usableFromInline let run: (AnyObject) -> Void

    @inlinable
    init(node: AnyObject, run: @escaping (AnyObject) -> Void) {
        self.node = node
        self.run = run
    }
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
