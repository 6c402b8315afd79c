// ofp_match (OpenFlow 1.0.0 §5.2.3): twelve header fields and the wildcards that say
// which of them a flow ignores. 40 bytes on the wire.

import OasisBits
import OasisWire

/// The wire layout of `ofp_match` (40 bytes).
enum MatchLayout: HeaderLayout {
    static let wildcards = Field<UInt32>.at(byte: 0)
    static let inPort = Field<UInt16>.at(byte: 4)
    static let dlSrc = Field<UInt64>.at(byte: 6, bits: 48)
    static let dlDst = Field<UInt64>.at(byte: 12, bits: 48)
    static let dlVlan = Field<UInt16>.at(byte: 18)
    static let dlVlanPcp = Field<UInt8>.at(byte: 20)
    // byte 21: pad
    static let dlType = Field<UInt16>.at(byte: 22)
    static let nwTos = Field<UInt8>.at(byte: 24)
    static let nwProto = Field<UInt8>.at(byte: 25)
    // bytes 26-27: pad
    static let nwSrc = Field<UInt32>.at(byte: 28)
    static let nwDst = Field<UInt32>.at(byte: 32)
    static let tpSrc = Field<UInt16>.at(byte: 36)
    static let tpDst = Field<UInt16>.at(byte: 38)
    static let size = 40
}

/// `ofp_flow_wildcards`: which match fields a flow ignores. The IPv4 source and
/// destination are wildcarded by prefix: bits 8–13 and 14–19 hold how many low bits
/// of the address are ignored (32 or more: all of it).
public struct Wildcards: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt32
    /// A value from its wire bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `OFPFW_IN_PORT`.
    public static let inPort = Wildcards(rawValue: 1 << 0)
    /// `OFPFW_DL_VLAN`.
    public static let dlVlan = Wildcards(rawValue: 1 << 1)
    /// `OFPFW_DL_SRC`.
    public static let dlSrc = Wildcards(rawValue: 1 << 2)
    /// `OFPFW_DL_DST`.
    public static let dlDst = Wildcards(rawValue: 1 << 3)
    /// `OFPFW_DL_TYPE`.
    public static let dlType = Wildcards(rawValue: 1 << 4)
    /// `OFPFW_NW_PROTO`.
    public static let nwProto = Wildcards(rawValue: 1 << 5)
    /// `OFPFW_TP_SRC`.
    public static let tpSrc = Wildcards(rawValue: 1 << 6)
    /// `OFPFW_TP_DST`.
    public static let tpDst = Wildcards(rawValue: 1 << 7)
    /// `OFPFW_NW_SRC_ALL` (32 << 8).
    public static let nwSrcAll = Wildcards(rawValue: 32 << 8)
    /// `OFPFW_NW_SRC_MASK` (bits 8–13).
    public static let nwSrcMask = Wildcards(rawValue: 0x3f << 8)
    /// `OFPFW_NW_DST_ALL` (32 << 14).
    public static let nwDstAll = Wildcards(rawValue: 32 << 14)
    /// `OFPFW_NW_DST_MASK` (bits 14–19).
    public static let nwDstMask = Wildcards(rawValue: 0x3f << 14)
    /// `OFPFW_DL_VLAN_PCP`.
    public static let dlVlanPcp = Wildcards(rawValue: 1 << 20)
    /// `OFPFW_NW_TOS`.
    public static let nwTos = Wildcards(rawValue: 1 << 21)
    /// `OFPFW_ALL`: every field wildcarded (bits 0–21).
    public static let all = Wildcards(rawValue: (1 << 22) - 1)

    /// How many low bits of nw_src are ignored, as on the wire (0…63; ≥ 32 is all).
    public var nwSrcIgnoredBits: Int {
        get { Int(rawValue >> 8 & 0x3f) }
        set {
            rawValue = rawValue & ~(0x3f << 8) | UInt32(clamping: max(0, min(63, newValue))) << 8
        }
    }

    /// How many low bits of nw_dst are ignored, as on the wire (0…63; ≥ 32 is all).
    public var nwDstIgnoredBits: Int {
        get { Int(rawValue >> 14 & 0x3f) }
        set {
            rawValue = rawValue & ~(0x3f << 14) | UInt32(clamping: max(0, min(63, newValue))) << 14
        }
    }

    /// The mask of nw_src bits that must match (`0` when all are ignored).
    public var nwSrcMask: UInt32 { prefixMask(ignoring: nwSrcIgnoredBits) }
    /// The mask of nw_dst bits that must match (`0` when all are ignored).
    public var nwDstMask: UInt32 { prefixMask(ignoring: nwDstIgnoredBits) }
}

