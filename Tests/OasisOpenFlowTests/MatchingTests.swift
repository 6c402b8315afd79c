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
let extractionFrames = [
    sampleFrame, arpFrame, taggedICMPFrame, laterFragmentFrame, snapUDPFrame, llcFrame,
]

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

    @Test func shortFramesDoNotTrap() {
        for length in 0..<sampleFrame.count {
            _ = tuple(Array(sampleFrame.prefix(length)))
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
