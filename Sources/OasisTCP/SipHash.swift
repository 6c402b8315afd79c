// SipHash-2-4 (Aumasson and Bernstein, 2012): the keyed hash behind initial sequence
// numbers (RFC 6528), SYN cookies and ephemeral ports (RFC 6056), as Linux uses it.

/// SipHash-2-4 over a few 64-bit words, with a 128-bit key.
///
/// ```swift
/// let key = SipHashKey.random()
/// let h = SipHash.hash([addresses, ports], key: key)
/// ```
public struct SipHashKey: Hashable, Sendable {
    public let k0: UInt64
    public let k1: UInt64

    public init(_ k0: UInt64, _ k1: UInt64) {
        self.k0 = k0
        self.k1 = k1
    }

    /// A key from the system's random source.
    public static func random() -> SipHashKey {
        var generator = SystemRandomNumberGenerator()
        return SipHashKey(generator.next(), generator.next())
    }
}

public enum SipHash {
    /// SipHash-2-4 of `words` taken as their little-endian bytes, in order.
    public static func hash(_ words: [UInt64], key: SipHashKey) -> UInt64 {
        // No bytes left over: the final block is the message length in its top byte.
        finish(words: words, tail: UInt64(truncatingIfNeeded: words.count * 8) << 56, key: key)
    }

    /// SipHash-2-4 of arbitrary bytes (for the reference test vectors).
    public static func hash(bytes: [UInt8], key: SipHashKey) -> UInt64 {
        var words: [UInt64] = []
        var index = 0
        while index + 8 <= bytes.count {
            var word: UInt64 = 0
            for byte in 0..<8 { word |= UInt64(bytes[index + byte]) << (8 * byte) }
            words.append(word)
            index += 8
        }
        var tail = UInt64(truncatingIfNeeded: bytes.count) << 56
        for byte in 0..<(bytes.count - index) {
            tail |= UInt64(bytes[index + byte]) << (8 * byte)
        }
        return finish(words: words, tail: tail, key: key)
    }

    private static func finish(words: [UInt64], tail: UInt64, key: SipHashKey) -> UInt64 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ key.k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ key.k1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ key.k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ key.k1
        @inline(__always)
        func round() {
            v0 = v0 &+ v1
            v1 = (v1 << 13) | (v1 >> 51)
            v1 ^= v0
            v0 = (v0 << 32) | (v0 >> 32)
            v2 = v2 &+ v3
            v3 = (v3 << 16) | (v3 >> 48)
            v3 ^= v2
            v0 = v0 &+ v3
            v3 = (v3 << 21) | (v3 >> 43)
            v3 ^= v0
            v2 = v2 &+ v1
            v1 = (v1 << 17) | (v1 >> 47)
            v1 ^= v2
            v2 = (v2 << 32) | (v2 >> 32)
        }
        for word in words + [tail] {
            v3 ^= word
            round()
            round()
            v0 ^= word
        }
        v2 ^= 0xff
        round()
        round()
        round()
        round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}
