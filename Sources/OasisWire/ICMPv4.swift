// ICMP for IPv4 (RFC 792): echo, and the error messages that quote a datagram.

import OasisBits

/// The 8-byte ICMP header (RFC 792): type, code, checksum, and four bytes whose meaning
/// depends on the type (identifier and sequence number for echo; unused and the next-hop
/// MTU for "fragmentation needed", RFC 1191 §4).
public enum ICMPv4Header: HeaderLayout {
    /// Message type.
    public static let type = Field<UInt8>.first()
    /// Message code.
    public static let code = Field<UInt8>.after(type)
    /// Checksum over the whole message (RFC 792).
    public static let checksum = Field<UInt16>.after(code)
    /// Echo identifier.
    public static let identifier = Field<UInt16>.after(checksum)
    /// Echo sequence number.
    public static let sequenceNumber = Field<UInt16>.after(identifier)
    /// The four type-specific bytes as one word.
    public static let restOfHeader = Field<UInt32>.at(byte: 4)
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4).
    public static let nextHopMTU = Field<UInt16>.at(byte: 6)
    /// 8 bytes.
    @inlinable public static var size: Int { 8 }
}

/// The codes of destination unreachable (RFC 792; RFC 1122 §3.2.2.1; RFC 1812 §5.2.7.1).
public enum DestinationUnreachable: UInt8, Hashable, Sendable {
    /// Network unreachable.
    case netUnreachable = 0
    /// Host unreachable.
    case hostUnreachable = 1
    /// Protocol unreachable: no handler for the IP protocol.
    case protocolUnreachable = 2
    /// Port unreachable: no UDP listener.
    case portUnreachable = 3
    /// Fragmentation needed and DF set (carries the next-hop MTU).
    case fragmentationNeeded = 4
    /// Source route failed.
    case sourceRouteFailed = 5
    /// Communication administratively prohibited (RFC 1812).
    case administrativelyProhibited = 13
}

/// What was wrong with an ICMP message.
public enum ICMPv4Error: Error, Hashable, Sendable {
    /// Fewer than 8 bytes.
    case truncated(available: Int)
    /// The checksum did not verify; `found` is the field as received.
    case badChecksum(found: UInt16)
    /// An error message (destination unreachable, time exceeded) whose data is not an
    /// IPv4 header followed by at least 8 bytes (RFC 792, RFC 1122 §3.2.2).
    case badEmbeddedHeader(IPv4Error?)
    /// Emitting: the buffer had no room.
    case buffer(BitsError)

}

/// The parsed meaning of an ICMP header. The message's data — the echo payload, or the
/// original datagram's header and first 8 bytes in an error — is the payload view that
/// ``parse(_:verifyChecksum:)`` returns beside it, and the view ``emit(prependingTo:)``
/// prepends to.
public enum ICMPv4Repr: Hashable, Sendable {
    /// Type 8 (RFC 792 "Echo or Echo Reply Message").
    case echoRequest(identifier: UInt16, sequenceNumber: UInt16)
    /// Type 0.
    case echoReply(identifier: UInt16, sequenceNumber: UInt16)
    /// Type 3; `nextHopMTU` is zero except for ``DestinationUnreachable/fragmentationNeeded``.
    /// An unknown code is kept as its number through ``other(type:code:restOfHeader:)``.
    case destinationUnreachable(DestinationUnreachable, nextHopMTU: UInt16)
    /// Type 11: code 0 TTL exceeded in transit, 1 fragment reassembly time exceeded.
    case timeExceeded(code: UInt8)
    /// Any other message, uninterpreted.
    case other(type: UInt8, code: UInt8, restOfHeader: UInt32)

    /// Whether this is an error message (which carries an original header and must
    /// never be answered with an error, RFC 1122 §3.2.2).
    @inlinable @inline(__always)
    public var isError: Bool {
        switch self {
        case .destinationUnreachable, .timeExceeded: true
        case .other(let type, _, _): type == 3 || type == 4 || type == 5 || type == 11 || type == 12
        case .echoRequest, .echoReply: false
        }
    }

