// Fuzz target: Ethernet II with VLAN tags, then whatever a receiver does with the
// payload (ARP or IPv4). Every outcome must be a value or a typed error.

import FuzzSupport
import OasisBits
import OasisWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEthernet(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var frame = Packet(copying: UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    let ethernet: EthernetRepr
    do {
        // A view borrows the packet: it lives in a scope of its own.
        guard let view = try? EthernetFrame(checking: frame.bytes) else { return 0 }
        _ = view.snapEtherType
        guard let parsed = try? EthernetRepr.parse(view) else { return 0 }
        precondition(parsed.headerLength == view.headerLength)
        ethernet = parsed
    }
    _ = ethernet.vid
    guard (try? frame.shift(by: ethernet.headerLength)) != nil else { return 0 }
    if ethernet.etherType == .arp {
        _ = try? ArpRepr.parse(frame.bytes)
    } else if ethernet.etherType == .ipv4 {
        _ = try? IPv4Repr.parse(frame.bytes)
    }
    // Emitting what was parsed must fit in the room the frame had, and parse again.
    let payloadCount = frame.count
    if (try? ethernet.emit(prependingTo: &frame)) != nil {
        precondition(frame.count == payloadCount + ethernet.headerLength)
        precondition((try? EthernetRepr.parse(frame.bytes)) == ethernet)
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzEthernet)
            print("replayed \(count) input(s)")
        }
    }
#endif
