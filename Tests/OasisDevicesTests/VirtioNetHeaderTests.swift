import OasisBits
import OasisDevices
import Testing

/// `struct virtio_net_hdr` as Linux's `<linux/virtio_net.h>` defines it: flags
/// NEEDS_CSUM = 1, DATA_VALID = 2; gso_type NONE = 0, TCPV4 = 1, UDP = 3, TCPV6 = 4,
/// ECN = 0x80; then hdr_len, gso_size, csum_start, csum_offset, little-endian here.
@Suite struct VirtioNetHeaderTests {
    @Test func constantsAreTheUAPIs() {
        #expect(VirtioNetHeader.size == 10)
        #expect(VirtioNetHeader.Flags.needsChecksum.rawValue == 1)
        #expect(VirtioNetHeader.Flags.dataValid.rawValue == 2)
        #expect(VirtioNetHeader.Segmentation.none.rawValue == 0)
        #expect(VirtioNetHeader.Segmentation.tcpIPv4.rawValue == 1)
        #expect(VirtioNetHeader.Segmentation.udp.rawValue == 3)
        #expect(VirtioNetHeader.Segmentation.tcpIPv6.rawValue == 4)
        #expect(VirtioNetHeader.ecnBit == 0x80)
    }

    /// A 64 KiB TCP/IPv4 segment to cut at 1448 bytes: Ethernet 14 + IPv4 20 + TCP 32
    /// (timestamps) = 66 bytes of headers, the checksum 34 bytes in, its field 16
    /// further.
    @Test func encodesAGSOHeader() {
        let header = VirtioNetHeader(
            flags: .needsChecksum, segmentation: .tcpIPv4, headerLength: 66, segmentSize: 1448,
            checksumStart: 34, checksumOffset: 16)
        #expect(header.bytes == [0x01, 0x01, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00])
        var ecn = header
        ecn.ecn = true
        #expect(ecn.bytes[1] == 0x81)
        #expect(VirtioNetHeader().bytes == [UInt8](repeating: 0, count: 10))
    }

    @Test func decodesWhatTheKernelWrites() throws {
        // A coalesced TCPv4 frame (GRO) with a partial checksum, as a TAP hands it over.
        let bytes: [UInt8] = [0x01, 0x01, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00]
        let header = try bytes.withUnsafeBytes { try VirtioNetHeader(parsing: $0) }
        #expect(header.flags == .needsChecksum)
        #expect(header.segmentation == .tcpIPv4)
        #expect(!header.ecn)
        #expect(header.headerLength == 66)
        #expect(header.segmentSize == 1448)
        #expect(header.checksumStart == 34)
        #expect(header.checksumOffset == 16)
        // DATA_VALID, TCPv6 with ECN.
        let other = try [UInt8]([0x02, 0x84, 0, 0, 0xa0, 0x05, 0, 0, 0, 0]).withUnsafeBytes {
            try VirtioNetHeader(parsing: $0)
        }
        #expect(other.flags == .dataValid)
        #expect(other.segmentation == .tcpIPv6)
        #expect(other.ecn)
        #expect(other.segmentSize == 1440)
        // Round trip.
        #expect(try header.bytes.withUnsafeBytes { try VirtioNetHeader(parsing: $0) } == header)
        // Too short: a typed error, no trap.
        #expect(throws: VirtioNetHeaderError.truncated(9)) {
            try [UInt8](repeating: 0, count: 9).withUnsafeBytes { try VirtioNetHeader(parsing: $0) }
        }
    }

    /// What a packet's offload metadata asks becomes the header: the checksum's start
    /// counted from the frame's end, the TCP header's length from its data offset.
    @Test func fromAPacketsOffloadMetadata() throws {
        // Ethernet 14 + IPv4 20 + TCP 32 (data offset 8) + 4000 bytes of data.
        var bytes = [UInt8](repeating: 0, count: 14 + 20 + 32 + 4000)
        bytes[14 + 20 + 12] = 8 << 4
        var frame = Packet(copying: bytes)
        let zero = VirtioNetHeader(transmitting: frame)
        var header = try #require(zero)
        #expect(header == VirtioNetHeader(), "nothing asked: all zero")
        frame.offload = PacketOffload(checksumSpan: UInt16(32 + 4000), checksumField: 16)
        let asked = VirtioNetHeader(transmitting: frame)
        header = try #require(asked)
        #expect(header.flags == .needsChecksum && header.segmentation == .none)
        #expect(header.checksumStart == 34 && header.checksumOffset == 16)
        frame.offload.segmentSize = 1448
        let segmenting = VirtioNetHeader(transmitting: frame)
        header = try #require(segmenting)
        #expect(header.segmentation == .tcpIPv4)
        #expect(header.headerLength == 66)
        #expect(header.segmentSize == 1448)
        // Metadata pointing outside the frame is refused.
        frame.offload.checksumSpan = UInt16(bytes.count + 1)
        let refused = VirtioNetHeader(transmitting: frame)
        #expect(refused == nil)
    }
}
