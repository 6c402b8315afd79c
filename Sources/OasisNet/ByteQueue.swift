// The byte queue behind a stream connection's receive and send buffers: bounded,
// contiguous, allocated on demand. Transport-independent: kernel sockets use it today,
// the Oasis stack's TCP will use it for the same buffers.

/// A bounded FIFO of bytes in one allocation. Bytes are appended at the end and
/// consumed from the front, and the queued bytes are always contiguous (moved to the
/// front when the end runs out of room), so that a parser sees a message whole. The
/// allocation starts empty and grows as bytes need it, up to ``limit``: an idle
/// connection holds no buffer memory.
struct ByteQueue: ~Copyable {
    private var storage: UnsafeMutableRawPointer?
    private var allocated = 0
    private var start = 0
    private var end = 0
    /// The most bytes the queue holds. Lowering it below ``count`` keeps what is
    /// queued and takes nothing more until enough is consumed.
    var limit: Int

    /// The first allocation: enough for a small message, without committing `limit`.
    private static let initialAllocation = 16 * 1024

    init(limit: Int) {
        self.limit = limit
    }

    deinit { storage?.deallocate() }

    /// Bytes queued.
    var count: Int { end - start }
    var isEmpty: Bool { end == start }
    /// Bytes that may still be appended.
    var room: Int { max(0, limit - count) }

    /// The queued bytes; valid until the queue next changes.
    var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.map { $0 + start }, count: count)
    }

    /// Drops `byteCount` bytes from the front.
    mutating func consume(_ byteCount: Int) {
        precondition(byteCount >= 0 && byteCount <= count, "ByteQueue: consumed more than queued")
        start += byteCount
        if start == end {
            start = 0
            end = 0
        }
    }

    /// Drops everything queued.
    mutating func removeAll() {
        start = 0
        end = 0
    }

    /// Free space at the end for at least `wanted` bytes (fewer if the limit allows
    /// fewer), made by moving the queued bytes to the front or by growing the
    /// allocation. The space may be larger than asked, never beyond ``room``. Fill it,
    /// then ``commit(_:)`` what was written.
    mutating func reserve(_ wanted: Int) -> UnsafeMutableRawBufferPointer {
        let wanted = min(wanted, room)
        guard wanted > 0 else { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        if allocated - end < wanted {
            if allocated - count >= wanted {
                compact()
            } else {
                grow(toHold: count + wanted)
            }
        }
        return UnsafeMutableRawBufferPointer(
            start: storage! + end, count: min(allocated - end, room))
    }

    /// Records that `byteCount` bytes were written into the space ``reserve(_:)`` gave.
    mutating func commit(_ byteCount: Int) {
        precondition(byteCount >= 0 && end + byteCount <= allocated, "ByteQueue: commit overflow")
        end += byteCount
    }

    /// Copies as much of `source` as there is room for; returns how many bytes it took.
    mutating func append(_ source: UnsafeRawBufferPointer) -> Int {
        let space = reserve(source.count)
        let taken = min(space.count, source.count)
        guard taken > 0 else { return 0 }
        space.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: taken)
        commit(taken)
        return taken
    }

    private mutating func compact() {
        guard start > 0, let storage else { return }
        if end > start { storage.copyMemory(from: storage + start, byteCount: end - start) }
        end -= start
        start = 0
    }

    /// A larger allocation holding at least `needed` bytes: at least double the
    /// current one, at most the limit (or `needed`, should the limit have been lowered).
    private mutating func grow(toHold needed: Int) {
        let size = min(max(limit, needed), max(needed, allocated * 2, ByteQueue.initialAllocation))
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        if let storage {
            if end > start { fresh.copyMemory(from: storage + start, byteCount: end - start) }
            storage.deallocate()
        }
        storage = fresh
        allocated = size
        end -= start
        start = 0
    }
}
