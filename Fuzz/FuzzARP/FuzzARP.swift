// Fuzz target: ARP packets, fed to an ARP cache as a receiver would.

import FuzzSupport
import OasisBits
import OasisNet
import OasisWire

nonisolated(unsafe) var cache = ArpCache(
    mac: MACAddress(2, 0, 0, 0, 0, 2), address: IPv4Address(192, 0, 2, 2))
nonisolated(unsafe) var clock: Duration = .zero

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzARP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bits = Bits(UnsafeRawBufferPointer(start: data, count: size), headroom: 64)
    clock += .milliseconds(100)
    guard let arp = try? ArpRepr.parse(bits.bytes) else { return 0 }
    let reception = cache.receive(arp, now: clock)
    if let reply = reception.reply {
        var out = Packet(copying: [UInt8](), headroom: 64)
        try? reply.emit(prependingTo: &out)
        precondition((try? ArpRepr.parse(out.bytes)) == reply)
    }
    if let (address, _) = reception.resolved {
        while cache.takeWaiting(for: address) != nil {}
    }
    if cache.lookup(arp.targetProtocolAddress, now: clock) == nil {
        _ = cache.enqueue(Packet(bits), for: arp.targetProtocolAddress, now: clock)
    }
    precondition(cache.waitingCount <= 64)
    while cache.poll(now: clock) != nil {}
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzARP)
            print("replayed \(count) input(s)")
        }
    }
#endif
