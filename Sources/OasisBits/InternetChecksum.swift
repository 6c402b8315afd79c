/// The Internet checksum of RFC 1071: the 16-bit one's complement of the one's
/// complement sum of 16-bit big-endian words, as IPv4, ICMP, UDP and TCP use it.
///
/// ```swift
/// // Verify an IPv4 header: the checksum over it, checksum field included, is zero.
/// let valid = InternetChecksum.checksum(of: try packet.prefix(headerLength)) == 0
///
/// // Fill a UDP checksum: pseudo-header, then the datagram with its field zeroed.
/// var sum = InternetChecksum()
/// sum.addPseudoHeader(source: src, destination: dst, protocol: 17, length: udpLength)
/// sum.add(datagram)
/// try datagram.write(sum.checksum, at: 6)
/// ```
///
/// Bytes are summed eight at a time with 64-bit unaligned loads and an end-around
/// carry (RFC 1071 §2: the sum is independent of byte order and of the word size it is
/// computed in, so a 64-bit sum folded to 16 bits is the same sum). Chunks of any
/// length, odd ones included, may be added one after another: an odd chunk shifts the
/// next one by a byte, which the accumulator accounts for by byte-swapping that
/// chunk's sum (RFC 1071 §2(B)).
///
/// Nothing here allocates or traps.
public struct InternetChecksum: Hashable, Sendable {
    /// The running sum of 16-bit big-endian words, not yet folded.
    @usableFromInline internal var _sum: UInt64 = 0
    /// Whether an odd number of bytes has been added so far.
    @usableFromInline internal var _odd = false

    /// An empty sum.
    @inlinable public init() {}

    /// Adds `bytes`, continuing right after the bytes added before.
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var chunk = InternetChecksum._fold(InternetChecksum._nativeSum(base, bytes.count))
        // Native (little-endian) loads sum byte-swapped words; bring it to network order.
        chunk = UInt16(bigEndian: chunk)
        if _odd { chunk = chunk.byteSwapped }
        _sum &+= UInt64(chunk)
        if bytes.count & 1 == 1 { _odd.toggle() }
    }

    /// Adds the bytes of a view, continuing right after the bytes added before.
    @inlinable
    public mutating func add(_ bits: Bits) {
        bits.withUnsafeBytes { add($0) }
    }

    /// Adds one 16-bit word, as if it were two big-endian bytes at an even offset.
    @inlinable
    public mutating func add(_ word: UInt16) {
        _sum &+= UInt64(word)
    }

    /// Adds a 32-bit value as its two 16-bit words (an IPv4 address).
    @inlinable
    public mutating func add(_ word: UInt32) {
        _sum &+= UInt64(word >> 16) &+ UInt64(word & 0xffff)
    }

    /// Adds the IPv4 pseudo-header that UDP (RFC 768) and TCP (RFC 9293 §3.1) put under
    /// their checksum: source and destination address, zero and protocol, and the
    /// UDP/TCP length (header plus data).
    @inlinable
    public mutating func addPseudoHeader(
        source: UInt32, destination: UInt32, protocol: UInt8, length: UInt16
    ) {
        add(source)
        add(destination)
        add(UInt16(`protocol`))
        add(length)
    }

    /// The one's complement sum so far, folded to 16 bits (not complemented).
    @inlinable
    public var sum: UInt16 { InternetChecksum._fold(_sum) }

    /// The checksum so far: the complement of ``sum``. Over data that already holds a
    /// correct checksum, this is zero.
    @inlinable
    public var checksum: UInt16 { ~sum }

    /// The checksum of a view.
    @inlinable
    public static func checksum(of bits: Bits) -> UInt16 {
        var sum = InternetChecksum()
        sum.add(bits)
        return sum.checksum
    }

    /// The checksum of raw bytes.
    @inlinable
    public static func checksum(of bytes: UnsafeRawBufferPointer) -> UInt16 {
        var sum = InternetChecksum()
        sum.add(bytes)
        return sum.checksum
    }

    /// A checksum updated for one 16-bit word of the data changing from `old` to `new`,
    /// without summing the data again: RFC 1624 §3, equation 3,
    /// `HC' = ~(~HC + ~m + m')` (which, unlike RFC 1141's, never yields `-0`).
    @inlinable
    public static func update(_ checksum: UInt16, replacing old: UInt16, with new: UInt16) -> UInt16
    {
        ~_fold(UInt64(~checksum) &+ UInt64(~old) &+ UInt64(new))
    }

    /// A checksum updated for a 32-bit value (an address in a NAT, a TCP sequence
    /// number) changing from `old` to `new`: RFC 1624 equation 3 over both words.
    @inlinable
    public static func update(_ checksum: UInt16, replacing old: UInt32, with new: UInt32) -> UInt16
    {
        let sum =
            UInt64(~checksum) &+ UInt64(~UInt16(truncatingIfNeeded: old >> 16))
            &+ UInt64(~UInt16(truncatingIfNeeded: old)) &+ UInt64(new >> 16)
            &+ UInt64(new & 0xffff)
        return ~_fold(sum)
    }

    /// Folds a one's complement sum to 16 bits with end-around carries.
    @inlinable @inline(__always)
    internal static func _fold(_ value: UInt64) -> UInt16 {
        var sum = (value & 0xffff_ffff) &+ (value &>> 32)  // < 2^33
        sum = (sum & 0xffff) &+ (sum &>> 16)  // < 2^17 + 2^16
        sum = (sum & 0xffff) &+ (sum &>> 16)  // <= 0xffff + 2
        sum = (sum & 0xffff) &+ (sum &>> 16)  // <= 0xffff
        return UInt16(truncatingIfNeeded: sum)
    }

    /// The one's complement sum of `count` bytes at `base`, in host byte order, in 64
    /// bits with end-around carry. Loads are unaligned: any start address works.
    @inlinable
    internal static func _nativeSum(_ base: UnsafeRawPointer, _ count: Int) -> UInt64 {
        var sum: UInt64 = 0
        var overflow = false
        var index = 0
        @inline(__always) func addWord(_ word: UInt64) {
            (sum, overflow) = sum.addingReportingOverflow(word)
            sum &+= overflow ? 1 : 0
        }
        // The bulk: 32-bit words summed into a 64-bit accumulator need no carry
        // handling for up to 2^32 words, so the loop has no dependency but the add and
        // the compiler vectorises it (wide loads, zero-extension, 64-bit lane adds).
        // RFC 1071 §2(C): the carries are folded once, at the end.
        if count >= 256 {
            var wide: UInt64 = 0
            let words = count &>> 2
            for word in 0..<words {
                wide &+= UInt64(base.loadUnaligned(fromByteOffset: word &<< 2, as: UInt32.self))
            }
            addWord(wide)
            index = words &<< 2
        }
        while index &+ 8 <= count {
            addWord(base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            index &+= 8
        }
        if index &+ 4 <= count {
            addWord(UInt64(base.loadUnaligned(fromByteOffset: index, as: UInt32.self)))
            index &+= 4
        }
        if index &+ 2 <= count {
            addWord(UInt64(base.loadUnaligned(fromByteOffset: index, as: UInt16.self)))
            index &+= 2
        }
        if index < count {
            // The last odd byte is the high byte of a zero-padded big-endian word.
            let byte = UInt16(base.load(fromByteOffset: index, as: UInt8.self))
            addWord(UInt64(UInt16(bigEndian: byte &<< 8)))
        }
        return sum
    }
}
