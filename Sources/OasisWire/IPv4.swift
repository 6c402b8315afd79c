// IPv4 (RFC 791): the header, its options, and the pseudo-header UDP and TCP sum.

import OasisBits

/// The fixed 20 bytes of an IPv4 header (RFC 791 §3.1).
public enum IPv4Header: HeaderLayout {
    /// Version: 4.
    public static let version = Field<UInt8>.first(bits: 4)
    /// Internet header length, in 32-bit words: 5...15.
    public static let ihl = Field<UInt8>.after(version, bits: 4)
    /// DSCP and ECN (RFC 2474, RFC 3168), the former type of service.
    public static let typeOfService = Field<UInt8>.after(ihl)
    /// Header and data, in bytes.
    public static let totalLength = Field<UInt16>.after(typeOfService)
    /// Identification, for reassembly.
    public static let identification = Field<UInt16>.after(totalLength)
    /// The reserved bit (must be zero).
    public static let reserved = Field<UInt8>.after(identification, bits: 1)
    /// Don't fragment.
    public static let dontFragment = Field<UInt8>.after(reserved, bits: 1)
    /// More fragments.
    public static let moreFragments = Field<UInt8>.after(dontFragment, bits: 1)
    /// Fragment offset, in 8-byte units.
    public static let fragmentOffset = Field<UInt16>.after(moreFragments, bits: 13)
    /// Time to live.
    public static let timeToLive = Field<UInt8>.after(fragmentOffset)
    /// The protocol of the payload.
    public static let `protocol` = Field<UInt8>.after(timeToLive)
    /// Header checksum (RFC 791 §3.1, RFC 1071).
    public static let checksum = Field<UInt16>.after(`protocol`)
    /// Source address.
    public static let source = Field<UInt32>.after(checksum)
    /// Destination address.
    public static let destination = Field<UInt32>.after(source)
    /// 20 bytes.
    @inlinable public static var size: Int { 20 }
    /// The version must be 4.
    public static let constants: [Constant] = [.init(version, equals: 4)]
}

/// An IP protocol number (IANA "Assigned Internet Protocol Numbers").
public struct IPProtocol: RawRepresentable, Hashable, Sendable {
    /// The number.
    public let rawValue: UInt8
    /// The protocol with this number.
    @inlinable @inline(__always) public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// ICMP (RFC 792).
    @inlinable public static var icmp: IPProtocol { IPProtocol(rawValue: 1) }
    /// TCP (RFC 9293).
    @inlinable public static var tcp: IPProtocol { IPProtocol(rawValue: 6) }
    /// UDP (RFC 768).
    @inlinable public static var udp: IPProtocol { IPProtocol(rawValue: 17) }
}

/// What was wrong with an IPv4 packet.
public enum IPv4Error: Error, Hashable, Sendable {
    /// Fewer than 20 bytes.
    case truncated(available: Int)
    /// A version other than 4.
    case badVersion(UInt8)
    /// IHL below 5 words, or a header (`headerLength` bytes) longer than the packet's
    /// total length or than the bytes received.
    case badHeaderLength(headerLength: Int, totalLength: Int)
    /// A total length beyond the `available` bytes received.
    case badTotalLength(totalLength: Int, available: Int)
    /// The header checksum did not verify; `found` is the field as received.
    case badChecksum(found: UInt16)
    /// An option whose length runs past the header or is below 2 (RFC 791 §3.1), at
    /// byte `offset` of the header.
    case badOption(offset: Int)
    /// Emitting: a payload too large for the 16-bit total length.
    case payloadTooLarge(Int)
    /// Emitting: the buffer had no room.
    case buffer(BitsError)
}

/// The bytes of an IPv4 packet, checked to hold a whole header (smoltcp's
/// `Ipv4Packet`): field getters that cannot fail, options, payload, checksum.
///
/// ```swift
/// let ip = try IPv4Packet(checking: packet.bytes)     // trims Ethernet padding
/// ip.source, ip.timeToLive, ip.headerLength, ip.payload
/// ```
public struct IPv4Packet: ~Escapable {
    /// The header and everything after it, cut to the total length.
    public let bytes: RawSpan

