/// Buffers for packets, recycled without touching the heap: one page each, or
/// `pagesPerBuffer` pages for a pool of large buffers (64 KiB segments a device
/// segments or coalesces itself).
///
/// ```swift
/// let pool = BufferPool(headroom: 128, limit: 1024)
/// var frame = try pool.allocate()     // empty view at byte 128 of a 4 KiB page
/// let large = BufferPool(limit: 256, pagesPerBuffer: 17)   // 68 KiB buffers
/// ```
///
/// ## How recycling works
///
/// The pool keeps a strong reference to every ``Buffer`` it has made, in an array
/// reserved up front for `limit` entries. A buffer is *in use* while any ``Bits`` view
/// of it exists anywhere — in a device queue, a reassembly table, an application — and
/// *free* as soon as the last view is gone, because then the pool's own reference is
/// the only one: `isKnownUniquelyReferenced` says so in one load of the reference
/// count. There is no `release()` to forget and no way to free a buffer still in use.
///
/// ``allocate()`` scans the array from a clock cursor that remembers where the last
/// search ended, so buffers are reused round-robin and a scan usually stops at the
/// first entry it looks at. If a full turn finds nothing free, the pool makes one more
/// buffer while it is below `limit`, and fails with ``BitsError/poolExhausted(limit:)``
/// after that: a stalled consumer cannot make the stack eat all memory. Once the pool
/// has grown to its working set, allocation does not call `malloc` at all.
///
/// Recycled buffers are not cleared (the pool zeroes a buffer only when it makes it);
/// writers must write every byte they send.
///
/// A pool and its buffers belong to one thread, the scheduler loop that owns the
/// device; the pool is not `Sendable`, because the uniqueness test is only meaningful
/// when no other thread is taking or dropping references at the same time.
public final class BufferPool {
    /// The headroom given to a pool with no explicit one: enough for Ethernet, IPv4
    /// with options and TCP with options in front of a payload.
    public static let defaultHeadroom = 128

    /// Bytes left before the start of every view the pool hands out.
    public let headroom: Int

    /// The most buffers the pool will ever make.
    public let limit: Int

    /// How many pages each buffer of the pool spans (1 unless asked otherwise).
    public let pagesPerBuffer: Int

    /// The bytes each buffer holds: headroom, packet and tailroom together.
    @inlinable public var bufferCapacity: Int { pagesPerBuffer &* Buffer.pageSize }

    /// How many buffers this pool has made so far (each one a ``Buffer`` allocation).
    /// It stops moving once the pool has reached its working set.
    public var buffersCreated: Int { count }

    // Confined to one thread like every pool: no dynamic exclusivity checks per buffer.
    // The buffers live in fixed storage of `limit` slots, the first `count` made: the
    // uniqueness test reads a slot in place, with none of an array's copy-on-write
    // checks around it.
    private let slots: UnsafeMutablePointer<Buffer>
    @exclusivity(unchecked) private var count = 0
    @exclusivity(unchecked) private var cursor = 0

    /// A pool handing out buffers of `pagesPerBuffer` pages with `headroom` bytes
    /// before each view, that makes at most `limit` buffers and makes `preallocate` of
    /// them now.
    ///
    /// `headroom` must leave room in the page, `limit` and `pagesPerBuffer` must be
    /// positive; these are configuration, checked here once.
    public init(
        headroom: Int = BufferPool.defaultHeadroom, limit: Int = 1024, preallocate: Int = 0,
        pagesPerBuffer: Int = 1
    ) {
        precondition(headroom >= 0 && headroom < Buffer.pageSize, "headroom must fit in a page")
        precondition(limit >= 1, "a pool holds at least one buffer")
        precondition(pagesPerBuffer >= 1 && pagesPerBuffer <= 64, "1 to 64 pages a buffer")
        self.headroom = headroom
        self.limit = limit
        self.pagesPerBuffer = pagesPerBuffer
        slots = .allocate(capacity: limit)
        for _ in 0..<min(max(0, preallocate), limit) {
            (slots + count).initialize(to: Buffer(pageCount: pagesPerBuffer))
            count += 1
        }
    }

    /// A pool of exactly the given buffers, which never makes more: for memory that
    /// must come from somewhere particular, such as pages granted to a Xen backend.
    public init(headroom: Int = BufferPool.defaultHeadroom, buffers: [Buffer]) {
        precondition(headroom >= 0 && headroom < Buffer.pageSize, "headroom must fit in a page")
        precondition(!buffers.isEmpty, "a pool holds at least one buffer")
        self.headroom = headroom
        self.limit = buffers.count
        self.pagesPerBuffer = buffers.map(\.pageCount).min() ?? 1
        slots = .allocate(capacity: buffers.count)
        slots.initialize(from: buffers, count: buffers.count)
        count = buffers.count
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// An empty view at `headroom` bytes into a free buffer, with the rest of the
    /// buffer as tailroom.
    ///
    /// Fails with ``BitsError/poolExhausted(limit:)`` if all `limit` buffers are in use.
    public func allocate() throws(BitsError) -> Bits {
        let buffer = try takeFreeBuffer()
        return Bits(unchecked: buffer, offset: headroom, count: 0)
    }

    /// Makes up to `additional` more buffers now (never past `limit`) and points the
    /// clock cursor at the first of them, so the next allocations take them one after
    /// another without scanning the buffers in use. Returns how many were made.
    ///
    /// For a caller about to hold many buffers at once (a block benchmark's requests):
    /// without it each allocation scans every buffer in use before making one more.
    ///
    /// ```swift
    /// let pool = BufferPool(headroom: 0, limit: 4096)
    /// _ = pool.grow(by: 1024)
    /// let pages = try (0..<1024).map { _ in try pool.allocate() }
    /// ```
    @discardableResult
    public func grow(by additional: Int) -> Int {
        let first = count
        let made = max(0, min(additional, limit - count))
        for _ in 0..<made {
            (slots + count).initialize(to: Buffer(pageCount: pagesPerBuffer))
            count += 1
        }
        if made > 0 { cursor = first }
        return made
    }

    /// How many of the pool's buffers are free right now (scans them all; for
    /// counters and tests, not the packet path).
    public var freeCount: Int {
        var free = 0
        for index in 0..<count where isKnownUniquelyReferenced(&slots[index]) {
            free += 1
        }
        return free
    }

    internal func takeFreeBuffer() throws(BitsError) -> Buffer {
        let count = self.count
        var index = cursor
        for _ in 0..<count {
            if index >= count { index = 0 }
            if isKnownUniquelyReferenced(&slots[index]) {
                cursor = index &+ 1
                return slots[index]
            }
            index &+= 1
        }
        guard count < limit else { throw .poolExhausted(limit: limit) }
        let buffer = Buffer(pageCount: pagesPerBuffer)
        (slots + count).initialize(to: buffer)
        self.count = count + 1
        cursor = count + 1
        return buffer
    }
}
