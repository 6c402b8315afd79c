/// SplitMix64 (Steele, Lea and Flood, 2014): a small seeded generator, so that a
/// randomised test does the same thing on every run and a failure names the seed that
/// reproduces it.
///
/// ```swift
/// var random = SplitMix64(seed: 42)
/// let port = UInt16.random(in: 1...65535, using: &random)
/// ```
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The state; the next value is a function of it alone.
    public var state: UInt64

    /// A generator whose first state is `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`, or 0 when `bound` is not positive.
    public mutating func below(_ bound: Int) -> Int {
        bound <= 0 ? 0 : Int(next() % UInt64(bound))
    }
}
