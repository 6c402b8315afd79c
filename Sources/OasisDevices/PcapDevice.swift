// The pcap backends: a live libpcap handle on an interface, and a trace replayed
// from a pcap file with what is transmitted written to another.

import Glibc
import OasisBits
import OasisLoop
import OasisWire
import SystemPackage

/// A ``NetworkDevice`` over a libpcap live handle: frames arriving on `interface`
/// (only those it did not send itself: the handle captures inbound frames only) are
/// delivered to the stack; frames the stack transmits are injected on the interface.
///
/// The interface keeps its own kernel stack; the Oasis stack sits beside it with its
/// own Ethernet and IP addresses, as a second host on the same wire. Give the
/// interface no address in the Oasis stack's subnet, or the kernel answers too.
public final class PcapDevice: NetworkDevice {
    public let name: String
    public let macAddress: MACAddress
    public let capabilities: DeviceCapabilities
    public var isLinkUp: Bool { handle != nil }
    /// What the device did, with the frames the kernel dropped because libpcap's ring
    /// was full (`pcap_stats`) among the receive drops.
    public var counters: DeviceCounters {
        var all = ownCounters
        all.receiveDrops &+= ringDrops
        return all
    }
    public let pool: BufferPool

    // Loop-confined, like every device: no dynamic exclusivity checks per frame.
    @exclusivity(unchecked) private var ownCounters = DeviceCounters()
    private let loop: EventLoop
    private var handle: PcapHandle?
    private var descriptor: FileDescriptor?
    private var handler = CallbackSlot<PacketBatch>()
    private var failureHandler: ((DeviceError) -> Void)?
    private var batch = PacketBatch(capacity: deviceReceiveBatch)
    /// The ring's drops as last read (kept when the handle closes).
    private var lastRingDrops: UInt64 = 0
    private var ringDrops: UInt64 {
        if let stats = try? handle?.statistics() {
            return UInt64(stats.droppedByBuffer)
        }
        return lastRingDrops
    }

    /// Opens `interface` live (promiscuous, immediate delivery, inbound only,
    /// non-blocking). `macAddress` is the stack's own address on that wire.
    public init(
        interface: String, on loop: EventLoop, macAddress: MACAddress, mtu: Int = 1500,
        poolLimit: Int = 1024
    ) throws(DeviceError) {
        do {
            // Frames are copied into one pool buffer each: a longer snapshot would only
            // make the kernel's ring slots larger (and fewer: about 31 in libpcap's
            // 2 MiB on an interface with offloads, a burst of fragments overflows it).
            handle = try PcapHandle.live(
                interface: interface,
                snapshotLength: Buffer.pageSize - BufferPool.defaultHeadroom,
                promiscuous: true, immediate: true, direction: .incoming, nonBlocking: true,
                bufferSize: 8 << 20)
            // The stack speaks Ethernet: a tun device or a cooked capture would be misread.
            guard try handle?.linkType == 1 else {  // DLT_EN10MB
                handle?.close()
                throw DeviceError.unavailable("\(interface): not an Ethernet interface")
            }
        } catch let error as PcapError {
            throw .pcap(error)
        } catch let error as DeviceError {
            throw error
        } catch {
            throw .unavailable("\(interface): \(error)")
        }
        name = interface
        self.macAddress = macAddress
        self.capabilities = DeviceCapabilities(mtu: mtu)
        self.loop = loop
        pool = BufferPool(limit: poolLimit)
    }

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard let handle else { throw .closed(device: name) }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        let selectable: FileDescriptor?
        do {
            selectable = try handle.selectableFileDescriptor
        } catch {
            throw .pcap(error)
        }
        guard let fd = selectable else {
            throw .unavailable("\(name): libpcap gives no selectable descriptor for it")
        }
        self.handler.set(handler)
        descriptor = fd
        let device = Unretained(self)
        do {
            try loop.register(fd, interest: .readable) { _ in device.call { $0.receiveBatch() } }
        } catch {
            self.handler.clear()
            descriptor = nil
            throw .loop(error)
        }
    }

    private func receiveBatch() {
        guard let handle, handler.isSet else { return }
        defer {
            if !batch.isEmpty {
                handler(&batch)
                batch.removeAll()
            }
        }
        for _ in 0..<deviceReceiveBatch {
            let next: PcapHandle.Next
            do {
                next = try handle.next()
            } catch {
                ownCounters.receiveErrors &+= 1
                // libpcap reports an interface that went away ("The interface
                // disappeared") as a read error, and every later read fails the same.
                fail(.pcap(error))
                return
            }
            guard case .packet(let packet) = next else { return }
            // libpcap owns its ring: the frame is copied once, into a pool buffer.
            guard packet.bytes.count == packet.originalLength,
                var frame = try? pool.allocatePacket(),
                (try? frame.append(contentsOf: packet.bytes)) != nil
            else {
                ownCounters.receiveDrops &+= 1
                continue
            }
            ownCounters.countReceived(frame.count)
            batch.append(frame)
        }
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard let handle else { throw .closed(device: name) }
        let limit = capabilities.maximumFrameSize
        guard frame.count <= limit else {
            throw .frameTooLarge(device: name, size: frame.count, limit: limit)
        }
        do {
            try frame.withUnsafeBytes { bytes throws(PcapError) in try handle.inject(bytes) }
        } catch {
            ownCounters.transmitErrors &+= 1
            throw .pcap(error)
        }
        ownCounters.countTransmitted(frame.count)
    }

    public func close() {
        if let descriptor {
            try? loop.deregister(descriptor)
            self.descriptor = nil
        }
        handler.clear()
        lastRingDrops = ringDrops
        handle?.close()
        handle = nil
    }

    public func onFailure(_ handler: @escaping (DeviceError) -> Void) {
        failureHandler = handler
    }

    /// Stops on its own: closes, then tells whoever asked.
    private func fail(_ error: DeviceError) {
        close()
        let handler = failureHandler
        failureHandler = nil
        handler?(error)
    }

    /// A device dropped without ``close()`` still leaves the loop: its registration
    /// holds the device unretained.
    deinit { close() }
}

