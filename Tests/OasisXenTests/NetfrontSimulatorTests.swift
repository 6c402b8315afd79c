// Netfront against xen/netback-sim (Xen's own ring macros playing netback) in reflect
// mode: every frame the frontend transmits comes back on its receive ring. No root.

import OasisBits
import OasisDevices
import OasisLoop
import OasisTestSupport
import OasisWire
import Testing

@testable import OasisXen

#if canImport(Glibc)
    import Glibc
#endif

/// A frame of `size` bytes whose payload says which one it is.
func numberedFrame(_ number: Int, size: Int = 200) -> Bits {
    var bytes = [UInt8](repeating: 0xff, count: 6) + [2, 0, 0, 0, 0, 9] + [0x88, 0xb5]
    bytes += withUnsafeBytes(of: UInt32(number).bigEndian, Array.init)
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: bytes.count &* 7 &+ number)) }
    return Bits(bytes, headroom: 64)
}

/// Runs `loop` until `done` holds or `seconds` pass.
func runLoop(_ loop: EventLoop, seconds: Double, until done: @escaping () -> Bool) throws {
    let (promise, resolver) = loop.makePromise(of: Void.self)
    func check() {
        if done() {
            _ = resolver.resolve()
        } else {
            _ = loop.schedule(after: .milliseconds(1)) { check() }
        }
    }
    _ = loop.schedule(after: .milliseconds(Int(seconds * 1000))) { _ = resolver.resolve() }
    check()
    try loop.run(until: promise)
}

