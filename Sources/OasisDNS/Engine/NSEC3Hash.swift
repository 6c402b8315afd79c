/// SHA-1 (RFC 3174), for NSEC3 owner hashes (RFC 5155 §5) only: SHA-1 is broken for
/// signatures, and NSEC3 uses it as a hash of names, where that does not matter.
///
/// ```swift
/// let digest = SHA1.digest(Array("abc".utf8))   // a9993e36 4706816a …
/// ```
public enum SHA1 {
    /// The 20-byte digest of `bytes`.
    public static func digest(_ bytes: [UInt8]) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: 20)
        bytes.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                hash(input, into: output.baseAddress!)
            }
        }
        return result
    }

    /// Hashes `message` into the 20 bytes at `digest`, allocating nothing.
    static func hash(_ message: UnsafeRawBufferPointer, into digest: UnsafeMutableRawPointer) {
        var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
            0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0
        )
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { words in
            let w = words.baseAddress!
            func block(_ bytes: UnsafeRawPointer) {
                for index in 0..<16 {
                    w[index] = UInt32(
                        bigEndian: bytes.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self))
                }
                for index in 16..<80 {
                    let value = w[index - 3] ^ w[index - 8] ^ w[index - 14] ^ w[index - 16]
                    w[index] = value << 1 | value >> 31
                }
                var (a, b, c, d, e) = state
                for index in 0..<80 {
                    let f: UInt32
                    let k: UInt32
                    switch index {
                    case 0..<20:
                        f = (b & c) | (~b & d)
                        k = 0x5A82_7999
                    case 20..<40:
                        f = b ^ c ^ d
                        k = 0x6ED9_EBA1
                    case 40..<60:
                        f = (b & c) | (b & d) | (c & d)
                        k = 0x8F1B_BCDC
                    default:
                        f = b ^ c ^ d
                        k = 0xCA62_C1D6
                    }
                    let temporary = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[index]
                    e = d
                    d = c
                    c = b << 30 | b >> 2
                    b = a
                    a = temporary
                }
                state = (
                    state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e
                )
            }
            let whole = message.count / 64
            for index in 0..<whole { block(message.baseAddress! + 64 * index) }
            // The rest, 0x80, zeros and the length in bits: one or two more blocks.
            withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
                tail.initializeMemory(as: UInt8.self, repeating: 0)
                let rest = message.count - 64 * whole
                if rest > 0 {
                    tail.baseAddress!.copyMemory(
                        from: message.baseAddress! + 64 * whole, byteCount: rest)
                }
                tail[rest] = 0x80
                let blocks = rest + 9 <= 64 ? 1 : 2
                let bits = UInt64(message.count) * 8
                tail.storeBytes(
                    of: bits.bigEndian, toByteOffset: 64 * blocks - 8, as: UInt64.self)
                for index in 0..<blocks { block(tail.baseAddress! + 64 * index) }
            }
        }
        for (index, word) in [state.0, state.1, state.2, state.3, state.4].enumerated() {
            digest.storeBytes(of: word.bigEndian, toByteOffset: 4 * index, as: UInt32.self)
        }
    }
}

/// The NSEC3 hash of owner names (RFC 5155 §5): SHA-1, iterated over the name in
/// canonical (lowercase) wire form and the salt.
///
/// ```swift
/// let hash = NSEC3Hash.hash(name: try DomainName(parsing: "example."),
///                           salt: [0xaa, 0xbb, 0xcc, 0xdd], iterations: 12)
/// // base32hex: 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom (RFC 5155 Appendix A)
/// ```
public enum NSEC3Hash {
    /// The hash of `name` with `salt`, `iterations` extra times.
    public static func hash(name: DomainName, salt: [UInt8], iterations: UInt16) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: 20)
        name.lowercased.wire.withUnsafeBytes { wire in
            salt.withUnsafeBytes { salt in
                result.withUnsafeMutableBytes { output in
                    hash(
                        name: wire, salt: salt, iterations: Int(iterations),
                        into: output.baseAddress!)
                }
            }
        }
        return result
    }

    /// IH(salt, name, iterations) into the 20 bytes at `digest`; `name` is in lowercase
    /// wire form. Allocates nothing (stack memory only).
    static func hash(
        name: UnsafeRawBufferPointer, salt: UnsafeRawBufferPointer, iterations: Int,
        into digest: UnsafeMutableRawPointer
    ) {
        withUnsafeTemporaryAllocation(byteCount: 256 + 256, alignment: 8) { buffer in
            let base = buffer.baseAddress!
            // IH(salt, x, 0) = H(x || salt)
            base.copyMemory(from: name.baseAddress!, byteCount: name.count)
            if salt.count > 0 {
                (base + name.count).copyMemory(from: salt.baseAddress!, byteCount: salt.count)
            }
            SHA1.hash(
                UnsafeRawBufferPointer(start: base, count: name.count + salt.count), into: digest)
            // IH(salt, x, k) = H(IH(salt, x, k-1) || salt)
            if salt.count > 0 {
                (base + 20).copyMemory(from: salt.baseAddress!, byteCount: salt.count)
            }
            for _ in 0..<iterations {
                base.copyMemory(from: digest, byteCount: 20)
                SHA1.hash(UnsafeRawBufferPointer(start: base, count: 20 + salt.count), into: digest)
            }
        }
    }
}
