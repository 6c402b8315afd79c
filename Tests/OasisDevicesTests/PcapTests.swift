import Foundation
import OasisDevices
import OasisTestSupport
import OasisWire
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct PcapFileTests {
    private static let counter = Atomic<Int>(0)

    /// Three frames with known bytes: an ARP request, a UDP/IPv4 frame, and a
    /// 100-byte experimental frame.
    static let frames: [(bytes: [UInt8], timestamp: PcapTimestamp)] = [
        (arpRequest, PcapTimestamp(seconds: 1_700_000_000, microseconds: 1)),
        (udpFrame, PcapTimestamp(seconds: 1_700_000_000, microseconds: 500_000)),
        (
            experimentalFrame(source: MACAddress(0x02_00_5e_00_53_02), marker: 3)
                + [UInt8](repeating: 0xab, count: 40),
            PcapTimestamp(seconds: 1_700_000_001, microseconds: 999_999)
        ),
    ]

    static let arpRequest: [UInt8] =
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01, 0x08, 0x06]
        + [0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01]
        + [0x02, 0x00, 0x5e, 0x00, 0x53, 0x01, 192, 0, 2, 1]
        + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 2]
        + [UInt8](repeating: 0, count: 18)

    /// 192.0.2.1:4000 -> 192.0.2.2:53, four bytes of payload (checksums left zero:
    /// nothing here validates them).
    static let udpFrame: [UInt8] =
        [0x02, 0x00, 0x5e, 0x00, 0x53, 0x02, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01, 0x08, 0x00]
        + [0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00]
        + [192, 0, 2, 1, 192, 0, 2, 2]
        + [0x0f, 0xa0, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef]
        + [UInt8](repeating: 0, count: 14)

    static func temporaryPath() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return NSTemporaryDirectory() + "oasis-pcap-\(getpid())-\(n).pcap"
    }

    static func writeFrames(to path: String) throws {
        let writer = try PcapFileWriter(path: path)
        for frame in frames { try writer.write(frame.bytes, timestamp: frame.timestamp) }
        try writer.flush()
        try writer.close()
        try writer.close()  // a second close does nothing
    }

    static func readAll(_ handle: PcapHandle) throws -> [(bytes: [UInt8], PcapPacket)] {
        var packets: [(bytes: [UInt8], PcapPacket)] = []
        while true {
            switch try handle.next() {
            case .packet(let packet): packets.append((Array(packet.bytes), packet))
            case .noPacket: continue
            case .endOfFile: return packets
            }
        }
    }

    @Test func libraryVersionNamesLibpcap() {
        #expect(Pcap.libraryVersion.contains("libpcap"))
    }

    @Test func writtenFramesReadBackUnchanged() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        try Self.writeFrames(to: path)

        let reader = try PcapHandle.offline(path: path)
        defer { reader.close() }
        #expect(try reader.linkType == 1)  // DLT_EN10MB
        let packets = try Self.readAll(reader)
        #expect(packets.count == 3)
        for (read, written) in zip(packets, Self.frames) {
            #expect(read.bytes == written.bytes)
            #expect(read.1.timestamp == written.timestamp)
            #expect(read.1.originalLength == written.bytes.count)
        }
        reader.close()
        #expect(throws: PcapError.closed(source: path)) { _ = try reader.next() }
    }

    @Test func tsharkReadsTheSameLengths() throws {
        guard isInstalled("tshark") else {
            try skip("tsharkReadsTheSameLengths", "tshark is not installed")
        }
        let path = Self.temporaryPath()
        defer { unlink(path) }
        try Self.writeFrames(to: path)
        let result = try run(["tshark", "-r", path, "-T", "fields", "-e", "frame.len"])
        #expect(result.status == 0, "\(result.errorOutput)")
        let lengths = result.output.split(separator: "\n").map { Int($0) }
        #expect(lengths == Self.frames.map { $0.bytes.count })
    }

    @Test func bpfFilterSelectsFrames() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        try Self.writeFrames(to: path)

        let arpOnly = try PcapHandle.offline(path: path)
        defer { arpOnly.close() }
        try arpOnly.setFilter("arp")
        #expect(try Self.readAll(arpOnly).map(\.bytes) == [Self.arpRequest])

        let udp = try PcapHandle.offline(path: path)
        defer { udp.close() }
        try udp.setFilter("udp dst port 53 and src host 192.0.2.1")
        #expect(try Self.readAll(udp).map(\.bytes) == [Self.udpFrame])

        let experimental = try PcapHandle.offline(path: path)
        defer { experimental.close() }
        try experimental.setFilter("ether proto 0x88b5 and greater 100")
        #expect(try Self.readAll(experimental).count == 1)
    }

    @Test func invalidFilterIsATypedError() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        try Self.writeFrames(to: path)
        let handle = try PcapHandle.offline(path: path)
        defer { handle.close() }
        do {
            try handle.setFilter("this is not bpf")
            Issue.record("an invalid filter compiled")
        } catch {
            guard case .invalidFilter(let expression, let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(expression == "this is not bpf")
            #expect(!message.isEmpty)
        }
    }

    @Test func missingFileIsATypedError() {
        do {
            _ = try PcapHandle.offline(path: "/nonexistent/oasis.pcap")
            Issue.record("opened a missing file")
        } catch {
            guard case .openFailed(let source, let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(source == "/nonexistent/oasis.pcap")
            #expect(message.contains("No such file"))
        }
    }
}

