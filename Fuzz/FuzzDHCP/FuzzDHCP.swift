// Fuzz target: DHCP messages (a UDP payload on port 68 or 67); what parses is encoded
// again and must parse to the same message.

import FuzzSupport
import OasisBits
import OasisWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDHCP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size), headroom: 0)
    guard let message = try? DHCPMessage.parse(bits.bytes) else { return 0 }
    let bytes = message.encoded()
    let again = try? DHCPMessage.parse(bytes)
    precondition(again == message, "a parsed DHCP message encodes to itself")
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzDHCP)
            print("replayed \(count) input(s)")
        }
    }
#endif
