// Fuzz target: Ethernet II with VLAN tags, then whatever a receiver does with the
// payload (ARP or IPv4). Every outcome must be a value or a typed error.

import FuzzSupport
import OasisBits
import OasisNet

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEthernet(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var frame = Bits(UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    guard let (ethernet, payload) = try? EthernetRepr.parse(frame) else { return 0 }
    _ = ethernet.vid
    if ethernet.etherType == .arp {
        _ = try? ArpRepr.parse(payload)
    } else if ethernet.etherType == .ipv4 {
        _ = try? IPv4Repr.parse(payload)
    }
    // Emitting what was parsed must fit in the room the frame had.
    var rebuilt = payload
    if (try? ethernet.emit(prependingTo: &rebuilt)) != nil {
        precondition(rebuilt.count == payload.count + ethernet.headerLength)
    }
    _ = try? frame.shift(by: 1)
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
