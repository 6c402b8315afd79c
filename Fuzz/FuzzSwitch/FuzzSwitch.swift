// Fuzz target: the switch's datapath under a stranger's controller messages and frames.
// The first byte chooses: OpenFlow messages (FLOW_MOD, PACKET_OUT, PORT_MOD, SET_CONFIG,
// statistics requests) applied as the channel applies them, or one frame received on a
// port (the flow table's actions, NORMAL's learning, PACKET_IN buffers). No trap, and
// every table stays within its bound.

import FuzzSupport
import OasisBits
import OasisDevices
import OasisLoop
import OasisOpenFlow
import OasisSwitch
import OasisWire

final class Harness {
    let loop: EventLoop
    let datapath: Datapath
    var peers: [MemoryDevice] = []
    var sent = 0

    init() {
        loop = try! EventLoop(clock: .virtual)
        datapath = Datapath(
            on: loop, table: FlowTable(maximumEntries: 512, cacheLimit: 256),
            buffers: PacketBuffers(capacity: 64))
        datapath.learningLimit = 256
        for index in 0..<3 {
            let (near, far) = MemoryDevice.pair(
                on: loop,
                addresses: (
                    MACAddress(0x0200_0000_0100 + UInt64(index)),
                    MACAddress(0x0200_0000_0001 + UInt64(index))
                ))
            try! datapath.addPort(near)
            try! far.startEach { [unowned self] _ in self.sent += 1 }
            peers.append(far)
        }
        datapath.packetIn = { packetIn in
            precondition((try? Message(xid: 0, body: .packetIn(packetIn)).encoded()) != nil)
        }
        datapath.flowRemoved = { removed in
            precondition((try? Message(xid: 0, body: .flowRemoved(removed)).encoded()) != nil)
        }
    }

    func apply(_ message: Message) {
        switch message.body {
        case .flowMod(let mod): _ = try? datapath.apply(mod)
        case .packetOut(let out): try? datapath.apply(out)
        case .portMod(let mod):
            _ = datapath.modifyPort(mod.portNumber, config: mod.config, mask: mod.mask)
        case .setConfig(let config): datapath.missSendLength = config.missSendLength
        case .statsRequest(.flow(let request), _):
            _ = datapath.table.flowStats(request, now: 0)
        case .statsRequest(.aggregate(let request), _):
            _ = datapath.table.aggregateStats(request)
        default: break
        }
    }
}

nonisolated(unsafe) let harness = Harness()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSwitch(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    guard let mode = raw.first else { return 0 }
    let rest = UnsafeRawBufferPointer(rebasing: raw.dropFirst())
    if mode & 1 == 0 {
        var framer = MessageFramer(maximumLength: 4096)
        var input = rest
        while !input.isEmpty {
            let taken = framer.append(input)
            input = UnsafeRawBufferPointer(rebasing: input.dropFirst(taken))
            guard let messages = try? collect(&framer) else { break }
            for bits in messages {
                if let message = try? Message.decode(bits) { harness.apply(message) }
            }
            if taken == 0 { break }
        }
    } else {
        let port = PortNumber(UInt16(mode >> 1 & 3) + 1)  // 1…3, and 4, which does not exist
        harness.datapath.inject(Packet(copying: rest, headroom: 128), inPort: port)
    }
    try? harness.loop.advance(by: .milliseconds(50))
    precondition(harness.datapath.table.count <= 512)
    precondition(harness.datapath.table.emergencyCount <= 512)
    precondition(harness.datapath.learnedCount <= 256)
    return 0
}

func collect(_ framer: inout MessageFramer) throws(OpenFlowError) -> [Bits] {
    var messages: [Bits] = []
    while let bits = try framer.next() { messages.append(bits) }
    return messages
}

#if !FUZZING
    @main
    struct Replay {
        static func main() {
            let count = replay(Array(CommandLine.arguments.dropFirst()), through: fuzzSwitch)
            print("replayed \(count) input(s)")
        }
    }
#endif