/// A ``NetworkDevice`` that replays a recorded trace: every frame of `input` (a pcap
/// file) is delivered to the stack, in order, paced by the recorded timestamps or as
/// fast as the loop runs; frames the stack transmits are written to `output`. Useful
/// to run the stack over a capture from elsewhere and inspect its answers in Wireshark.
public final class PcapReplayDevice: NetworkDevice {
    public let name: String
    public let macAddress: MACAddress
    public let capabilities: DeviceCapabilities
    public var isLinkUp: Bool { true }
    // Loop-confined, like every device: no dynamic exclusivity checks per frame.
    @exclusivity(unchecked) public private(set) var counters = DeviceCounters()
    public let pool: BufferPool

    private let loop: EventLoop
    private var input: PcapHandle?
    private let output: PcapFileWriter?
    private let paced: Bool
    private var handler = CallbackSlot<PacketBatch>()
    private var batch = PacketBatch(capacity: 1)
    private var previous: PcapTimestamp?
    /// Settled when the whole trace has been delivered.
    public let finished: Promise<Void>
    private let finishedResolver: Resolver<Void>

    /// Replays `input`; writes transmitted frames to `output` when given.
    public init(
        input path: String, output: String?, on loop: EventLoop, macAddress: MACAddress,
        paced: Bool = false, mtu: Int = 1500
    ) throws(DeviceError) {
        do {
            input = try PcapHandle.offline(path: path)
            self.output = try output.map { (path) throws(PcapError) in
                try PcapFileWriter(path: path)
            }
        } catch {
            throw .pcap(error)
        }
        name = path
        self.macAddress = macAddress
        self.capabilities = DeviceCapabilities(mtu: mtu)
        self.loop = loop
        self.paced = paced
        pool = BufferPool(limit: 1024)
        (finished, finishedResolver) = loop.makePromise(of: Void.self)
    }

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard input != nil else { throw .closed(device: name) }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        self.handler.set(handler)
        loop.enqueue { [weak self] in self?.deliverNext() }
    }

    private func deliverNext() {
        guard let input, handler.isSet else { return }
        let next: PcapHandle.Next
        do {
            next = try input.next()
        } catch {
            counters.receiveErrors &+= 1
            finishedResolver.fail(DeviceError.pcap(error))
            return
        }
        switch next {
        case .endOfFile, .noPacket:
            finishedResolver.resolve()
        case .packet(let packet):
            let timestamp = packet.timestamp
            if var frame = try? pool.allocatePacket(),
                (try? frame.append(contentsOf: packet.bytes)) != nil
            {
                counters.countReceived(frame.count)
                batch.append(frame)
                handler(&batch)
                batch.removeAll()
            } else {
                counters.receiveDrops &+= 1
            }
            var delay = Duration.zero
            if paced, let previous {
                let seconds = timestamp.seconds - previous.seconds
                let micro = Int64(timestamp.microseconds) - Int64(previous.microseconds)
                delay = max(.zero, .seconds(seconds) + .microseconds(micro))
            }
            previous = timestamp
            if delay == .zero {
                loop.enqueue { [weak self] in self?.deliverNext() }
            } else {
                loop.schedule(after: delay) { [weak self] in self?.deliverNext() }
            }
        }
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard input != nil else { throw .closed(device: name) }
        if let output {
            do {
                try frame.withUnsafeBytes { bytes throws(PcapError) in
                    try output.write(bytes, timestamp: PcapTimestamp.now())
                }
            } catch {
                counters.transmitErrors &+= 1
                throw .pcap(error)
            }
        }
        counters.countTransmitted(frame.count)
    }

    public func close() {
        handler.clear()
        input?.close()
        input = nil
        try? output?.close()
    }
}

extension PcapTimestamp {
    /// The wall-clock time now, as pcap files record it.
    public static func now() -> PcapTimestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return PcapTimestamp(seconds: Int64(now.tv_sec), microseconds: Int32(now.tv_nsec / 1000))
    }
}
