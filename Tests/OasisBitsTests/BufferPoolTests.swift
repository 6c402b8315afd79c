import Testing

@testable import OasisBits

@Suite("Buffer pool")
struct BufferPoolTests {
    @Test func handsOutEmptyViewsWithHeadroom() throws {
        let pool = BufferPool(headroom: 128, limit: 4)
        let bits = try pool.allocate()
        #expect(bits.isEmpty)
        #expect(bits.headroom == 128)
        #expect(bits.tailroom == Buffer.pageSize - 128)
        #expect(bits.buffer.pageCount == 1)
        #expect(Int(bitPattern: bits.buffer.baseAddress) % Buffer.pageSize == 0)
        #expect(BufferPool().headroom == BufferPool.defaultHeadroom)
    }

    @Test func recyclesABufferOnceEveryViewIsGone() throws {
        let pool = BufferPool(limit: 4)
        var first: Bits? = try pool.allocate()
        let identity = first.map { ObjectIdentifier($0.buffer) }
        var payload: Bits? = try first?.slice(from: 0, length: 0)
        first = nil
        #expect(pool.freeCount == 0)  // the payload view still holds it
        payload = nil
        _ = payload
        #expect(pool.freeCount == 1)
        let again = try pool.allocate()
        #expect(ObjectIdentifier(again.buffer) == identity)
        #expect(pool.buffersCreated == 1)
    }

    @Test func zeroNewBuffersAfterWarmUp() throws {
        let pool = BufferPool(headroom: 64, limit: 64)
        var inFlight: [Bits] = []
        inFlight.reserveCapacity(16)
        func exchange(round: Int) throws {
            // Keep up to 16 packets in flight, as a device ring would.
            var packet = try pool.allocate()
            try packet.extend(by: 60)
            try packet.write(UInt32(round), at: 0)
            try packet.prepend(14)
            if inFlight.count == 16 { inFlight.removeFirst() }
            inFlight.append(packet)
        }
        for round in 0..<100 { try exchange(round: round) }
        let warm = pool.buffersCreated
        #expect(warm == 17)
        for round in 0..<10_000 { try exchange(round: round) }
        #expect(pool.buffersCreated == warm)
    }

    @Test func exhaustionIsATypedError() throws {
        let pool = BufferPool(limit: 2)
        let a = try pool.allocate()
        let b = try pool.allocate()
        #expect(throws: BitsError.poolExhausted(limit: 2)) { try pool.allocate() }
        _ = (a, b)
    }

    @Test func preallocates() throws {
        let pool = BufferPool(limit: 8, preallocate: 3)
        #expect(pool.buffersCreated == 3)
        #expect(pool.freeCount == 3)
        let held = (try pool.allocate(), try pool.allocate(), try pool.allocate())
        #expect(pool.freeCount == 0)
        _ = try pool.allocate()
        #expect(pool.buffersCreated == 4)
        _ = held
    }
}
