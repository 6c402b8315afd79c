import OasisBits
import OasisDevices

/// The EtherType of an Ethernet II frame (IEEE 802.3 §3.2.6: values >= 0x0600).
public struct EtherType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit value.
    public let rawValue: UInt16
    /// The type with this value.
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// IPv4 (RFC 894).
    public static let ipv4 = EtherType(rawValue: 0x0800)
    /// ARP (RFC 826).
    public static let arp = EtherType(rawValue: 0x0806)
    /// IEEE 802.1Q customer VLAN tag.
    public static let vlan = EtherType(rawValue: 0x8100)
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    public static let qinq = EtherType(rawValue: 0x88a8)
    /// IPv6 (RFC 2464).
    public static let ipv6 = EtherType(rawValue: 0x86dd)

    /// `0x0800`.
    public var description: String {
        let hex = String(rawValue, radix: 16)
        return "0x" + String(repeating: "0", count: 4 - hex.count) + hex
    }
}

/// The fixed part of an Ethernet II header: destination, source, type.
public enum EthernetHeader: HeaderLayout {
    /// Destination MAC, bytes 0..<6.
    public static let destination = 0
    /// Source MAC, bytes 6..<12.
    public static let source = 6
    /// EtherType (or, with tags, the first TPID), bytes 12..<14.
    public static let etherType = Field<UInt16>.at(byte: 12)
    /// 14 bytes.
    public static let size = etherType.end
}

/// An 802.1Q tag after its TPID: priority, drop eligibility, VLAN id, then the next type.
public enum VLANTagHeader: HeaderLayout {
    /// Priority code point (IEEE 802.1Q §6.9.3), 3 bits.
    public static let pcp = Field<UInt8>.first(bits: 3)
    /// Drop eligible indicator, 1 bit.
    public static let dei = Field<UInt8>.after(pcp, bits: 1)
    /// VLAN identifier, 12 bits.
    public static let vid = Field<UInt16>.after(dei, bits: 12)
    /// The EtherType (or inner TPID) that follows the tag.
    public static let etherType = Field<UInt16>.after(vid)
    /// 4 bytes.
    public static let size = etherType.end
}

/// One 802.1Q or 802.1ad VLAN tag.
public struct VLANTag: Hashable, Sendable {
    /// The tag protocol identifier: ``EtherType/vlan`` or ``EtherType/qinq``.
    public var tpid: EtherType
    /// Priority code point, 0...7.
    public var priority: UInt8
    /// Drop eligible indicator.
    public var dropEligible: Bool
    /// VLAN identifier, 0...4095.
    public var vid: UInt16

    /// A tag; `priority` and `vid` keep only their low 3 and 12 bits on the wire.
    @inlinable
    public init(
        tpid: EtherType = .vlan, priority: UInt8 = 0, dropEligible: Bool = false, vid: UInt16
    ) {
        self.tpid = tpid
        self.priority = priority
        self.dropEligible = dropEligible
        self.vid = vid
    }
}

/// What was wrong with an Ethernet frame.
public enum EthernetError: Error, Hashable, Sendable {
    /// The frame (with its tags) needs `needed` bytes and has `available`.
    case truncated(needed: Int, available: Int)
    /// The type field holds an IEEE 802.3 length (below 0x0600): not Ethernet II.
    case notEthernetII(lengthField: UInt16)
    /// A third VLAN tag: we parse at most an outer (QinQ or 802.1Q) and an inner one.
    case tooManyVLANTags
    /// Emitting: the buffer had no room for the header.
    case buffer(BitsError)

    /// The drop counter this error belongs to.
    public var dropReason: EthernetDropReason {
        switch self {
        case .truncated, .buffer: .tooShort
        case .notEthernetII, .tooManyVLANTags: .unsupportedFormat
        }
    }
}

/// The parsed meaning of an Ethernet II header: addresses, up to two VLAN tags, type.
///
/// ```swift
/// let (eth, payload) = try EthernetRepr.parse(frame)
/// if eth.etherType == .ipv4 { … payload … }
/// // Emit: prepend in front of an IPv4 packet already written in the buffer.
/// try EthernetRepr(destination: mac, source: ours, etherType: .ipv4).emit(prependingTo: &packet)
/// ```
public struct EthernetRepr: Hashable, Sendable {
    /// Destination MAC.
    public var destination: MACAddress
    /// Source MAC.
    public var source: MACAddress
    /// The outer tag (802.1ad S-tag, or the only 802.1Q tag), if any.
    public var outerTag: VLANTag?
    /// The inner 802.1Q tag of a QinQ frame, if any.
    public var innerTag: VLANTag?
    /// The type of the payload.
    public var etherType: EtherType

