import OasisBits
import OasisWire

let ours = MACAddress("02:00:00:00:00:02")!
let theirs = MACAddress("02:00:00:00:00:01")!
let hostA = IPv4Address("192.0.2.1")!
let hostB = IPv4Address("192.0.2.2")!

/// `bytes` in a fresh packet with room in front for headers.
func packet(_ bytes: [UInt8], headroom: Int = 128) -> Packet {
    Packet(copying: bytes, headroom: headroom)
}

/// An empty packet with room in front for headers.
func emptyPacket(headroom: Int = 128) -> Packet {
    Packet(copying: [UInt8](), headroom: headroom)
}

/// `bytes` after the first `offset`, in a fresh packet.
func packet(_ bytes: [UInt8], from offset: Int) -> Packet {
    Packet(copying: Array(bytes[offset...]))
}
