import OasisWire

/// A reason a layer dropped a packet: a small enum whose cases index a counter.
public protocol DropReason: CaseIterable, Hashable, Sendable, RawRepresentable
where RawValue == Int {}

/// Counts of dropped packets, one per `Reason`.
///
/// ```swift
/// var drops = DropCounters<IPv4DropReason>()
/// drops.count(.badChecksum)
/// drops[.badChecksum]      // 1
/// ```
///
/// The counts live in one array sized once, at initialisation; counting does not
/// allocate.
public struct DropCounters<Reason: DropReason>: Hashable, Sendable {
    @usableFromInline internal var _counts: [UInt64]

    /// All counts zero.
    public init() {
        _counts = Array(repeating: 0, count: Reason.allCases.count)
    }

    /// The number of packets dropped for `reason`.
    @inlinable
    public subscript(reason: Reason) -> UInt64 {
        reason.rawValue < _counts.count ? _counts[reason.rawValue] : 0
    }

    /// Counts one (or `amount`) more drop for `reason`.
    @inlinable
    public mutating func count(_ reason: Reason, _ amount: UInt64 = 1) {
        guard reason.rawValue >= 0, reason.rawValue < _counts.count else { return }
        _counts[reason.rawValue] &+= amount
    }

    /// The sum over every reason.
    public var total: UInt64 { _counts.reduce(0, &+) }
}

/// Why an Ethernet frame was dropped.
public enum EthernetDropReason: Int, DropReason {
    /// Shorter than its header (and tags).
    case tooShort
    /// The type field was an 802.3 length, or more VLAN tags than we parse.
    case unsupportedFormat
    /// Addressed to another station's unicast MAC.
    case notForUs
    /// A well-formed frame with an EtherType no layer above handles.
    case unknownEtherType
    /// Outgoing: the device refused the frame (closed, or larger than its largest
    /// frame), or there was no room in front for the header.
    case transmitFailed
}

/// Why an ARP packet was dropped or not answered.
public enum ArpDropReason: Int, DropReason {
    /// Shorter than 28 bytes.
    case tooShort
    /// Not Ethernet/IPv4 (htype, ptype, hlen, plen) or an unknown operation.
    case unsupported
    /// The sender hardware address was multicast, broadcast or zero.
    case badSenderHardwareAddress
    /// Another station claims one of our addresses (RFC 5227 §2.4 calls it a conflict).
    case addressConflict
    /// A packet waiting for resolution was dropped: the per-address queue was full.
    case queueFull
    /// Packets waiting for resolution were dropped: the address never answered.
    case resolutionFailed
    /// An entry (with its waiting packets) was evicted to make room.
    case evicted
    /// The frame's Ethernet source was not the ARP sender hardware address (a station
    /// speaking for another: forged).
    case senderMismatch
    /// A packet we did not ask for would have moved a resolved entry within its
    /// lifetime to another hardware address (a forged reply, gratuitous ARP or request
    /// for another host); the entry was kept.
    case unsolicitedChange
}

/// Why an IPv4 packet was dropped.
public enum IPv4DropReason: Int, DropReason {
    /// Shorter than 20 bytes.
    case tooShort
    /// The version field was not 4.
    case badVersion
    /// IHL below 5, or a header longer than the total length.
    case badHeaderLength
    /// A total length beyond the bytes received.
    case badTotalLength
    /// The header checksum did not verify.
    case badChecksum
    /// A broadcast or multicast source address (RFC 1122 §3.2.1.3).
    case badSourceAddress
    /// Addressed to someone else (a host does not forward).
    case notForUs
    /// A protocol no layer above handles (answered with ICMP protocol unreachable).
    case unknownProtocol
    /// Outgoing: no route to the destination (off the subnet, no gateway).
    case noRoute
    /// Outgoing: the datagram could not be built (no room for the header, no buffer
    /// for a fragment); a datagram cut short this way may have sent some fragments.
    case sendFailed
}