    /// A header; no tags unless given.
    @inlinable
    public init(
        destination: MACAddress, source: MACAddress, outerTag: VLANTag? = nil,
        innerTag: VLANTag? = nil, etherType: EtherType
    ) {
        self.destination = destination
        self.source = source
        self.outerTag = outerTag
        self.innerTag = innerTag
        self.etherType = etherType
    }

    /// The header's length on the wire: 14 bytes plus 4 per tag.
    @inlinable
    public var headerLength: Int {
        EthernetHeader.size + (outerTag == nil ? 0 : 4) + (innerTag == nil ? 0 : 4)
    }

    /// The VLAN the frame belongs to: the innermost tag's id, if tagged.
    @inlinable public var vid: UInt16? { (innerTag ?? outerTag)?.vid }

    /// Parses the header at the start of `frame`; returns it and the payload (the rest
    /// of the frame, trailing padding included: the layer above trims by its length).
    @inlinable
    public static func parse(_ frame: Bits) throws(EthernetError) -> (EthernetRepr, Bits) {
        guard let header = try? frame.header(EthernetHeader.self) else {
            throw .truncated(needed: EthernetHeader.size, available: frame.count)
        }
        var repr = EthernetRepr(
            destination: _mac(header.bits, at: EthernetHeader.destination),
            source: _mac(header.bits, at: EthernetHeader.source),
            etherType: EtherType(rawValue: header[EthernetHeader.etherType]))
        var payload = header.payload
        var needed = EthernetHeader.size
        var tags = 0
        while repr.etherType == .vlan || repr.etherType == .qinq {
            needed += VLANTagHeader.size
            guard tags < 2 else { throw .tooManyVLANTags }
            guard let tag = try? payload.header(VLANTagHeader.self) else {
                throw .truncated(needed: needed, available: frame.count)
            }
            let parsed = VLANTag(
                tpid: repr.etherType, priority: tag[VLANTagHeader.pcp],
                dropEligible: tag[VLANTagHeader.dei] == 1, vid: tag[VLANTagHeader.vid])
            if tags == 0 { repr.outerTag = parsed } else { repr.innerTag = parsed }
            repr.etherType = EtherType(rawValue: tag[VLANTagHeader.etherType])
            payload = tag.payload
            tags += 1
        }
        guard repr.etherType.rawValue >= 0x0600 else {
            throw .notEthernetII(lengthField: repr.etherType.rawValue)
        }
        return (repr, payload)
    }

    /// Prepends the header (and tags) in front of `payload`, in the buffer's headroom;
    /// `payload` becomes the whole frame. Nothing is copied.
    @inlinable
    public func emit(prependingTo payload: inout Bits) throws(EthernetError) {
        do {
            var next = etherType
            if let innerTag {
                try Self._prependTag(innerTag, next: next, to: &payload)
                next = innerTag.tpid
            }
            if let outerTag {
                try Self._prependTag(outerTag, next: next, to: &payload)
                next = outerTag.tpid
            }
            var header = try payload.prependHeader(EthernetHeader.self)
            header[EthernetHeader.etherType] = next.rawValue
            var bits = header.bits
            try bits.writeMAC(destination, at: EthernetHeader.destination)
            try bits.writeMAC(source, at: EthernetHeader.source)
        } catch {
            throw .buffer(error)
        }
    }

    @inlinable
    internal static func _prependTag(_ tag: VLANTag, next: EtherType, to bits: inout Bits)
        throws(BitsError)
    {
        var header = try bits.prependHeader(VLANTagHeader.self)
        header[VLANTagHeader.pcp] = tag.priority
        header[VLANTagHeader.dei] = tag.dropEligible ? 1 : 0
        header[VLANTagHeader.vid] = tag.vid
        header[VLANTagHeader.etherType] = next.rawValue
    }

    /// Reads a MAC inside a view already proven long enough.
    @inlinable
    internal static func _mac(_ bits: Bits, at offset: Int) -> MACAddress {
        (try? bits.readMAC(at: offset)) ?? .zero
    }
}
