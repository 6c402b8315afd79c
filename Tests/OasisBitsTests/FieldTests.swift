import Testing

@testable import OasisBits

/// The first 8 bytes of an IPv4 header, for sub-byte fields.
private enum IPv4Start {
    static let version = Field<UInt8>.first(bits: 4)
    static let ihl = Field<UInt8>.after(version, bits: 4)
    static let dscp = Field<UInt8>.after(ihl, bits: 6)
    static let ecn = Field<UInt8>.after(dscp, bits: 2)
    static let totalLength = Field<UInt16>.after(ecn)
    static let identification = Field<UInt16>.after(totalLength)
    static let flags = Field<UInt8>.after(identification, bits: 3)
    static let fragmentOffset = Field<UInt16>.after(flags, bits: 13)
}

@Suite("Bit fields")
struct FieldTests {
    @Test func geometry() {
        #expect(IPv4Start.ihl.bitOffset == 4 && IPv4Start.ihl.bitWidth == 4)
        #expect(IPv4Start.flags.bitOffset == 48)
        #expect(IPv4Start.fragmentOffset.bitOffset == 51)
        #expect(IPv4Start.fragmentOffset.end == 8)
        #expect(IPv4Start.fragmentOffset.byteOffset == 6)
        #expect(IPv4Start.fragmentOffset.byteSpan == 2)
        let padded = Field<UInt16>.after(IPv4Start.version, skippingBytes: 2)
        #expect(padded.bitOffset == 20)
        #expect(Field<UInt32>.at(byte: 3, bit: 2, bits: 5).bitOffset == 26)
    }

    @Test func readsIPv4SubByteFields() throws {
        // 45 00 00 73 00 00 40 00: version 4, IHL 5, length 115, DF set, offset 0.
        let bits = Bits([0x45, 0xb9, 0x00, 0x73, 0x12, 0x34, 0x5f, 0xff])
        #expect(try bits.read(IPv4Start.version) == 4)
        #expect(try bits.read(IPv4Start.ihl) == 5)
        #expect(try bits.read(IPv4Start.dscp) == 0x2e)
        #expect(try bits.read(IPv4Start.ecn) == 1)
        #expect(try bits.read(IPv4Start.totalLength) == 0x73)
        #expect(try bits.read(IPv4Start.identification) == 0x1234)
        #expect(try bits.read(IPv4Start.flags) == 0b010)
        #expect(try bits.read(IPv4Start.fragmentOffset) == 0x1fff)
    }

    @Test func thirteenBitsAtBitThreeAcrossBytes() throws {
        let field = Field<UInt16>(bitOffset: 3, bitWidth: 13)
        // 0b101_10110_01101001: the low 13 bits of the first two bytes.
        var bits = Bits([0b1011_0110, 0b0110_1001])
        #expect(try bits.read(field) == 0b1_0110_0110_1001)
        try bits.write(0b0_1111_0000_1111, to: field)
        #expect(bits.copyBytes() == [0b1010_1111, 0b0000_1111])  // top 3 bits kept
    }

    @Test func writesLeaveNeighboursAlone() throws {
        var bits = Bits([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])
        try bits.write(6, to: IPv4Start.version)
        try bits.write(15, to: IPv4Start.ihl)
        try bits.write(0b111, to: IPv4Start.flags)
        try bits.write(0x0abc, to: IPv4Start.fragmentOffset)
        #expect(bits.copyBytes() == [0x6f, 0, 0, 0, 0, 0, 0xea, 0xbc])
        try bits.write(0, to: IPv4Start.flags)
        #expect(try bits.read(IPv4Start.fragmentOffset) == 0x0abc)
        #expect(try bits.read(IPv4Start.ihl) == 15)
    }

    @Test func writeKeepsOnlyTheLowBits() throws {
        var bits = Bits([0x00])
        try bits.write(0xff, to: IPv4Start.version)
        #expect(bits.copyBytes() == [0xf0])
    }

    @Test func signedFieldsSignExtend() throws {
        let field = Field<Int8>(bitOffset: 4, bitWidth: 4)
        var bits = Bits([0x0e])
        #expect(try bits.read(field) == -2)
        try bits.write(-1, to: field)
        #expect(bits.copyBytes() == [0x0f])
        #expect(try Bits([0xff, 0xfe]).read(Field<Int16>.first()) == -2)
    }

    @Test func littleEndianFields() throws {
        let whole = Field<UInt32>.at(byte: 1, byteOrder: .littleEndian)
        let threeBytes = Field<UInt32>.at(byte: 1, bits: 24, byteOrder: .littleEndian)
        var bits = Bits([0x00, 0x01, 0x02, 0x03, 0x04, 0x05])
        #expect(try bits.read(whole) == 0x0403_0201)
        #expect(try bits.read(threeBytes) == 0x03_0201)
        try bits.write(0xaabbcc, to: threeBytes)
        #expect(bits.copyBytes() == [0x00, 0xcc, 0xbb, 0xaa, 0x04, 0x05])
    }

    @Test func shortInputForAFieldIsATypedError() {
        let bits = Bits([0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40])
        // The fragment offset touches bytes 6 and 7; only 7 bytes are there.
        #expect(throws: BitsError.truncated(offset: 6, length: 2, available: 7)) {
            try bits.read(IPv4Start.fragmentOffset)
        }
        #expect(throws: BitsError.truncated(offset: 0, length: 1, available: 0)) {
            try Bits([]).read(IPv4Start.version)
        }
    }

    /// Every width and offset, on both the 64-bit-load and the byte-at-a-time paths
    /// (fields near the end of the view take the latter), against a bit-by-bit reference.
    @Test func randomFieldsMatchTheReference() throws {
        var generator = SplitMix64(seed: 0x0a51_5b17)
        for length in [9, 16] {
            for bitOffset in 0..<(length * 8) {
                let maxWidth = min(64, length * 8 - bitOffset)
                guard maxWidth >= 1 else { continue }
                for width in 1...maxWidth {
                    let bytes = [UInt8].random(count: length, using: &generator)
                    var bits = Bits(bytes)
                    let field = Field<UInt64>(bitOffset: bitOffset, bitWidth: width)
                    let expected = referenceField(bytes, bitOffset: bitOffset, width: width)
                    #expect(try bits.read(field) == expected)

                    let value = UInt64.random(in: .min ... .max, using: &generator)
                    try bits.write(value, to: field)
                    let written = bits.copyBytes()
                    #expect(
                        referenceField(written, bitOffset: bitOffset, width: width)
                            == value & (width == 64 ? .max : (1 << width) - 1))
                    // Bits outside the field are untouched.
                    for index in 0..<(length * 8)
                    where index < bitOffset || index >= bitOffset + width {
                        if referenceBit(written, index) != referenceBit(bytes, index) {
                            Issue.record("bit \(index) changed writing \(width)@\(bitOffset)")
                        }
                    }
                }
            }
        }
    }
}
