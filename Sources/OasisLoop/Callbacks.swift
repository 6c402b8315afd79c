// Callbacks on the per-packet path that cost no reference count per call.
//
// Calling a closure that an object keeps in a `var` costs a retain and a release of the
// closure's context (the object might drop the closure while it runs); a closure that
// captures its owner `unowned` costs a retain of the owner each time it runs. On a
// path taken once per frame those pairs were a quarter of a UDP echo's CPU. The types
// here let an owner hold a callback it calls, or a callback hold its owner, without
// either. The policy is in DESIGN.md ("Callbacks on the data path").

import DequeModule

/// A reference to an object held without retaining it, for a callback the object
/// owns: the callback cannot outlive the object, so the reference cannot dangle, and
/// calling through it costs nothing.
///
/// ```swift
/// let device = Unretained(self)
/// try loop.register(fd, interest: .readable) { _ in device.call { $0.receiveBatch() } }
/// ```
///
/// Use it only where the object owns the callback (directly or through something it
/// closes before it goes: a loop registration it deregisters, a source it cancels).
/// Anywhere else, capture strongly or `weak`.
public struct Unretained<Object: AnyObject>: @unchecked Sendable {
    @usableFromInline internal let _reference: Unmanaged<Object>

    /// Holds `object` without retaining it.
    @inlinable
    public init(_ object: Object) {
        _reference = .passUnretained(object)
    }

    /// Calls `body` with the object, borrowed for the call: no retain, no release.
    @inlinable @inline(__always)
    public func call<Result>(_ body: (Object) -> Result) -> Result {
        _reference._withUnsafeGuaranteedRef(body)
    }
}

/// A callback taking one argument `inout`, stored once and called many times with no
/// reference count per call: a device's receive handler, a transport's listener.
///
/// ```swift
/// var receiver = CallbackSlot<PacketBatch>()
/// receiver.set { batch in … }                 // at start
/// receiver(&batch)                            // per batch: no retain
/// ```
///
/// A slot keeps the closure it was given until it is given another or goes itself,
/// even after ``clear()``, so a callback that clears its own slot while it runs (a
/// handler that closes its device) is not freed under its feet.
public struct CallbackSlot<Argument: ~Copyable> {
    @usableFromInline
    internal final class Box {
        @usableFromInline let body: (inout Argument) -> Void
        @usableFromInline init(_ body: @escaping (inout Argument) -> Void) { self.body = body }
    }

    @usableFromInline internal var _box: Box?
    @usableFromInline internal var _active: Unmanaged<Box>?

    /// An empty slot.
    @inlinable public init() {}

    /// Whether a callback is set.
    @inlinable public var isSet: Bool { _active != nil }

    /// Sets the callback, replacing any other.
    @inlinable
    public mutating func set(_ body: @escaping (inout Argument) -> Void) {
        let box = Box(body)
        _box = box
        _active = .passUnretained(box)
    }

    /// Stops calling the callback (kept alive until replaced or the slot goes).
    @inlinable
    public mutating func clear() {
        _active = nil
    }

    /// Calls the callback, if one is set, with `argument`.
    @inlinable @inline(__always)
    public func callAsFunction(_ argument: inout Argument) {
        guard let active = _active else { return }
        active._withUnsafeGuaranteedRef { $0.body(&argument) }
    }
}

/// Work an object asks its loop to run again and again — a device draining its queue,
/// a socket flushing its batched replies — queued by ``wake()`` with no allocation and
/// no reference count (``EventLoop/enqueue(_:)`` copies a closure each time).
///
/// ```swift
/// let drain = loop.makeSource { device.call { $0.drain() } }
/// drain.wake()            // queued once, however often it is woken before it runs
/// drain.cancel()          // when the object closes
/// ```
///
/// The loop holds the source from ``EventLoop/makeSource(_:)`` until ``cancel()``:
/// a source that is queued always exists. Confined to the loop's thread.
public final class LoopSource {
    // The loop outlives its sources (it holds them); reached without a retain.
    @usableFromInline internal let _loop: Unmanaged<EventLoop>
    @usableFromInline internal let _body: () -> Void
    @exclusivity(unchecked) @usableFromInline internal var _isQueued = false
    @exclusivity(unchecked) @usableFromInline internal var _isCancelled = false

    @usableFromInline
    internal init(loop: EventLoop, body: @escaping () -> Void) {
        _loop = .passUnretained(loop)
        _body = body
    }

    /// Queues the work behind what is ready, unless it is queued already or cancelled.
    @inlinable
    public func wake() {
        guard !_isQueued, !_isCancelled else { return }
        _isQueued = true
        let work = Work.source(Unmanaged.passUnretained(self))
        _loop._withUnsafeGuaranteedRef { $0.ready.append(work) }
    }

    /// Whether the work is queued and has not run yet.
    @inlinable public var isQueued: Bool { _isQueued }

    /// Stops the source: it runs no more, and the loop lets it go (once it has left the
    /// ready queue, if it is in it).
    public func cancel() {
        guard !_isCancelled else { return }
        _isCancelled = true
        if !_isQueued { _loop._withUnsafeGuaranteedRef { $0.release(self) } }
    }
}

extension EventLoop {
    /// A source whose ``LoopSource/wake()`` queues `body` (see ``LoopSource``).
    ///
    /// - Precondition: called on the loop's thread.
    public func makeSource(_ body: @escaping () -> Void) -> LoopSource {
        assert(inLoopThread, "EventLoop.makeSource called off the loop thread")
        let source = LoopSource(loop: self, body: body)
        sources.insert(ObjectIdentifier(source), source)
        return source
    }

    /// Runs a source taken from the ready queue.
    @inlinable @inline(__always)
    internal func run(_ source: Unmanaged<LoopSource>) {
        source._withUnsafeGuaranteedRef { source in
            source._isQueued = false
            if source._isCancelled {
                release(source)
            } else {
                source._body()
            }
        }
    }

    @usableFromInline
    internal func release(_ source: LoopSource) {
        sources.remove(ObjectIdentifier(source))
    }
}

/// The sources a loop holds: the strong references that keep every queued source alive.
@usableFromInline
internal struct SourceTable {
    private var sources: [ObjectIdentifier: LoopSource] = [:]

    mutating func insert(_ key: ObjectIdentifier, _ source: LoopSource) {
        sources[key] = source
    }

    @usableFromInline
    mutating func remove(_ key: ObjectIdentifier) {
        sources[key] = nil
    }
}