@Suite(.serialized) struct NetfrontSimulatorTests {
    /// The handshake as netback sees it, 600 frames through both rings (each ring wraps
    /// twice), the frames back intact, then a clean Closing/Closed shutdown.
    @Test func handshakeReflectAndCleanShutdown() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        var log = ""
        defer {
            log = simulator.stop()
            print("netback-sim said:\n\(log)")
        }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        #expect(xen.domain == XenDomainID(1))
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, vif: 0, on: loop)
        let store = xen.store
        #expect(netfront.macAddress == MACAddress("00:16:3e:00:00:01"))
        #expect(netfront.backendPath == "/local/domain/0/backend/vif/1/0")
        #expect(try store.read("\(netfront.backendPath)/state", in: .none) == "4")
        #expect(try store.read("device/vif/0/state", in: .none) == "4")
        #expect(try store.read("device/vif/0/request-rx-copy", in: .none) == "1")
        #expect(try store.read("device/vif/0/feature-rx-notify", in: .none) == "1")
        #expect(try store.read("/local/domain/1/device/vif/0/event-channel", in: .none) != nil)
        #expect(netfront.isLinkUp)

        var received: [[UInt8]] = []
        try netfront.startEach { frame in received.append(frame.copyBytes()) }
        var sent: [[UInt8]] = []
        var next = 0
        // Keep at most 100 in flight so the reflected frames always find a posted buffer.
        try runLoop(loop, seconds: 20) {
            while next < 600 && next - received.count < 100 {
                let frame = numberedFrame(next, size: 60 + next % 1400)
                sent.append(frame.copyBytes())
                try? netfront.transmit(frame)
                next += 1
            }
            return received.count >= 600 || netfront.failure != nil
        }
        #expect(netfront.failure == nil)
        #expect(received.count == 600)
        #expect(received == sent)
        #expect(netfront.counters.transmittedPackets == 600)
        #expect(netfront.counters.receivedPackets == 600)
        #expect(netfront.counters.transmitDrops == 0)

        netfront.close()
        #expect(!netfront.isLinkUp)
        // Closing, Closed, and back to Initialising: the backend waits again in InitWait.
        #expect(try store.read("device/vif/0/state", in: .none) == "1")
        #expect(try store.read("\(netfront.backendPath)/state", in: .none) == "2")
        #expect(log.isEmpty)  // the simulator is still running; its log comes at the end
    }

    /// A frame built outside the device's pool is copied into a granted page once.
    @Test func framesFromElsewhereAreCopiedIntoGrantedPages() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop, bufferPages: 64)
        defer { netfront.close() }
        var received: [[UInt8]] = []
        try netfront.startEach { frame in received.append(frame.copyBytes()) }
        var inPool = try netfront.pool.allocate()
        try inPool.append(contentsOf: numberedFrame(1).copyBytes())
        try netfront.transmit(inPool)
        try netfront.transmit(numberedFrame(2))
        try runLoop(loop, seconds: 10) { received.count >= 2 }
        #expect(received == [numberedFrame(1).copyBytes(), numberedFrame(2).copyBytes()])
    }

    /// The backend closes after five packets and the device was told not to reconnect:
    /// it reports link down and the typed error, and stops using the rings.
    @Test func backendClosingMidStreamStopsTheDevice() throws {
        let simulator = try RunningNetbackSimulator(["--reflect", "--close-after", "5"])
        defer { print(simulator.stop()) }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop, reconnects: false)
        var reported: [NetfrontError] = []
        netfront.onFailure = { reported.append($0) }
        try netfront.start { _ in }
        var next = 0
        try runLoop(loop, seconds: 10) {
            if next < 50 {
                try? netfront.transmit(numberedFrame(next))
                next += 1
            }
            return netfront.failure != nil
        }
        #expect(netfront.failure == .backendClosed(state: 5))
        #expect(reported == [.backendClosed(state: 5)])
        #expect(!netfront.isLinkUp)
        // Transmitting now is a counted drop, not a ring write.
        let before = netfront.counters.transmitDrops
        try netfront.transmit(numberedFrame(99))
        #expect(netfront.counters.transmitDrops == before + 1)
        netfront.close()
    }

    /// Misbehaving backends: each closes the device with its typed error.
    @Test(arguments: [
        ("responses-beyond-requests", "responseProducerOverrun"),
        ("unknown-id", "unknownTransmitID"),
        ("length-beyond-page", "lengthBeyondPage"),
    ])
    func misbehavingBackendClosesTheDevice(kind: String, expected: String) throws {
        let simulator = try RunningNetbackSimulator(["--reflect", "--misbehave", kind])
        defer { print(simulator.stop()) }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        let loop = try EventLoop()
        let netfront = try Netfront(facilities: xen, on: loop)
        var delivered = 0
        try netfront.startEach { _ in delivered += 1 }
        try netfront.transmit(numberedFrame(0))
        try runLoop(loop, seconds: 10) { netfront.failure != nil }
        let failure = try #require(netfront.failure)
        #expect("\(failure)".contains("misbehaving backend"), "\(failure)")
        switch failure {
        case .ring(.responseProducerOverrun): #expect(expected == "responseProducerOverrun")
        case .unknownTransmitID(let id):
            #expect(expected == "unknownTransmitID")
            #expect(id == 0x4000 | 0)
        case .lengthBeyondPage(_, let offset, let size):
            #expect(expected == "lengthBeyondPage")
            #expect(offset + size > 4096)
        default: Issue.record("unexpected \(failure)")
        }
        // The reflected frame is good unless the RX response itself is the bad one.
        #expect(delivered == (kind == "length-beyond-page" ? 0 : 1))
        #expect(!netfront.isLinkUp)
        netfront.close()
    }

    /// No simulator at the socket: a typed error, not a crash.
    @Test func noSimulatorIsATypedError() {
        #expect(throws: XenError.self) {
            _ = try SimulatedHypervisor.connect(to: "/tmp/oasis-no-such-netback.sock")
        }
    }

    /// A backend that never reaches InitWait: the handshake times out with the state it
    /// waited for.
    @Test func handshakeTimesOutWithoutABackend() throws {
        let simulator = try RunningNetbackSimulator(["--reflect"])
        defer { simulator.stop() }
        let xen = try SimulatedHypervisor.connect(to: simulator.socketPath)
        defer { xen.close() }
        try xen.store.write("1", to: "/local/domain/0/backend/vif/1/0/state", in: .none)
        let loop = try EventLoop()
        #expect(
            throws: NetfrontError.timeout(
                waitingFor: "/local/domain/0/backend/vif/1/0/state = 2 (InitWait)")
        ) {
            _ = try Netfront(facilities: xen, on: loop, timeout: .milliseconds(300))
        }
    }
}
