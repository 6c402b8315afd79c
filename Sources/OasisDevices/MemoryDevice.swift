// The in-memory backend: two devices wired back to back, for tests and benchmarks.

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
/// try b.start { batch in … }
/// try a.transmit(frame)        // b's handler runs on the next turn of the loop
/// ```
///
/// Steady state allocates nothing and counts no reference: the queue is a ring that
/// keeps its storage, the batch is reused, the drain is a ``LoopSource``, and buffers
/// come from the pools.
public final class MemoryDevice: NetworkDevice {
    public let name: String
    public let macAddress: MACAddress
    public let capabilities: DeviceCapabilities
    public var isLinkUp: Bool { !isClosed && peer?.call({ !$0.isClosed }) == true }
    // Loop-confined, like every device: no dynamic exclusivity checks per frame.
    @exclusivity(unchecked) public private(set) var counters = DeviceCounters()
    public let pool: BufferPool

    private let loop: EventLoop
    // The other end, held unretained (no reference count per frame): an end that goes
    // first clears its peer's reference to it.
    @exclusivity(unchecked) private var peer: Unretained<MemoryDevice>?
    @exclusivity(unchecked) private var handler = CallbackSlot<PacketBatch>()
    @exclusivity(unchecked) private var inbox: PacketRing
    @exclusivity(unchecked) private var batch = PacketBatch(capacity: deviceReceiveBatch)
    @exclusivity(unchecked) private var isClosed = false
    /// Frames waiting beyond this are dropped and counted, like a full NIC ring.
    public let queueLimit: Int
    /// The drain, queued on the loop when frames arrive; called through `drain`
    /// (no retain per frame).
    @exclusivity(unchecked) private var drainSource: LoopSource?
    @exclusivity(unchecked) private var drain: Unretained<LoopSource>?

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
        a.peer = Unretained(b)
        b.peer = Unretained(a)
        return (a, b)
    }

    private init(name: String, macAddress: MACAddress, mtu: Int, queueLimit: Int, loop: EventLoop) {
        self.name = name
        self.macAddress = macAddress
        self.capabilities = DeviceCapabilities(mtu: mtu)
        self.queueLimit = queueLimit
        self.loop = loop
        self.pool = BufferPool(limit: queueLimit * 2 + 64)
        inbox = PacketRing(capacity: queueLimit)
    }

    deinit {
        drainSource?.cancel()
        peer?.call { $0.peer = nil }
    }

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard !isClosed else { throw .closed(device: name) }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        self.handler.set(handler)
        let device = Unretained(self)
        let source = loop.makeSource { device.call { $0.drainInbox() } }
        drainSource = source
        drain = Unretained(source)
        if !inbox.isEmpty { source.wake() }
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard !isClosed else { throw .closed(device: name) }
        let limit = capabilities.maximumFrameSize
        guard frame.count <= limit else {
            throw .frameTooLarge(device: name, size: frame.count, limit: limit)
        }
        guard let peer, peer.call({ !$0.isClosed }) else {
            counters.transmitDrops &+= 1  // no carrier
            return
        }
        let count = frame.count
        guard peer.call({ $0.accept(frame) }) else {
            counters.transmitDrops &+= 1
            return
        }
        counters.countTransmitted(count)
    }

    /// Copies a frame into this end's pool and queues it for the handler.
    private func accept(_ frame: borrowing Packet) -> Bool {
        guard !inbox.isFull, var copy = try? pool.allocatePacket() else {
            counters.receiveDrops &+= 1
            return false
        }
        let copied = frame.withUnsafeBytes { bytes in (try? copy.append(contentsOf: bytes)) != nil }
        guard copied else {
            counters.receiveDrops &+= 1
            return false
        }
        inbox.push(copy)
        drain?.call { $0.wake() }
        return true
    }

    private func drainInbox() {
        guard handler.isSet, !isClosed else { return }
        while !batch.isFull, let frame = inbox.pop() {
            counters.countReceived(frame.count)
            batch.append(frame)
        }
        handler(&batch)
        batch.removeAll()
        if !inbox.isEmpty { drain?.call { $0.wake() } }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        handler.clear()
        drain = nil
        drainSource?.cancel()
        inbox.removeAll()
    }
}

/// A first-in first-out ring of packets that keeps its storage.
struct PacketRing: ~Copyable {
    private let slots: UnsafeMutablePointer<Packet?>
    let capacity: Int
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        slots = .allocate(capacity: self.capacity)
        for index in 0..<self.capacity { (slots + index).initialize(to: nil) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == capacity }

    mutating func push(_ packet: consuming Packet) {
        precondition(count < capacity, "pushing onto a full ring")
        var tail = head + count
        if tail >= capacity { tail -= capacity }
        (slots + tail).pointee = .some(packet)
        count += 1
    }

    mutating func pop() -> Packet? {
        guard count > 0 else { return nil }
        let packet = (slots + head).pointee.take()
        head += 1
        if head == capacity { head = 0 }
        count -= 1
        return packet
    }

    mutating func removeAll() {
        while pop() != nil {}
    }
}
