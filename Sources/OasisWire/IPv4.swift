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
    public static let size = destination.end
    /// The version must be 4.
    public static let constants: [Constant] = [.init(version, equals: 4)]
}

/// An IP protocol number (IANA "Assigned Internet Protocol Numbers").
public struct IPProtocol: RawRepresentable, Hashable, Sendable {
    /// The number.
    public let rawValue: UInt8
    /// The protocol with this number.
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// ICMP (RFC 792).
    public static let icmp = IPProtocol(rawValue: 1)
    /// TCP (RFC 9293).
    public static let tcp = IPProtocol(rawValue: 6)
    /// UDP (RFC 768).
    public static let udp = IPProtocol(rawValue: 17)
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
    @inlinable
    public init(checking bytes: RawSpan) throws(IPv4Error) {
        guard bytes.byteCount >= IPv4Header.size else {
            throw .truncated(available: bytes.byteCount)
        }
        let version = bytes[IPv4Header.version]
        guard version == 4 else { throw .badVersion(version) }
        let headerLength = Int(bytes[IPv4Header.ihl]) &* 4
        let totalLength = Int(bytes[IPv4Header.totalLength])
        guard headerLength >= IPv4Header.size, headerLength <= totalLength else {
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
    @inlinable
    public init(checkingHeaderOnly bytes: RawSpan) throws(IPv4Error) {
        guard bytes.byteCount >= IPv4Header.size else {
            throw .truncated(available: bytes.byteCount)
        }
        let version = bytes[IPv4Header.version]
        guard version == 4 else { throw .badVersion(version) }
        let headerLength = Int(bytes[IPv4Header.ihl]) &* 4
        guard headerLength >= IPv4Header.size, headerLength <= bytes.byteCount else {
            throw .badHeaderLength(headerLength: headerLength, totalLength: bytes.byteCount)
        }
        self.bytes = bytes
    }

    /// The header length in bytes (IHL × 4).
    @inlinable public var headerLength: Int { Int(bytes[IPv4Header.ihl]) &* 4 }
    /// The total length field.
    @inlinable public var totalLength: Int { Int(bytes[IPv4Header.totalLength]) }
    /// DSCP and ECN.
    @inlinable public var typeOfService: UInt8 { bytes[IPv4Header.typeOfService] }
    /// The identification field.
    @inlinable public var identification: UInt16 { bytes[IPv4Header.identification] }
    /// DF.
    @inlinable public var dontFragment: Bool { bytes[IPv4Header.dontFragment] == 1 }
    /// MF.
    @inlinable public var moreFragments: Bool { bytes[IPv4Header.moreFragments] == 1 }
    /// The fragment offset in bytes (the field × 8).
    @inlinable public var fragmentOffset: Int { Int(bytes[IPv4Header.fragmentOffset]) &* 8 }
    /// Whether this is a fragment (MF set or a non-zero offset).
    @inlinable public var isFragment: Bool { bytes[Field<UInt16>.at(byte: 6)] & 0x3fff != 0 }
    /// Time to live.
    @inlinable public var timeToLive: UInt8 { bytes[IPv4Header.timeToLive] }
    /// The payload's protocol.
    @inlinable public var `protocol`: IPProtocol {
        IPProtocol(rawValue: bytes[IPv4Header.protocol])
    }
    /// The header checksum field.
    @inlinable public var checksum: UInt16 { bytes[IPv4Header.checksum] }
    /// The source address.
    @inlinable public var source: IPv4Address { IPv4Address(rawValue: bytes[IPv4Header.source]) }
    /// The destination address.
    @inlinable public var destination: IPv4Address {
        IPv4Address(rawValue: bytes[IPv4Header.destination])
    }

    /// The options (bytes 20..<IHL×4), uninterpreted; ``options-swift.property`` walks
    /// them.
    public var optionBytes: RawSpan {
        @_lifetime(copy self)
        @inlinable get { bytes.extracting(IPv4Header.size..<min(headerLength, bytes.byteCount)) }
    }

    /// The options, one at a time.
    public var options: IPv4Options {
        @_lifetime(copy self)
        @inlinable get { IPv4Options(optionBytes) }
    }

    /// Whether every option is well formed: a length of at least 2 that stays within
    /// the header (RFC 791 §3.1; what Linux's `ip_options_compile` refuses).
    @inlinable
    public func validateOptions() throws(IPv4Error) {
        var options = self.options
        while true {
            switch options.next() {
            case .none: return
            case .some(.failure(let error)):
                throw .badOption(offset: IPv4Header.size &+ error.offset)
            case .some(.success): continue
            }
        }
    }

    /// The data after the header and options, up to the total length.
    public var payload: RawSpan {
        @_lifetime(copy self)
        @inlinable get { bytes.extracting(droppingFirst: min(headerLength, bytes.byteCount)) }
    }

    /// Whether the header checksum verifies: the sum over the header, checksum
    /// included, is zero (RFC 791 §3.1, RFC 1071 §1).
    @inlinable
    public func verifyChecksum() -> Bool {
        let length = min(headerLength, bytes.byteCount)
        return bytes.withUnsafeBytes {
            InternetChecksum.checksum(of: UnsafeRawBufferPointer(rebasing: $0[..<length])) == 0
        }
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

    @inlinable
    public init(type: UInt8, offset: Int, length: Int) {
        self.type = type
        self.offset = offset
        self.length = length
    }

    /// Whether the option is copied into every fragment.
    @inlinable public var isCopied: Bool { type & 0x80 != 0 }
}

/// The options of an IPv4 header, walked one at a time; a malformed one ends the walk
/// with its offset.
public struct IPv4Options: ~Escapable {
    @usableFromInline internal let _bytes: RawSpan
    @usableFromInline internal var _offset = 0

    @_lifetime(copy bytes)
    @inlinable
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
    @inlinable public init(offset: Int) { self.offset = offset }
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
    @inlinable
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
    @inlinable public var isFragment: Bool { moreFragments || fragmentOffset != 0 }

    /// The emitted header length: 20 bytes (we never emit options).
    public static let headerLength = IPv4Header.size

    /// The meaning of a checked packet; verifies the checksum unless told not to (a
    /// device that verified it in hardware).
    @inlinable
    public static func parse(_ packet: borrowing IPv4Packet, verifyChecksum: Bool = true)
        throws(IPv4Error) -> IPv4Repr
    {
        if verifyChecksum && !packet.verifyChecksum() {
            throw .badChecksum(found: packet.checksum)
        }
        return IPv4Repr(
            source: packet.source, destination: packet.destination, protocol: packet.protocol,
            payloadLength: packet.totalLength &- packet.headerLength,
            timeToLive: packet.timeToLive, typeOfService: packet.typeOfService,
            identification: packet.identification, dontFragment: packet.dontFragment,
            moreFragments: packet.moreFragments, fragmentOffset: packet.fragmentOffset)
    }

    /// Checks and parses the packet at the start of `bytes`.
    @inlinable
    public static func parse(_ bytes: RawSpan, verifyChecksum: Bool = true)
        throws(IPv4Error) -> IPv4Repr
    {
        try parse(IPv4Packet(checking: bytes), verifyChecksum: verifyChecksum)
    }

    /// Prepends a 20-byte header in front of `packet` (which must be `payloadLength`
    /// bytes: it is what the header describes) and fills the checksum; `packet`
    /// becomes the IPv4 packet. Nothing is copied.
    @inlinable
    public func emit(prependingTo packet: inout Packet) throws(IPv4Error) {
        let total = packet.count &+ IPv4Header.size
        guard total <= Int(UInt16.max) else { throw .payloadTooLarge(packet.count) }
        do {
            try packet.prepend(IPv4Header.size)
        } catch {
            throw .buffer(error)
        }
        var bytes = packet.mutableBytes
        write(into: &bytes, totalLength: total)
    }

    /// Writes the 20-byte header, checksum included, at the start of `bytes`.
    @inlinable
    public func write(into bytes: inout MutableRawSpan, totalLength: Int) {
        // Two 64-bit words and a 32-bit one, built in registers: the fields, then the
        // sum over them, written once.
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
        bytes[UInt64.self, at: 0] = first
        bytes[UInt64.self, at: 8] = second
        bytes[UInt32.self, at: 16] = destination.rawValue
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
