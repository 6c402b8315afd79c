// The bytes a connection has been given to send and the peer has not acknowledged.

#if canImport(Glibc)
    import Glibc
#endif

/// A bounded ring of bytes: the application appends at the end, acknowledgments
/// release from the front, and a segment reads any range in between (one or two
/// pieces, where the range wraps). The memory is allocated on the first write and
/// grown, up to ``limit``, as bytes need it: an idle connection holds none.
///
/// The front is the oldest unacknowledged byte (SND.UNA); byte `offset` of the buffer
/// is sequence number SND.UNA + offset.
public struct SendBuffer: ~Copyable {
    private var storage: UnsafeMutableRawPointer?
    private var capacity = 0
    private var head = 0
    public private(set) var count = 0
    /// The most bytes the buffer holds. Lowering it below ``count`` keeps what is
    /// queued and takes nothing more until enough is acknowledged.
    public var limit: Int

    public init(limit: Int) {
        self.limit = max(limit, 1)
    }

    deinit { storage?.deallocate() }

    /// Bytes that may still be appended.
    public var room: Int { max(0, limit - count) }
    public var isEmpty: Bool { count == 0 }
    /// Bytes of memory held.
    public var allocatedBytes: Int { capacity }

    /// Copies as much of `bytes` as there is room for; returns how many it took.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let taken = min(bytes.count, room)
        guard taken > 0, let source = bytes.baseAddress else { return 0 }
        if count + taken > capacity { grow(toHold: count + taken) }
        let tail = (head + count) % capacity
        let first = min(taken, capacity - tail)
        (storage! + tail).copyMemory(from: source, byteCount: first)
        if first < taken {
            storage!.copyMemory(from: source + first, byteCount: taken - first)
        }
        count += taken
        return taken
    }

    /// Drops `byteCount` bytes from the front (acknowledged). Memory stays for reuse;
    /// ``releaseMemory()`` gives it back when the buffer is empty.
    public mutating func release(_ byteCount: Int) {
        let dropped = min(max(byteCount, 0), count)
        guard dropped > 0 else { return }
        head = (head + dropped) % capacity
        count -= dropped
        if count == 0 { head = 0 }
    }

    /// Drops everything (an aborted connection).
    public mutating func removeAll() {
        head = 0
        count = 0
    }

    /// Frees the memory if nothing is queued.
    public mutating func releaseMemory() {
        guard count == 0, let storage else { return }
        storage.deallocate()
        self.storage = nil
        capacity = 0
        head = 0
    }

    /// Calls `body` with the bytes at `offset..<offset + length` from the front, in one
    /// or two pieces (the second empty unless the range wraps).
    ///
    /// - Precondition: the range is within ``count``.
    public func withBytes<Result>(
        at offset: Int, length: Int,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        precondition(offset >= 0 && length >= 0 && offset + length <= count, "SendBuffer: range")
        guard length > 0, let storage else {
            return try body(
                UnsafeRawBufferPointer(start: nil, count: 0),
                UnsafeRawBufferPointer(start: nil, count: 0))
        }
        let start = (head + offset) % capacity
        let first = min(length, capacity - start)
        return try body(
            UnsafeRawBufferPointer(start: storage + start, count: first),
            UnsafeRawBufferPointer(start: first < length ? storage : nil, count: length - first))
    }

    /// Copies `offset..<offset + length` to `destination`.
    public func copy(at offset: Int, length: Int, to destination: UnsafeMutableRawPointer) {
        withBytes(at: offset, length: length) { first, second in
            if let base = first.baseAddress {
                destination.copyMemory(from: base, byteCount: first.count)
            }
            if let base = second.baseAddress {
                (destination + first.count).copyMemory(from: base, byteCount: second.count)
            }
        }
    }

    private mutating func grow(toHold needed: Int) {
        let size = min(max(limit, needed), max(needed, capacity * 2, 16 * 1024))
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        if let storage, count > 0 {
            let first = min(count, capacity - head)
            fresh.copyMemory(from: storage + head, byteCount: first)
            if first < count {
                (fresh + first).copyMemory(from: storage, byteCount: count - first)
            }
        }
        storage?.deallocate()
        storage = fresh
        capacity = size
        head = 0
    }
}
