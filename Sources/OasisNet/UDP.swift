import OasisBits

/// The UDP header (RFC 768): ports, length, checksum.
public enum UDPHeader: HeaderLayout {
    /// Source port.
    public static let sourcePort = Field<UInt16>.first()
    /// Destination port.
    public static let destinationPort = Field<UInt16>.after(sourcePort)
    /// Header and data, in bytes.
    public static let length = Field<UInt16>.after(destinationPort)
    /// Checksum over pseudo-header, header and data; zero means "none".
    public static let checksum = Field<UInt16>.after(length)
    /// 8 bytes.
    public static let size = checksum.end
}

/// What was wrong with a UDP datagram.
public enum UDPError: Error, Hashable, Sendable {
    /// Fewer than 8 bytes.
    case truncated(available: Int)
    /// A length field below 8 or beyond the `available` bytes of IP payload.
    case badLength(length: Int, available: Int)
    /// A non-zero checksum that did not verify; `found` is the field as received.
    case badChecksum(found: UInt16)
    /// Emitting: a payload too large for the 16-bit length.
    case payloadTooLarge(Int)
    /// Emitting: the buffer had no room.
    case buffer(BitsError)

    /// The drop counter this error belongs to.
    public var dropReason: UDPDropReason {
        switch self {
        case .truncated, .buffer: .tooShort
        case .badLength, .payloadTooLarge: .badLength
        case .badChecksum: .badChecksum
        }
    }
}

/// The parsed meaning of a UDP header: the two ports. The data is the payload view
/// beside it.
///
/// ```swift
/// let (udp, data) = try UDPRepr.parse(ip.payload, source: ipRepr.source, destination: ipRepr.destination)
/// // Reply in place: prepend UDP, then IPv4, then Ethernet, into the buffer's headroom.
/// try UDPRepr(sourcePort: 53, destinationPort: udp.sourcePort)
///     .emit(prependingTo: &answer, source: ours, destination: ipRepr.source)
/// ```
public struct UDPRepr: Hashable, Sendable {
    /// Source port.
    public var sourcePort: UInt16
    /// Destination port.
    public var destinationPort: UInt16

    /// A header.
    @inlinable
    public init(sourcePort: UInt16, destinationPort: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// Parses `datagram` (the IP payload) sent from `source` to `destination`: the
    /// length must be 8 or more and within the IP payload (bytes after it are dropped,
    /// RFC 768 "Length"); a non-zero checksum must verify over the pseudo-header (RFC
    /// 768; RFC 1122 §4.1.3.4). Returns the ports and the data.
    @inlinable
    public static func parse(
        _ datagram: Bits, source: IPv4Address, destination: IPv4Address,
        verifyChecksum: Bool = true
    ) throws(UDPError) -> (UDPRepr, Bits) {
        guard let header = try? datagram.header(UDPHeader.self) else {
            throw .truncated(available: datagram.count)
        }
        let length = Int(header[UDPHeader.length])
        guard length >= UDPHeader.size, length <= datagram.count,
            let whole = try? datagram.prefix(length)
        else {
            throw .badLength(length: length, available: datagram.count)
        }
        let found = header[UDPHeader.checksum]
        if verifyChecksum && found != 0 {
            var sum = IPv4Repr.pseudoHeaderChecksum(
                source: source, destination: destination, protocol: .udp, length: length)
            sum.add(whole)
            guard sum.checksum == 0 else { throw .badChecksum(found: found) }
        }
        let data = (try? whole.shifted(by: UDPHeader.size)) ?? header.payload
        return (
            UDPRepr(
                sourcePort: header[UDPHeader.sourcePort],
                destinationPort: header[UDPHeader.destinationPort]),
            data
        )
    }

    /// Prepends the header in front of `data` and fills the checksum over the
    /// pseudo-header for `source` → `destination`; a computed zero is sent as 0xffff
    /// (RFC 768: zero means "no checksum"). `data` becomes the datagram.
    @inlinable
    public func emit(
        prependingTo data: inout Bits, source: IPv4Address, destination: IPv4Address
    ) throws(UDPError) {
        let length = data.count &+ UDPHeader.size
        guard length <= Int(UInt16.max) else { throw .payloadTooLarge(data.count) }
        var header: Header<UDPHeader>
        do {
            header = try data.prependHeader(UDPHeader.self)
        } catch {
            throw .buffer(error)
        }
        header[UDPHeader.sourcePort] = sourcePort
        header[UDPHeader.destinationPort] = destinationPort
        header[UDPHeader.length] = UInt16(length)
        var sum = IPv4Repr.pseudoHeaderChecksum(
            source: source, destination: destination, protocol: .udp, length: length)
        sum.add(data)
        let checksum = sum.checksum
        header[UDPHeader.checksum] = checksum == 0 ? 0xffff : checksum
    }
}
