import OasisBits
import OasisWire

let ours = MACAddress("02:00:00:00:00:02")!
let theirs = MACAddress("02:00:00:00:00:01")!
let hostA = IPv4Address("192.0.2.1")!
let hostB = IPv4Address("192.0.2.2")!

/// `bytes` with room in front for headers.
func packet(_ bytes: [UInt8], headroom: Int = 128) -> Bits {
    Bits(bytes, headroom: headroom)
}

/// An empty packet with room in front for headers.
func emptyPacket(headroom: Int = 128) -> Packet {
    Packet(copying: [UInt8](), headroom: headroom)
}

/// An empty view with room in front for headers.
func emptyBits(headroom: Int = 128) -> Bits {
    Bits([UInt8](), headroom: headroom)
}

/// The IPv4 header's meaning and the payload, as a view of the same buffer.
func parseIPv4(_ bits: Bits) throws -> (IPv4Repr, Bits) {
    let view = try IPv4Packet(checking: bits.bytes)
    let repr = try IPv4Repr.parse(view)
    return (repr, try bits.slice(from: view.headerLength, length: repr.payloadLength))
}
