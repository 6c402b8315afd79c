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

    /// A TAP deleted under a running device: the read fails with EBADFD, and again on
    /// every turn if nothing is done. The device stops itself, says so once, and the
    /// loop goes idle.
    @Test func aTapDeletedUnderTheDeviceStopsItOnce() throws {
        try withTestNamespace("aTapDeletedUnderTheDeviceStopsItOnce") { namespace in
            let loop = try EventLoop()
            let device = try NetworkNamespace.withEntered(path: namespace.path) {
                try TapDevice(attachingTo: "oasis1", on: loop)
            }
            defer { device.close() }
            var failures: [DeviceError] = []
            device.onFailure { failures.append($0) }
            try device.start { (_: inout PacketBatch) in }
            try namespace.runChecked(["ip", "link", "del", "oasis1"])
            _ = try loop.run(until: loop.sleep(.milliseconds(300)))
            #expect(failures.count == 1, "\(failures)")
            if case .tap(.readFailed(_, let errno)) = failures.first {
                #expect(errno.rawValue == EBADFD)
            } else {
                Issue.record("not a read failure: \(failures)")
            }
            // Stopped at the first error, not counting one per turn of the loop.
            #expect(device.counters.receiveErrors <= 2, "\(device.counters)")
            #expect(!device.isLinkUp)
        }
    }

    /// Frames longer than a pool buffer holds (an interface MTU of 9000) are dropped
    /// and counted by the device, not passed on cut; the device's own MTU is what a
    /// buffer holds.
    @Test func framesLongerThanABufferAreDroppedByTheDevice() throws {
        try withTestNamespace("framesLongerThanABufferAreDroppedByTheDevice") { namespace in
            let loop = try EventLoop()
            try namespace.runChecked(["ip", "tuntap", "add", "dev", "oasis1", "mode", "tap"])
            try namespace.runChecked(["ip", "link", "set", "oasis1", "mtu", "9000"])
            let device = try NetworkNamespace.withEntered(path: namespace.path) {
                try TapDevice(attachingTo: "oasis1", on: loop)
            }
            defer { device.close() }
            #expect(device.capabilities.mtu < 4096, "\(device.capabilities)")
            try namespace.runChecked(["ip", "addr", "add", "192.0.2.1/24", "dev", "oasis1"])
            try namespace.runChecked([
                "ip", "neigh", "add", "192.0.2.9", "lladdr",
                "02:00:00:00:00:09", "dev", "oasis1",
            ])
            var lengths: [Int] = []
            try device.startEach { frame in lengths.append(frame.count) }
            for size in [100, 5000] {
                _ = try namespace.run(["ping", "-c", "1", "-W", "1", "-s", "\(size)", "192.0.2.9"])
            }
            _ = try loop.run(until: loop.sleep(.milliseconds(200)))
            #expect(lengths.contains(142), "\(lengths)")
            #expect(lengths.allSatisfy { $0 < 4096 }, "\(lengths)")
            #expect(device.counters.receiveDrops >= 1, "\(device.counters)")
        }
    }
}