    /// Checks `bytes` (RFC 791 §3.1; RFC 1122 §3.2.1.1–3.2.1.2) — version 4, IHL of 5 or
    /// more, header within the total length, total length within the bytes — and
    /// leaves out what follows the total length (Ethernet pads frames to 60 bytes).
    /// The checksum and the options are checked by ``verifyChecksum()`` and
    /// ``validateOptions()``.
    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(checking bytes: RawSpan) throws(IPv4Error) {
        guard bytes.byteCount >= 20 else {
            throw .truncated(available: bytes.byteCount)
        }
        // Version, IHL, type of service, total length: the first word (IPv4Header).
        let first = bytes._bigEndian(UInt32.self, at: 0)
        let version = UInt8(truncatingIfNeeded: first >> 28)
        guard version == 4 else { throw .badVersion(version) }
        let headerLength = Int((first >> 24) & 0xf) &* 4
        let totalLength = Int(first & 0xffff)
        guard headerLength >= 20, headerLength <= totalLength else {
            throw .badHeaderLength(headerLength: headerLength, totalLength: totalLength)
        }
        guard totalLength <= bytes.byteCount else {
            throw .badTotalLength(totalLength: totalLength, available: bytes.byteCount)
        }
        self.bytes = bytes.extracting(first: totalLength)
    }

    /// A header checked for version and IHL but not total length: the quoted header of
    /// an ICMP error, whose datagram was cut after 8 bytes of data.
    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(checkingHeaderOnly bytes: RawSpan) throws(IPv4Error) {
        guard bytes.byteCount >= 20 else {
            throw .truncated(available: bytes.byteCount)
        }
        let first = bytes._bigEndian(UInt32.self, at: 0)
        let version = UInt8(truncatingIfNeeded: first >> 28)
        guard version == 4 else { throw .badVersion(version) }
        let headerLength = Int((first >> 24) & 0xf) &* 4
        guard headerLength >= 20, headerLength <= bytes.byteCount else {
            throw .badHeaderLength(headerLength: headerLength, totalLength: bytes.byteCount)
        }
        // The total length is the original datagram's, cut or not: never less than the
        // header (so a payload length is never negative).
        let totalLength = Int(first & 0xffff)
        guard headerLength <= totalLength else {
            throw .badHeaderLength(headerLength: headerLength, totalLength: totalLength)
        }
        self.bytes = bytes
    }

    // Fields at the offsets of `IPv4Header`, read straight from the checked bytes.

    /// The header length in bytes (IHL × 4).
    @inlinable @inline(__always)
    public var headerLength: Int { Int(bytes._bigEndian(UInt8.self, at: 0) & 0xf) &* 4 }
    /// The total length field.
    @inlinable @inline(__always)
    public var totalLength: Int { Int(bytes._bigEndian(UInt16.self, at: 2)) }
    /// DSCP and ECN.
    @inlinable @inline(__always)
    public var typeOfService: UInt8 { bytes._bigEndian(UInt8.self, at: 1) }
    /// The identification field.
    @inlinable @inline(__always)
    public var identification: UInt16 { bytes._bigEndian(UInt16.self, at: 4) }
    /// The flags and fragment offset word.
    @inlinable @inline(__always)
    internal var _fragmentWord: UInt16 { bytes._bigEndian(UInt16.self, at: 6) }
    /// DF.
    @inlinable @inline(__always)
    public var dontFragment: Bool { _fragmentWord & 0x4000 != 0 }
    /// MF.
    @inlinable @inline(__always)
    public var moreFragments: Bool { _fragmentWord & 0x2000 != 0 }
    /// The fragment offset in bytes (the field × 8).
    @inlinable @inline(__always)
    public var fragmentOffset: Int { Int(_fragmentWord & 0x1fff) &* 8 }
    /// Whether this is a fragment (MF set or a non-zero offset).
    @inlinable @inline(__always)
    public var isFragment: Bool { _fragmentWord & 0x3fff != 0 }
    /// Time to live.
    @inlinable @inline(__always)
    public var timeToLive: UInt8 { bytes._bigEndian(UInt8.self, at: 8) }
    /// The payload's protocol.
    @inlinable @inline(__always)
    public var `protocol`: IPProtocol { IPProtocol(rawValue: bytes._bigEndian(UInt8.self, at: 9)) }
    /// The header checksum field.
    @inlinable @inline(__always)
    public var checksum: UInt16 { bytes._bigEndian(UInt16.self, at: 10) }
    /// The source address.
    @inlinable @inline(__always)
    public var source: IPv4Address { IPv4Address(rawValue: bytes._bigEndian(UInt32.self, at: 12)) }
    /// The destination address.
    @inlinable @inline(__always)
    public var destination: IPv4Address {
        IPv4Address(rawValue: bytes._bigEndian(UInt32.self, at: 16))
    }