    /// Parses `message` (the IP payload): verifies the checksum (unless told not to),
    /// and for error messages checks that the data starts with an IPv4 header and holds
    /// at least 8 bytes after it. The data follows the 8-byte header
    /// (``ICMPv4Header/size``).
    @inlinable @inline(__always)
    public static func parse(_ message: RawSpan, verifyChecksum: Bool = true)
        throws(ICMPv4Error) -> ICMPv4Repr
    {
        guard message.byteCount >= ICMPv4Header.size else {
            throw .truncated(available: message.byteCount)
        }
        if verifyChecksum && message.withUnsafeBytes({ InternetChecksum.checksum(of: $0) }) != 0 {
            throw .badChecksum(found: message[ICMPv4Header.checksum])
        }
        let type = message[ICMPv4Header.type]
        let code = message[ICMPv4Header.code]
        let repr: ICMPv4Repr
        switch (type, code) {
        case (8, 0):
            repr = .echoRequest(
                identifier: message[ICMPv4Header.identifier],
                sequenceNumber: message[ICMPv4Header.sequenceNumber])
        case (0, 0):
            repr = .echoReply(
                identifier: message[ICMPv4Header.identifier],
                sequenceNumber: message[ICMPv4Header.sequenceNumber])
        case (3, _):
            if let reason = DestinationUnreachable(rawValue: code) {
                repr = .destinationUnreachable(
                    reason,
                    nextHopMTU: reason == .fragmentationNeeded
                        ? message[ICMPv4Header.nextHopMTU] : 0)
            } else {
                repr = .other(
                    type: type, code: code, restOfHeader: message[ICMPv4Header.restOfHeader])
            }
        case (11, _):
            repr = .timeExceeded(code: code)
        default:
            repr = .other(
                type: type, code: code, restOfHeader: message[ICMPv4Header.restOfHeader])
        }
        if repr.isError {
            // RFC 792: "Internet Header + 64 bits of Original Data Datagram" (all of a
            // datagram with less data than that). The quote may be cut after those 64
            // bits, so only the header is checked against the bytes.
            let data = message.extracting(droppingFirst: ICMPv4Header.size)
            let headerLength: Int
            let totalLength: Int
            do {
                let quoted = try IPv4Packet(checkingHeaderOnly: data)
                headerLength = quoted.headerLength
                totalLength = quoted.totalLength
            } catch {
                throw .badEmbeddedHeader(error)
            }
            guard data.byteCount >= min(headerLength &+ 8, totalLength) else {
                throw .badEmbeddedHeader(nil)
            }
        }
        return repr
    }

    /// Prepends the 8-byte header in front of `packet` (the echo payload, or the quoted
    /// original datagram) and fills the checksum over both; `packet` becomes the
    /// message.
    @inlinable
    public func emit(prependingTo packet: inout Packet) throws(ICMPv4Error) {
        do {
            try packet.prepend(ICMPv4Header.size)
        } catch {
            throw .buffer(error)
        }
        var type: UInt8 = 0
        var code: UInt8 = 0
        var rest: UInt32 = 0
        switch self {
        case .echoRequest(let identifier, let sequenceNumber):
            type = 8
            rest = UInt32(identifier) << 16 | UInt32(sequenceNumber)
        case .echoReply(let identifier, let sequenceNumber):
            rest = UInt32(identifier) << 16 | UInt32(sequenceNumber)
        case .destinationUnreachable(let reason, let mtu):
            type = 3
            code = reason.rawValue
            rest = UInt32(mtu)
        case .timeExceeded(let value):
            type = 11
            code = value
        case .other(let value, let codeValue, let restValue):
            type = value
            code = codeValue
            rest = restValue
        }
        let head = UInt64(type) << 56 | UInt64(code) << 48 | UInt64(rest)
        packet.withUnsafeMutableBytes { bytes in
            let p = bytes.baseAddress!
            p.storeBigEndian(head, at: 0)
            let checksum = InternetChecksum.checksum(of: UnsafeRawBufferPointer(bytes))
            p.storeBigEndian(checksum, at: 2)
        }
    }

    /// The echo reply to an echo request: same identifier and sequence number (RFC 792;
    /// RFC 1122 §3.2.2.6: "the data received in the ICMP Echo Request MUST be entirely
    /// included in the Echo Reply"). Emit it in front of the request's payload view to
    /// reply in place. Nil for anything but an echo request.
    @inlinable @inline(__always)
    public var echoReply: ICMPv4Repr? {
        guard case .echoRequest(let identifier, let sequenceNumber) = self else { return nil }
        return .echoReply(identifier: identifier, sequenceNumber: sequenceNumber)
    }

    /// How many bytes of an offending datagram an error quotes: its header plus 8
    /// bytes of data (RFC 792), at most the datagram.
    @inlinable
    public static func quoteLength(of original: borrowing IPv4Packet) -> Int {
        min(original.bytes.byteCount, original.headerLength &+ 8)
    }
}
