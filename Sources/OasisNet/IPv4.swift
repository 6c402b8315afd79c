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
    /// Emitting: a payload too large for the 16-bit total length.
    case payloadTooLarge(Int)
    /// Emitting: the buffer had no room.
    case buffer(BitsError)

    /// The drop counter this error belongs to.
    public var dropReason: IPv4DropReason {
        switch self {
        case .truncated, .buffer, .payloadTooLarge: .tooShort
        case .badVersion: .badVersion
        case .badHeaderLength: .badHeaderLength
        case .badTotalLength: .badTotalLength
        case .badChecksum: .badChecksum
        }
    }
}

/// A view of an IPv4 packet checked to hold a whole header: field getters and setters,
/// options, payload, checksum (smoltcp's `Packet`).
///
/// ```swift
/// let packet = try IPv4Packet(checking: ethernetPayload)   // trims Ethernet padding
/// packet.source, packet.timeToLive, packet.options, packet.payload
/// ```
public struct IPv4Packet {
    /// The header and everything after it, cut to the total length.
    public var header: Header<IPv4Header>

    /// Checks `bits` (RFC 791 §3.1; RFC 1122 §3.2.1.1–3.2.1.2) — version 4, IHL of 5 or
    /// more, header within the total length, total length within the bytes — and trims
    /// what follows the total length (Ethernet pads frames to 60 bytes). The checksum is
    /// not checked here: see ``verifyChecksum()``.
    @inlinable
    public init(checking bits: Bits) throws(IPv4Error) {
        let header: Header<IPv4Header>
        do {
            header = try bits.header(IPv4Header.self)
        } catch {
            if case .constantMismatch(_, _, _, let found) = error {
                throw .badVersion(UInt8(truncatingIfNeeded: found))
            }
            throw .truncated(available: bits.count)
        }
        let headerLength = Int(header[IPv4Header.ihl]) * 4
        let totalLength = Int(header[IPv4Header.totalLength])
        guard headerLength >= IPv4Header.size, headerLength <= totalLength else {
            throw .badHeaderLength(headerLength: headerLength, totalLength: totalLength)
        }
        guard totalLength <= bits.count, let trimmed = try? bits.prefix(totalLength) else {
            throw .badTotalLength(totalLength: totalLength, available: bits.count)
        }
        self.header = (try? trimmed.header(IPv4Header.self)) ?? header
    }

    /// A view of a packet being written; the caller has made `header`.
    @inlinable
    public init(unchecked header: Header<IPv4Header>) { self.header = header }

    /// The whole packet: header, options, payload.
    @inlinable public var bits: Bits { header.bits }
    /// The header length in bytes (IHL × 4).
    @inlinable public var headerLength: Int { Int(header[IPv4Header.ihl]) &* 4 }
    /// The total length field.
    @inlinable public var totalLength: Int { Int(header[IPv4Header.totalLength]) }
    /// The identification field.
    @inlinable public var identification: UInt16 { header[IPv4Header.identification] }
    /// DF.
    @inlinable public var dontFragment: Bool { header[IPv4Header.dontFragment] == 1 }
    /// MF.
    @inlinable public var moreFragments: Bool { header[IPv4Header.moreFragments] == 1 }
    /// The fragment offset in bytes (the field × 8).
    @inlinable public var fragmentOffset: Int { Int(header[IPv4Header.fragmentOffset]) &* 8 }
    /// Time to live.
    @inlinable public var timeToLive: UInt8 { header[IPv4Header.timeToLive] }
    /// The payload's protocol.
    @inlinable public var `protocol`: IPProtocol {
        IPProtocol(rawValue: header[IPv4Header.protocol])
    }
    /// The source address.
    @inlinable public var source: IPv4Address {
        IPv4Address(rawValue: header[IPv4Header.source])
    }
    /// The destination address.
    @inlinable public var destination: IPv4Address {
        IPv4Address(rawValue: header[IPv4Header.destination])
    }

    /// The options (bytes 20..<IHL×4), kept as a view and not interpreted (RFC 1122
    /// §3.2.1.8 lets a host ignore the ones it does not implement).
    @inlinable
    public var options: Bits {
        (try? header.payload.prefix(headerLength &- IPv4Header.size)) ?? header.payload
    }

