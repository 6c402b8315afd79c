import OasisBits
import OasisWire
import Testing

@testable import OasisOpenFlow

/// Frames for extraction tests, each with the tuple the specification gives it.
let arpFrame = hex(
    "ffffffffffff 020000000001 0806 0001 0800 0604 0001 020000000001 0a000001 000000000000 0a000002"
)
let taggedICMPFrame = hex(
    "000000000002 020000000001 8100 a00a 0800 4500001c00010000400111110a0000010a000002 08004d5700010001"
)
let laterFragmentFrame = hex(
    "000000000002 020000000001 0800 4513002000012001401111110a0000010a000002 1234567800080000 00000000"
)
let snapUDPFrame = hex(
    "000000000002 020000000001 0030 aaaa03000000 0800 4500001c00010000401111110a0000010a000002 0035003500080000"
)
let llcFrame = hex("000000000002 020000000001 0030 424203000000 0800")
/// UDP 1234 → 53 after an IPv4 router alert option (IHL 6).
let ipOptionsFrame = hex(
    "000000000002 020000000001 0800 46000020 00010000 40110000 0a000001 0a000002 94040000 04d2003500080000"
)
/// The first fragment of a UDP datagram (MF, offset 0): it carries the ports.
let firstFragmentFrame = hex(
    "000000000002 020000000001 0800 4500002400012000401100000a0000010a000002 04d2003500200000 0001020304050607"
)
/// An Inverse ARP request (RFC 2390, opcode 8): the low 8 bits of any opcode count.
let inverseArpFrame = hex(
    "ffffffffffff 020000000001 0806 0001 0800 0604 0008 020000000001 0a000001 020000000002 0a000002"
)
let extractionFrames = [
    sampleFrame, arpFrame, taggedICMPFrame, laterFragmentFrame, snapUDPFrame, llcFrame,
    ipOptionsFrame, firstFragmentFrame, inverseArpFrame,
]
/// Two 802.1Q tags (outer VID 100 PCP 3, inner VID 200 PCP 5) around the ICMP packet.
let doubleTaggedFrame = hex(
    "000000000002 020000000001 8100 6064 8100 a0c8 0800 4500001c00010000400111110a0000010a000002 08004d5700010001"
)
/// QinQ: an 802.1ad S-tag (VID 100 PCP 3) around an 802.1Q C-tag (VID 200 PCP 5).
let qinqFrame = hex(
    "000000000002 020000000001 88a8 6064 8100 a0c8 0800 4500001c00010000400111110a0000010a000002 08004d5700010001"
)

@Suite("Flow extraction and match semantics")
struct MatchingTests {
    func tuple(_ frame: [UInt8], port: UInt16 = 1) -> Match {
        Match(frame: Bits(frame), inPort: PortNumber(port))
    }

