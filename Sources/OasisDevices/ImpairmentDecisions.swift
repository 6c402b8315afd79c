// The random choices an `ImpairedDevice` makes, apart from the frames they are made
// for: seeded, so a test that fails names the seed that makes it fail again.

/// xoshiro256** (Blackman and Vigna, 2018), seeded through SplitMix64: a small, fast
/// generator whose sequence depends on the seed alone, on every machine and toolchain
/// (the standard library's `random(in:using:)` may change how it draws; this does not).
///
/// ```swift
/// var random = ImpairmentRandom(seed: 42)
/// let roll = random.next()
/// let byte = random.below(1500)        // 0..<1500
/// ```
public struct ImpairmentRandom: RandomNumberGenerator, Hashable, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// A generator whose state is four SplitMix64 outputs from `seed` (never all zero).
    public init(seed: UInt64) {
        var state = seed
        func splitMix() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        s0 = splitMix()
        s1 = splitMix()
        s2 = splitMix()
        s3 = splitMix()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    public mutating func next() -> UInt64 {
        let result = (s1 &* 5).rotatedLeft(by: 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3.rotatedLeft(by: 45)
        return result
    }

    /// A number in `0..<bound` (Lemire's multiply-and-shift; the bias is below 2⁻³²
    /// for the bounds used here), or 0 when `bound` is not positive.
    public mutating func below(_ bound: Int) -> Int {
        guard bound > 0 else { return 0 }
        return Int(next().multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// True with probability `threshold / 2⁶⁴` (see ``Probability/threshold``); draws
    /// nothing for a zero threshold.
    public mutating func chance(_ threshold: UInt64) -> Bool {
        guard threshold != 0 else { return false }
        if threshold == .max { return true }
        return next() < threshold
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(by count: UInt64) -> UInt64 {
        (self << count) | (self >> (64 &- count))
    }
}

extension Probability {
    /// The probability scaled to 2⁶⁴, for ``ImpairmentRandom/chance(_:)``: `.max` for
    /// certainty.
    public var threshold: UInt64 {
        if partsPerBillion >= 1_000_000_000 { return .max }
        // parts · 2⁶⁴ / 10⁹, in 128 bits.
        let (quotient, _) = UInt64(1_000_000_000).dividingFullWidth(
            (high: UInt64(partsPerBillion), low: 0))
        return quotient
    }
}

/// The random decisions for one direction of an ``ImpairedDevice``, made frame by
/// frame. Each kind of decision draws from a generator of its own (seeded from the
/// seed, the direction and the kind), so turning one impairment on or off does not
/// change which frames another one picks; and a kind that is off draws nothing.
///
/// ```swift
/// var decisions = ImpairmentDecisions(configuration.outbound, seed: 42, direction: .outbound)
/// if decisions.loses() { return }
/// ```
public struct ImpairmentDecisions: Hashable, Sendable {
    /// Which way frames go: the direction is part of each generator's seed, so the two
    /// ways of one device do not make the same choices.
    public enum Direction: UInt64, Hashable, Sendable {
        /// Frames the device receives, on their way to the stack.
        case inbound = 1
        /// Frames the stack transmits.
        case outbound = 2
    }

    private let lossThreshold: UInt64
    private let duplicateThreshold: UInt64
    private let corruptThreshold: UInt64
    private let reorderThreshold: UInt64
    private let delayNanoseconds: Int64
    private let jitterNanoseconds: Int64
    private var lossRandom: ImpairmentRandom
    private var duplicateRandom: ImpairmentRandom
    private var corruptRandom: ImpairmentRandom
    private var reorderRandom: ImpairmentRandom
    private var delayRandom: ImpairmentRandom

    /// The decisions for `impairment`, going `direction`, from `seed`.
    public init(_ impairment: Impairment, seed: UInt64, direction: Direction) {
        lossThreshold = impairment.loss.threshold
        duplicateThreshold = impairment.duplicate.threshold
        corruptThreshold = impairment.corrupt.threshold
        reorderThreshold = impairment.reorder.threshold
        delayNanoseconds = nanosecondsClamped(impairment.delay)
        jitterNanoseconds = min(nanosecondsClamped(impairment.jitter), 1 << 40)
        func stream(_ kind: UInt64) -> ImpairmentRandom {
            // A different SplitMix64 starting point per direction and kind.
            ImpairmentRandom(
                seed: seed ^ ((direction.rawValue << 8 | kind) &* 0xd1b5_4a32_d192_ed03))
        }
        lossRandom = stream(1)
        duplicateRandom = stream(2)
        corruptRandom = stream(3)
        reorderRandom = stream(4)
        delayRandom = stream(5)
    }

    /// Whether this frame is lost.
    public mutating func loses() -> Bool { lossRandom.chance(lossThreshold) }

    /// Whether this frame is sent twice.
    public mutating func duplicates() -> Bool { duplicateRandom.chance(duplicateThreshold) }

    /// Whether this frame is held back to be overtaken.
    public mutating func reorders() -> Bool { reorderRandom.chance(reorderThreshold) }

    /// The bit to flip in a frame of `frameLength` bytes, counted from the frame's first
    /// bit (byte `index / 8`, bit `index % 8` from the least significant), always past
    /// the 14-byte Ethernet header; nil when the frame is left alone or has nothing past
    /// its header.
    public mutating func corruptedBit(frameLength: Int) -> Int? {
        guard corruptRandom.chance(corruptThreshold) else { return nil }
        let header = 14
        let byte = header + corruptRandom.below(frameLength - header)
        let bit = corruptRandom.below(8)
        return frameLength > header ? byte * 8 + bit : nil
    }

    /// How long this frame is delayed, in nanoseconds: the delay plus a uniform draw in
    /// `-jitter...+jitter`, never below zero.
    public mutating func delay() -> Int64 {
        guard jitterNanoseconds > 0 else { return delayNanoseconds }
        let spread = delayRandom.below(Int(2 * jitterNanoseconds + 1))
        return max(0, delayNanoseconds + Int64(spread) - jitterNanoseconds)
    }
}
