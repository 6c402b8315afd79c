// UDP (RFC 768).

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
    @inlinable public static var size: Int { 8 }
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

}

/// The bytes of a UDP datagram, checked to hold a header and no more than the IP
/// payload its length field claims (smoltcp's `UdpPacket`).
///
/// ```swift
/// let udp = try UDPDatagram(checking: ipPayload)
/// udp.destinationPort; udp.payload
/// ```
public struct UDPDatagram: ~Escapable {
    /// The header and data, cut to the length field (bytes after it are dropped, RFC
    /// 768 "Length").
    public let bytes: RawSpan

    /// Checks that `bytes` (the IP payload) hold an 8-byte header whose length field is
    /// at least 8 and within `bytes`.
    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(checking bytes: RawSpan) throws(UDPError) {
        guard bytes.byteCount >= 8 else {
            throw .truncated(available: bytes.byteCount)
        }
        // Source port, destination port, length, checksum: 2 bytes each (UDPHeader).
        let length = Int(bytes._bigEndian(UInt16.self, at: 4))
        guard length >= 8, length <= bytes.byteCount else {
            throw .badLength(length: length, available: bytes.byteCount)
        }
        self.bytes = bytes.extracting(first: length)
    }

    /// Source port.
    @inlinable @inline(__always) public var sourcePort: UInt16 {
        bytes._bigEndian(UInt16.self, at: 0)
    }
    /// Destination port.
    @inlinable @inline(__always) public var destinationPort: UInt16 {
        bytes._bigEndian(UInt16.self, at: 2)
    }
    /// The length field: header and data.
    @inlinable @inline(__always) public var length: Int { bytes.byteCount }
    /// The checksum field; zero means "none was sent".
    @inlinable @inline(__always) public var checksum: UInt16 {
        bytes._bigEndian(UInt16.self, at: 6)
    }

    /// The data after the header.
    public var payload: RawSpan {
        @_lifetime(copy self)
        @inlinable @inline(__always) get { bytes.extracting(droppingFirst: UDPHeader.size) }
    }

    /// Whether the checksum verifies over the pseudo-header for `source` →
    /// `destination` (RFC 768; RFC 1122 §4.1.3.4); a zero checksum means none was
    /// sent and verifies.
    @inlinable @inline(__always)
    public func verifyChecksum(source: IPv4Address, destination: IPv4Address) -> Bool {
        guard checksum != 0 else { return true }
        var sum = IPv4Repr.pseudoHeaderChecksum(
            source: source, destination: destination, protocol: .udp, length: length)
        bytes.withUnsafeBytes { sum.add($0) }
        return sum.checksum == 0
    }
}

/// The parsed meaning of a UDP header: the two ports.
///
/// ```swift
/// let udp = try UDPRepr.parse(ip.payload, source: ip.source, destination: ip.destination)
/// try packet.shift(by: UDPHeader.size)      // the data, in place
/// // Reply in place: prepend UDP, then IPv4, then Ethernet, into the buffer's headroom.
/// try UDPRepr(sourcePort: 53, destinationPort: udp.sourcePort)
///     .emit(prependingTo: &answer, source: ours, destination: ip.source)
/// ```
public struct UDPRepr: Hashable, Sendable {
    /// Source port.
    public var sourcePort: UInt16
    /// Destination port.
    public var destinationPort: UInt16

    /// A header.
    @inlinable @inline(__always)
    public init(sourcePort: UInt16, destinationPort: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// The ports of a checked datagram sent from `source` to `destination`, whose
    /// non-zero checksum must verify unless told not to (a device that verified it).
    @inlinable @inline(__always)
    public static func parse(
        _ datagram: borrowing UDPDatagram, source: IPv4Address, destination: IPv4Address,
        verifyChecksum: Bool = true
    ) throws(UDPError) -> UDPRepr {
        if verifyChecksum && !datagram.verifyChecksum(source: source, destination: destination) {
            throw .badChecksum(found: datagram.checksum)
        }
        return UDPRepr(sourcePort: datagram.sourcePort, destinationPort: datagram.destinationPort)
    }

    /// Checks and parses the datagram at the start of `bytes` (the IP payload).
    @inlinable @inline(__always)
    public static func parse(
        _ bytes: RawSpan, source: IPv4Address, destination: IPv4Address,
        verifyChecksum: Bool = true
    ) throws(UDPError) -> UDPRepr {
        try parse(
            UDPDatagram(checking: bytes), source: source, destination: destination,
            verifyChecksum: verifyChecksum)
    }

    /// Prepends the header in front of `packet` (the data) and fills the checksum over
    /// the pseudo-header for `source` → `destination`; a computed zero is sent as
    /// 0xffff (RFC 768: zero means "no checksum"). `packet` becomes the datagram.
    @inlinable
    public func emit(
        prependingTo packet: inout Packet, source: IPv4Address, destination: IPv4Address
    ) throws(UDPError) {
        let length = packet.count &+ UDPHeader.size
        guard length <= Int(UInt16.max) else { throw .payloadTooLarge(packet.count) }
        do {
            try packet.prepend(UDPHeader.size)
        } catch {
            throw .buffer(error)
        }
        // The header's words go into the sum as values; only the data is read back.
        var sum = IPv4Repr.pseudoHeaderChecksum(
            source: source, destination: destination, protocol: .udp, length: length)
        sum.add(sourcePort)
        sum.add(destinationPort)
        sum.add(UInt16(length))
        let ports = UInt64(sourcePort) << 48 | UInt64(destinationPort) << 32
        packet.withUnsafeMutableBytes { bytes in
            sum.add(UnsafeRawBufferPointer(rebasing: bytes[UDPHeader.size...]))
            let checksum = sum.checksum
            bytes.baseAddress!.storeBigEndian(
                ports | UInt64(length) << 16 | UInt64(checksum == 0 ? 0xffff : checksum), at: 0)
        }
    }
}
