// Fuzz target: UDP datagrams (the IP payload) under a fixed pseudo-header; what
// parses is emitted again and must parse to the same ports and data.

import FuzzSupport
import OasisBits
import OasisWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUDP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    let source = IPv4Address(192, 0, 2, 1)
    let destination = IPv4Address(192, 0, 2, 2)
    _ = try? UDPRepr.parse(bits.bytes, source: source, destination: destination)
    guard let view = try? UDPDatagram(checking: bits.bytes),
        let udp = try? UDPRepr.parse(
            view, source: source, destination: destination, verifyChecksum: false)
    else { return 0 }
    let payload = view.payload.withUnsafeBytes { Array($0) }
    var copy = Packet(copying: payload, headroom: 16)
    try? udp.emit(prependingTo: &copy, source: source, destination: destination)
    let again = try? UDPRepr.parse(copy.bytes, source: source, destination: destination)
    precondition(again == udp && copy.count == payload.count + UDPHeader.size)
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzUDP)
            print("replayed \(count) input(s)")
        }
    }
#endif
