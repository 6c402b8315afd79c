// Fuzz target: Ethernet II with VLAN tags and IEEE 802.3 frames with LLC/SNAP, then
// whatever a receiver does with the payload (ARP or IPv4). Every outcome must be a
// value or a typed error.

import FuzzSupport
import OasisBits
import OasisWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEthernet(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var frame = Packet(copying: UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    let parsed: EthernetRepr?
    let snap: EtherType?
    let headerLength: Int
    do {
        // A view borrows the packet: it lives in a scope of its own.
        guard let view = try? EthernetFrame(checking: frame.bytes) else { return 0 }
        precondition(view.headerLength == EthernetHeader.size + 4 * view.tagCount)
        precondition((view.outerTag != nil) == (view.tagCount > 0))
        precondition((view.innerTag != nil) == (view.tagCount > 1))
        precondition(view.payload.byteCount == size - view.headerLength)
        snap = view.snapEtherType
        // Only an 802.3 frame with room for LLC and SNAP carries a SNAP EtherType.
        precondition(snap == nil || !view.isEthernetII && view.payload.byteCount >= 8)
        headerLength = view.headerLength
        parsed = try? EthernetRepr.parse(view)
        precondition((parsed == nil) == !view.isEthernetII)
        precondition(parsed == nil || parsed?.headerLength == view.headerLength)
    }
    guard let ethernet = parsed else {
        if let snap {
            // What follows LLC/SNAP goes up as an Ethernet II payload would.
            guard (try? frame.shift(by: headerLength + 8)) != nil else {
                preconditionFailure("the SNAP header lies inside the frame")
            }
            deliver(frame, type: snap)
        }
        return 0
    }
    _ = ethernet.vid
    guard (try? frame.shift(by: ethernet.headerLength)) != nil else { return 0 }
    deliver(frame, type: ethernet.etherType)
    // Emitting what was parsed must fit in the room the frame had, and parse again.
    let payloadCount = frame.count
    if (try? ethernet.emit(prependingTo: &frame)) != nil {
        precondition(frame.count == payloadCount + ethernet.headerLength)
        precondition((try? EthernetRepr.parse(frame.bytes)) == ethernet)
    }
    return 0
}

/// What a receiver does with a payload of `type`.
func deliver(_ payload: borrowing Packet, type: EtherType) {
    if type == .arp {
        _ = try? ArpRepr.parse(payload.bytes)
    } else if type == .ipv4 {
        _ = try? IPv4Repr.parse(payload.bytes)
    }
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
