// Fuzz target: ICMP messages (checksum verified or not), and the echo reply built from
// a request in place.

import FuzzSupport
import OasisBits
import OasisNet

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzICMP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    _ = try? ICMPv4Repr.parse(bits)
    guard let (icmp, payload) = try? ICMPv4Repr.parse(bits, verifyChecksum: false) else {
        return 0
    }
    if let reply = icmp.echoReply {
        var out = payload
        try? reply.emit(prependingTo: &out)
        precondition((try? ICMPv4Repr.parse(out))?.0 == reply)
    }
    if let original = try? IPv4Packet(checking: payload) {
        _ = ICMPv4Repr.quote(original)
    }
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzICMP)
            print("replayed \(count) input(s)")
        }
    }
#endif