func prefixMask(ignoring bits: Int) -> UInt32 {
    bits >= 32 ? 0 : UInt32.max << UInt32(bits)
}

/// `ofp_match`: the twelve-tuple of OpenFlow 1.0 and its wildcards.
///
/// A fully specified match (``Wildcards`` empty) is also how a frame's extracted
/// tuple is represented (see ``Match/init(frame:inPort:)``).
public struct Match: Hashable, Sendable {
    /// Which fields are ignored.
    public var wildcards: Wildcards
    /// Input switch port.
    public var inPort: PortNumber
    /// Ethernet source address.
    public var dlSrc: MACAddress
    /// Ethernet destination address.
    public var dlDst: MACAddress
    /// VLAN id, or `0xffff` (`OFP_VLAN_NONE`) for untagged frames.
    public var dlVlan: UInt16
    /// VLAN priority (3 bits).
    public var dlVlanPcp: UInt8
    /// EtherType.
    public var dlType: UInt16
    /// IP ToS: the DSCP bits in the high six bits.
    public var nwTos: UInt8
    /// IP protocol, or the low 8 bits of the ARP opcode.
    public var nwProto: UInt8
    /// IPv4 source (or ARP sender protocol address).
    public var nwSrc: UInt32
    /// IPv4 destination (or ARP target protocol address).
    public var nwDst: UInt32
    /// TCP/UDP source port, or ICMP type.
    public var tpSrc: UInt16
    /// TCP/UDP destination port, or ICMP code.
    public var tpDst: UInt16

    /// A match; by default one that matches every packet (all wildcards).
    public init(
        wildcards: Wildcards = .all, inPort: PortNumber = PortNumber(0),
        dlSrc: MACAddress = .zero, dlDst: MACAddress = .zero, dlVlan: UInt16 = 0,
        dlVlanPcp: UInt8 = 0, dlType: UInt16 = 0, nwTos: UInt8 = 0, nwProto: UInt8 = 0,
        nwSrc: UInt32 = 0, nwDst: UInt32 = 0, tpSrc: UInt16 = 0, tpDst: UInt16 = 0
    ) {
        self.wildcards = wildcards
        self.inPort = inPort
        self.dlSrc = dlSrc
        self.dlDst = dlDst
        self.dlVlan = dlVlan
        self.dlVlanPcp = dlVlanPcp
        self.dlType = dlType
        self.nwTos = nwTos
        self.nwProto = nwProto
        self.nwSrc = nwSrc
        self.nwDst = nwDst
        self.tpSrc = tpSrc
        self.tpDst = tpDst
    }

    /// A match that matches every packet.
    public static let any = Match()

    /// Reads a match from the first 40 bytes of `bits`.
    init(_ header: Header<MatchLayout>) {
        self.init(
            wildcards: Wildcards(rawValue: header[MatchLayout.wildcards]),
            inPort: PortNumber(header[MatchLayout.inPort]),
            dlSrc: MACAddress(rawValue: header[MatchLayout.dlSrc]),
            dlDst: MACAddress(rawValue: header[MatchLayout.dlDst]),
            dlVlan: header[MatchLayout.dlVlan], dlVlanPcp: header[MatchLayout.dlVlanPcp],
            dlType: header[MatchLayout.dlType], nwTos: header[MatchLayout.nwTos],
            nwProto: header[MatchLayout.nwProto], nwSrc: header[MatchLayout.nwSrc],
            nwDst: header[MatchLayout.nwDst], tpSrc: header[MatchLayout.tpSrc],
            tpDst: header[MatchLayout.tpDst])
    }

    /// Writes the match into the first 40 bytes of `header` (pads must already be 0).
    func write(into header: inout Header<MatchLayout>) {
        header[MatchLayout.wildcards] = wildcards.rawValue
        header[MatchLayout.inPort] = inPort.rawValue
        header[MatchLayout.dlSrc] = dlSrc.rawValue
        header[MatchLayout.dlDst] = dlDst.rawValue
        header[MatchLayout.dlVlan] = dlVlan
        header[MatchLayout.dlVlanPcp] = dlVlanPcp
        header[MatchLayout.dlType] = dlType
        header[MatchLayout.nwTos] = nwTos
        header[MatchLayout.nwProto] = nwProto
        header[MatchLayout.nwSrc] = nwSrc
        header[MatchLayout.nwDst] = nwDst
        header[MatchLayout.tpSrc] = tpSrc
        header[MatchLayout.tpDst] = tpDst
    }
}
