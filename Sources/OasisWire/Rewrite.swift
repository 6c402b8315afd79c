// Header fields rewritten in place, with every checksum that covers them updated
// incrementally (RFC 1624) rather than summed again: what a router does to the TTL
// and an OpenFlow switch's set-field actions (nw_src, nw_dst, nw_tos, tp_src, tp_dst)
// do to a frame on its way through.

import OasisBits

/// Rewrites of the IPv4 packet at the start of a mutable span (the packet's bytes,
/// after any link header), each updating the IPv4 header checksum and, where the field
/// is under it, the TCP or UDP checksum of an unfragmented packet or a first fragment.
///
/// ```swift
/// var bytes = packet.mutableBytes                 // the IPv4 packet
/// try IPv4Rewrite.setSource(IPv4Address("10.0.0.1")!, in: &bytes)
/// ```
///
/// A packet the rewrite cannot read (shorter than its header) is refused with the
/// error ``IPv4Packet/init(checking:)`` would give; a transport header cut short by
/// the end of the span is left alone (its checksum cannot be right anyway).
public enum IPv4Rewrite {
    /// Sets the source address.
    @inlinable
    public static func setSource(_ address: IPv4Address, in bytes: inout MutableRawSpan)
        throws(IPv4Error)
    {
        try _setAddress(address, at: 12, in: &bytes)
    }

    /// Sets the destination address.
    @inlinable
    public static func setDestination(_ address: IPv4Address, in bytes: inout MutableRawSpan)
        throws(IPv4Error)
    {
        try _setAddress(address, at: 16, in: &bytes)
    }

    /// Sets the type-of-service byte (DSCP and ECN).
    @inlinable
    public static func setTypeOfService(_ value: UInt8, in bytes: inout MutableRawSpan)
        throws(IPv4Error)
    {
        _ = try _headerLength(bytes)
        let old = bytes[UInt16.self, at: 0]
        let new = old & 0xff00 | UInt16(value)
        bytes[UInt16.self, at: 0] = new
        bytes[IPv4Header.checksum] = InternetChecksum.update(
            bytes[IPv4Header.checksum], replacing: old, with: new)
    }

    /// Decrements the TTL (RFC 1812 §5.3.1) and returns the new one; a TTL of zero
    /// stays zero.
    @inlinable
    @discardableResult
    public static func decrementTimeToLive(in bytes: inout MutableRawSpan) throws(IPv4Error)
        -> UInt8
    {
        _ = try _headerLength(bytes)
        let old = bytes[UInt16.self, at: 8]
        let ttl = UInt8(truncatingIfNeeded: old >> 8)
        guard ttl > 0 else { return 0 }
        bytes[UInt16.self, at: 8] = old &- 0x100
        bytes[IPv4Header.checksum] = InternetChecksum.update(
            bytes[IPv4Header.checksum], replacing: old, with: old &- 0x100)
        return ttl &- 1
    }

    /// Sets the TCP or UDP source port (nothing for other protocols and for non-first
    /// fragments, which carry no transport header).
    @inlinable
    public static func setSourcePort(_ port: UInt16, in bytes: inout MutableRawSpan)
        throws(IPv4Error)
    {
        try _setPort(port, at: 0, in: &bytes)
    }

    /// Sets the TCP or UDP destination port (as ``setSourcePort(_:in:)``).
    @inlinable
    public static func setDestinationPort(_ port: UInt16, in bytes: inout MutableRawSpan)
        throws(IPv4Error)
    {
        try _setPort(port, at: 2, in: &bytes)
    }

    /// The header length, checked as ``IPv4Packet/init(checkingHeaderOnly:)`` checks it.
    @inlinable
    internal static func _headerLength(_ bytes: borrowing MutableRawSpan) throws(IPv4Error) -> Int {
        guard bytes.byteCount >= IPv4Header.size else {
            throw .truncated(available: bytes.byteCount)
        }
        let version = bytes[IPv4Header.version]
        guard version == 4 else { throw .badVersion(version) }
        let headerLength = Int(bytes[IPv4Header.ihl]) &* 4
        guard headerLength >= IPv4Header.size, headerLength <= bytes.byteCount else {
            throw .badHeaderLength(headerLength: headerLength, totalLength: bytes.byteCount)
        }
        return headerLength
    }

    /// Where the transport checksum is, if the packet carries a TCP or UDP header whose
    /// checksum field lies inside the span; with whether it is UDP's.
    @inlinable
    internal static func _transportChecksum(_ bytes: borrowing MutableRawSpan, headerLength: Int)
        -> (offset: Int, isUDP: Bool)?
    {
        guard bytes[Field<UInt16>.at(byte: 6)] & 0x1fff == 0 else { return nil }
        switch bytes[IPv4Header.protocol] {
        case IPProtocol.tcp.rawValue:
            let offset = headerLength &+ 16
            return offset &+ 2 <= bytes.byteCount ? (offset, false) : nil
        case IPProtocol.udp.rawValue:
            let offset = headerLength &+ 6
            return offset &+ 2 <= bytes.byteCount ? (offset, true) : nil
        default:
            return nil
        }
    }

    @inlinable
    internal static func _setAddress(
        _ address: IPv4Address, at offset: Int, in bytes: inout MutableRawSpan
    ) throws(IPv4Error) {
        let headerLength = try _headerLength(bytes)
        let old = bytes[UInt32.self, at: offset]
        let new = address.rawValue
        bytes[UInt32.self, at: offset] = new
        bytes[IPv4Header.checksum] = InternetChecksum.update(
            bytes[IPv4Header.checksum], replacing: old, with: new)
        // The addresses are in the pseudo-header under TCP's and UDP's checksums.
        if let (field, isUDP) = _transportChecksum(bytes, headerLength: headerLength) {
            let checksum = bytes[UInt16.self, at: field]
            guard !(isUDP && checksum == 0) else { return }  // UDP sent without one
            let updated = InternetChecksum.update(checksum, replacing: old, with: new)
            bytes[UInt16.self, at: field] = isUDP && updated == 0 ? 0xffff : updated
        }
    }

    @inlinable
    internal static func _setPort(_ port: UInt16, at offset: Int, in bytes: inout MutableRawSpan)
        throws(IPv4Error)
    {
        let headerLength = try _headerLength(bytes)
        guard let (field, isUDP) = _transportChecksum(bytes, headerLength: headerLength) else {
            return
        }
        let at = headerLength &+ offset
        let old = bytes[UInt16.self, at: at]
        bytes[UInt16.self, at: at] = port
        let checksum = bytes[UInt16.self, at: field]
        guard !(isUDP && checksum == 0) else { return }
        let updated = InternetChecksum.update(checksum, replacing: old, with: port)
        bytes[UInt16.self, at: field] = isUDP && updated == 0 ? 0xffff : updated
    }
}
