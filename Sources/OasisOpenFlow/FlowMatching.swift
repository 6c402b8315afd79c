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
    /// (no wildcards), following the specification's flow-extraction rules (§3.4,
    /// figure 3; the fields of §5.2.3), read through the wire module's views:
    ///
    /// - untagged frames have dl_vlan `0xffff` and dl_vlan_pcp 0; 802.1Q frames the
    ///   tag's VID and PCP, and dl_type is the inner EtherType;
    /// - only the outer tag is read, and only an 802.1Q one (TPID 0x8100): a frame
    ///   with two 802.1Q tags has the outer tag's VID and PCP and dl_type 0x8100 (the
    ///   inner tag's TPID), and nothing above is read; an 802.1ad S-tag (0x88a8) is no
    ///   tag to OpenFlow 1.0, whose figure 3 tests for 0x8100 alone: dl_type 0x88a8,
    ///   no VLAN. Open vSwitch reads either TPID as a tag: ovs-vswitchd by default
    ///   only the outer tag (`other_config:vlan-limit` is 1), the next TPID then being
    ///   dl_type as here; `ovs-ofctl ofp-print` two tags, and the IP packet inside;
    /// - 802.3 frames take dl_type from a SNAP header, or `0x05ff` without one;
    /// - ARP (Ethernet/IPv4): nw_proto is the low 8 bits of the opcode, nw_src/nw_dst
    ///   the sender and target protocol addresses;
    /// - IPv4: nw_tos is the DSCP bits (ToS & 0xfc), nw_proto, nw_src, nw_dst; TCP and
    ///   UDP ports, or ICMP type and code, in tp_src/tp_dst (after any IP options) —
    ///   zero for fragments other than the first;
    /// - the frame may be cut short (a PACKET_IN carries the first `miss_send_len`
    ///   bytes): whatever whole fields it holds are read, the rest are zero. The IPv4
    ///   total length is not checked against the bytes at hand; the fixed 20 bytes
    ///   of the IPv4 header give the nw fields even when its options are cut; the
    ///   ports need both ports' four bytes, ICMP both type and code.
    public init(frame: Bits, inPort: PortNumber) {
        self.init(wildcards: [], inPort: inPort, dlVlan: vlanNone)
        let bytes = frame.bytes
        extractLink(bytes)
    }

    private mutating func extractLink(_ bytes: RawSpan) {
        guard let link = try? EthernetFrame(checking: bytes) else {
            extractCutLink(bytes)
            return
        }
        dlDst = link.destination
        dlSrc = link.source
        if let outer = link.outerTag {
            guard outer.tpid == .vlan else {
                dlType = outer.tpid.rawValue  // 802.1ad: an EtherType to OpenFlow 1.0
                return
            }
            dlVlan = outer.vid
            dlVlanPcp = outer.priority
            if let inner = link.innerTag {
                dlType = inner.tpid.rawValue  // the outer tag only
                return
            }
        }
        var type = link.etherType
        var payload = link.payload
        if !type.isEtherType {
            // An 802.3 length: LLC/SNAP carries an EtherType, plain LLC none.
            guard let carried = link.snapEtherType else {
                dlType = dlTypeNotEthernetType
                return
            }
            type = carried
            payload = payload.extracting(droppingFirst: SNAPHeader.size)
        }
        dlType = type.rawValue
        switch type {
        case .ipv4: extractIPv4(payload)
        case .arp: extractARP(payload)
        default: break
        }
    }

    /// A frame whose VLAN tags run past its end, or that has a third, which
    /// ``EthernetFrame`` refuses: OpenFlow 1.0 still reads its addresses and an outer
    /// 802.1Q tag that is whole. What follows that tag is another TPID (or nothing),
    /// so nothing above the link is read.
    private mutating func extractCutLink(_ bytes: RawSpan) {
        guard bytes.byteCount >= EthernetHeader.size else { return }
        dlDst = bytes[mac: EthernetHeader.destination]
        dlSrc = bytes[mac: EthernetHeader.source]
        dlType = bytes[EthernetHeader.etherType]
        let tag = bytes.extracting(droppingFirst: EthernetHeader.size)
        guard dlType == EtherType.vlan.rawValue, tag.byteCount >= VLANTagHeader.size else {
            return
        }
        dlVlan = tag[VLANTagHeader.vid]
        dlVlanPcp = tag[VLANTagHeader.pcp]
        dlType = tag[VLANTagHeader.etherType]
    }

    private mutating func extractARP(_ arp: RawSpan) {
        do {
            let repr = try ArpRepr.parse(arp)
            nwProto = UInt8(truncatingIfNeeded: repr.operation.rawValue)
            nwSrc = repr.senderProtocolAddress.rawValue
            nwDst = repr.targetProtocolAddress.rawValue
        } catch .unknownOperation(let opcode) {
            // An Ethernet/IPv4 ARP packet of another opcode (RARP's 3 and 4, InARP's):
            // OpenFlow still takes its low 8 bits and the addresses.
            nwProto = UInt8(truncatingIfNeeded: opcode)
            nwSrc = arp[ArpHeader.senderProtocolAddress]
            nwDst = arp[ArpHeader.targetProtocolAddress]
        } catch {
            return
        }
    }

    private mutating func extractIPv4(_ bytes: RawSpan) {
        // Header only: a PACKET_IN's frame may end before the total length does.
        let ip: IPv4Packet
        do {
            ip = try IPv4Packet(checkingHeaderOnly: bytes)
        } catch .badHeaderLength(let headerLength, _) where headerLength >= IPv4Header.size {
            // IHL is fine but the options run past the bytes at hand: the fixed header
            // is whole, the transport header is not there.
            setNetwork(
                typeOfService: bytes[IPv4Header.typeOfService],
                protocol: IPProtocol(rawValue: bytes[IPv4Header.protocol]),
                source: bytes[IPv4Header.source], destination: bytes[IPv4Header.destination])
            return
        } catch {
            return
        }
        setNetwork(
            typeOfService: ip.typeOfService, protocol: ip.protocol, source: ip.source.rawValue,
            destination: ip.destination.rawValue)
        // Only the first fragment (offset 0) carries the transport header.
        guard ip.fragmentOffset == 0 else { return }
        let transport = ip.payload
        switch ip.protocol {
        case .tcp:
            setPorts(transport, TCPHeader.sourcePort, TCPHeader.destinationPort)
        case .udp:
            setPorts(transport, UDPHeader.sourcePort, UDPHeader.destinationPort)
        case .icmp:
            setPorts(transport, ICMPv4Header.type, ICMPv4Header.code)
        default:
            break
        }
    }

    private mutating func setNetwork(
        typeOfService: UInt8, protocol: IPProtocol, source: UInt32, destination: UInt32
    ) {
        nwTos = typeOfService & 0xfc
        nwProto = `protocol`.rawValue
        nwSrc = source
        nwDst = destination
    }

    /// tp_src and tp_dst from two fields of a transport header, if both are there.
    private mutating func setPorts<Value: FixedWidthInteger>(
        _ transport: RawSpan, _ source: Field<Value>, _ destination: Field<Value>
    ) {
        guard let first = try? transport.read(source), let second = try? transport.read(destination)
        else { return }
        tpSrc = UInt16(first)
        tpDst = UInt16(second)
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