    /// The options (bytes 20..<IHL×4), uninterpreted; ``options-swift.property`` walks
    /// them.
    public var optionBytes: RawSpan {
        @_lifetime(copy self)
        @inlinable @inline(__always) get {
            bytes.extracting(IPv4Header.size..<min(headerLength, bytes.byteCount))
        }
    }

    /// The options, one at a time.
    public var options: IPv4Options {
        @_lifetime(copy self)
        @inlinable @inline(__always) get { IPv4Options(optionBytes) }
    }

    /// Whether every option is well formed: a length of at least 2 that stays within
    /// the header, and for the options with a layout, room for it (RFC 791 §3.1: record
    /// and source routes at least 3 bytes with a pointer of at least 4, a timestamp at
    /// least 4 with a pointer of at least 5; RFC 2113: a router alert of 4), as Linux's
    /// `ip_options_compile` has them.
    @inlinable
    public func validateOptions() throws(IPv4Error) {
        var options = self.options
        let area = optionBytes
        while true {
            switch options.next() {
            case .none: return
            case .some(.failure(let error)):
                throw .badOption(offset: IPv4Header.size &+ error.offset)
            case .some(.success(let option)):
                // The walk checked `offset + length` against the area.
                let pointer = option.length >= 3 ? Int(area[UInt8.self, at: option.offset &+ 2]) : 0
                let valid: Bool
                switch option.type {
                case IPv4Option.recordRoute, IPv4Option.looseSourceRoute,
                    IPv4Option.strictSourceRoute:
                    valid = option.length >= 3 && pointer >= 4
                case IPv4Option.timestamp:
                    valid = option.length >= 4 && pointer >= 5
                case IPv4Option.routerAlert:
                    valid = option.length == 4
                default:
                    valid = true
                }
                guard valid else { throw .badOption(offset: IPv4Header.size &+ option.offset) }
            }
        }
    }

    /// The data after the header and options, up to the total length.
    public var payload: RawSpan {
        @_lifetime(copy self)
        @inlinable @inline(__always) get {
            bytes.extracting(droppingFirst: min(headerLength, bytes.byteCount))
        }
    }

    /// Whether the header checksum verifies: the sum over the header, checksum
    /// included, is zero (RFC 791 §3.1, RFC 1071 §1). The header's 32-bit words are
    /// summed as numbers and folded: the same one's complement sum (RFC 1071 §2(B)).
    @inlinable @inline(__always)
    public func verifyChecksum() -> Bool {
        var sum = InternetChecksum()
        sum.add(bytes._bigEndian(UInt32.self, at: 0))
        sum.add(bytes._bigEndian(UInt32.self, at: 4))
        sum.add(bytes._bigEndian(UInt32.self, at: 8))
        sum.add(bytes._bigEndian(UInt32.self, at: 12))
        sum.add(bytes._bigEndian(UInt32.self, at: 16))
        var offset = 20
        let end = min(headerLength, bytes.byteCount)
        while offset &+ 4 <= end {
            sum.add(bytes._bigEndian(UInt32.self, at: offset))
            offset &+= 4
        }
        return sum.checksum == 0
    }
}

/// One IPv4 option (RFC 791 §3.1): its type octet and its data.
public struct IPv4Option: Hashable, Sendable {
    /// The type octet: copied flag, class and number.
    public let type: UInt8
    /// Where the option starts in the options area, and its whole length (1 for
    /// NOP and end of list).
    public let offset: Int
    public let length: Int

    /// End of option list.
    public static let endOfList: UInt8 = 0
    /// No operation.
    public static let noOperation: UInt8 = 1
    /// Record route.
    public static let recordRoute: UInt8 = 7
    /// Internet timestamp.
    public static let timestamp: UInt8 = 68
    /// Loose source and record route.
    public static let looseSourceRoute: UInt8 = 131
    /// Strict source and record route.
    public static let strictSourceRoute: UInt8 = 137
    /// Router alert (RFC 2113).
    public static let routerAlert: UInt8 = 148

    @inlinable @inline(__always)
    public init(type: UInt8, offset: Int, length: Int) {
        self.type = type
        self.offset = offset
        self.length = length
    }

