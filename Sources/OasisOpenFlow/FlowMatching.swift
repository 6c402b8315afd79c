// Matching semantics of OpenFlow 1.0.0 (§3.4): the twelve-tuple of a frame, whether a
// frame matches a flow's match, and whether one match covers another (FLOW_MOD
// MODIFY/DELETE and the flow/aggregate stats requests).

import OasisBits
import OasisWire

/// `OFP_VLAN_NONE`: the dl_vlan of an untagged frame.
public let vlanNone: UInt16 = 0xffff

/// `OFP_DL_TYPE_NOT_ETH_TYPE`: the dl_type of an 802.3 frame without a SNAP header.
public let dlTypeNotEthernetType: UInt16 = 0x05ff

extension Match {
    /// The twelve-tuple of an Ethernet frame received on `inPort`, as an exact match
    /// (no wildcards), following the specification's flow-extraction rules:
    ///
    /// - untagged frames have dl_vlan `0xffff` and dl_vlan_pcp 0; 802.1Q frames the
    ///   tag's VID and PCP, and dl_type is the inner EtherType;
    /// - 802.3 frames take dl_type from a SNAP header, or `0x05ff` without one;
    /// - ARP (Ethernet/IPv4): nw_proto is the low 8 bits of the opcode, nw_src/nw_dst
    ///   the sender and target protocol addresses;
    /// - IPv4: nw_tos is the DSCP bits (ToS & 0xfc), nw_proto, nw_src, nw_dst; TCP and
    ///   UDP ports, or ICMP type and code, in tp_src/tp_dst — zero for fragments other
    ///   than the first;
    /// - fields a short or malformed frame does not have are zero.
    public init(frame: Bits, inPort: PortNumber) {
        self.init(wildcards: [], inPort: inPort, dlVlan: vlanNone)
        guard frame.count >= 14, let dst = try? frame.read(Field<UInt64>.at(byte: 0, bits: 48)),
            let src = try? frame.read(Field<UInt64>.at(byte: 6, bits: 48)),
            var type = try? frame.read(UInt16.self, at: 12)
        else { return }
        dlDst = MACAddress(rawValue: dst)
        dlSrc = MACAddress(rawValue: src)
        var offset = 14
        if type == 0x8100 {
            guard let tci = try? frame.read(UInt16.self, at: 14),
                let inner = try? frame.read(UInt16.self, at: 16)
            else {
                dlType = type
                return
            }
            dlVlan = tci & 0x0fff
            dlVlanPcp = UInt8(tci >> 13)
            type = inner
            offset = 18
        }
        if type < 0x0600 {
            // 802.3 length: LLC AA-AA-03 with SNAP OUI 00-00-00 carries an EtherType.
            guard let llc = try? frame.read(Field<UInt64>.at(byte: offset, bits: 48)),
                llc == 0xaaaa_0300_0000, let snapType = try? frame.read(UInt16.self, at: offset + 6)
            else {
                dlType = dlTypeNotEthernetType
                return
            }
            type = snapType
            offset += 8
        }
        dlType = type
        guard let payload = try? frame.shifted(by: offset) else { return }
        switch type {
        case 0x0800: extractIPv4(payload)
        case 0x0806: extractARP(payload)
        default: break
        }
    }

    private mutating func extractARP(_ arp: Bits) {
        guard let hardware = try? arp.read(UInt16.self, at: 0), hardware == 1,
            let proto = try? arp.read(UInt16.self, at: 2), proto == 0x0800,
            let sizes = try? arp.read(UInt16.self, at: 4), sizes == 0x0604,
            let opcode = try? arp.read(UInt16.self, at: 6),
            let spa = try? arp.read(UInt32.self, at: 14),
            let tpa = try? arp.read(UInt32.self, at: 24)
        else { return }
        nwProto = UInt8(truncatingIfNeeded: opcode)
        nwSrc = spa
        nwDst = tpa
    }

    private mutating func extractIPv4(_ ip: Bits) {
        guard let versionIHL = try? ip.read(UInt8.self, at: 0), versionIHL >> 4 == 4,
            let tos = try? ip.read(UInt8.self, at: 1),
            let fragment = try? ip.read(UInt16.self, at: 6),
            let proto = try? ip.read(UInt8.self, at: 9),
            let src = try? ip.read(UInt32.self, at: 12), let dst = try? ip.read(UInt32.self, at: 16)
        else { return }
        let headerLength = Int(versionIHL & 0x0f) * 4
        guard headerLength >= 20 else { return }
        nwTos = tos & 0xfc
        nwProto = proto
        nwSrc = src
        nwDst = dst
        // Only the first fragment (offset 0) carries the transport header.
        guard fragment & 0x1fff == 0, let transport = try? ip.shifted(by: headerLength) else {
            return
        }
        switch proto {
        case 6, 17:
            if let source = try? transport.read(UInt16.self, at: 0),
                let destination = try? transport.read(UInt16.self, at: 2)
            {
                tpSrc = source
                tpDst = destination
            }
        case 1:
            if let icmpType = try? transport.read(UInt8.self, at: 0),
                let icmpCode = try? transport.read(UInt8.self, at: 1)
            {
                tpSrc = UInt16(icmpType)
                tpDst = UInt16(icmpCode)
            }
        default: break
        }
    }

