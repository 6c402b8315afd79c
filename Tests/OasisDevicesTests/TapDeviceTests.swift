import Foundation
import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import OasisWire
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// TapDevice against the Linux kernel, in a namespace the test creates and removes.
@Suite struct TapDeviceTests {
    /// A device whose pool is exhausted — every buffer held by its handler — reads and
    /// drops what the kernel sends (counted), as a NIC drops on a full ring; it does not
    /// leave it queued, where level-triggered readiness would wake the loop for it
    /// again at once: the loop stays idle, and the frames after the drops arrive.
    @Test func anExhaustedPoolDropsFramesInsteadOfSpinning() throws {
        try withTestNamespace("anExhaustedPoolDropsFramesInsteadOfSpinning") { namespace in
            let loop = try EventLoop()
            let device = try NetworkNamespace.withEntered(path: namespace.path) {
                try TapDevice(attachingTo: "oasis1", on: loop, poolLimit: 2)
            }
            defer { device.close() }
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "oasis1"])
            try namespace.runChecked(["sysctl", "-qw", "net.ipv6.conf.oasis1.disable_ipv6=1"])
            var held: [Bits] = []
            var wakes = 0
            try device.start { (batch: inout PacketBatch) in
                wakes += 1
                for index in batch.indices {
                    if let frame = batch.take(at: index), held.count < 2 {
                        held.append(Bits(frame))
                    }
                }
            }
            // The kernel resolves 192.0.2.9 with ARP requests, one a second: two fill
            // the pool, those after it must be read and dropped.
            _ = try namespace.run(["ping", "-c", "1", "-W", "5", "192.0.2.9"])
            _ = try loop.run(until: loop.sleep(.milliseconds(200)))
            #expect(held.count == 2)
            // Each frame that found no buffer is dropped once. A device that left it
            // queued would be woken for it again and again, counting a drop each time:
            // thousands in 200 ms.
            let drops = device.counters.receiveDrops
            #expect(drops >= 1 && drops < 20, "\(device.counters)")
            #expect(wakes < 20, "the handler woke \(wakes) times")
            // Once the buffers are let go, frames arrive again.
            held.removeAll()
            let before = device.counters.receivedPackets
            _ = try namespace.run(["ping", "-c", "1", "-W", "2", "192.0.2.9"])
            _ = try loop.run(until: loop.sleep(.milliseconds(200)))
            #expect(device.counters.receivedPackets > before)
        }
    }
}
