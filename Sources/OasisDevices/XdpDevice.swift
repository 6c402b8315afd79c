// The AF_XDP backend: the Oasis stack drives one queue of a Linux interface directly,
// through an XDP socket whose frames live in pages the stack's buffers view in place.

import CXdp
import Glibc
import OasisBits
import OasisLoop
import OasisWire
import SystemPackage

/// Why an XDP device could not be opened or used.
public enum XdpError: Error, Equatable, CustomStringConvertible {
    /// Opening the socket, registering its frames, or attaching the program failed.
    case openFailed(interface: String, queue: UInt32, Errno)
    /// Reading the interface's address, MTU or flags failed.
    case interfaceInfo(interface: String, Errno)
    /// The kernel refused a transmit kick.
    case kickFailed(interface: String, Errno)

    public var description: String {
        switch self {
        case .openFailed(let interface, let queue, let errno):
            let hint: String
            switch errno {
            case .notPermitted, .permissionDenied:
                hint = " (AF_XDP needs root: CAP_NET_ADMIN and CAP_BPF)"
            case .resourceBusy:
                hint = " (the interface already has an XDP program)"
            case .noSuchFileOrDirectory, .operationNotSupportedByDevice, .noSuchAddressOrDevice:
                hint = " (no such interface in this network namespace)"
            default: hint = ""
            }
            return "AF_XDP on '\(interface)' queue \(queue) failed: \(errno)\(hint)"
        case .interfaceInfo(let interface, let errno):
            return "cannot read interface '\(interface)': \(errno)"
        case .kickFailed(let interface, let errno):
            return "AF_XDP transmit on '\(interface)' failed: \(errno)"
        }
    }
}

/// What the kernel counted for an XDP socket (`struct xdp_statistics`): frames it could
/// not hand over, and descriptors it rejected.
public struct XdpStatistics: Hashable, Sendable, CustomStringConvertible {
    /// Dropped for another reason (in copy mode: the fill ring was empty, among others).
    public var receiveDropped: UInt64
    /// Receive descriptors the kernel found invalid.
    public var receiveInvalid: UInt64
    /// Transmit descriptors the kernel found invalid (outside the UMEM, too long).
    public var transmitInvalid: UInt64
    /// Dropped because the receive ring was full: the stack fell behind.
    public var receiveRingFull: UInt64
    /// Times the kernel found no buffer in the fill ring.
    public var fillRingEmpty: UInt64
    /// Times the kernel found the transmit ring empty when woken.
    public var transmitRingEmpty: UInt64

    public var description: String {
        "kernel: rx dropped \(receiveDropped), rx ring full \(receiveRingFull), "
            + "fill ring empty \(fillRingEmpty), invalid rx \(receiveInvalid) tx \(transmitInvalid)"
    }
}