    /// The data after the header and options, up to the total length.
    @inlinable
    public var payload: Bits {
        (try? header.bits.shifted(by: headerLength)) ?? header.payload
    }

    /// Whether the header checksum verifies: the sum over the header, checksum
    /// included, is zero (RFC 791 §3.1, RFC 1071 §1).
    @inlinable
    public func verifyChecksum() -> Bool {
        guard let bytes = try? header.bits.prefix(headerLength) else { return false }
        return InternetChecksum.checksum(of: bytes) == 0
    }

    /// Computes and writes the header checksum over the header and its options.
    @inlinable
    public mutating func fillChecksum() {
        header[IPv4Header.checksum] = 0
        if let bytes = try? header.bits.prefix(headerLength) {
            header[IPv4Header.checksum] = InternetChecksum.checksum(of: bytes)
        }
    }

    /// Decrements the TTL and updates the checksum incrementally (RFC 1624 §3; RFC 1812
    /// §5.3.1 for forwarding). Returns the new TTL.
    @inlinable
    public mutating func decrementTimeToLive() -> UInt8 {
        let ttl = timeToLive
        guard ttl > 0 else { return 0 }
        let word = UInt16(ttl) << 8 | UInt16(header[IPv4Header.protocol])
        header[IPv4Header.timeToLive] = ttl - 1
        header[IPv4Header.checksum] = InternetChecksum.update(
            header[IPv4Header.checksum], replacing: word, with: word &- 0x100)
        return ttl - 1
    }
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
    public static func parse(_ packet: IPv4Packet, verifyChecksum: Bool = true)
        throws(IPv4Error) -> IPv4Repr
    {
        if verifyChecksum && !packet.verifyChecksum() {
            throw .badChecksum(found: packet.header[IPv4Header.checksum])
        }
        return IPv4Repr(
            source: packet.source, destination: packet.destination, protocol: packet.protocol,
            payloadLength: packet.totalLength &- packet.headerLength,
            timeToLive: packet.timeToLive, typeOfService: packet.header[IPv4Header.typeOfService],
            identification: packet.identification, dontFragment: packet.dontFragment,
            moreFragments: packet.moreFragments, fragmentOffset: packet.fragmentOffset)
    }

    /// Checks and parses `bits`: returns the header's meaning, the packet view (for its
    /// options) and the payload, trimmed to the total length.
    @inlinable
    public static func parse(_ bits: Bits, verifyChecksum: Bool = true)
        throws(IPv4Error) -> (IPv4Repr, IPv4Packet)
    {
        let packet = try IPv4Packet(checking: bits)
        return (try parse(packet, verifyChecksum: verifyChecksum), packet)
    }

    /// Prepends a 20-byte header in front of `payload` (which must be `payloadLength`
    /// bytes: it is what the header will describe) and fills the checksum; `payload`
    /// becomes the packet. Nothing is copied.
    @inlinable
    public func emit(prependingTo payload: inout Bits) throws(IPv4Error) {
        let total = payload.count &+ IPv4Header.size
        guard total <= Int(UInt16.max) else { throw .payloadTooLarge(payload.count) }
        do {
            var header = try payload.prependHeader(IPv4Header.self)
            header[IPv4Header.ihl] = 5
            header[IPv4Header.typeOfService] = typeOfService
            header[IPv4Header.totalLength] = UInt16(total)
            header[IPv4Header.identification] = identification
            header[IPv4Header.dontFragment] = dontFragment ? 1 : 0
            header[IPv4Header.moreFragments] = moreFragments ? 1 : 0
            header[IPv4Header.fragmentOffset] = UInt16(truncatingIfNeeded: fragmentOffset >> 3)
            header[IPv4Header.timeToLive] = timeToLive
            header[IPv4Header.protocol] = `protocol`.rawValue
            header[IPv4Header.source] = source.rawValue
            header[IPv4Header.destination] = destination.rawValue
            var packet = IPv4Packet(unchecked: header)
            packet.fillChecksum()
        } catch {
            throw .buffer(error)
        }
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
