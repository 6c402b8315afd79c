/// A bounded batch of non-copyable values — received frames, datagrams — handed from
/// one layer to the next in one call.
///
/// A device fills a batch with the frames one wake-up brought in and hands it to the
/// stack `inout`; the stack takes each frame out (``take(at:)``), owning it from
/// then on. What nobody takes is dropped when the batch is cleared. The batch keeps
/// its storage: it is made once and reused, so handing frames over costs no
/// allocation and no reference count.
///
/// ```swift
/// var batch = PacketBatch(capacity: 64)
/// while !batch.isFull, let frame = device.read() { batch.append(frame) }
/// handler(&batch)                         // takes what it wants
/// batch.removeAll()                       // drops the rest
/// ```
///
/// Confined to one thread, like the values it holds.
public struct Batch<Element: ~Copyable>: ~Copyable {
    /// Slots `0..<count` are initialised (nil once taken); the rest are not.
    @usableFromInline internal let _slots: UnsafeMutablePointer<Element?>
    /// The most elements the batch holds.
    public let capacity: Int
    @usableFromInline internal var _count = 0

    /// An empty batch of room for `capacity` elements (at least one).
    public init(capacity: Int) {
        precondition(capacity >= 1, "a batch holds at least one element")
        self.capacity = capacity
        _slots = .allocate(capacity: capacity)
    }

    deinit {
        _slots.deinitialize(count: _count)
        _slots.deallocate()
    }

    /// The number of elements appended since the batch was last cleared (taken ones
    /// included: their slots stay, empty).
    @inlinable public var count: Int { _count }

    /// Whether nothing was appended.
    @inlinable public var isEmpty: Bool { _count == 0 }

    /// Whether no more elements fit.
    @inlinable public var isFull: Bool { _count == capacity }

    /// The positions of the elements appended: `0..<count`.
    @inlinable public var indices: Range<Int> { 0..<_count }

    /// Adds `element` at the end. The batch must not be full (check ``isFull``).
    @inlinable
    public mutating func append(_ element: consuming Element) {
        precondition(_count < capacity, "appending to a full batch")
        (_slots + _count).initialize(to: .some(element))
        _count &+= 1
    }

    /// Takes the element at `index` out of the batch, leaving its slot empty; nil if it
    /// was taken already. `index` must be in ``indices``.
    @inlinable
    public mutating func take(at index: Int) -> Element? {
        precondition(index >= 0 && index < _count, "batch index out of range")
        return (_slots + index).pointee.take()
    }

    /// Calls `body` with the element at `index`, borrowed; nil (and `body` is not
    /// called) if it was taken.
    @inlinable
    public func withElement<Result: ~Copyable, Failure: Error>(
        at index: Int, _ body: (borrowing Element) throws(Failure) -> Result
    ) throws(Failure) -> Result? {
        precondition(index >= 0 && index < _count, "batch index out of range")
        switch (_slots + index).pointee {
        case .some(let element): return try body(element)
        case .none: return nil
        }
    }

    /// Calls `body` with the element at `index`, to change in place; nil if taken.
    @inlinable
    public mutating func withMutableElement<Result: ~Copyable, Failure: Error>(
        at index: Int, _ body: (inout Element) throws(Failure) -> Result
    ) throws(Failure) -> Result? {
        precondition(index >= 0 && index < _count, "batch index out of range")
        guard var element = (_slots + index).pointee.take() else { return nil }
        let result: Result
        do {
            result = try body(&element)
        } catch {
            (_slots + index).pointee = .some(element)
            throw error
        }
        (_slots + index).pointee = .some(element)
        return result
    }

    /// Drops every element still in the batch and empties it, keeping its storage.
    @inlinable
    public mutating func removeAll() {
        _slots.deinitialize(count: _count)
        _count = 0
    }
}

/// Frames as devices hand them to the stack.
public typealias PacketBatch = Batch<Packet>
