// Partial checksums on a Xen vif: netif carries a flag (NETRXF_csum_blank,
// NETTXF_csum_blank) but no offsets, so the end that finishes a checksum finds the
// transport header itself, as Linux's skb_checksum_setup does.

import OasisBits

/// Where the TCP or UDP checksum of an Ethernet frame lies, for the partial checksums
/// a vif passes with `csum_blank` (the field holds only the pseudo-header sum, as
/// Linux's `CHECKSUM_PARTIAL` leaves it).
///
/// ```swift
/// if let place = PartialChecksum(locatingIn: bytes) { place.finish(in: bytes) }
/// ```
///
/// Only IPv4 (after at most one 802.1Q tag), unfragmented, TCP or UDP: what the
/// stack sends and what netback marks; anything else is nil and the frame is left
/// as it is.
struct PartialChecksum: Equatable {
    /// The first byte the checksum covers (the transport header), from the frame's start.
    var start: Int
    /// The end of the covered bytes (the IPv4 total length's end).
    var end: Int
    /// The checksum field's offset from the frame's start.
    var field: Int
    /// UDP (a zero sum is sent as 0xFFFF) rather than TCP.
    var isUDP: Bool

    /// Finds the checksum in `bytes`, an Ethernet frame; nil when it is not an
    /// unfragmented IPv4 TCP or UDP packet whose lengths fit in the frame.
    init?(locatingIn bytes: UnsafeRawBufferPointer) {
        func word(_ at: Int) -> Int { Int(bytes[at]) << 8 | Int(bytes[at + 1]) }
        var ip = 14
        guard bytes.count >= ip + 20 else { return nil }
        var type = word(12)
        if type == 0x8100 {
            ip += 4
            guard bytes.count >= ip + 20 else { return nil }
            type = word(16)
        }
        guard type == 0x0800, bytes[ip] >> 4 == 4 else { return nil }
        let headerLength = Int(bytes[ip] & 0x0f) * 4
        let totalLength = word(ip + 2)
        // A fragment (more fragments, or an offset) carries no whole transport packet.
        guard headerLength >= 20, word(ip + 6) & 0x3fff == 0, totalLength >= headerLength,
            ip + totalLength <= bytes.count
        else { return nil }
        start = ip + headerLength
        end = ip + totalLength
        switch bytes[ip + 9] {
        case 6:
            field = start + 16
            isUDP = false
        case 17:
            field = start + 6
            isUDP = true
        default: return nil
        }
        guard field + 2 <= end else { return nil }
    }

    /// Sums the covered bytes (the field holding the pseudo-header sum) and writes the
    /// checksum into the field.
    func finish(in bytes: UnsafeMutableRawBufferPointer) {
        let value = InternetChecksum.checksum(
            of: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        // RFC 768: a zero UDP sum goes out as 0xFFFF (zero means none); TCP keeps it.
        let final = value == 0 && isUDP ? 0xffff : value
        bytes[field] = UInt8(truncatingIfNeeded: final >> 8)
        bytes[field + 1] = UInt8(truncatingIfNeeded: final)
    }

    /// Finishes the partial checksum the stack asked a device for (``PacketOffload``:
    /// the last `span` bytes, the field `field` bytes into them). False when the
    /// metadata points outside the frame.
    static func finish(span: Int, field: Int, in bytes: UnsafeMutableRawBufferPointer) -> Bool {
        guard span <= bytes.count, field + 2 <= span else { return false }
        let start = bytes.count - span
        let isUDP = field == 6
        PartialChecksum(start: start, end: bytes.count, field: start + field, isUDP: isUDP)
            .finish(in: bytes)
        return true
    }

    private init(start: Int, end: Int, field: Int, isUDP: Bool) {
        self.start = start
        self.end = end
        self.field = field
        self.isUDP = isUDP
    }
}
