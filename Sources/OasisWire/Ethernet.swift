// Ethernet II frames with up to two VLAN tags (IEEE 802.1Q, and 802.1ad QinQ), and
// the IEEE 802.3 length frames with an LLC/SNAP header that OpenFlow classifies.

import OasisBits

/// The EtherType of an Ethernet II frame (IEEE 802.3 §3.2.6: values >= 0x0600).
public struct EtherType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit value.
    public let rawValue: UInt16
    /// The type with this value.
    @inlinable @inline(__always) public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// IPv4 (RFC 894).
    @inlinable public static var ipv4: EtherType { EtherType(rawValue: 0x0800) }
    /// ARP (RFC 826).
    @inlinable public static var arp: EtherType { EtherType(rawValue: 0x0806) }
    /// IEEE 802.1Q customer VLAN tag.
    @inlinable public static var vlan: EtherType { EtherType(rawValue: 0x8100) }
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    @inlinable public static var qinq: EtherType { EtherType(rawValue: 0x88a8) }
    /// IPv6 (RFC 2464).
    @inlinable public static var ipv6: EtherType { EtherType(rawValue: 0x86dd) }

    /// Whether the value is an EtherType rather than an IEEE 802.3 length (< 0x0600).
    @inlinable @inline(__always) public var isEtherType: Bool { rawValue >= 0x0600 }

    /// Whether the value is a VLAN tag protocol identifier (802.1Q or 802.1ad).
    @inlinable @inline(__always) public var isVLANTag: Bool { self == .vlan || self == .qinq }

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
    /// 14 bytes (`etherType.end`, written out: a stored static is reached through an
    /// addressor on every use from another module).
    @inlinable public static var size: Int { 14 }
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
    @inlinable public static var size: Int { 4 }
}

/// The IEEE 802.2 LLC header with a SNAP extension (RFC 1042; IEEE 802-2014 §10.5)
/// that carries an EtherType inside an IEEE 802.3 length frame: DSAP and SSAP 0xaa,
/// control 3 (unnumbered information), organisation code 00-00-00, type.
public enum SNAPHeader: HeaderLayout {
    /// LLC destination and source service access points and control: `aa aa 03`.
    public static let llc = Field<UInt32>.first(bits: 24)
    /// The organisationally unique identifier: 00-00-00 for an EtherType.
    public static let organization = Field<UInt32>.after(llc, bits: 24)
    /// The EtherType of the payload.
    public static let etherType = Field<UInt16>.after(organization)
    /// 8 bytes.
    @inlinable public static var size: Int { 8 }
    /// The LLC bytes of a SNAP header.
    @inlinable public static var llcSNAP: UInt32 { 0xaa_aa03 }
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
    @inlinable @inline(__always)
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
}

/// The bytes of an Ethernet frame, checked to hold its header and every VLAN tag
/// (smoltcp's `EthernetFrame`): field getters that cannot fail, and the payload.
///
/// ```swift
/// let frame = try EthernetFrame(checking: packet.bytes)
/// if frame.etherType == .ipv4 { try packet.shift(by: frame.headerLength) }
/// ```
///
/// A frame whose type field is an IEEE 802.3 length (below 0x0600) is accepted too:
/// ``etherType`` is that length, ``isEthernetII`` false, and ``snapEtherType`` the
/// type an LLC/SNAP header carries, if any (OpenFlow classifies such frames).
public struct EthernetFrame: ~Escapable {
    /// The whole frame, trailing padding included.
    public let bytes: RawSpan
    /// The bytes before the payload: 14, plus 4 per VLAN tag.
    public let headerLength: Int
    /// How many VLAN tags follow the source address: 0, 1 or 2.
    public let tagCount: Int

    /// Checks that `bytes` hold an Ethernet header and the VLAN tags its types
    /// announce (at most two).
    @_lifetime(copy bytes)
    @inlinable @inline(__always)
    public init(checking bytes: RawSpan) throws(EthernetError) {
        guard bytes.byteCount >= 14 else {
            throw .truncated(needed: 14, available: bytes.byteCount)
        }
        var tags = 0
        var type = EtherType(rawValue: bytes._bigEndian(UInt16.self, at: 12))
        var length = 14
        while type.isVLANTag {
            guard tags < 2 else { throw .tooManyVLANTags }
            length &+= 4
            guard bytes.byteCount >= length else {
                throw .truncated(needed: length, available: bytes.byteCount)
            }
            type = EtherType(rawValue: bytes._bigEndian(UInt16.self, at: length &- 2))
            tags &+= 1
        }
        self.bytes = bytes
        self.headerLength = length
        self.tagCount = tags
    }

    /// Destination MAC.
    @inlinable @inline(__always) public var destination: MACAddress { bytes[mac: 0] }
    /// Source MAC.
    @inlinable @inline(__always) public var source: MACAddress { bytes[mac: 6] }

    /// The type of the payload (after the tags), or an 802.3 length below 0x0600.
    @inlinable @inline(__always)
    public var etherType: EtherType {
        EtherType(rawValue: bytes._bigEndian(UInt16.self, at: headerLength &- 2))
    }

    /// Whether the type field is an EtherType (Ethernet II) rather than a length.
    @inlinable @inline(__always) public var isEthernetII: Bool { etherType.isEtherType }

