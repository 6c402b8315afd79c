import Foundation
import OasisBits
import OasisDevices
import OasisTestSupport
import OasisWire
import Testing

/// One of IPv4Rewrite's rewrites, with the value it writes.
enum Rewrite: CaseIterable, CustomStringConvertible {
    case source, destination, typeOfService, timeToLive, sourcePort, destinationPort

    static let newSource = IPv4Address(203, 0, 113, 7)
    static let newDestination = IPv4Address(198, 51, 100, 99)

    /// Applies the rewrite to the IPv4 packet that `packet` holds.
    func apply(to packet: inout Packet, port: UInt16 = 4242) throws {
        var bytes = packet.mutableBytes
        switch self {
        case .source: try IPv4Rewrite.setSource(Rewrite.newSource, in: &bytes)
        case .destination: try IPv4Rewrite.setDestination(Rewrite.newDestination, in: &bytes)
        case .typeOfService: try IPv4Rewrite.setTypeOfService(0xb8, in: &bytes)
        case .timeToLive: try IPv4Rewrite.decrementTimeToLive(in: &bytes)
        case .sourcePort: try IPv4Rewrite.setSourcePort(port, in: &bytes)
        case .destinationPort: try IPv4Rewrite.setDestinationPort(port, in: &bytes)
        }
    }

    var description: String {
        switch self {
        case .source: "setSource"
        case .destination: "setDestination"
        case .typeOfService: "setTypeOfService"
        case .timeToLive: "decrementTimeToLive"
        case .sourcePort: "setSourcePort"
        case .destinationPort: "setDestinationPort"
        }
    }
}

/// The IPv4 header checksum of `ip`, summed from scratch.
func headerChecksumFromScratch(_ ip: [UInt8]) -> UInt16 {
    var header = Array(ip[0..<(Int(ip[0] & 0x0f) * 4)])
    header[10] = 0
    header[11] = 0
    return header.withUnsafeBytes { InternetChecksum.checksum(of: $0) }
}

/// The TCP or UDP checksum of `segment` (a whole segment or datagram) from `source` to
/// `destination`, summed from scratch, as a sender writes it (UDP sends zero as 0xffff).
func transportChecksumFromScratch(
    _ segment: [UInt8], protocol: IPProtocol, source: IPv4Address, destination: IPv4Address
) -> UInt16 {
    var zeroed = segment
    let field = `protocol` == .tcp ? 16 : 6
    zeroed[field] = 0
    zeroed[field + 1] = 0
    var sum = IPv4Repr.pseudoHeaderChecksum(
        source: source, destination: destination, protocol: `protocol`, length: segment.count)
    zeroed.withUnsafeBytes { sum.add($0) }
    return `protocol` == .udp && sum.checksum == 0 ? 0xffff : sum.checksum
}

/// The big-endian 16-bit word at `offset`.
func word(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
    UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
}

/// A captured UDP datagram (the DNS query) sent without a checksum.
let dnsQueryWithoutChecksumFrame: [UInt8] = {
    var frame = dnsQueryFrame
    frame[40] = 0
    frame[41] = 0
    return frame
}()

/// Rewrites of IPv4 headers in place (an OpenFlow switch's set-field actions, a
/// router's TTL), each checked against the checksums summed again from scratch and
/// against tshark's verdict on them.
@Suite struct RewriteTests {
    /// The frames rewritten: TCP with data, TCP with SACK, UDP with and without a
    /// checksum, ICMP, and the two fragments of one UDP datagram.
    static let frames: [(name: String, frame: [UInt8])] = [
        ("TCP data", tcpDataFrame), ("TCP SACK", tcpSACKFrame), ("UDP", dnsQueryFrame),
        ("UDP without checksum", dnsQueryWithoutChecksumFrame), ("ICMP", echoRequestFrame),
        ("first fragment", udpFirstFragmentFrame), ("later fragment", udpLastFragmentFrame),
    ]

    /// `frame` with `rewrite` applied to its IPv4 packet.
    static func rewritten(_ frame: [UInt8], _ rewrite: Rewrite, port: UInt16 = 4242) throws
        -> [UInt8]
    {
        var ip = packet(frame, from: 14)
        try rewrite.apply(to: &ip, port: port)
        return Array(frame[0..<14]) + ip.copyBytes()
    }