/// Live capture on a veth pair inside a namespace the test creates and removes
/// (entered the same way as the TAP tests: setns on the calling thread, only while
/// the handles are opened).
@Suite struct PcapLiveTests {
    @Test func captureSeesThePeerButNotItsOwnFrames() throws {
        try withTestNamespace("captureSeesThePeerButNotItsOwnFrames") { namespace in
            try namespace.runChecked(
                ["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"])
            try namespace.runChecked(["ip", "link", "set", "va", "up"])
            try namespace.runChecked(["ip", "link", "set", "vb", "up"])

            // a: incoming only, the device layer's setting. all: both directions, as a
            // witness that outgoing frames on va are capturable at all. b: the peer.
            let (a, all, b) = try NetworkNamespace.withEntered(path: namespace.path) {
                (
                    try PcapHandle.live(interface: "va"),
                    try PcapHandle.live(interface: "va", direction: .both),
                    try PcapHandle.live(interface: "vb")
                )
            }
            defer {
                a.close()
                all.close()
                b.close()
            }
            #expect(try a.linkType == 1)
            #expect(try a.selectableFileDescriptor != nil)

            func frame(_ marker: UInt8) -> [UInt8] {
                experimentalFrame(source: MACAddress(0x02_00_5e_00_53_00), marker: marker)
            }
            try b.inject(frame(1))  // from the peer
            try all.inject(frame(2))  // sent on va by another handle
            try a.inject(frame(3))  // sent on va by a itself

            // The peer's frame reaches a.
            #expect(try waitForFrame(on: a) { isExperimentalFrame($0, marker: 1) })
            // Frames sent on va really go out, and a both-directions capture sees them...
            #expect(try waitForFrame(on: b) { isExperimentalFrame($0, marker: 2) })
            #expect(try waitForFrame(on: b) { isExperimentalFrame($0, marker: 3) })
            #expect(try waitForFrame(on: all) { isExperimentalFrame($0, marker: 3) })
            // ...but the incoming-only capture sees neither another handle's nor its own.
            #expect(
                try !waitForFrame(on: a, seconds: 0.3) {
                    isExperimentalFrame($0, marker: 2) || isExperimentalFrame($0, marker: 3)
                })

            let statistics = try a.statistics()
            #expect(statistics.received >= 1)
        }
    }

    @Test func captureOnMissingInterfaceIsATypedError() throws {
        try withTestNamespace("captureOnMissingInterfaceIsATypedError") { namespace in
            do {
                _ = try NetworkNamespace.withEntered(path: namespace.path) {
                    try PcapHandle.live(interface: "nosuch0")
                }
                Issue.record("captured on a missing interface")
            } catch let error as PcapError {
                guard case .activateFailed(let interface, let status, _) = error else {
                    Issue.record("unexpected error \(error)")
                    return
                }
                #expect(interface == "nosuch0")
                #expect(status.lowercased().contains("no such device"))
            }
        }
    }

    /// Reads frames from `handle` until one matches or `seconds` pass.
    private func waitForFrame(
        on handle: PcapHandle, seconds: Double = 2, _ matches: (UnsafeRawBufferPointer) -> Bool
    ) throws -> Bool {
        let deadline = Deadline(seconds: seconds)
        let descriptor = try #require(try handle.selectableFileDescriptor).rawValue
        while !deadline.hasPassed {
            switch try handle.next() {
            case .packet(let packet):
                if matches(packet.bytes) { return true }
            case .noPacket:
                _ = waitReadable(descriptor, milliseconds: 50)
            case .endOfFile:
                return false
            }
        }
        return false
    }
}
