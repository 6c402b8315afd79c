// TCP sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 §3.4).

/// A TCP sequence number. Arithmetic wraps; comparisons are modulo 2^32, valid for
/// numbers less than 2^31 apart (RFC 9293 §3.4, RFC 1982's serial numbers).
///
/// ```swift
/// let una = SequenceNumber(0xffff_fff0)
/// let nxt = una + 32                        // wrapped: 0x0000_0010
/// nxt > una                                 // true
/// nxt - una                                 // 32
/// ```
@frozen
public struct SequenceNumber: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt32

    @inlinable @inline(__always)
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// `self` advanced by `count` bytes (wrapping).
    @inlinable @inline(__always)
    public static func + (lhs: SequenceNumber, rhs: Int) -> SequenceNumber {
        SequenceNumber(lhs.rawValue &+ UInt32(truncatingIfNeeded: rhs))
    }

    @inlinable @inline(__always)
    public static func - (lhs: SequenceNumber, rhs: Int) -> SequenceNumber {
        SequenceNumber(lhs.rawValue &- UInt32(truncatingIfNeeded: rhs))
    }

    @inlinable @inline(__always)
    public static func += (lhs: inout SequenceNumber, rhs: Int) { lhs = lhs + rhs }

    /// The signed distance from `rhs` to `lhs` (positive when `lhs` is after).
    @inlinable @inline(__always)
    public static func - (lhs: SequenceNumber, rhs: SequenceNumber) -> Int {
        Int(Int32(bitPattern: lhs.rawValue &- rhs.rawValue))
    }

    @inlinable @inline(__always)
    public static func < (lhs: SequenceNumber, rhs: SequenceNumber) -> Bool {
        Int32(bitPattern: lhs.rawValue &- rhs.rawValue) < 0
    }

    /// The later of two numbers (modulo 2^32).
    @inlinable @inline(__always)
    public static func latest(_ a: SequenceNumber, _ b: SequenceNumber) -> SequenceNumber {
        a < b ? b : a
    }

    /// The earlier of two numbers (modulo 2^32).
    @inlinable @inline(__always)
    public static func earliest(_ a: SequenceNumber, _ b: SequenceNumber) -> SequenceNumber {
        a < b ? a : b
    }

    /// Whether `self` lies in `[start, end)` (modulo 2^32).
    @inlinable @inline(__always)
    public func isIn(_ start: SequenceNumber, _ end: SequenceNumber) -> Bool {
        rawValue &- start.rawValue < end.rawValue &- start.rawValue
    }

    public var description: String { String(rawValue) }
}
