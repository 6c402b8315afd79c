// Fuzz target: whole frames into the stack's receive path (Ethernet, ARP, IPv4 with
// reassembly, ICMP, UDP to an echo listener), as a device batch; one long-lived stack
// on the virtual clock, whose memory bounds must hold. Every reply it sends goes out
// through the memory pair and is parsed back.

import FuzzSupport
import OasisBits
import OasisDevices
import OasisLoop
import OasisNet
import OasisServices
import OasisWire

final class Harness {
    let loop: EventLoop
    let stack: IPv4Stack<MemoryDevice>
    let peer: MemoryDevice
    var batch = PacketBatch(capacity: 1)
    var replies = 0

    init() {
        loop = try! EventLoop(clock: .virtual)
        let (near, far) = MemoryDevice.pair(
            on: loop, addresses: (MACAddress(0x0200_0000_0002), MACAddress(0x0200_0000_0001)))
        var configuration = IPv4StackConfiguration(network: IPv4Network("192.0.2.2/24")!)
        configuration.reassembly.maximumBytes = 256 * 1024
        configuration.reassembly.maximumDatagrams = 16
        stack = IPv4Stack(device: near, configuration: configuration, on: loop)
        peer = far
        try! stack.start()
        try! UDPEcho.start(on: stack, port: 7)
        try! peer.startEach { [unowned self] frame in
            // What the stack sends must parse as Ethernet.
            precondition((try? EthernetRepr.parse(frame.bytes)) != nil)
            self.replies += 1
        }
    }
}

nonisolated(unsafe) let harness = Harness()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStack(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let frame = Packet(copying: UnsafeRawBufferPointer(start: data, count: size), headroom: 128)
    harness.batch.append(frame)
    harness.stack.receive(&harness.batch)
    harness.batch.removeAll()
    // Let the replies reach the peer, and time pass for ARP and reassembly timers.
    try? harness.loop.advance(by: .milliseconds(100))
    precondition(harness.stack.reassemblyBytesHeld <= 256 * 1024)
    precondition(harness.stack.arpEntries <= 256)
    return 0
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzStack)
            print("replayed \(count) input(s)")
        }
    }
#endif