/// A ``NetworkDevice`` over an AF_XDP socket on one receive queue of a Linux interface:
/// the MirageOS arrangement on a Linux NIC. An XDP program, attached for as long as the
/// device is open, sends every frame arriving on that queue to the socket instead of
/// the kernel's stack, so the Oasis stack owns the interface (its address, ARP, ICMP)
/// while the device is open. Frames on other queues still reach the kernel.
///
/// The frames live in a UMEM of one-page frames that ``pool`` hands out: a received
/// frame is parsed where the kernel wrote it, and a frame the stack builds in a pool
/// buffer is transmitted from where it was built. In copy mode (any driver, such as
/// veth) the kernel copies between its buffers and these pages; with a zero-copy
/// driver the NIC reads and writes them itself.
///
/// The device's Ethernet address defaults to the interface's own, since frames for the
/// interface now reach the stack.
///
/// ```swift
/// let device = try XdpDevice(interface: "eth1", on: loop)
/// try device.start { batch in stack.receive(&batch) }
/// ```
public final class XdpDevice: NetworkDevice {
    public struct Options: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Attach the program in generic (skb) mode even when the driver has native XDP.
        public static let generic = Options(rawValue: Int(OASIS_XDP_GENERIC))
        /// Fail instead of falling back to copy mode when the driver has no zero-copy.
        public static let zeroCopyOnly = Options(rawValue: Int(OASIS_XDP_ZEROCOPY_ONLY))
    }

    public let name: String
    public let macAddress: MACAddress
    public let capabilities: DeviceCapabilities
    // Loop-confined, like every device: no dynamic exclusivity checks per frame.
    @exclusivity(unchecked) public private(set) var counters = DeviceCounters()
    public let pool: BufferPool
    /// The interface's receive queue this device owns.
    public let queue: UInt32
    /// Whether the program runs in the driver (native XDP) rather than generic mode.
    public let isNative: Bool
    /// Whether the kernel copies frames to and from the UMEM (no zero-copy driver).
    public let isCopyMode: Bool

    public var isLinkUp: Bool {
        !isClosed && oasis_xdp_link_up(socket) == 1
    }

    /// The interface's address, MTU and whether it is up.
    private static func interfaceInfo(
        _ interface: String
    ) throws(XdpError) -> (mac: MACAddress, mtu: Int, up: Bool) {
        var mac = [UInt8](repeating: 0, count: 6)
        var mtu: CInt = 0
        var up: CInt = 0
        let status = oasis_xdp_interface_info(interface, &mac, &mtu, &up)
        guard status == 0 else {
            throw .interfaceInfo(interface: interface, Errno(rawValue: -status))
        }
        return (MACAddress(mac), Int(mtu), up != 0)
    }

    /// What the kernel counted for the socket (once closed: what it had counted then).
    public var kernelStatistics: XdpStatistics? {
        isClosed ? finalStatistics : readStatistics()
    }

    private var finalStatistics: XdpStatistics?

    private func readStatistics() -> XdpStatistics? {
        var raw = oasis_xdp_statistics()
        guard oasis_xdp_get_statistics(socket, &raw) == 0 else { return nil }
        return XdpStatistics(
            receiveDropped: raw.rx_dropped, receiveInvalid: raw.rx_invalid_descs,
            transmitInvalid: raw.tx_invalid_descs, receiveRingFull: raw.rx_ring_full,
            fillRingEmpty: raw.rx_fill_ring_empty_descs, transmitRingEmpty: raw.tx_ring_empty_descs)
    }

    private let loop: EventLoop
    /// The C socket state, at a fixed address: the ring functions update it in place.
    private let socket: UnsafeMutablePointer<oasis_xdp_socket>
    private let umem: UnsafeMutableRawPointer
    private let frameCount: Int
    /// The buffer of every frame the kernel holds (in the fill ring, or in the transmit
    /// ring until its completion), so that the pool does not hand it out meanwhile, and
    /// how many of those uses each frame has (a view may be sent twice).
    @exclusivity(unchecked) private var held: [Buffer?]
    @exclusivity(unchecked) private var uses: [UInt32]
    /// Frames in the fill ring or received and not yet taken from the receive ring.
    @exclusivity(unchecked) private var posted = 0
    /// How many frames the fill ring is kept at.
    private let fillTarget: Int
    @exclusivity(unchecked) private var handler = CallbackSlot<PacketBatch>()
    @exclusivity(unchecked) private var batch = PacketBatch(capacity: deviceReceiveBatch)
    private var descriptor: FileDescriptor?
    /// One kick for everything transmitted in a turn of the loop.
    private var kickSource: LoopSource?
    private var isClosed = false

    private static let frameSize = Int(OASIS_XDP_FRAME_SIZE)

    /// Opens queue `queue` of `interface` (in the current network namespace) with a UMEM
    /// of `frameCount` pages and rings of `ringSize` entries (a power of two), and
    /// attaches the program that steers the queue to it. The interface should be up.
    ///
    /// With `queueCount` above `queue + 1` the program's socket map has room for that
    /// many queues, and devices on the interface's other queues join the program
    /// through ``share`` and ``init(joining:queue:on:macAddress:frameCount:ringSize:options:)``:
    /// one socket, one device and one loop per queue, the program steering each frame
    /// by the queue it arrived on (a multi-queue NIC's RSS, or a multi-queue veth,
    /// spreading the flows).
    ///
    /// ```swift
    /// let first = try XdpDevice(interface: "eth1", queue: 0, on: loop, queueCount: 2)
    /// let share = first.share   // Sendable: hand it to the second queue's thread
    /// // on that thread, with its own loop:
    /// let second = try XdpDevice(joining: share, queue: 1, on: otherLoop)
    /// ```
    public convenience init(
        interface: String, queue: UInt32 = 0, on loop: EventLoop, macAddress: MACAddress? = nil,
        frameCount: Int = 4096, ringSize: Int = 2048, options: Options = [],
        queueCount: UInt32? = nil
    ) throws(DeviceError) {
        let count = max(queueCount ?? 0, queue &+ 1)
        try self.init(
            interface: interface, queue: queue, on: loop, macAddress: macAddress,
            frameCount: frameCount, ringSize: ringSize
        ) { socket in
            oasis_xdp_open_queues(
                socket, interface, queue, count, UInt32(frameCount), UInt32(ringSize),
                CInt(options.rawValue))
        }
    }

    /// Opens queue `queue` of the interface of the device `share` came from, and places
    /// its socket in that device's program (no program of its own): frames arriving on
    /// `queue` come here. The owner's `queueCount` must have room for `queue`. The
    /// device may close before or after the owner; once the owner closes, the program is
    /// gone and this queue's frames go to the kernel.
    public convenience init(
        joining share: Share, queue: UInt32, on loop: EventLoop, macAddress: MACAddress? = nil,
        frameCount: Int = 4096, ringSize: Int = 2048, options: Options = []
    ) throws(DeviceError) {
        var owner = oasis_xdp_socket()
        owner.map_fd = share.mapDescriptor
        owner.ifindex = share.interfaceIndex
        owner.native = share.isNative ? 1 : 0
        try self.init(
            interface: share.interface, queue: queue, on: loop,
            macAddress: macAddress ?? share.macAddress, frameCount: frameCount, ringSize: ringSize
        ) { socket in
            oasis_xdp_open_joining(
                socket, &owner, queue, UInt32(frameCount), UInt32(ringSize),
                CInt(options.rawValue))
        }
    }

    /// What a device on another queue of the same interface needs to join this device's
    /// program (``init(joining:queue:on:macAddress:frameCount:ringSize:options:)``).
    /// Valid while this device is open.
    public struct Share: Sendable, Hashable {
        /// The interface's name.
        public let interface: String
        /// The owner's Ethernet address: the joining devices answer for the same one.
        public let macAddress: MACAddress
        let mapDescriptor: CInt
        let interfaceIndex: CInt
        let isNative: Bool
    }

    /// This device's program and socket map, for devices on the interface's other
    /// queues to join (see ``Share``).
    public var share: Share {
        Share(
            interface: name, macAddress: macAddress, mapDescriptor: socket.pointee.map_fd,
            interfaceIndex: socket.pointee.ifindex, isNative: isNative)
    }

    /// How many receive queues `interface` has (ETHTOOL_GCHANNELS: receive-only plus
    /// combined channels); 1 for a driver that does not say, nil when the interface
    /// cannot be asked (no such interface).
    ///
    /// ```swift
    /// let queues = XdpDevice.queueCount(of: "eth1") ?? 1  // a 2-queue veth: 2
    /// ```
    public static func queueCount(of interface: String) -> Int? {
        let count = oasis_xdp_queue_count(interface)
        if count > 0 { return Int(count) }
        return -count == EOPNOTSUPP ? 1 : nil
    }

    private init(
        interface: String, queue: UInt32, on loop: EventLoop, macAddress: MACAddress?,
        frameCount: Int, ringSize: Int,
        open: (UnsafeMutablePointer<oasis_xdp_socket>) -> CInt
    ) throws(DeviceError) {
        precondition(frameCount >= 2 && frameCount <= 1 << 20, "frameCount must be 2...2^20")
        precondition(
            ringSize > 0 && ringSize & (ringSize - 1) == 0 && ringSize <= 1 << 16,
            "ringSize must be a power of two up to 65536")
        let info: (mac: MACAddress, mtu: Int, up: Bool)
        do {
            info = try XdpDevice.interfaceInfo(interface)
        } catch {
            throw .xdp(error)
        }
        let socket = UnsafeMutablePointer<oasis_xdp_socket>.allocate(capacity: 1)
        let status = open(socket)
        guard status == 0, let umem = socket.pointee.umem else {
            socket.deallocate()
            throw .xdp(.openFailed(interface: interface, queue: queue, Errno(rawValue: -status)))
        }
        self.socket = socket
        self.umem = umem
        self.frameCount = frameCount
        self.name = interface
        self.queue = queue
        self.loop = loop
        self.capabilities = DeviceCapabilities(mtu: min(info.mtu, XdpDevice.frameSize - 512))
        self.macAddress = macAddress ?? info.mac
        self.isNative = socket.pointee.native != 0
        self.isCopyMode = socket.pointee.copy != 0
        self.pool = BufferPool(
            buffers: (0..<frameCount).map {
                Buffer(borrowing: umem + $0 * XdpDevice.frameSize, pageCount: 1)
            })
        held = [Buffer?](repeating: nil, count: frameCount)
        uses = [UInt32](repeating: 0, count: frameCount)
        fillTarget = min(ringSize, frameCount / 2)
        // The program steers the queue here from now on: with the fill ring stocked,
        // frames that arrive before ``start(receiving:)`` wait in the receive ring
        // instead of being dropped for want of a buffer (a worker's queue joins a
        // program that is already running).
        refill()
    }

    deinit {
        close()
        kickSource?.cancel()
        // Views of frames may outlive the device; the pages stay mapped unless none does.
        if pool.freeCount == pool.limit { oasis_xdp_unmap_umem(socket) }
        socket.deallocate()
    }

    // MARK: NetworkDevice

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard !isClosed else { throw .closed(device: name) }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        let fd = FileDescriptor(rawValue: socket.pointee.fd)
        self.handler.set(handler)
        let device = Unretained(self)
        do {
            try loop.register(fd, interest: .readable) { _ in device.call { $0.service() } }
        } catch {
            self.handler.clear()
            throw .loop(error)
        }
        descriptor = fd
        refill()
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard !isClosed else { throw .closed(device: name) }
        let limit = capabilities.maximumFrameSize
        let count = frame.count
        guard count <= limit else {
            throw .frameTooLarge(device: name, size: count, limit: limit)
        }
        var outgoing = frame
        var index = frameIndex(of: outgoing)
        if index == nil {
            // Not in our UMEM: copy it into a frame that is, once.
            guard let copy = try? outgoing.copy(into: pool) else {
                counters.transmitDrops &+= 1
                return
            }
            outgoing = copy
            index = frameIndex(of: outgoing)
        }
        guard let index else {
            counters.transmitDrops &+= 1
            return
        }
        if oasis_xdp_ring_free(&socket.pointee.tx, 1) == 0 {
            // The ring is full: have the kernel take what it holds, then look again.
            flush()
            reapCompletions()
            guard oasis_xdp_ring_free(&socket.pointee.tx, 1) == 1 else {
                counters.transmitDrops &+= 1
                return
            }
        }
        let entry = oasis_xdp_descriptor_at(&socket.pointee.tx, socket.pointee.tx.cached_producer)!
        entry.pointee = oasis_xdp_descriptor(
            address: UInt64(index * XdpDevice.frameSize + outgoing.offset),
            length: UInt32(outgoing.count), options: 0)
        oasis_xdp_ring_submit(&socket.pointee.tx, 1)
        hold(outgoing, at: index)
        counters.countTransmitted(count)
        if kickSource == nil {
            let device = Unretained(self)
            kickSource = loop.makeSource { device.call { $0.flush() } }
        }
        kickSource?.wake()
    }

    /// Detaches the program (the kernel's stack gets the queue back) and closes the
    /// socket. The UMEM stays mapped while views of its frames may exist.
    public func close() {
        guard !isClosed else { return }
        if let descriptor {
            try? loop.deregister(descriptor)
            self.descriptor = nil
        }
        handler.clear()
        finalStatistics = readStatistics()
        isClosed = true
        oasis_xdp_close(socket, 0)
        for index in held.indices {
            held[index] = nil
            uses[index] = 0
        }
        posted = 0
    }

    // MARK: Rings

    /// The UMEM frame holding all of `frame`, if any.
    private func frameIndex(of frame: borrowing Packet) -> Int? {
        let distance = frame.buffer.baseAddress - umem
        guard distance >= 0, distance < frameCount * XdpDevice.frameSize,
            frame.offset + frame.count <= XdpDevice.frameSize
        else { return nil }
        return distance / XdpDevice.frameSize
    }

    /// Keeps the frame's buffer out of the pool while the kernel holds it: the packet
    /// is consumed, its buffer reference moves into ``held``.
    private func hold(_ frame: consuming Packet, at index: Int) {
        if uses[index] == 0 { held[index] = frame.buffer }
        uses[index] &+= 1
    }

    /// Gives back one of the kernel's uses of frame `index`; its buffer returns to the
    /// pool once no use and no view is left. False for a frame the kernel did not hold.
    private func release(_ index: Int) -> Bool {
        guard index < frameCount, uses[index] > 0 else { return false }
        uses[index] -= 1
        if uses[index] == 0 { held[index] = nil }
        return true
    }

    private func service() {
        guard !isClosed else { return }
        reapCompletions()
        receive()
        refill()
    }

    /// Delivers up to ``deviceReceiveBatch`` received frames to the handler, as one
    /// batch.
    private func receive() {
        guard handler.isSet else { return }
        defer {
            if !batch.isEmpty {
                handler(&batch)
                batch.removeAll()
            }
        }
        let ready = oasis_xdp_ring_peek(&socket.pointee.rx, UInt32(deviceReceiveBatch))
        for _ in 0..<ready {
            let entry = oasis_xdp_descriptor_at(
                &socket.pointee.rx, socket.pointee.rx.cached_consumer)!.pointee
            oasis_xdp_ring_release(&socket.pointee.rx, 1)
            posted -= 1
            let index = Int(entry.address / UInt64(XdpDevice.frameSize))
            let offset = Int(entry.address % UInt64(XdpDevice.frameSize))
            let length = Int(entry.length)
            guard index < frameCount, uses[index] > 0, let buffer = takeUse(index) else {
                counters.receiveErrors &+= 1
                continue
            }
            guard offset + length <= XdpDevice.frameSize,
                let frame = try? Packet(buffer: buffer, offset: offset, count: length)
            else {
                counters.receiveDrops &+= 1
                continue
            }
            counters.countReceived(length)
            batch.append(frame)
        }
    }

    /// Gives back the kernel's use of frame `index` and returns its buffer for a packet:
    /// moved out of ``held`` when that was the last use.
    private func takeUse(_ index: Int) -> Buffer? {
        uses[index] -= 1
        return uses[index] == 0 ? held[index].take() : held[index]
    }

    /// Keeps the fill ring at its target with free pool frames.
    private func refill() {
        guard !isClosed else { return }
        let wanted = fillTarget - posted
        guard wanted > 0 else { return }
        let room = Int(oasis_xdp_ring_free(&socket.pointee.fill, UInt32(wanted)))
        var added: UInt32 = 0
        while added < room, let frame = try? pool.allocatePacket() {
            guard let index = frameIndex(of: frame) else { break }
            oasis_xdp_address_at(
                &socket.pointee.fill, socket.pointee.fill.cached_producer &+ added)!.pointee =
                UInt64(index * XdpDevice.frameSize)
            hold(frame, at: index)
            added += 1
        }
        guard added > 0 else { return }
        oasis_xdp_ring_submit(&socket.pointee.fill, added)
        posted += Int(added)
        if oasis_xdp_needs_wakeup(&socket.pointee.fill) != 0 {
            _ = oasis_xdp_wake_fill(socket)
        }
    }

    /// Takes back the frames the kernel has finished sending.
    private func reapCompletions() {
        let done = oasis_xdp_ring_peek(&socket.pointee.completion, UInt32.max)
        guard done > 0 else { return }
        for offset in 0..<done {
            let address = oasis_xdp_address_at(
                &socket.pointee.completion, socket.pointee.completion.cached_consumer &+ offset)!
                .pointee
            if !release(Int(address / UInt64(XdpDevice.frameSize))) {
                counters.transmitErrors &+= 1
            }
        }
        oasis_xdp_ring_release(&socket.pointee.completion, done)
    }

    /// Has the kernel send what the transmit ring holds. In copy mode each kick sends
    /// a bounded batch (32 frames in Linux), so it kicks until the ring is empty.
    private func flush() {
        guard !isClosed else { return }
        var kicks = 0
        repeat {
            let status = oasis_xdp_kick(socket)
            if status < 0 {
                counters.transmitErrors &+= 1
                return
            }
            kicks += 1
        } while isCopyMode && oasis_xdp_ring_unsent(&socket.pointee.tx) > 0 && kicks < 256
        reapCompletions()
    }
}