    /// Whether the option is copied into every fragment.
    @inlinable @inline(__always) public var isCopied: Bool { type & 0x80 != 0 }
}

/// The options of an IPv4 header, walked one at a time; a malformed one ends the walk
/// with its offset.
public struct IPv4Options: ~Escapable {
    @usableFromInline internal let _bytes: RawSpan
    @usableFromInline internal var _offset = 0

    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(_ bytes: RawSpan) { _bytes = bytes }

    /// The next option, `.failure(offset)` for a malformed one (after which the walk
    /// ends), or nil after the last one or an end-of-list option.
    @inlinable
    public mutating func next() -> Result<IPv4Option, IPv4OptionError>? {
        guard _offset < _bytes.byteCount else { return nil }
        let start = _offset
        let type = _bytes[UInt8.self, at: start]
        switch type {
        case IPv4Option.endOfList:
            _offset = _bytes.byteCount
            return nil
        case IPv4Option.noOperation:
            _offset &+= 1
            return .success(IPv4Option(type: type, offset: start, length: 1))
        default:
            guard start &+ 1 < _bytes.byteCount else {
                _offset = _bytes.byteCount
                return .failure(IPv4OptionError(offset: start))
            }
            let length = Int(_bytes[UInt8.self, at: start &+ 1])
            guard length >= 2, start &+ length <= _bytes.byteCount else {
                _offset = _bytes.byteCount
                return .failure(IPv4OptionError(offset: start))
            }
            _offset &+= length
            return .success(IPv4Option(type: type, offset: start, length: length))
        }
    }
}

/// A malformed IPv4 option at `offset` of the options area.
public struct IPv4OptionError: Error, Hashable, Sendable {
    public let offset: Int
    @inlinable @inline(__always) public init(offset: Int) { self.offset = offset }
}

/// The parsed meaning of an IPv4 header (smoltcp's `Ipv4Repr`), fragment fields included.
public struct IPv4Repr: Hashable, Sendable {
    /// Source address.
    public var source: IPv4Address
    /// Destination address.
    public var destination: IPv4Address
    /// The payload's protocol.
    public var `protocol`: IPProtocol
    /// The payload length in bytes (total length minus header length).
    public var payloadLength: Int
    /// Time to live; 64 is the default of RFC 1700 and Linux.
    public var timeToLive: UInt8
    /// DSCP and ECN.
    public var typeOfService: UInt8
    /// Identification.
    public var identification: UInt16
    /// Don't fragment.
    public var dontFragment: Bool
    /// More fragments.
    public var moreFragments: Bool
    /// Fragment offset in bytes: a multiple of 8.
    public var fragmentOffset: Int

    /// A header for an unfragmented packet.
    @inlinable @inline(__always)
    public init(
        source: IPv4Address, destination: IPv4Address, protocol: IPProtocol,
        payloadLength: Int, timeToLive: UInt8 = 64, typeOfService: UInt8 = 0,
        identification: UInt16 = 0, dontFragment: Bool = false, moreFragments: Bool = false,
        fragmentOffset: Int = 0
    ) {
        self.source = source
        self.destination = destination
        self.protocol = `protocol`
        self.payloadLength = payloadLength
        self.timeToLive = timeToLive
        self.typeOfService = typeOfService
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
    }

    /// Whether this is a fragment (MF set or a non-zero offset).
    @inlinable @inline(__always) public var isFragment: Bool {
        moreFragments || fragmentOffset != 0
    }

    /// The emitted header length: 20 bytes (we never emit options).
    @inlinable public static var headerLength: Int { 20 }

