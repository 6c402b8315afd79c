import Testing

@testable import OasisBits

/// OpenFlow 1.0 `ofp_header` (OpenFlow 1.0.0 §5.1): version 0x01, type, length, xid.
enum OpenFlowHeader: HeaderLayout {
    static let version = Field<UInt8>.first()
    static let type = Field<UInt8>.after(version)
    static let length = Field<UInt16>.after(type)
    static let xid = Field<UInt32>.after(length)
    static let size = xid.end
    static let constants: [Constant] = [.init(version, equals: 1)]
}

/// The fixed part of an IPv4 header (RFC 791 §3.1), for sub-byte fields in a layout.
enum IPv4Fixed: HeaderLayout {
    static let version = Field<UInt8>.first(bits: 4)
    static let ihl = Field<UInt8>.after(version, bits: 4)
    static let typeOfService = Field<UInt8>.after(ihl)
    static let totalLength = Field<UInt16>.after(typeOfService)
    static let identification = Field<UInt16>.after(totalLength)
    static let flags = Field<UInt8>.after(identification, bits: 3)
    static let fragmentOffset = Field<UInt16>.after(flags, bits: 13)
    static let timeToLive = Field<UInt8>.after(fragmentOffset)
    static let `protocol` = Field<UInt8>.after(timeToLive)
    static let checksum = Field<UInt16>.after(`protocol`)
    static let source = Field<UInt32>.after(checksum)
    static let destination = Field<UInt32>.after(source)
    static let size = destination.end
    static let constants: [Constant] = [.init(version, equals: 4)]
}

/// A layout without constants.
enum Pair: HeaderLayout {
    static let first = Field<UInt8>.first()
    static let second = Field<UInt8>.after(first)
    static let size = second.end
}

@Suite("Header layouts")
struct HeaderLayoutTests {
    let hello: [UInt8] = [0x01, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x2a]

    @Test func openFlowHeaderIsEightBytes() {
        #expect(OpenFlowHeader.size == 8)
        #expect(IPv4Fixed.size == 20)
        #expect(Pair.constants.isEmpty)
    }

    @Test func parsesOpenFlowHello() throws {
        let bits = Bits(hello + [0xff])
        let h = try bits.header(OpenFlowHeader.self)
        #expect(h[OpenFlowHeader.version] == 1)
        #expect(h[OpenFlowHeader.type] == 0)  // OFPT_HELLO
        #expect(h[OpenFlowHeader.length] == 8)
        #expect(h[OpenFlowHeader.xid] == 42)
        #expect(h.bits.count == 9)
        #expect(h.payload.copyBytes() == [0xff])
    }

    @Test func rejectsVersionFour() {
        var bytes = hello
        bytes[0] = 0x04
        #expect(
            throws: BitsError.constantMismatch(bitOffset: 0, bitWidth: 8, expected: 1, found: 4)
        ) {
            try Bits(bytes).header(OpenFlowHeader.self)
        }
    }

    @Test func rejectsShortInputOfEveryLength() {
        for length in 0..<8 {
            #expect(throws: BitsError.truncated(offset: 0, length: 8, available: length)) {
                try Bits(hello.prefix(length)).header(OpenFlowHeader.self)
            }
        }
    }

    @Test func writesHelloIntoHeadroom() throws {
        var message = Bits([], headroom: 64)
        var h = try message.prependHeader(OpenFlowHeader.self)
        h[OpenFlowHeader.type] = 0
        h[OpenFlowHeader.length] = UInt16(h.bits.count)
        h[OpenFlowHeader.xid] = 42
        #expect(message.copyBytes() == hello)
        #expect(message.headroom == 56)
        // Round trip.
        let parsed = try message.header(OpenFlowHeader.self)
        #expect(parsed[OpenFlowHeader.xid] == 42)
        #expect(parsed[OpenFlowHeader.length] == 8)
    }

    @Test func prependZeroesOldHeadroomAndWritesConstants() throws {
        var echo = Bits([0xaa, 0xbb], headroom: 8)
        // Dirty the headroom, as a recycled buffer would be.
        try echo.prepend(8)
        try echo.write(UInt64.max, at: 0)
        try echo.shift(by: 8)
        var h = try echo.prependHeader(OpenFlowHeader.self)
        h[OpenFlowHeader.type] = 2  // OFPT_ECHO_REQUEST
        h[OpenFlowHeader.length] = UInt16(h.bits.count)
        #expect(echo.copyBytes() == [0x01, 0x02, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xbb])
        #expect(h.payload.copyBytes() == [0xaa, 0xbb])
    }

    @Test func prependWithoutHeadroomIsAnError() {
        var bits = Bits([1, 2, 3], headroom: 4)
        #expect(throws: BitsError.noHeadroom(needed: 8, available: 4)) {
            try bits.prependHeader(OpenFlowHeader.self)
        }
        #expect(bits.count == 3)
    }

    @Test func appendsHeadersFrontToBack() throws {
        var packet = Bits([])
        var first = try packet.appendHeader(Pair.self)
        first[Pair.first] = 1
        first[Pair.second] = 2
        var second = try packet.appendHeader(OpenFlowHeader.self)
        second[OpenFlowHeader.xid] = 0x0102_0304
        #expect(packet.copyBytes() == [1, 2, 1, 0, 0, 0, 1, 2, 3, 4])
    }

    @Test func parsesAndEditsAnIPv4Header() throws {
        let bytes: [UInt8] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ]
        let bits = Bits(bytes)
        var h = try bits.header(IPv4Fixed.self)
        #expect(h[IPv4Fixed.ihl] == 5)
        #expect(h[IPv4Fixed.totalLength] == 0x73)
        #expect(h[IPv4Fixed.flags] == 0b010)  // don't fragment
        #expect(h[IPv4Fixed.fragmentOffset] == 0)
        #expect(h[IPv4Fixed.timeToLive] == 64)
        #expect(h[IPv4Fixed.protocol] == 17)
        #expect(h[IPv4Fixed.checksum] == 0xb861)
        #expect(h[IPv4Fixed.source] == 0xc0a8_0001)
        #expect(h[IPv4Fixed.destination] == 0xc0a8_00c7)
        h[IPv4Fixed.fragmentOffset] = 185
        #expect(h[IPv4Fixed.flags] == 0b010)
        #expect(try bits.read(UInt16.self, at: 6) == 0x4000 | 185)
        #expect(
            throws: BitsError.constantMismatch(bitOffset: 0, bitWidth: 4, expected: 4, found: 6)
        ) {
            try Bits([0x65] + bytes.dropFirst()).header(IPv4Fixed.self)
        }
    }
}
