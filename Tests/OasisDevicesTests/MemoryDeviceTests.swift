import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import Testing

@Suite struct MemoryDeviceTests {
    func frame(_ bytes: [UInt8]) -> Bits { Bits(bytes) }

    @Test func framesCrossThePairOnTheNextTurnAndAreCounted() throws {
        let loop = try EventLoop(clock: .virtual)
        let (a, b) = MemoryDevice.pair(on: loop)
        var received: [[UInt8]] = []
        var insideSend = false
        try b.startEach { frame in
            #expect(!insideSend, "delivered inside the sender's call")
            received.append(frame.copyBytes())
        }
        loop.enqueue {
            insideSend = true
            try? a.transmit(self.frame([1, 2, 3]))
            try? a.transmit(self.frame(Array(repeating: 9, count: 60)))
            insideSend = false
        }
        try loop.run()
        #expect(received == [[1, 2, 3], Array(repeating: 9, count: 60)])
        #expect(a.counters.transmittedPackets == 2)
        #expect(a.counters.transmittedBytes == 63)
        #expect(b.counters.receivedPackets == 2)
        #expect(b.counters.receivedBytes == 63)
        // The receiver got its own copy, in its own pool.
        #expect(b.pool.buffersCreated >= 1)
    }

    @Test func aFullQueueDropsAndCounts() throws {
        let loop = try EventLoop(clock: .virtual)
        let (a, b) = MemoryDevice.pair(on: loop, queueLimit: 4)
        var count = 0
        try b.startEach { _ in count += 1 }
        loop.enqueue {
            for _ in 0..<10 { try? a.transmit(self.frame([0xaa])) }
        }
        try loop.run()
        #expect(count == 4)
        #expect(a.counters.transmitDrops == 6)
        #expect(b.counters.receiveDrops == 6)
    }

    @Test func oversizedFramesAndUseAfterCloseAreTypedErrors() throws {
        let loop = try EventLoop(clock: .virtual)
        let (a, b) = MemoryDevice.pair(on: loop, mtu: 100)
        #expect(throws: DeviceError.frameTooLarge(device: "memory0", size: 200, limit: 118)) {
            try a.transmit(self.frame(Array(repeating: 0, count: 200)))
        }
        a.close()
        #expect(throws: DeviceError.closed(device: "memory0")) { try a.transmit(self.frame([1])) }
        #expect(throws: DeviceError.closed(device: "memory0")) { try a.start { _ in } }
        try b.start { _ in }
        #expect(throws: DeviceError.alreadyStarted(device: "memory1")) { try b.start { _ in } }
        #expect(!b.isLinkUp)
    }

    @Test func steadyStateReusesBuffers() throws {
        let loop = try EventLoop(clock: .virtual)
        let (a, b) = MemoryDevice.pair(on: loop)
        try b.start { _ in }
        for _ in 0..<100 {
            loop.enqueue { try? a.transmit(self.frame([1, 2, 3, 4])) }
            try loop.run()
        }
        #expect(b.pool.buffersCreated <= 2)
    }
}
