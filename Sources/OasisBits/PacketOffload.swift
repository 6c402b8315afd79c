/// What a packet asks of its device, or what its device says about it, beyond its
/// bytes: the offload metadata Linux keeps in an skb (`gso_size`, `csum_start`,
/// `csum_offset`, `ip_summed`) and a virtio-net header carries to and from a TAP.
///
/// It travels with the ``Packet`` it belongs to, through every layer, at no cost: a
/// packet built by a transport that wants its device to segment it or finish its
/// checksum says so here, and the device reads it when it transmits; a device that
/// received a frame the kernel had coalesced, or whose checksum the kernel vouched
/// for, says so here for the layers above. A fresh packet asks nothing
/// (``PacketOffload/none``).
///
/// ```swift
/// // TCP, with a device that segments (TSO) and finishes checksums:
/// packet.offload = PacketOffload(
///     checksumSpan: UInt16(segment.count), checksumField: 16, segmentSize: UInt16(mss))
/// // A receiving layer skipping what the device vouched for:
/// let verify = !packet.offload.checksumVerified
/// ```
@frozen
public struct PacketOffload: Hashable, Sendable {
    /// Transmit: TCP segmentation offload. The packet carries one TCP segment larger
    /// than the path's MSS, which the device cuts into segments of `segmentSize` data
    /// bytes each (every one with a copy of the headers, sequence numbers, IP
    /// identifications and checksums set right); 0 when the packet goes as it is.
    /// Receive: the size of the segments a frame was coalesced from (GRO), when the
    /// device reports it.
    public var segmentSize: UInt16
    /// Transmit: the transport checksum is partial — its field holds only the
    /// pseudo-header sum — and the device sums the last `checksumSpan` bytes of the
    /// packet (the transport header and its data) into it. Counted from the end
    /// because the layers below prepend their headers; 0 when the checksum is complete.
    public var checksumSpan: UInt16
    /// Transmit: where the checksum field lies from the start of that span (16 for
    /// TCP, 6 for UDP).
    public var checksumField: UInt8
    @usableFromInline internal var _flags: UInt8

    /// Nothing asked, nothing vouched for.
    @inlinable
    public static var none: PacketOffload { PacketOffload() }

    /// Offload metadata; by default, none.
    @inlinable
    public init(
        checksumSpan: UInt16 = 0, checksumField: UInt8 = 0, segmentSize: UInt16 = 0,
        checksumVerified: Bool = false, coalesced: Bool = false
    ) {
        self.segmentSize = segmentSize
        self.checksumSpan = checksumSpan
        self.checksumField = checksumField
        _flags = (checksumVerified ? 1 : 0) | (coalesced ? 2 : 0)
    }

    /// Receive: the transport checksum needs no checking — the device verified it, or
    /// the frame never crossed a wire (the kernel left it partial, `NEEDS_CSUM`, or
    /// said it is valid, `DATA_VALID`).
    @inlinable
    public var checksumVerified: Bool {
        get { _flags & 1 != 0 }
        set { _flags = newValue ? _flags | 1 : _flags & ~1 }
    }

    /// Receive: the frame is several segments the kernel coalesced into one (GRO, or a
    /// TSO send it never cut): it may be larger than the link's MTU.
    @inlinable
    public var coalesced: Bool {
        get { _flags & 2 != 0 }
        set { _flags = newValue ? _flags | 2 : _flags & ~2 }
    }

    /// Whether the packet asks its device to segment it.
    @inlinable
    public var needsSegmentation: Bool { segmentSize != 0 && checksumSpan != 0 }

    /// Whether the packet asks its device to finish a partial checksum.
    @inlinable
    public var needsChecksum: Bool { checksumSpan != 0 }
}
