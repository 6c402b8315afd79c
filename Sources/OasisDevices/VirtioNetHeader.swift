// The header a TAP with IFF_VNET_HDR puts in front of every frame, each way: what the
// kernel left undone (a checksum, a segmentation) or vouches for.

import OasisBits

/// `struct virtio_net_hdr` (Linux's `<linux/virtio_net.h>`; the virtio 1.x
/// specification §5.1.6), 10 bytes, its 16-bit fields in the machine's byte order as
/// a TAP carries them without TUNSETVNETLE/BE (little-endian here).
///
/// On receive it says what the kernel left for us: a checksum to finish
/// (``Flags/needsChecksum``, from ``checksumStart`` to the end, into the field
/// ``checksumOffset`` bytes on), one already checked (``Flags/dataValid``), a frame
/// coalesced from segments of ``segmentSize`` bytes (``segmentation``). On transmit it
/// asks the kernel for the same: finish our checksum, cut our large TCP segment.
///
/// ```swift
/// // A 64 KiB TCP segment for the kernel to cut at 1448 bytes:
/// let header = VirtioNetHeader(
///     flags: .needsChecksum, segmentation: .tcpIPv4, headerLength: 66,
///     segmentSize: 1448, checksumStart: 34, checksumOffset: 16)
/// header.write(to: frameStart)
/// let back = try VirtioNetHeader(parsing: bytes)
/// ```
public struct VirtioNetHeader: Hashable, Sendable {
    /// The header's size: no `num_buffers` (no mergeable receive buffers).
    public static let size = 10

    /// `VIRTIO_NET_HDR_F_*`.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `VIRTIO_NET_HDR_F_NEEDS_CSUM` (1): the checksum is partial, to be finished
        /// from ``VirtioNetHeader/checksumStart`` on.
        public static let needsChecksum = Flags(rawValue: 1)
        /// `VIRTIO_NET_HDR_F_DATA_VALID` (2): the checksum was checked (receive only).
        public static let dataValid = Flags(rawValue: 2)
    }

    /// `VIRTIO_NET_HDR_GSO_*` without the ECN bit: what kind of segments a frame is
    /// made of (receive) or is to be cut into (transmit).
    public struct Segmentation: RawRepresentable, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// `VIRTIO_NET_HDR_GSO_NONE` (0): one frame as it is.
        public static let none = Segmentation(rawValue: 0)
        /// `VIRTIO_NET_HDR_GSO_TCPV4` (1): TCP over IPv4.
        public static let tcpIPv4 = Segmentation(rawValue: 1)
        /// `VIRTIO_NET_HDR_GSO_UDP` (3): UDP fragmentation (UFO).
        public static let udp = Segmentation(rawValue: 3)
        /// `VIRTIO_NET_HDR_GSO_TCPV6` (4): TCP over IPv6.
        public static let tcpIPv6 = Segmentation(rawValue: 4)
    }

    /// `VIRTIO_NET_HDR_GSO_ECN` (0x80): the segments carry ECN's CWR (TSO_ECN).
    public static let ecnBit: UInt8 = 0x80

    public var flags: Flags
    public var segmentation: Segmentation
    /// The segments' CWR flag is to be kept on the first only (`GSO_ECN`).
    public var ecn: Bool
    /// `hdr_len`: the bytes of headers in front of the data (Ethernet, IP, TCP).
    public var headerLength: UInt16
    /// `gso_size`: the data bytes in each segment (the MSS).
    public var segmentSize: UInt16
    /// `csum_start`: where the checksummed bytes begin, from the frame's start.
    public var checksumStart: UInt16
    /// `csum_offset`: where the checksum field is, from ``checksumStart``.
    public var checksumOffset: UInt16

    /// A header; all zero by default (checksums complete, no segmentation).
    public init(
        flags: Flags = [], segmentation: Segmentation = .none, ecn: Bool = false,
        headerLength: UInt16 = 0, segmentSize: UInt16 = 0, checksumStart: UInt16 = 0,
        checksumOffset: UInt16 = 0
    ) {
        self.flags = flags
        self.segmentation = segmentation
        self.ecn = ecn
        self.headerLength = headerLength
        self.segmentSize = segmentSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Reads a header from the first ``size`` bytes of `bytes`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(VirtioNetHeaderError) {
        guard bytes.count >= Self.size else { throw .truncated(bytes.count) }
        func word(_ offset: Int) -> UInt16 {
            UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
        }
        flags = Flags(rawValue: bytes[0])
        segmentation = Segmentation(rawValue: bytes[1] & ~Self.ecnBit)
        ecn = bytes[1] & Self.ecnBit != 0
        headerLength = word(2)
        segmentSize = word(4)
        checksumStart = word(6)
        checksumOffset = word(8)
    }

    /// Writes the header's ``size`` bytes at `start`.
    public func write(to start: UnsafeMutableRawPointer) {
        start.storeBytes(of: flags.rawValue, toByteOffset: 0, as: UInt8.self)
        start.storeBytes(
            of: segmentation.rawValue | (ecn ? Self.ecnBit : 0), toByteOffset: 1, as: UInt8.self)
        start.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        start.storeBytes(of: segmentSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        start.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        start.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }

    /// The header's bytes (for tests and tools).
    public var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { write(to: $0.baseAddress!) }
        return bytes
    }

    /// The header asking the kernel for what `frame`'s ``PacketOffload`` asks (a
    /// partial checksum finished, a TCP segment cut at its MSS), for a frame whose
    /// Ethernet header starts at its first byte; nil when the metadata points outside
    /// the frame. A frame that asks nothing gets the all-zero header.
    public init?(transmitting frame: borrowing Packet) {
        self.init()
        let offload = frame.offload
        guard offload.needsChecksum else { return }
        let span = Int(offload.checksumSpan)
        guard span <= frame.count, Int(offload.checksumField) + 2 <= span else { return nil }
        let start = frame.count - span
        flags = .needsChecksum
        checksumStart = UInt16(truncatingIfNeeded: start)
        checksumOffset = UInt16(offload.checksumField)
        guard offload.segmentSize != 0 else { return }
        // The TCP header's length, from its data offset (12 bytes in, the high nibble):
        // the kernel copies that much into the head of its buffer.
        guard let dataOffset = try? frame.read(UInt8.self, at: start + 12) else { return nil }
        let header = start + Int(dataOffset >> 4) * 4
        guard header <= frame.count, header <= Int(UInt16.max) else { return nil }
        segmentation = .tcpIPv4
        headerLength = UInt16(header)
        segmentSize = offload.segmentSize
    }
}

/// A virtio-net header that could not be read.
public enum VirtioNetHeaderError: Error, Hashable, Sendable {
    /// Fewer bytes than a header: the count there was.
    case truncated(Int)
}
