import Testing

@testable import OasisBits

@Suite("Integers at byte offsets")
struct IntegerTests {
    let bytes: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09]

    @Test func readsBigEndianByDefault() throws {
        let bits = Bits(bytes)
        #expect(try bits.read(UInt8.self, at: 0) == 0x01)
        #expect(try bits.read(UInt16.self, at: 1) == 0x0203)
        #expect(try bits.read(UInt32.self, at: 1) == 0x0203_0405)
        #expect(try bits.read(UInt64.self, at: 1) == 0x0203_0405_0607_0809)
        let inferred: UInt16 = try bits.read(at: 7)
        #expect(inferred == 0x0809)
    }

    @Test func readsLittleEndian() throws {
        let bits = Bits(bytes)
        #expect(try bits.read(UInt16.self, at: 1, byteOrder: .littleEndian) == 0x0302)
        #expect(try bits.read(UInt32.self, at: 0, byteOrder: .littleEndian) == 0x0403_0201)
        #expect(
            try bits.read(UInt64.self, at: 1, byteOrder: .littleEndian) == 0x0908_0706_0504_0302)
    }

    @Test func readsSignedIntegers() throws {
        let bits = Bits([0xff, 0xfe])
        #expect(try bits.read(Int16.self, at: 0) == -2)
        #expect(try bits.read(Int8.self, at: 1) == -2)
    }

    @Test func writesBothOrders() throws {
        var bits = Bits([UInt8](repeating: 0, count: 16))
        try bits.write(UInt16(0xabcd), at: 1)
        try bits.write(UInt32(0x1122_3344), at: 3, byteOrder: .littleEndian)
        try bits.write(UInt64(0x0102_0304_0506_0708), at: 7)
        #expect(
            bits.copyBytes() == [
                0x00, 0xab, 0xcd, 0x44, 0x33, 0x22, 0x11, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                0x07, 0x08, 0x00,
            ])
    }

    @Test func shortInputIsATypedError() throws {
        let bits = Bits([1, 2, 3])
        #expect(throws: BitsError.truncated(offset: 0, length: 4, available: 3)) {
            try bits.read(UInt32.self, at: 0)
        }
        #expect(throws: BitsError.truncated(offset: 2, length: 2, available: 3)) {
            try bits.read(UInt16.self, at: 2)
        }
        #expect(throws: BitsError.truncated(offset: 3, length: 1, available: 3)) {
            try bits.read(UInt8.self, at: 3)
        }
        #expect(throws: BitsError.truncated(offset: -1, length: 1, available: 3)) {
            try bits.read(UInt8.self, at: -1)
        }
        #expect(throws: BitsError.truncated(offset: Int.max, length: 8, available: 3)) {
            try bits.read(UInt64.self, at: Int.max)
        }
        #expect(throws: BitsError.truncated(offset: 0, length: 1, available: 0)) {
            try Bits([]).read(UInt8.self, at: 0)
        }
    }

    @Test func writeOutsideTheViewChangesNothing() throws {
        let backing = Bits([1, 2, 3, 4])
        var view = try backing.prefix(2)
        #expect(throws: BitsError.truncated(offset: 1, length: 2, available: 2)) {
            try view.write(UInt16(0xffff), at: 1)
        }
        #expect(backing.copyBytes() == [1, 2, 3, 4])
    }
}