    @Test func extractsTCP() {
        let t = tuple(sampleFrame)
        #expect(t.wildcards == [])
        #expect(t.dlVlan == vlanNone && t.dlVlanPcp == 0 && t.dlType == 0x0800)
        #expect(t.dlSrc == MACAddress(rawValue: 1) && t.dlDst == MACAddress(rawValue: 2))
        #expect(
            t.nwTos == 0x10 && t.nwProto == 6 && t.nwSrc == 0x0a00_0001 && t.nwDst == 0x0a00_0002)
        #expect(t.tpSrc == 12345 && t.tpDst == 80)
    }

    @Test func extractsARP() {
        let t = tuple(arpFrame)
        #expect(
            t.dlType == 0x0806 && t.nwProto == 1 && t.nwSrc == 0x0a00_0001 && t.nwDst == 0x0a00_0002
        )
        #expect(t.tpSrc == 0 && t.tpDst == 0)
    }

    @Test func extractsVLANAndICMP() {
        let t = tuple(taggedICMPFrame)
        #expect(t.dlVlan == 10 && t.dlVlanPcp == 5 && t.dlType == 0x0800 && t.nwProto == 1)
        #expect(t.tpSrc == 8 && t.tpDst == 0)
    }

    @Test func laterFragmentsHaveNoPortsAndToSKeepsOnlyDSCP() {
        let t = tuple(laterFragmentFrame)
        #expect(t.nwProto == 17 && t.nwTos == 0x10 && t.tpSrc == 0 && t.tpDst == 0)
    }

    @Test func ieee8023Frames() {
        #expect(tuple(snapUDPFrame).dlType == 0x0800)
        #expect(tuple(snapUDPFrame).tpDst == 53)
        #expect(tuple(llcFrame).dlType == dlTypeNotEthernetType)
    }

    /// OpenFlow 1.0 reads one VLAN tag, the outer one, and knows only 802.1Q's TPID
    /// (§3.4, figure 3): a second tag's TPID is dl_type and nothing above is read; an
    /// 802.1ad S-tag is an EtherType like any other.
    @Test func qinqReadsOnlyTheOuter8021QTag() {
        let double = tuple(doubleTaggedFrame)
        #expect(double.dlVlan == 100 && double.dlVlanPcp == 3 && double.dlType == 0x8100)
        #expect(double.nwProto == 0 && double.nwSrc == 0 && double.tpSrc == 0)
        let qinq = tuple(qinqFrame)
        #expect(qinq.dlVlan == vlanNone && qinq.dlVlanPcp == 0 && qinq.dlType == 0x88a8)
        #expect(qinq.nwSrc == 0 && qinq.dlSrc == MACAddress(2, 0, 0, 0, 0, 1))
        // A third tag, or an inner tag cut short, are more than the wire module's view
        // takes; OpenFlow still reads the outer tag, and dl_type is the next TPID.
        let third = hex("000000000002 020000000001 8100 6064 8100 a0c8 8100 0005 0800 45")
        let cutInner = Array(doubleTaggedFrame.prefix(21))
        for frame in [third, cutInner] {
            let t = tuple(frame)
            #expect(t.dlVlan == 100 && t.dlVlanPcp == 3 && t.dlType == 0x8100)
            #expect(t.dlDst == MACAddress(rawValue: 2) && t.nwProto == 0)
        }
        let cutOuter = tuple(Array(doubleTaggedFrame.prefix(17)))
        #expect(cutOuter.dlVlan == vlanNone && cutOuter.dlType == 0x8100)
        let cutSTag = tuple(Array(qinqFrame.prefix(15)))
        #expect(cutSTag.dlVlan == vlanNone && cutSTag.dlType == 0x88a8)
    }

    /// Open vSwitch agrees on the outer tag of a frame with two 802.1Q tags; it goes
    /// further than OpenFlow 1.0 (both tags and the IPv4 packet inside, with either
    /// TPID), which the comment on ``Match/init(frame:inPort:)`` records.
    @Test func outerTagAgreesWithOpenVSwitch() throws {
        let ofctl = try requireTool("ovs-ofctl")
        let message = Message(
            xid: 1,
            body: .packetIn(
                PacketIn(
                    totalLength: UInt16(doubleTaggedFrame.count), inPort: PortNumber(1),
                    reason: .noMatch, data: Payload(doubleTaggedFrame))))
        let output = try run(ofctl, ["ofp-print", hexString(try message.encoded().copyBytes())])
            .output
        let flow = output.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
        let ours = tuple(doubleTaggedFrame)
        #expect(flow.contains("dl_vlan=\(ours.dlVlan),dl_vlan_pcp=\(ours.dlVlanPcp),"), "\(flow)")
    }

    /// Ports follow the IPv4 options; the first fragment carries them, later ones not.
    @Test func optionsAndFragments() {
        let options = tuple(ipOptionsFrame)
        #expect(options.nwProto == 17 && options.nwSrc == 0x0a00_0001)
        #expect(options.tpSrc == 1234 && options.tpDst == 53)
        let first = tuple(firstFragmentFrame)
        #expect(first.tpSrc == 1234 && first.tpDst == 53)
        let later = tuple(laterFragmentFrame)
        #expect(later.nwProto == 17 && later.tpSrc == 0 && later.tpDst == 0)
        let inverse = tuple(inverseArpFrame)
        #expect(inverse.dlType == 0x0806 && inverse.nwProto == 8 && inverse.nwDst == 0x0a00_0002)
    }

    /// A PACKET_IN carries the first `miss_send_len` bytes of a frame: what is whole is
    /// read, the rest is zero. The IPv4 total length is not held against the cut.
    @Test func truncatedHeaders() {
        // The TCP header cut after the ports: total length 44, 24 bytes at hand.
        let ports = tuple(Array(sampleFrame.prefix(38)))
        #expect(ports.nwProto == 6 && ports.nwSrc == 0x0a00_0001 && ports.nwTos == 0x10)
        #expect(ports.tpSrc == 12345 && ports.tpDst == 80)
        // The destination port cut: no ports at all.
        let half = tuple(Array(sampleFrame.prefix(37)))
        #expect(half.nwDst == 0x0a00_0002 && half.tpSrc == 0 && half.tpDst == 0)
        // The IPv4 header cut: dl_type only.
        let cutHeader = tuple(Array(sampleFrame.prefix(33)))
        #expect(cutHeader.dlType == 0x0800 && cutHeader.nwProto == 0 && cutHeader.nwSrc == 0)
        // The options cut: the fixed header is whole, so the nw fields are read.
        let cutOptions = tuple(Array(ipOptionsFrame.prefix(14 + 22)))
        #expect(cutOptions.nwProto == 17 && cutOptions.nwDst == 0x0a00_0002)
        #expect(cutOptions.tpSrc == 0 && cutOptions.tpDst == 0)
        // ICMP needs both type and code; ARP the whole 28 bytes.
        let icmp = tuple(Array(taggedICMPFrame.prefix(18 + 20 + 1)))
        #expect(icmp.nwProto == 1 && icmp.tpSrc == 0)
        let arp = tuple(Array(arpFrame.prefix(14 + 27)))
        #expect(arp.dlType == 0x0806 && arp.nwProto == 0 && arp.nwSrc == 0)
        // An IHL below 5, or a version other than 4: no nw fields.
        var shortIHL = sampleFrame
        shortIHL[14] = 0x44
        var version6 = sampleFrame
        version6[14] = 0x65
        for frame in [shortIHL, version6] {
            let t = tuple(frame)
            #expect(t.dlType == 0x0800 && t.nwProto == 0 && t.nwTos == 0 && t.tpDst == 0)
        }
    }

    @Test func shortFramesDoNotTrap() {
        for frame in extractionFrames + [doubleTaggedFrame, qinqFrame] {
            for length in 0..<frame.count {
                _ = tuple(Array(frame.prefix(length)))
            }
        }
        #expect(tuple(Array(sampleFrame.prefix(36))).tpSrc == 0)
    }

    @Test func wildcardsAndPrefixes() {
        var packet = tuple(sampleFrame)
        packet.dlVlan = 10
        #expect(sampleMatch.matches(packet))
        #expect(Match.any.matches(packet))
        packet.nwSrc = 0x0a00_0077  // still in 10.0.0.0/24
        #expect(sampleMatch.matches(packet))
        packet.nwSrc = 0x0a00_0101
        #expect(!sampleMatch.matches(packet))
        packet.nwSrc = 0x0a00_0001
        packet.tpSrc = 999  // wildcarded
        packet.dlVlanPcp = 7  // wildcarded
        #expect(sampleMatch.matches(packet))
        packet.tpDst = 81
        #expect(!sampleMatch.matches(packet))
        var everything = Match(wildcards: [])
        everything.wildcards.nwSrcIgnoredBits = 50  // >= 32: all of nw_src ignored
        #expect(everything.wildcards.nwSrcMask == 0)
        #expect(Wildcards.all.nwSrcMask == 0 && Wildcards.all.nwDstMask == 0)
    }

    @Test func coveringNonStrict() {
        let exact = tuple(sampleFrame)
        #expect(Match.any.covers(exact))
        #expect(exact.covers(exact))
        #expect(!exact.covers(.any))
        var wide = Match(wildcards: .all, nwSrc: 0x0a00_0000)
        wide.wildcards.nwSrcIgnoredBits = 16
        var narrow = wide
        narrow.wildcards.nwSrcIgnoredBits = 8
        narrow.nwSrc = 0x0a00_0000
        #expect(wide.covers(narrow))
        #expect(!narrow.covers(wide))
        #expect(wide.covers(exact))
        var other = exact
        other.nwSrc = 0x0b00_0001
        #expect(!wide.covers(other))
        // A field the covering match specifies but the other wildcards: not covered.
        var inPortOnly = Match.any
        inPortOnly.wildcards.remove(.inPort)
        inPortOnly.inPort = PortNumber(1)
        #expect(inPortOnly.covers(exact))
        #expect(!inPortOnly.covers(.any))
    }

    @Test func strictEquality() {
        var a = sampleMatch
        var b = sampleMatch
        b.tpSrc = 4444  // wildcarded: ignored
        b.nwSrc = 0x0a00_00ff  // only the /24 counts
        #expect(a.isStrictlyEqual(to: b))
        a.wildcards = .all
        b.wildcards = .all
        b.wildcards.nwSrcIgnoredBits = 40
        b.wildcards.nwDstIgnoredBits = 33
        #expect(a.isStrictlyEqual(to: b))
        #expect(!sampleMatch.isStrictlyEqual(to: .any))
        #expect(!Match.any.isStrictlyEqual(to: tuple(sampleFrame)))
    }

    /// Open vSwitch parses the frame of a PACKET_IN and prints the flow it extracted:
    /// an independent implementation of the same rules.
    @Test func extractionAgreesWithOpenVSwitch() throws {
        let ofctl = try requireTool("ovs-ofctl")
        for frame in extractionFrames {
            let ours = tuple(frame)
            let message = Message(
                xid: 1,
                body: .packetIn(
                    PacketIn(
                        totalLength: UInt16(frame.count), inPort: PortNumber(1), reason: .noMatch,
                        data: Payload(frame))))
            let output = try run(
                ofctl, ["ofp-print", hexString(try message.encoded().copyBytes())]
            ).output
            let flowLine = output.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
            var fields: [String: String] = [:]
            var keywords: Set<String> = []
            for item in flowLine.split(separator: " ").first?.split(separator: ",") ?? [] {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 {
                    fields[parts[0]] = parts[1]
                } else {
                    keywords.insert(parts[0])
                }
            }
            let context = "\(flowLine)\nours: \(OpenFlowPrinter.describe(match: ours))"
            #expect(fields["dl_src"] == ours.dlSrc.description, "\(context)")
            #expect(fields["dl_dst"] == ours.dlDst.description, "\(context)")
            if let vid = fields["dl_vlan"] {
                #expect(
                    UInt16(vid) == ours.dlVlan
                        && UInt8(fields["dl_vlan_pcp"] ?? "") == ours.dlVlanPcp, "\(context)")
            } else {
                #expect(ours.dlVlan == vlanNone, "\(context)")
            }
            let types: [String: UInt16] = [
                "arp": 0x0806, "ip": 0x0800, "tcp": 0x0800, "udp": 0x0800, "icmp": 0x0800,
            ]
            let theirType =
                keywords.compactMap { types[$0] }.first
                ?? fields["dl_type"].flatMap { UInt16($0.dropFirst(2), radix: 16) }
            #expect(theirType == ours.dlType, "\(context)")
            if keywords.contains("arp") {
                #expect(
                    fields["arp_spa"] == ipv4Description(ours.nwSrc)
                        && fields["arp_tpa"] == ipv4Description(ours.nwDst))
                #expect(UInt8(fields["arp_op"] ?? "") == ours.nwProto)
            } else if ours.dlType == 0x0800 {
                #expect(
                    fields["nw_src"] == ipv4Description(ours.nwSrc)
                        && fields["nw_dst"] == ipv4Description(ours.nwDst))
                #expect(UInt8(fields["nw_tos"] ?? "") == ours.nwTos, "\(context)")
                let sourceKey = keywords.contains("icmp") ? "icmp_type" : "tp_src"
                let destinationKey = keywords.contains("icmp") ? "icmp_code" : "tp_dst"
                #expect(UInt16(fields[sourceKey] ?? "0") == ours.tpSrc, "\(context)")
                #expect(UInt16(fields[destinationKey] ?? "0") == ours.tpDst, "\(context)")
            }
        }
    }
}