    @Test(arguments: Rewrite.allCases)
    func checksumsAgreeWithSumsFromScratch(_ rewrite: Rewrite) throws {
        var fragments: [[UInt8]] = []
        for (name, frame) in Self.frames {
            let after = try Self.rewritten(frame, rewrite)
            let ip = Array(after[14...])
            let context = "\(rewrite) on \(name)"
            #expect(word(ip, 10) == headerChecksumFromScratch(ip), "\(context)")
            let view = packet(ip)
            let header = try IPv4Packet(checking: view.bytes)
            let (source, destination, proto) = (header.source, header.destination, header.protocol)
            let (headerLength, offset, more) = (
                header.headerLength, header.fragmentOffset, header.moreFragments
            )
            // What the rewrite wrote.
            switch rewrite {
            case .source: #expect(source == Rewrite.newSource, "\(context)")
            case .destination: #expect(destination == Rewrite.newDestination, "\(context)")
            case .typeOfService: #expect(ip[1] == 0xb8, "\(context)")
            case .timeToLive: #expect(ip[8] == frame[22] - 1, "\(context)")
            case .sourcePort, .destinationPort:
                let field = headerLength + (rewrite == .sourcePort ? 0 : 2)
                let carriesPorts = proto != .icmp && offset == 0
                #expect(
                    word(ip, field) == (carriesPorts ? 4242 : word(frame, 14 + field)), "\(context)"
                )
            }
            // Nothing after the header moves in a later fragment: it holds no ports.
            if offset != 0 {
                #expect(ip[headerLength...] == frame[(14 + headerLength)...], "\(context)")
            }
            if more || offset != 0 {
                fragments.append(ip)
                continue
            }
            guard proto == .tcp || proto == .udp else { continue }
            let segment = Array(ip[headerLength...])
            let field = proto == .tcp ? 16 : 6
            if frame == dnsQueryWithoutChecksumFrame {
                #expect(word(segment, field) == 0, "\(context): no checksum stays none")
                continue
            }
            #expect(
                word(segment, field)
                    == transportChecksumFromScratch(
                        segment, protocol: proto, source: source, destination: destination),
                "\(context)")
        }
        // The first fragment's UDP checksum covers the whole datagram.
        try #require(fragments.count == 2)
        let datagram = Array(fragments[0][20...]) + Array(fragments[1][20...])
        let source = IPv4Address(
            rawValue: UInt32(word(fragments[0], 12)) << 16 | UInt32(word(fragments[0], 14)))
        let destination = IPv4Address(
            rawValue: UInt32(word(fragments[0], 16)) << 16 | UInt32(word(fragments[0], 18)))
        #expect(datagram.count == 708 && word(datagram, 4) == 708)
        #expect(
            word(datagram, 6)
                == transportChecksumFromScratch(
                    datagram, protocol: .udp, source: source, destination: destination),
            "\(rewrite) on the fragmented datagram")
    }

    /// A rewrite whose incremental update lands on zero: TCP keeps 0x0000 (what a sum
    /// from scratch gives), UDP sends 0xffff (RFC 768: zero means "no checksum").
    @Test func updatesThatLandOnZero() throws {
        for (frame, field) in [(dnsQueryFrame, 34 + 6), (tcpDataFrame, 34 + 16)] {
            // The port that brings the sum to 0xffff: ~(~checksum + ~oldPort).
            var sum = InternetChecksum()
            sum.add(~word(frame, field))
            sum.add(~word(frame, 34))
            let port = ~sum.sum
            let after = try Self.rewritten(frame, .sourcePort, port: port)
            let isUDP = frame[23] == 17
            #expect(word(after, field) == (isUDP ? 0xffff : 0x0000))
            let ip = Array(after[14...])
            let segment = Array(ip[20...])
            #expect(
                word(after, field)
                    == transportChecksumFromScratch(
                        segment, protocol: isUDP ? .udp : .tcp, source: isUDP ? hostA : hostB,
                        destination: isUDP ? hostB : hostA))
        }
    }

    @Test func timeToLiveStopsAtZero() throws {
        var frame = echoRequestFrame
        frame[22] = 1
        frame = patchIPv4(frame, at: 22, to: 1)
        var ip = packet(frame, from: 14)
        var bytes = ip.mutableBytes
        #expect(try IPv4Rewrite.decrementTimeToLive(in: &bytes) == 0)
        #expect(try IPv4Rewrite.decrementTimeToLive(in: &bytes) == 0)
        let view = try IPv4Packet(checking: ip.bytes)
        let (ttl, valid) = (view.timeToLive, view.verifyChecksum())
        #expect(ttl == 0 && valid)
    }

    /// A packet too short for its header is refused with the error the view gives; a
    /// transport header cut before its checksum is left alone.
    @Test func badInput() throws {
        var short = packet(Array(dnsQueryFrame[14..<33]))
        var bytes = short.mutableBytes
        #expect(throws: IPv4Error.truncated(available: 19)) {
            try IPv4Rewrite.setSource(hostB, in: &bytes)
        }
        var v6 = Array(dnsQueryFrame[14...])
        v6[0] = 0x65
        var six = packet(v6)
        var sixBytes = six.mutableBytes
        #expect(throws: IPv4Error.badVersion(6)) {
            try IPv4Rewrite.setTypeOfService(0, in: &sixBytes)
        }
        var long = Array(dnsQueryFrame[14..<40])
        long[0] = 0x47
        var longIHL = packet(long)
        var longBytes = longIHL.mutableBytes
        #expect(throws: IPv4Error.badHeaderLength(headerLength: 28, totalLength: 26)) {
            try IPv4Rewrite.decrementTimeToLive(in: &longBytes)
        }
        // The UDP header cut after its ports: they change, nothing else is written.
        let cut = Array(dnsQueryFrame[14..<(34 + 5)])
        var cutPacket = packet(cut)
        var cutBytes = cutPacket.mutableBytes
        try IPv4Rewrite.setDestination(hostA, in: &cutBytes)
        let after = cutPacket.copyBytes()
        #expect(after[16..<20] == [192, 0, 2, 1] && after[20...] == cut[20...])
        #expect(word(after, 10) == headerChecksumFromScratch(after))
    }

    /// tshark, summing every checksum itself (and reassembling the fragments), calls
    /// every rewritten frame's checksums good.
    @Test func tsharkAgrees() throws {
        guard isInstalled("tshark") else {
            try skip("RewriteTests.tsharkAgrees", "tshark is not installed")
        }
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("oasis-rewrite-\(getpid())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var files: [(String, [[UInt8]])] = []
        for rewrite in Rewrite.allCases {
            files.append(
                ("\(rewrite)", try Self.frames.map { try Self.rewritten($0.frame, rewrite) }))
        }
        var zero = InternetChecksum()
        zero.add(~word(dnsQueryFrame, 40))
        zero.add(~word(dnsQueryFrame, 34))
        files.append(("zero", [try Self.rewritten(dnsQueryFrame, .sourcePort, port: ~zero.sum)]))
        for (name, frames) in files {
            let path = "\(folder)/\(name).pcap"
            let writer = try PcapFileWriter(path: path)
            for (index, frame) in frames.enumerated() {
                try frame.withUnsafeBytes {
                    try writer.write(
                        $0, timestamp: PcapTimestamp(seconds: Int64(index), microseconds: 0))
                }
            }
            try writer.close()
            let result = try run([
                "tshark", "-r", path, "-o", "ip.check_checksum:TRUE", "-o",
                "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields",
                "-e", "frame.number", "-e", "ip.checksum.status", "-e", "tcp.checksum.status",
                "-e", "udp.checksum.status",
            ])
            #expect(result.status == 0, "\(result.errorOutput)")
            let rows = result.output.split(separator: "\n").map {
                $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            }
            #expect(rows.count == frames.count, "\(name): \(result.output)")
            var udpVerdicts: [String] = []
            for row in rows where row.count == 4 {
                #expect(row[1] == "1", "\(name) frame \(row[0]): IPv4 checksum status \(row[1])")
                #expect(row[2] == "" || row[2] == "1", "\(name) frame \(row[0]): TCP \(row[2])")
                if row[3] != "" { udpVerdicts.append(row[3]) }
            }
            // Good (1) for every datagram with a checksum, the reassembled one included;
            // not present (3) for the one sent without.
            #expect(udpVerdicts == (name == "zero" ? ["1"] : ["1", "3", "1"]), "\(name)")
        }
    }
}
