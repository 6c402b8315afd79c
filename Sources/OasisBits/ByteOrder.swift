/// The order of bytes of a multi-byte integer on the wire.
///
/// Network protocols are big-endian ("network order"), which is the default
/// everywhere in this module; Xen's shared rings and pcap files of this host are
/// little-endian.
public enum ByteOrder: Hashable, Sendable {
    /// Most significant byte first: network order.
    case bigEndian
    /// Least significant byte first: x86 and Xen ring order.
    case littleEndian
}
