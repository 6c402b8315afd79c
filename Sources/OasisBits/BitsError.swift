/// What went wrong with a request on a ``Bits`` view, a header or a ``BufferPool``.
///
/// Every failure says what was asked and what was there, so a parser can turn it into
/// the right protocol error (an ICMP parameter problem, a DNS FORMERR, an OpenFlow
/// `OFPT_ERROR`) and count the drop. Nothing in this module traps on bad input; it
/// returns one of these instead.
public enum BitsError: Error, Hashable, Sendable {
    /// A read, write or slice asked for `length` bytes at byte `offset` of a view that
    /// has only `available` bytes. Negative offsets and lengths are reported here too.
    case truncated(offset: Int, length: Int, available: Int)

    /// ``Bits/prepend(_:)`` asked for `needed` bytes before the view, but the buffer has
    /// only `available` bytes of headroom.
    case noHeadroom(needed: Int, available: Int)

    /// ``Bits/extend(by:)`` asked for `needed` bytes after the view, but the buffer has
    /// only `available` bytes of tailroom.
    case noTailroom(needed: Int, available: Int)

    /// A header constant (declared in ``HeaderLayout/constants``) did not hold: the
    /// `bitWidth` bits at `bitOffset` of the header were `found`, not `expected`.
    case constantMismatch(bitOffset: Int, bitWidth: Int, expected: UInt64, found: UInt64)

    /// Every buffer of the pool is in use and the pool has reached its `limit`.
    case poolExhausted(limit: Int)
}