    /// Whether a packet whose tuple is `packet` (see ``init(frame:inPort:)``) matches
    /// this match: every field this match does not wildcard is equal, and nw_src and
    /// nw_dst are equal under this match's prefix masks.
    public func matches(_ packet: Match) -> Bool {
        let w = wildcards
        return (w.contains(.inPort) || inPort == packet.inPort)
            && (w.contains(.dlSrc) || dlSrc == packet.dlSrc)
            && (w.contains(.dlDst) || dlDst == packet.dlDst)
            && (w.contains(.dlVlan) || dlVlan == packet.dlVlan)
            && (w.contains(.dlVlanPcp) || dlVlanPcp == packet.dlVlanPcp)
            && (w.contains(.dlType) || dlType == packet.dlType)
            && (w.contains(.nwTos) || nwTos == packet.nwTos)
            && (w.contains(.nwProto) || nwProto == packet.nwProto)
            && (nwSrc ^ packet.nwSrc) & w.nwSrcMask == 0
            && (nwDst ^ packet.nwDst) & w.nwDstMask == 0
            && (w.contains(.tpSrc) || tpSrc == packet.tpSrc)
            && (w.contains(.tpDst) || tpDst == packet.tpDst)
    }

    /// The boolean wildcard bits, each with whether two matches agree on its field.
    private func agreements(with other: Match) -> [(Wildcards, Bool)] {
        [
            (.inPort, inPort == other.inPort), (.dlSrc, dlSrc == other.dlSrc),
            (.dlDst, dlDst == other.dlDst), (.dlVlan, dlVlan == other.dlVlan),
            (.dlVlanPcp, dlVlanPcp == other.dlVlanPcp), (.dlType, dlType == other.dlType),
            (.nwTos, nwTos == other.nwTos), (.nwProto, nwProto == other.nwProto),
            (.tpSrc, tpSrc == other.tpSrc), (.tpDst, tpDst == other.tpDst),
        ]
    }

    /// Non-strict comparison (FLOW_MOD MODIFY/DELETE, flow and aggregate stats):
    /// whether this match is equal to or more general than `other`, so that every
    /// packet `other` matches, this one matches too.
    public func covers(_ other: Match) -> Bool {
        for (bit, equal) in agreements(with: other) where !wildcards.contains(bit) {
            if other.wildcards.contains(bit) || !equal { return false }
        }
        let source = wildcards.nwSrcMask
        let destination = wildcards.nwDstMask
        return source & ~other.wildcards.nwSrcMask == 0
            && destination & ~other.wildcards.nwDstMask == 0
            && (nwSrc ^ other.nwSrc) & source == 0
            && (nwDst ^ other.nwDst) & destination == 0
    }

    /// Strict comparison (FLOW_MOD MODIFY_STRICT/DELETE_STRICT, with equal priority):
    /// the same wildcards (a prefix wildcard of 32 or more counts as 32) and the same
    /// values in every field they do not wildcard.
    public func isStrictlyEqual(to other: Match) -> Bool {
        normalized == other.normalized
    }

    /// This match with wildcarded fields zeroed, nw prefixes masked and prefix
    /// wildcards of 32 or more written as 32: equal meaning gives equal values.
    public var normalized: Match {
        var result = Match(wildcards: wildcards)
        result.wildcards.rawValue &= Wildcards.all.rawValue
        result.wildcards.nwSrcIgnoredBits = min(32, wildcards.nwSrcIgnoredBits)
        result.wildcards.nwDstIgnoredBits = min(32, wildcards.nwDstIgnoredBits)
        let w = wildcards
        if !w.contains(.inPort) { result.inPort = inPort }
        if !w.contains(.dlSrc) { result.dlSrc = dlSrc }
        if !w.contains(.dlDst) { result.dlDst = dlDst }
        if !w.contains(.dlVlan) { result.dlVlan = dlVlan }
        if !w.contains(.dlVlanPcp) { result.dlVlanPcp = dlVlanPcp }
        if !w.contains(.dlType) { result.dlType = dlType }
        if !w.contains(.nwTos) { result.nwTos = nwTos }
        if !w.contains(.nwProto) { result.nwProto = nwProto }
        result.nwSrc = nwSrc & w.nwSrcMask
        result.nwDst = nwDst & w.nwDstMask
        if !w.contains(.tpSrc) { result.tpSrc = tpSrc }
        if !w.contains(.tpDst) { result.tpDst = tpDst }
        return result
    }
}
