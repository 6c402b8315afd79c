// Fuzz target: ICMP messages (checksum verified or not), and the echo reply built from
// a request in place.

import FuzzSupport
import OasisBits
import OasisWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzICMP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var message = Packet(copying: UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    _ = try? ICMPv4Repr.parse(message.bytes)
    guard let icmp = try? ICMPv4Repr.parse(message.bytes, verifyChecksum: false) else {
        return 0
    }
    guard (try? message.shift(by: ICMPv4Header.size)) != nil else {
        preconditionFailure("a parsed message holds its header")
    }
    if let original = try? IPv4Packet(checkingHeaderOnly: message.bytes) {
        precondition(ICMPv4Repr.quoteLength(of: original) <= message.count)
    }
    if let reply = icmp.echoReply {
        try? reply.emit(prependingTo: &message)
        precondition((try? ICMPv4Repr.parse(message.bytes)) == reply)
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
