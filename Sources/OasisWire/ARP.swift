// ARP for Ethernet and IPv4 (RFC 826).

import OasisBits

/// The ARP packet for Ethernet and IPv4 (RFC 826, "Packet format"): 28 bytes.
public enum ArpHeader: HeaderLayout {
    /// Hardware type: 1 for Ethernet.
    public static let hardwareType = Field<UInt16>.first()
    /// Protocol type: 0x0800 for IPv4.
    public static let protocolType = Field<UInt16>.after(hardwareType)
    /// Hardware address length: 6.
    public static let hardwareLength = Field<UInt8>.after(protocolType)
    /// Protocol address length: 4.
    public static let protocolLength = Field<UInt8>.after(hardwareLength)
    /// Operation: 1 request, 2 reply.
    public static let operation = Field<UInt16>.after(protocolLength)
    /// Sender hardware address, bytes 8..<14.
    public static let senderHardwareAddress = 8
    /// Sender protocol address.
    public static let senderProtocolAddress = Field<UInt32>.at(byte: 14)
    /// Target hardware address, bytes 18..<24.
    public static let targetHardwareAddress = 18
    /// Target protocol address.
    public static let targetProtocolAddress = Field<UInt32>.at(byte: 24)
    /// 28 bytes.
    @inlinable public static var size: Int { 28 }
}

/// What was wrong with an ARP packet.
public enum ArpError: Error, Hashable, Sendable {
    /// Fewer than 28 bytes.
    case truncated(available: Int)
    /// Not Ethernet/IPv4: the four type and length fields as found.
    case unsupportedFormat(
        hardwareType: UInt16, protocolType: UInt16, hardwareLength: UInt8, protocolLength: UInt8)
    /// An operation other than request (1) or reply (2).
    case unknownOperation(UInt16)
    /// Emitting: the buffer had no room.
    case buffer(BitsError)
}

/// The parsed meaning of an Ethernet/IPv4 ARP packet.
public struct ArpRepr: Hashable, Sendable {
    /// Request or reply.
    public enum Operation: UInt16, Hashable, Sendable {
        /// `ares_op$REQUEST`.
        case request = 1
        /// `ares_op$REPLY`.
        case reply = 2
    }

    /// Request or reply.
    public var operation: Operation
    /// Who sends.
    public var senderHardwareAddress: MACAddress
    /// The sender's IPv4 address (0.0.0.0 in an RFC 5227 probe).
    public var senderProtocolAddress: IPv4Address
    /// Who is asked (zero in a request).
    public var targetHardwareAddress: MACAddress
    /// The address being resolved.
    public var targetProtocolAddress: IPv4Address

    /// An ARP packet.
    @inlinable @inline(__always)
    public init(
        operation: Operation, senderHardwareAddress: MACAddress,
        senderProtocolAddress: IPv4Address, targetHardwareAddress: MACAddress,
        targetProtocolAddress: IPv4Address
    ) {
        self.operation = operation
        self.senderHardwareAddress = senderHardwareAddress
        self.senderProtocolAddress = senderProtocolAddress
        self.targetHardwareAddress = targetHardwareAddress
        self.targetProtocolAddress = targetProtocolAddress
    }

    /// 28 bytes.
    @inlinable public static var length: Int { 28 }

    /// Parses an ARP packet (the Ethernet payload; padding after 28 bytes is ignored),
    /// validating htype 1, ptype 0x0800, hlen 6, plen 4 (RFC 826: "?Do I have the
    /// hardware type… ?Do I speak the protocol…").
    @inlinable @inline(__always)
    public static func parse(_ bytes: RawSpan) throws(ArpError) -> ArpRepr {
        guard bytes.byteCount >= ArpHeader.size else {
            throw .truncated(available: bytes.byteCount)
        }
        let htype = bytes[ArpHeader.hardwareType]
        let ptype = bytes[ArpHeader.protocolType]
        let hlen = bytes[ArpHeader.hardwareLength]
        let plen = bytes[ArpHeader.protocolLength]
        guard htype == 1, ptype == EtherType.ipv4.rawValue, hlen == 6, plen == 4 else {
            throw .unsupportedFormat(
                hardwareType: htype, protocolType: ptype, hardwareLength: hlen,
                protocolLength: plen)
        }
        let code = bytes[ArpHeader.operation]
        guard let operation = Operation(rawValue: code) else { throw .unknownOperation(code) }
        return ArpRepr(
            operation: operation,
            senderHardwareAddress: bytes[mac: ArpHeader.senderHardwareAddress],
            senderProtocolAddress: IPv4Address(rawValue: bytes[ArpHeader.senderProtocolAddress]),
            targetHardwareAddress: bytes[mac: ArpHeader.targetHardwareAddress],
            targetProtocolAddress: IPv4Address(rawValue: bytes[ArpHeader.targetProtocolAddress]))
    }

    /// Prepends the 28-byte packet in front of `packet` (usually an empty one with
    /// headroom); `packet` becomes the ARP packet.
    @inlinable
    public func emit(prependingTo packet: inout Packet) throws(ArpError) {
        do {
            try packet.prepend(ArpHeader.size)
        } catch {
            throw .buffer(error)
        }
        let sender = senderHardwareAddress.rawValue
        let target = targetHardwareAddress.rawValue
        let senderIP = senderProtocolAddress.rawValue
        let targetIP = targetProtocolAddress.rawValue
        let operation = UInt64(operation.rawValue)
        packet.withUnsafeMutableBytes { bytes in
            let p = bytes.baseAddress!
            // htype 1, ptype IPv4, hlen 6, plen 4, the operation.
            p.storeBigEndian(0x0001_0800_0604_0000 | operation, at: 0)
            p.storeBigEndian(UInt32(truncatingIfNeeded: sender >> 16), at: 8)
            p.storeBigEndian(UInt16(truncatingIfNeeded: sender), at: 12)
            p.storeBigEndian(senderIP, at: 14)
            p.storeBigEndian(UInt32(truncatingIfNeeded: target >> 16), at: 18)
            p.storeBigEndian(UInt16(truncatingIfNeeded: target), at: 22)
            p.storeBigEndian(targetIP, at: 24)
        }
    }

    /// The Ethernet header that carries this packet: replies go to the asker, requests
    /// (and gratuitous announcements) to broadcast.
    @inlinable @inline(__always)
    public var ethernetHeader: EthernetRepr {
        EthernetRepr(
            destination: operation == .reply ? targetHardwareAddress : .broadcast,
            source: senderHardwareAddress, etherType: .arp)
    }

    /// A request for `target`'s hardware address.
    @inlinable
    public static func request(
        from mac: MACAddress, _ address: IPv4Address, for target: IPv4Address
    ) -> ArpRepr {
        ArpRepr(
            operation: .request, senderHardwareAddress: mac, senderProtocolAddress: address,
            targetHardwareAddress: .zero, targetProtocolAddress: target)
    }

    /// A gratuitous ARP announcing `address` at `mac`: a request whose sender and target
    /// protocol addresses are both ours, so every cache holding `address` updates its
    /// entry (RFC 826's merge step). Its target hardware address is zero, as RFC 5227
    /// §2.3 has an announcement and as Linux sends one (`arping -U` sends all ones).
    @inlinable
    public static func gratuitous(mac: MACAddress, address: IPv4Address) -> ArpRepr {
        ArpRepr(
            operation: .request, senderHardwareAddress: mac, senderProtocolAddress: address,
            targetHardwareAddress: .zero, targetProtocolAddress: address)
    }
}
