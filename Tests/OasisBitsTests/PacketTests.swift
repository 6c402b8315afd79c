import Testing

@testable import OasisBits

@Suite("Packet: the owned window, its spans, and batches")
struct PacketTests {
    @Test func movesItsWindowLikeAView() throws {
        var packet = Packet(copying: [1, 2, 3, 4, 5, 6], headroom: 8)
        let (count, headroom) = (packet.count, packet.headroom)
        #expect(count == 6 && headroom == 8)
        try packet.shift(by: 2)
        #expect(packet.copyBytes() == [3, 4, 5, 6])
        try packet.prepend(2)
        #expect(packet.copyBytes() == [1, 2, 3, 4, 5, 6])
        try packet.prepend(3)
        try packet.write(UInt16(0xabcd), at: 0)
        #expect(try packet.read(UInt16.self, at: 0) == 0xabcd)
        try packet.truncate(to: 4)
        let truncated = packet.count
        #expect(truncated == 4)
        try packet.extend(by: 2)
        let extended = packet.count
        #expect(extended == 6)
        try packet.move(toOffset: 8, count: 2)
        #expect(packet.copyBytes() == [1, 2])
    }

    @Test func boundsAreErrorsNotTraps() {
        var packet = Packet(copying: [1, 2, 3], headroom: 4)
        #expect(throws: BitsError.truncated(offset: 4, length: 0, available: 3)) {
            try packet.shift(by: 4)
        }
        #expect(throws: BitsError.noHeadroom(needed: 5, available: 4)) { try packet.prepend(5) }
        #expect(throws: BitsError.truncated(offset: 2, length: 2, available: 3)) {
            try packet.read(UInt16.self, at: 2)
        }
        #expect(throws: BitsError.noTailroom(needed: 5000, available: Buffer.pageSize - 7)) {
            try packet.extend(by: 5000)
        }
        #expect(throws: BitsError.self) { try packet.move(toOffset: 4090, count: 10) }
        #expect(packet.copyBytes() == [1, 2, 3])
    }

    @Test func fieldsReadAndWriteAsOnBits() throws {
        var packet = Packet(copying: [0x45, 0x00, 0x12, 0x34])
        let ihl = Field<UInt8>.at(byte: 0, bit: 4, bits: 4)
        #expect(try packet.read(ihl) == 5)
        try packet.write(6, to: ihl)
        #expect(packet.copyBytes() == [0x46, 0x00, 0x12, 0x34])
        #expect(try packet.read(Field<UInt16>.at(byte: 2)) == 0x1234)
        #expect(throws: BitsError.self) { try packet.read(Field<UInt32>.at(byte: 2)) }
    }

    @Test func spansBorrowTheBytesInPlace() throws {
        var packet = Packet(copying: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        let total = packet.bytes.withUnsafeBytes { $0.reduce(0) { $0 + Int($1) } }
        #expect(total == 45)
        #expect(try packet.bytes.read(UInt32.self, at: 6) == 0x0607_0809)
        #expect(throws: BitsError.truncated(offset: 7, length: 4, available: 10)) {
            try packet.bytes.read(UInt32.self, at: 7)
        }
        let first = packet.bytes[UInt16.self, at: 0]
        let last = packet.bytes[Field<UInt8>.at(byte: 9, bit: 4, bits: 4)]
        #expect(first == 0x0001 && last == 9)
        var writable = packet.mutableBytes
        writable[UInt16.self, at: 2] = 0xbeef
        writable[Field<UInt8>.at(byte: 0, bits: 4)] = 0xf
        #expect(packet.copyBytes()[0..<4] == [0xf0, 1, 0xbe, 0xef])
    }

    @Test func handsOverToBitsAndBackWithoutCopying() throws {
        let bits = Bits([9, 8, 7], headroom: 16)
        let buffer = bits.buffer
        var packet = Packet(bits)
        let (same, offset) = (packet.buffer === buffer, packet.offset)
        #expect(same && offset == 16)
        try packet.prepend(1)
        let back = Bits(packet)
        #expect(back.buffer === buffer && back.offset == 15 && back.count == 4)
    }

    @Test func aPacketHoldsItsPoolBufferUntilItIsDropped() throws {
        let pool = BufferPool(headroom: 64, limit: 1)
        var packet: Packet? = try pool.allocatePacket()
        let headroom = packet?.headroom
        #expect(headroom == 64)
        #expect(pool.freeCount == 0)
        #expect(throws: BitsError.poolExhausted(limit: 1)) { _ = try pool.allocatePacket() }
        packet = nil
        #expect(pool.freeCount == 1)
        let again = try pool.allocatePacket()
        let copy = try again.copy(into: BufferPool(limit: 2))
        let distinct = copy.buffer !== again.buffer
        #expect(distinct)
    }

    @Test func batchesHandOutWhatTheyHoldOnce() throws {
        let pool = BufferPool(limit: 4)
        var batch = PacketBatch(capacity: 3)
        let empty = batch.isEmpty
        #expect(empty)
        for value in 1...3 {
            var packet = try pool.allocatePacket()
            try packet.append(contentsOf: [UInt8(value)])
            batch.append(packet)
        }
        let (full, count) = (batch.isFull, batch.count)
        #expect(full && count == 3 && pool.freeCount == 0)
        let second = batch.withElement(at: 1) { $0.copyBytes() }
        #expect(second == [2])
        let taken = batch.take(at: 1)
        let takenBytes = taken?.copyBytes()
        #expect(takenBytes == [2])
        let again = batch.take(at: 1) == nil
        #expect(again)
        let gone = batch.withElement(at: 1) { $0.count }
        #expect(gone == nil)
        _ = batch.withMutableElement(at: 2) { try? $0.prepend(1) }
        let grown = batch.withElement(at: 2) { $0.count }
        #expect(grown == 2)
        batch.removeAll()
        let cleared = batch.isEmpty
        #expect(cleared && pool.freeCount == 2)
        _ = consume taken
        #expect(pool.freeCount == 3)
    }
}
