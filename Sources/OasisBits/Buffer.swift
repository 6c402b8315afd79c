import Synchronization

#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Page-aligned memory that packets live in: one or more whole 4 KiB pages.
///
/// A buffer is the only owner of packet memory in Oasis. It is allocated with
/// `posix_memalign` on a page boundary and always spans whole pages, so that a page
/// can be granted to a Xen backend or handed to a C `read`/`write` as is. The memory
/// is zeroed once, when the buffer is made, so no stale heap data ever reaches the
/// wire; after that it is reused without clearing (see ``BufferPool``).
///
/// Code does not read a buffer directly: it makes ``Bits`` views over it. A view holds
/// a strong reference, so a buffer lives as long as any view of it.
///
/// A buffer is used on one thread — the scheduler loop that owns its pool — and is
/// deliberately not `Sendable`: views share its bytes without locks.
public final class Buffer {
    /// The size of a page, in bytes: the unit of allocation and of Xen grants.
    public static let pageSize = 4096

    /// The address of the first byte; page-aligned. For C I/O and grant tables only;
    /// Swift code reads and writes through ``Bits``.
    public let baseAddress: UnsafeMutableRawPointer

    /// How many whole pages the buffer spans.
    public let pageCount: Int

    /// The size of the buffer in bytes: `pageCount * Buffer.pageSize`.
    public let capacity: Int

    /// Every `Buffer` ever initialised in this process (all threads). The benchmark
    /// harness reads it to show allocations per packet; in steady state it must not
    /// move.
    public static var allocationCount: Int { allocations.load(ordering: .relaxed) }

    private static let allocations = Atomic<Int>(0)

    /// Whether `deinit` frees the memory (false for pages borrowed from elsewhere).
    private let ownsMemory: Bool

    /// Allocates `pageCount` zeroed, page-aligned pages.
    ///
    /// Like every allocation in Swift, running out of memory is fatal; a page count
    /// below one is a programming error.
    public init(pageCount: Int = 1) {
        precondition(pageCount >= 1, "a Buffer spans at least one page")
        let (bytes, overflow) = pageCount.multipliedReportingOverflow(by: Buffer.pageSize)
        precondition(!overflow, "Buffer page count too large")
        var memory: UnsafeMutableRawPointer? = nil
        let status = posix_memalign(&memory, Buffer.pageSize, bytes)
        guard status == 0, let memory else {
            fatalError("posix_memalign(\(Buffer.pageSize), \(bytes)) failed: \(status)")
        }
        memset(memory, 0, bytes)
        self.baseAddress = memory
        self.pageCount = pageCount
        self.capacity = bytes
        self.ownsMemory = true
        Buffer.allocations.add(1, ordering: .relaxed)
    }

    /// A buffer over `pageCount` pages that someone else owns and keeps mapped for as
    /// long as this buffer lives — pages granted to a Xen backend, a shared-memory
    /// region. The buffer never frees them. `pages` must be page-aligned.
    public init(borrowing pages: UnsafeMutableRawPointer, pageCount: Int) {
        precondition(pageCount >= 1, "a Buffer spans at least one page")
        precondition(Int(bitPattern: pages) % Buffer.pageSize == 0, "pages must be page-aligned")
        self.baseAddress = pages
        self.pageCount = pageCount
        self.capacity = pageCount * Buffer.pageSize
        self.ownsMemory = false
    }

    /// Allocates the fewest whole pages that hold `byteCount` bytes (at least one).
    public convenience init(byteCount: Int) {
        let pages = max(1, (max(0, byteCount) + Buffer.pageSize - 1) / Buffer.pageSize)
        self.init(pageCount: pages)
    }

    deinit {
        if ownsMemory { free(baseAddress) }
    }
}
