// What the stream tests share beside the kernel's TCP (OasisTestSupport's
// KernelTCP, PeerThread, Shared): byte patterns and a loop run with a time limit.

import OasisLoop
import OasisWire

@testable import OasisNet

let loopback = IPv4Address(127, 0, 0, 1)

/// `count` bytes of a pattern that does not repeat at any short period.
func pattern(_ count: Int, seed: UInt32) -> [UInt8] {
    var state = seed | 1
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return UInt8(truncatingIfNeeded: state >> 24)
    }
}

struct LoopTimedOut: Error {}

/// Runs `loop` until `done` settles; fails after `seconds`.
func run(_ loop: EventLoop, until done: Promise<Void>, seconds: Double = 30) throws {
    let timeout = loop.sleep(.milliseconds(Int(seconds * 1000))).map { () throws -> Void in
        throw LoopTimedOut()
    }
    try loop.run(until: loop.pick([done, timeout]))
}