    /// The outer tag (802.1ad S-tag, or the only 802.1Q tag), if any.
    @inlinable @inline(__always) public var outerTag: VLANTag? { tagCount > 0 ? tag(at: 12) : nil }
    /// The inner 802.1Q tag of a QinQ frame, if any.
    @inlinable @inline(__always) public var innerTag: VLANTag? { tagCount > 1 ? tag(at: 16) : nil }

    /// The tag whose TPID is at byte `offset`.
    @inlinable @inline(__always)
    internal func tag(at offset: Int) -> VLANTag {
        let tci = bytes[UInt16.self, at: offset &+ 2]
        return VLANTag(
            tpid: EtherType(rawValue: bytes[UInt16.self, at: offset]),
            priority: UInt8(truncatingIfNeeded: tci >> 13), dropEligible: tci & 0x1000 != 0,
            vid: tci & 0x0fff)
    }

    /// For an 802.3 frame with an LLC/SNAP header (DSAP and SSAP 0xaa, control 3,
    /// OUI 00-00-00): the EtherType it carries, whose payload follows the
    /// ``SNAPHeader/size`` bytes of the header; nil otherwise (IEEE 802-2014 §10.5).
    @inlinable @inline(__always)
    public var snapEtherType: EtherType? {
        guard !isEthernetII, bytes.byteCount >= headerLength &+ SNAPHeader.size else {
            return nil
        }
        let snap = bytes.extracting(droppingFirst: headerLength)
        guard snap[SNAPHeader.llc] == SNAPHeader.llcSNAP, snap[SNAPHeader.organization] == 0
        else { return nil }
        return EtherType(rawValue: snap[SNAPHeader.etherType])
    }

    /// What follows the header (and tags), trailing padding included: the layer above
    /// trims by its own length.
    public var payload: RawSpan {
        @_lifetime(copy self)
        @inlinable @inline(__always) get { bytes.extracting(droppingFirst: headerLength) }
    }
}

/// The meaning of an Ethernet II header: addresses, up to two VLAN tags, type.
///
/// ```swift
/// let eth = try EthernetRepr.parse(packet.bytes)
/// try packet.shift(by: eth.headerLength)              // the payload, in place
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
    /// The inner 802.1Q tag of a QinQ frame, if any; only beside an outer tag (alone,
    /// it is emitted where the outer one goes, and parses back as the outer one).
    public var innerTag: VLANTag?
    /// The type of the payload.
    public var etherType: EtherType

    /// A header; no tags unless given.
    @inlinable @inline(__always)
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
    @inlinable @inline(__always)
    public var headerLength: Int {
        EthernetHeader.size &+ (outerTag == nil ? 0 : 4) &+ (innerTag == nil ? 0 : 4)
    }

    /// The VLAN the frame belongs to: the innermost tag's id, if tagged.
    @inlinable @inline(__always) public var vid: UInt16? { (innerTag ?? outerTag)?.vid }

    /// The meaning of a checked Ethernet II frame; ``EthernetError/notEthernetII(lengthField:)``
    /// for an 802.3 length frame.
    @inlinable @inline(__always)
    public static func parse(_ frame: borrowing EthernetFrame) throws(EthernetError) -> EthernetRepr
    {
        let type = frame.etherType
        guard type.isEtherType else { throw .notEthernetII(lengthField: type.rawValue) }
        return EthernetRepr(
            destination: frame.destination, source: frame.source, outerTag: frame.outerTag,
            innerTag: frame.innerTag, etherType: type)
    }

    /// Checks and parses the frame at the start of `bytes`.
    @inlinable @inline(__always)
    public static func parse(_ bytes: RawSpan) throws(EthernetError) -> EthernetRepr {
        try parse(EthernetFrame(checking: bytes))
    }

    /// Prepends the header (and tags) in front of `packet`, in the buffer's headroom;
    /// `packet` becomes the whole frame. Nothing is copied.
    @inlinable
    public func emit(prependingTo packet: inout Packet) throws(EthernetError) {
        let length = headerLength
        do {
            try packet.prepend(length)
        } catch {
            throw .buffer(error)
        }
        let destination = destination.rawValue
        let source = source.rawValue
        let outerTag = outerTag
        let innerTag = innerTag
        let etherType = etherType.rawValue
        packet.withUnsafeMutableBytes { bytes in
            let p = bytes.baseAddress!
            p.storeBigEndian(UInt32(truncatingIfNeeded: destination >> 16), at: 0)
            p.storeBigEndian(
                UInt32(truncatingIfNeeded: destination << 16 | source >> 32), at: 4)
            p.storeBigEndian(UInt32(truncatingIfNeeded: source), at: 8)
            var at = 12
            if let outerTag {
                p.storeBigEndian(Self._word(outerTag), at: at)
                at &+= 4
            }
            if let innerTag {
                p.storeBigEndian(Self._word(innerTag), at: at)
                at &+= 4
            }
            p.storeBigEndian(etherType, at: at)
        }
    }

    /// A tag's TPID and TCI as one word.
    @inlinable @inline(__always)
    internal static func _word(_ tag: VLANTag) -> UInt32 {
        let tci =
            UInt16(tag.priority & 7) << 13 | (tag.dropEligible ? 0x1000 : 0) | tag.vid & 0x0fff
        return UInt32(tag.tpid.rawValue) << 16 | UInt32(tci)
    }
}
