import Testing

@testable import OasisBits

@Suite("Bits views: slice, shift, split, prepend, extend")
struct BitsViewTests {
    @Test func copiesBytesIntoAFreshBuffer() {
        let bits = Bits([1, 2, 3, 4, 5])
        #expect(bits.count == 5)
        #expect(bits.offset == 0)
        #expect(bits.copyBytes() == [1, 2, 3, 4, 5])
        #expect(bits.buffer.capacity == Buffer.pageSize)
        #expect(Int(bitPattern: bits.buffer.baseAddress) % Buffer.pageSize == 0)
        #expect(bits.tailroom == Buffer.pageSize - 5)
    }

    @Test func copiesANonContiguousSequenceWithHeadroom() {
        let bits = Bits((1...3).lazy.map { UInt8($0 * 10) }, headroom: 16)
        #expect(bits.copyBytes() == [10, 20, 30])
        #expect(bits.headroom == 16)
    }

    @Test func largeInputsSpanWholePages() {
        let bits = Bits([UInt8](repeating: 7, count: 5000))
        #expect(bits.buffer.pageCount == 2)
        #expect(bits.buffer.capacity == 2 * Buffer.pageSize)
        #expect(bits.count == 5000)
    }

    @Test func sliceSharesTheBuffer() throws {
        var bits = Bits([0, 1, 2, 3, 4, 5, 6, 7])
        let middle = try bits.slice(from: 2, length: 3)
        #expect(middle.copyBytes() == [2, 3, 4])
        #expect(middle.buffer === bits.buffer)
        #expect(middle.offset == 2)
        try bits.write(UInt8(0xaa), at: 3)
        #expect(middle.copyBytes() == [2, 0xaa, 4])
    }

    @Test func sliceOutOfRangeIsAnError() {
        let bits = Bits([0, 1, 2, 3])
        #expect(throws: BitsError.truncated(offset: 2, length: 3, available: 4)) {
            try bits.slice(from: 2, length: 3)
        }
        #expect(throws: BitsError.truncated(offset: -1, length: 1, available: 4)) {
            try bits.slice(from: -1, length: 1)
        }
        #expect(throws: BitsError.truncated(offset: 1, length: -1, available: 4)) {
            try bits.slice(from: 1, length: -1)
        }
        #expect(throws: BitsError.truncated(offset: Int.max, length: Int.max, available: 4)) {
            try bits.slice(from: Int.max, length: Int.max)
        }
    }

    @Test func shiftDropsAPrefix() throws {
        var bits = Bits([0, 1, 2, 3, 4])
        try bits.shift(by: 2)
        #expect(bits.copyBytes() == [2, 3, 4])
        #expect(bits.offset == 2)
        #expect(bits.headroom == 2)
        try bits.shift(by: 3)
        #expect(bits.isEmpty)
        #expect(throws: BitsError.truncated(offset: 1, length: 0, available: 0)) {
            try bits.shift(by: 1)
        }
        let shifted = try Bits([9, 8, 7]).shifted(by: 1)
        #expect(shifted.copyBytes() == [8, 7])
    }

    @Test func splitGivesBothHalves() throws {
        let bits = Bits([0, 1, 2, 3, 4])
        let (head, tail) = try bits.split(at: 2)
        #expect(head.copyBytes() == [0, 1])
        #expect(tail.copyBytes() == [2, 3, 4])
        let (all, none) = try bits.split(at: 5)
        #expect(all.count == 5 && none.isEmpty)
        #expect(throws: BitsError.truncated(offset: 6, length: 0, available: 5)) {
            try bits.split(at: 6)
        }
    }

    @Test func prependMovesIntoHeadroomInPlace() throws {
        var packet = Bits([0xde, 0xad], headroom: 4)
        let payloadAddress = packet.withUnsafeBytes { $0.baseAddress }
        try packet.prepend(2)
        try packet.write(UInt16(0x0800), at: 0)
        #expect(packet.copyBytes() == [0x08, 0x00, 0xde, 0xad])
        #expect(packet.headroom == 2)
        // Same memory: nothing was copied.
        let newStart = packet.withUnsafeBytes { $0.baseAddress }
        #expect(newStart.map { $0 + 2 } == payloadAddress)
        #expect(throws: BitsError.noHeadroom(needed: 3, available: 2)) {
            try packet.prepend(3)
        }
        #expect(throws: BitsError.noHeadroom(needed: -1, available: 2)) {
            try packet.prepend(-1)
        }
    }

    @Test func extendAndAppendWithinCapacity() throws {
        var bits = Bits([1])
        try bits.extend(by: 2)
        #expect(bits.count == 3)
        try bits.append(contentsOf: [4, 5])
        try bits.append(contentsOf: Bits([6]))
        #expect(bits.copyBytes()[3...] == [4, 5, 6])
        let room = bits.tailroom
        #expect(throws: BitsError.noTailroom(needed: room + 1, available: room)) {
            try bits.extend(by: room + 1)
        }
        try bits.extend(by: room)
        #expect(bits.tailroom == 0)
        #expect(throws: BitsError.noTailroom(needed: 1, available: 0)) {
            try bits.append(contentsOf: [1])
        }
    }

    @Test func truncateAndPrefix() throws {
        var bits = Bits([1, 2, 3, 4])
        #expect(try bits.prefix(2).copyBytes() == [1, 2])
        try bits.truncate(to: 3)
        #expect(bits.copyBytes() == [1, 2, 3])
        #expect(throws: BitsError.truncated(offset: 0, length: 4, available: 3)) {
            try bits.truncate(to: 4)
        }
    }

    @Test func viewOverABufferIsChecked() throws {
        let buffer = Buffer()
        let whole = try Bits(buffer: buffer, count: buffer.capacity)
        #expect(whole.count == 4096 && whole.tailroom == 0)
        #expect(throws: BitsError.truncated(offset: 4000, length: 97, available: 4096)) {
            try Bits(buffer: buffer, offset: 4000, count: 97)
        }
    }

    @Test func tailroomFillExtendsByWhatWasWritten() throws {
        var bits = Bits([], headroom: 10)
        bits.withUnsafeMutableTailroom { room in
            room[0] = 0x45
            room[1] = 0x00
            return 2
        }
        #expect(bits.copyBytes() == [0x45, 0x00])
    }

    @Test func bufferCountsAllocations() {
        let before = Buffer.allocationCount
        _ = Buffer(pageCount: 1)
        #expect(Buffer.allocationCount >= before + 1)
    }

    @Test func describesItself() {
        #expect(Bits([0x01, 0xab]).description == "Bits(offset: 0, count: 2, bytes: [01 ab])")
    }
}