    /// The meaning of a checked packet; verifies the checksum unless told not to (a
    /// device that verified it in hardware). One pass over the header's five words.
    @inlinable @inline(__always)
    public static func parse(_ packet: borrowing IPv4Packet, verifyChecksum: Bool = true)
        throws(IPv4Error) -> IPv4Repr
    {
        let bytes = packet.bytes
        let first = bytes._bigEndian(UInt32.self, at: 0)  // version, IHL, TOS, length
        let second = bytes._bigEndian(UInt32.self, at: 4)  // identification, fragment
        let third = bytes._bigEndian(UInt32.self, at: 8)  // TTL, protocol, checksum
        let source = bytes._bigEndian(UInt32.self, at: 12)
        let destination = bytes._bigEndian(UInt32.self, at: 16)
        let headerLength = Int((first >> 24) & 0xf) &* 4
        if verifyChecksum {
            var sum = InternetChecksum()
            sum.add(first)
            sum.add(second)
            sum.add(third)
            sum.add(source)
            sum.add(destination)
            var offset = 20
            while offset &+ 4 <= headerLength {
                sum.add(bytes._bigEndian(UInt32.self, at: offset))
                offset &+= 4
            }
            guard sum.checksum == 0 else {
                throw .badChecksum(found: UInt16(truncatingIfNeeded: third))
            }
        }
        return IPv4Repr(
            source: IPv4Address(rawValue: source),
            destination: IPv4Address(rawValue: destination),
            protocol: IPProtocol(rawValue: UInt8(truncatingIfNeeded: third >> 16)),
            payloadLength: Int(first & 0xffff) &- headerLength,
            timeToLive: UInt8(truncatingIfNeeded: third >> 24),
            typeOfService: UInt8(truncatingIfNeeded: first >> 16),
            identification: UInt16(truncatingIfNeeded: second >> 16),
            dontFragment: second & 0x4000 != 0, moreFragments: second & 0x2000 != 0,
            fragmentOffset: Int(second & 0x1fff) &* 8)
    }

    /// Checks and parses the packet at the start of `bytes`.
    @inlinable @inline(__always)
    public static func parse(_ bytes: RawSpan, verifyChecksum: Bool = true)
        throws(IPv4Error) -> IPv4Repr
    {
        try parse(IPv4Packet(checking: bytes), verifyChecksum: verifyChecksum)
    }

    /// Prepends a 20-byte header in front of `packet` and fills the checksum; `packet`
    /// becomes the IPv4 packet. The total length written is the packet's own (its
    /// count plus the header), not `payloadLength`, so the header always describes
    /// the bytes that follow it. Nothing is copied.
    @inlinable
    public func emit(prependingTo packet: inout Packet) throws(IPv4Error) {
        let total = packet.count &+ IPv4Header.size
        guard total <= Int(UInt16.max) else { throw .payloadTooLarge(packet.count) }
        do {
            try packet.prepend(IPv4Header.size)
        } catch {
            throw .buffer(error)
        }
        let header = self
        packet.withUnsafeMutableBytes { bytes in
            header.write(to: bytes.baseAddress!, totalLength: total)
        }
    }

    /// Writes the 20-byte header, checksum included, at `start`: two 64-bit words and
    /// a 32-bit one, built in registers with the sum over them, stored once each.
    @inlinable @inline(__always)
    public func write(to start: UnsafeMutableRawPointer, totalLength: Int) {
        let fragment =
            UInt64(dontFragment ? 0x4000 : 0) | UInt64(moreFragments ? 0x2000 : 0)
            | UInt64((fragmentOffset >> 3) & 0x1fff)
        let first =
            0x45 << 56 | UInt64(typeOfService) << 48 | UInt64(totalLength & 0xffff) << 32
            | UInt64(identification) << 16 | fragment
        let ttlProtocol = UInt16(timeToLive) << 8 | UInt16(`protocol`.rawValue)
        var sum = InternetChecksum()
        sum.add(UInt32(truncatingIfNeeded: first >> 32))
        sum.add(UInt32(truncatingIfNeeded: first))
        sum.add(ttlProtocol)
        sum.add(source.rawValue)
        sum.add(destination.rawValue)
        let second =
            UInt64(ttlProtocol) << 48 | UInt64(sum.checksum) << 32 | UInt64(source.rawValue)
        start.storeBigEndian(first, at: 0)
        start.storeBigEndian(second, at: 8)
        start.storeBigEndian(destination.rawValue, at: 16)
    }

    /// The pseudo-header sum UDP and TCP put under their checksum (RFC 768; RFC 9293
    /// §3.1), for a transport segment of `length` bytes.
    @inlinable
    public static func pseudoHeaderChecksum(
        source: IPv4Address, destination: IPv4Address, protocol: IPProtocol, length: Int
    ) -> InternetChecksum {
        var sum = InternetChecksum()
        sum.addPseudoHeader(
            source: source.rawValue, destination: destination.rawValue,
            protocol: `protocol`.rawValue, length: UInt16(truncatingIfNeeded: length))
        return sum
    }
}
