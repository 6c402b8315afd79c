import OasisDNS
import Testing

/// The zone disk's header: laid out and read back, and refused field by field when a
/// stranger's disk lies.
@Suite struct ZoneDiskTests {
    let zones: [(origin: String, text: [UInt8])] = [
        ("example.com.", Array("@ 3600 IN SOA ns hostmaster 1 2 3 4 5\n".utf8)),
        ("example.org.", [UInt8](repeating: 0x3b, count: 5000)),
    ]

    @Test func anImageIsReadBack() throws {
        let image = try ZoneDisk.image(of: zones)
        #expect(image.count == 4096 + 4096 + 8192)
        #expect(Array(image[0..<8]) == Array("OASISZN1".utf8))
        let extents = try ZoneDisk.parseHeader(image, capacity: UInt64(image.count))
        #expect(extents.map(\.origin) == ["example.com.", "example.org."])
        #expect(extents.map(\.offset) == [4096, 8192])
        for (extent, zone) in zip(extents, zones) {
            let start = Int(extent.offset)
            let text = Array(image[start..<start + extent.length])
            #expect(text == zone.text)
            try ZoneDisk.verify(text, of: extent)
        }
    }

    @Test func liesAreRefused() throws {
        let image = try ZoneDisk.image(of: zones)
        let capacity = UInt64(image.count)
        func expectRefused(_ change: (inout [UInt8]) -> Void, _ error: ZoneDiskError) {
            var bytes = image
            change(&bytes)
            #expect(throws: error) { try ZoneDisk.parseHeader(bytes, capacity: capacity) }
        }
        expectRefused({ $0[0] = 0x58 }, .noHeader)
        expectRefused({ $0[11] = 0 }, .badCount(0))
        expectRefused({ $0[10] = 1 }, .badCount(258))
        // The first zone's offset inside the header, then past the end.
        expectRefused(
            { $0[22] = 0x02 },
            .outOfRange(origin: "example.com.", offset: 512, length: 38, capacity: capacity))
        expectRefused(
            { $0[19] = 0x01 },
            .outOfRange(
                origin: "example.com.", offset: 1 << 32 | 4096, length: 38, capacity: capacity))
        // A zone longer than the largest.
        expectRefused(
            { $0[24] = 0x7f },
            .badLength(origin: "example.com.", length: 0x7f00_0026))
        // An origin running off the header's page.
        expectRefused(
            { $0[60] = 0xff }, .badOrigin(String(decoding: image[61..<316], as: UTF8.self)))
        var text = Array(image[4096..<4096 + 38])
        text[0] = 0x40 ^ 1
        let extents = try ZoneDisk.parseHeader(image, capacity: capacity)
        #expect(throws: ZoneDiskError.digestMismatch(origin: "example.com.")) {
            try ZoneDisk.verify(text, of: extents[0])
        }
        #expect(throws: ZoneDiskError.noHeader) { try ZoneDisk.parseHeader([UInt8](), capacity: 0) }
    }
}

@Suite struct ZoneDiskHeaderRefusalTests {
    let zone: (origin: String, text: [UInt8]) = (
        "example.com.", Array("@ 3600 IN SOA ns. h. 1 2 3 4 5\n".utf8)
    )

    @Test func aNonzeroReservedWordIsRefused() throws {
        var image = try ZoneDisk.image(of: [zone])
        image[15] = 1  // the reserved u32 at 12, big-endian
        #expect(throws: ZoneDiskError.badReserved(1)) {
            _ = try ZoneDisk.parseHeader(image, capacity: UInt64(image.count))
        }
    }

    @Test func aZoneTwiceInTheHeaderIsRefused() throws {
        let image = try ZoneDisk.image(of: [zone, zone])
        #expect(throws: ZoneDiskError.duplicateOrigin("example.com.")) {
            _ = try ZoneDisk.parseHeader(image, capacity: UInt64(image.count))
        }
        #expect(
            ZoneDiskError.duplicateOrigin("example.com.").description
                == "zone example.com. is in the header twice")
    }

    @Test func anOriginOfControlBytesIsEscaped() {
        #expect(ZoneDiskError.badOrigin("a\u{1}").description == "bad zone origin 'a\\x01'")
    }
}
