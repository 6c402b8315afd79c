@testable import OasisBits

/// A small deterministic generator, so that randomised tests fail the same way twice.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    /// `count` random bytes.
    static func random(count: Int, using generator: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

/// Bit `index` of `bytes`, numbered from the most significant bit of byte 0.
func referenceBit(_ bytes: [UInt8], _ index: Int) -> UInt64 {
    UInt64(bytes[index / 8] >> (7 - UInt8(index % 8))) & 1
}

/// The big-endian field of `width` bits at `bitOffset`, one bit at a time.
func referenceField(_ bytes: [UInt8], bitOffset: Int, width: Int) -> UInt64 {
    var value: UInt64 = 0
    for index in bitOffset..<(bitOffset + width) {
        value = value << 1 | referenceBit(bytes, index)
    }
    return value
}
