import Testing

@testable import OasisBits

/// RFC 1071 by the book: 16-bit big-endian words, a zero byte after an odd last byte,
/// end-around carry after every addition.
private func referenceSum(_ bytes: some Collection<UInt8>) -> UInt16 {
    var sum: UInt32 = 0
    var iterator = bytes.makeIterator()
    while let high = iterator.next() {
        let low = iterator.next() ?? 0
        sum += UInt32(high) << 8 | UInt32(low)
        sum = (sum & 0xffff) + (sum >> 16)
    }
    return UInt16(sum)
}

@Suite("Internet checksum")
struct InternetChecksumTests {
    let ipv4Header: [UInt8] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
        0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ]

    @Test func rfc1071Example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let bits = Bits([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])
        var sum = InternetChecksum()
        sum.add(bits)
        #expect(sum.sum == 0xddf2)
        #expect(sum.checksum == 0x220d)
        #expect(InternetChecksum.checksum(of: bits) == 0x220d)
    }

    @Test func validIPv4Header() throws {
        #expect(InternetChecksum.checksum(of: Bits(ipv4Header)) == 0)
        var zeroed = Bits(ipv4Header)
        try zeroed.write(UInt16(0), at: 10)
        #expect(InternetChecksum.checksum(of: zeroed) == 0xb861)
    }

    @Test func oddLengths() {
        #expect(InternetChecksum.checksum(of: Bits([])) == 0xffff)
        #expect(InternetChecksum.checksum(of: Bits([0x01])) == ~UInt16(0x0100))
        #expect(InternetChecksum.checksum(of: Bits([0x01, 0x02, 0x03])) == ~UInt16(0x0402))
        let bytes: [UInt8] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22, 0x33]
        #expect(InternetChecksum.checksum(of: Bits(bytes)) == ~referenceSum(bytes))
    }

    @Test func oddChunksContinueEachOther() {
        var generator = SplitMix64(seed: 1071)
        for _ in 0..<200 {
            let bytes = [UInt8].random(
                count: Int.random(in: 0...64, using: &generator), using: &generator)
            let cut = Int.random(in: 0...bytes.count, using: &generator)
            var sum = InternetChecksum()
            sum.add(Bits(bytes[..<cut]))
            sum.add(Bits(bytes[cut...]))
            #expect(sum.sum == referenceSum(bytes))
        }
    }

    /// The 64-bit sum equals the byte-by-byte reference for every length 0...300 at
    /// every start alignment 0..<8.
    @Test func fastSumMatchesReference() {
        var generator = SplitMix64(seed: 0x1071)
        let backing = Bits([UInt8].random(count: 320, using: &generator))
        let all = backing.copyBytes()
        for alignment in 0..<8 {
            for length in 0...300 {
                let view = try! backing.slice(from: alignment, length: length)
                var sum = InternetChecksum()
                sum.add(view)
                let expected = referenceSum(all[alignment..<(alignment + length)])
                if sum.sum != expected {
                    Issue.record(
                        "length \(length) alignment \(alignment): \(sum.sum) != \(expected)")
                }
            }
        }
        // Carries: all ones, long.
        let ones = Bits([UInt8](repeating: 0xff, count: 4001))
        var sum = InternetChecksum()
        sum.add(ones)
        #expect(sum.sum == referenceSum([UInt8](repeating: 0xff, count: 4001)))
    }

    @Test func pseudoHeaderForUDP() throws {
        // A UDP datagram 192.168.0.1:1234 -> 192.168.0.199:53 with payload "ab".
        var datagram = Bits([0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 0x61, 0x62])
        var sum = InternetChecksum()
        sum.addPseudoHeader(
            source: 0xc0a8_0001, destination: 0xc0a8_00c7, protocol: 17, length: 10)
        sum.add(datagram)
        let pseudo: [UInt8] = [0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7, 0x00, 17, 0x00, 10]
        #expect(sum.checksum == ~referenceSum(pseudo + datagram.copyBytes()))
        try datagram.write(sum.checksum, at: 6)
        var verify = InternetChecksum()
        verify.addPseudoHeader(
            source: 0xc0a8_0001, destination: 0xc0a8_00c7, protocol: 17, length: 10)
        verify.add(datagram)
        #expect(verify.checksum == 0)
    }

    @Test func incrementalUpdateOfTheIPv4TTL() throws {
        var header = Bits(ipv4Header)
        let old = try header.read(UInt16.self, at: 8)  // TTL 0x40, protocol 0x11
        let new = old - 0x0100  // TTL decremented
        try header.write(new, at: 8)
        let updated = InternetChecksum.update(0xb861, replacing: old, with: new)
        try header.write(updated, at: 10)
        #expect(InternetChecksum.checksum(of: header) == 0)
        #expect(updated == 0xb961)
    }

    /// RFC 1624: the incrementally updated checksum equals the one recomputed from
    /// scratch, for 16-bit and 32-bit changes anywhere in random data.
    @Test func incrementalUpdateEqualsRecomputation() throws {
        var generator = SplitMix64(seed: 1624)
        for round in 0..<2000 {
            let wordCount = Int.random(in: 4...40, using: &generator)
            var bits = Bits([UInt8].random(count: 2 * wordCount, using: &generator))
            if round % 50 == 0 { try bits.write(UInt32(0), at: 0) }  // zeros reach -0 edges
            let checksum = InternetChecksum.checksum(of: bits)
            let wordIndex = Int.random(in: 0..<(wordCount - 1), using: &generator)
            if round.isMultiple(of: 2) {
                let old = try bits.read(UInt16.self, at: 2 * wordIndex)
                let new = round % 7 == 0 ? 0 : UInt16.random(in: .min ... .max, using: &generator)
                try bits.write(new, at: 2 * wordIndex)
                let updated = InternetChecksum.update(checksum, replacing: old, with: new)
                #expect(updated == InternetChecksum.checksum(of: bits))
            } else {
                let old = try bits.read(UInt32.self, at: 2 * wordIndex)
                let new = UInt32.random(in: .min ... .max, using: &generator)
                try bits.write(new, at: 2 * wordIndex)
                let updated = InternetChecksum.update(checksum, replacing: old, with: new)
                #expect(updated == InternetChecksum.checksum(of: bits))
            }
        }
    }
}
