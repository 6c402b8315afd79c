// Async forms of the block device calls, for commands and tools written as plain
// Swift `async` code on the loop.

import OasisBits

extension BlockDevice {
    /// Submits `request` and waits for it; the pages of a read are filled when it
    /// returns (they are views of buffers the caller holds). Call it from a task
    /// running on the device's loop.
    ///
    /// ```swift
    /// let pages = try disk.allocatePages(byteCount: 8192)
    /// try await disk.perform(BlockRequest(read: 0, pages: pages, sectorSize: 512))
    /// print(pages[0].copyBytes().prefix(16))
    /// ```
    public func perform(_ request: BlockRequest) async throws(BlockError) {
        let outcome: Result<Void, BlockError> = await withUnsafeContinuation { continuation in
            submit(request) { result in continuation.resume(returning: result.map { _ in () }) }
        }
        try outcome.get()
    }

    /// Whole-page views of the device's pool holding `byteCount` bytes (the last one
    /// shorter when `byteCount` is not a multiple of a page; 512-byte units).
    ///
    /// - Throws: ``BlockError/badRequest(device:reason:)`` when the pool is exhausted.
    public func allocatePages(byteCount: Int) throws(BlockError) -> [Bits] {
        var pages: [Bits] = []
        var left = byteCount
        while left > 0 {
            let count = min(left, Buffer.pageSize)
            do {
                var page = try pool.allocate()
                try page.extend(by: count)
                pages.append(page)
            } catch {
                throw .badRequest(device: name, reason: "no free pages for \(byteCount) bytes")
            }
            left -= count
        }
        return pages
    }
}