/// Why an ICMP message was dropped (or an ICMP error not sent).
public enum ICMPv4DropReason: Int, DropReason {
    /// Shorter than 8 bytes.
    case tooShort
    /// The checksum did not verify.
    case badChecksum
    /// An error message whose embedded original header was unusable.
    case badEmbeddedHeader
    /// A type we do not handle (echo replies among them: the stack sends no requests),
    /// or an echo request while answering pings is off.
    case unhandledType
    /// An error we would have sent was suppressed by the rate limiter (RFC 1812 §4.3.2.8).
    case rateLimited
    /// An echo request to a broadcast address, ignored (RFC 1122 §3.2.2.6).
    case broadcastEcho
    /// An ICMP error received: not passed to the transport it is about (RFC 1122
    /// §4.1.3.3 says UDP should pass it to the application; not yet).
    case errorNotDelivered
}

/// Why a UDP datagram was dropped.
public enum UDPDropReason: Int, DropReason {
    /// Shorter than 8 bytes.
    case tooShort
    /// A length field below 8 or beyond the IP payload.
    case badLength
    /// A non-zero checksum that did not verify.
    case badChecksum
    /// No listener on the destination port (answered with ICMP port unreachable).
    case noListener
}

/// Why fragments were dropped by the reassembler.
public enum ReassemblyDropReason: Int, DropReason {
    /// A fragment overlapped another one that was not an exact duplicate: the whole
    /// datagram was dropped (RFC 5722's rule, applied to IPv4 as Linux does).
    case overlap
    /// An exact duplicate of a fragment already held (the fragment alone is dropped).
    case duplicate
    /// The datagram was not complete within the timeout (RFC 791, RFC 1122 §3.3.2).
    case timeout
    /// Evicted, or refused, to stay within the memory or datagram-count bound.
    case memoryBound
    /// Inconsistent: a non-final fragment not a multiple of 8 bytes, data past the end
    /// of the datagram, two different ends, or a datagram over 65535 bytes.
    case badFragment
}

/// Every layer's drop counters, for a glue layer to keep in one place.
public struct NetworkDropCounters: Hashable, Sendable {
    /// Ethernet.
    public var ethernet = DropCounters<EthernetDropReason>()
    /// ARP.
    public var arp = DropCounters<ArpDropReason>()
    /// IPv4.
    public var ipv4 = DropCounters<IPv4DropReason>()
    /// Reassembly.
    public var reassembly = DropCounters<ReassemblyDropReason>()
    /// ICMP.
    public var icmp = DropCounters<ICMPv4DropReason>()
    /// UDP.
    public var udp = DropCounters<UDPDropReason>()

    /// All zero.
    public init() {}
}

// MARK: - Which counter a wire error belongs to

extension EthernetError {
    /// The drop counter this error belongs to.
    public var dropReason: EthernetDropReason {
        switch self {
        case .truncated, .buffer: .tooShort
        case .notEthernetII, .tooManyVLANTags: .unsupportedFormat
        }
    }
}

extension ArpError {
    /// The drop counter this error belongs to.
    public var dropReason: ArpDropReason {
        switch self {
        case .truncated, .buffer: .tooShort
        case .unsupportedFormat, .unknownOperation: .unsupported
        }
    }
}

extension IPv4Error {
    /// The drop counter this error belongs to.
    public var dropReason: IPv4DropReason {
        switch self {
        case .truncated, .buffer, .payloadTooLarge: .tooShort
        case .badVersion: .badVersion
        case .badHeaderLength, .badOption: .badHeaderLength
        case .badTotalLength: .badTotalLength
        case .badChecksum: .badChecksum
        }
    }
}

extension ICMPv4Error {
    /// The drop counter this error belongs to.
    public var dropReason: ICMPv4DropReason {
        switch self {
        case .truncated, .buffer: .tooShort
        case .badChecksum: .badChecksum
        case .badEmbeddedHeader: .badEmbeddedHeader
        }
    }
}

extension UDPError {
    /// The drop counter this error belongs to.
    public var dropReason: UDPDropReason {
        switch self {
        case .truncated, .buffer: .tooShort
        case .badLength, .payloadTooLarge: .badLength
        case .badChecksum: .badChecksum
        }
    }
}
