// The in-memory backend: two devices wired back to back, for tests and benchmarks.

import DequeModule
import OasisBits
import OasisLoop
import OasisWire

/// One end of an in-memory link. A frame transmitted on one end is copied into a
/// buffer of the other end's pool (as a NIC's DMA would) and delivered to its receive
/// handler from the loop's ready queue — never inside the sender's call, so a reply
/// sent from a receive handler cannot recurse into the peer.
///
/// ```swift
/// let (a, b) = MemoryDevice.pair(on: loop)
/// try b.start { frame in … }
/// try a.transmit(frame)        // b's handler runs on the next turn of the loop
/// ```
///
/// Steady state allocates nothing: the queue is a ring that keeps its storage, the
/// drain closure is made once, and buffers come from the pools.
public final class MemoryDevice: NetworkDevice {
    public let name: String
    public let macAddress: MACAddress
    public let mtu: Int
    public var isLinkUp: Bool { !isClosed && peer.map { !$0.isClosed } == true }
    public private(set) var counters = DeviceCounters()
    public let pool: BufferPool

    private let loop: EventLoop
    private weak var peer: MemoryDevice?
    private var handler: ((Bits) -> Void)?
    private var inbox = Deque<Bits>()
    private var drainScheduled = false
    private var isClosed = false
    /// Frames waiting beyond this are dropped and counted, like a full NIC ring.
    public let queueLimit: Int
    private lazy var drainWork: () -> Void = { [unowned self] in self.drain() }

    /// Creates two connected ends.
    public static func pair(
        on loop: EventLoop, mtu: Int = 1500, queueLimit: Int = 1024,
        addresses: (MACAddress, MACAddress) = (
            MACAddress(0x0200_0000_0001), MACAddress(0x0200_0000_0002)
        )
    ) -> (MemoryDevice, MemoryDevice) {
        let a = MemoryDevice(
            name: "memory0", macAddress: addresses.0, mtu: mtu, queueLimit: queueLimit, loop: loop)
        let b = MemoryDevice(
            name: "memory1", macAddress: addresses.1, mtu: mtu, queueLimit: queueLimit, loop: loop)
        a.peer = b
        b.peer = a
        return (a, b)
    }

    private init(name: String, macAddress: MACAddress, mtu: Int, queueLimit: Int, loop: EventLoop) {
        self.name = name
        self.macAddress = macAddress
        self.mtu = mtu
        self.queueLimit = queueLimit
        self.loop = loop
        self.pool = BufferPool(limit: queueLimit * 2 + 64)
        inbox.reserveCapacity(queueLimit)
    }

    public func start(receiving handler: @escaping (Bits) -> Void) throws(DeviceError) {
        guard !isClosed else { throw .closed(device: name) }
        guard self.handler == nil else { throw .alreadyStarted(device: name) }
        self.handler = handler
        if !inbox.isEmpty { scheduleDrain() }
    }

    public func transmit(_ frame: Bits) throws(DeviceError) {
        guard !isClosed else { throw .closed(device: name) }
        let limit = mtu + 18  // Ethernet header and one 802.1Q tag
        guard frame.count <= limit else {
            throw .frameTooLarge(device: name, size: frame.count, limit: limit)
        }
        guard let peer, !peer.isClosed else {
            counters.transmitDrops &+= 1  // no carrier
            return
        }
        guard peer.accept(frame) else {
            counters.transmitDrops &+= 1
            return
        }
        counters.countTransmitted(frame.count)
    }

    /// Copies a frame into this end's pool and queues it for the handler.
    private func accept(_ frame: Bits) -> Bool {
        guard inbox.count < queueLimit, var copy = try? pool.allocate() else {
            counters.receiveDrops &+= 1
            return false
        }
        do {
            try copy.append(contentsOf: frame)
        } catch {
            counters.receiveDrops &+= 1
            return false
        }
        inbox.append(copy)
        scheduleDrain()
        return true
    }

    private func scheduleDrain() {
        guard !drainScheduled, handler != nil else { return }
        drainScheduled = true
        loop.enqueue(drainWork)
    }

    private func drain() {
        drainScheduled = false
        guard let handler, !isClosed else { return }
        var delivered = 0
        while delivered < deviceReceiveBatch, let frame = inbox.popFirst() {
            counters.countReceived(frame.count)
            handler(frame)
            delivered += 1
        }
        if !inbox.isEmpty { scheduleDrain() }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        handler = nil
        inbox.removeAll()
    }
}
