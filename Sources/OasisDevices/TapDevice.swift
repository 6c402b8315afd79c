// The TAP backend: frames read from and written to /dev/net/tun, driven by the loop.

import Glibc
import OasisBits
import OasisLoop
import OasisWire
import SystemPackage

/// A ``NetworkDevice`` over a Linux TAP interface. The kernel side of the TAP is
/// the peer: whatever the kernel routes to the interface arrives here, and what the
/// stack transmits appears to the kernel as received on the interface.
///
/// The stack's own Ethernet address is not the interface's (the interface's belongs
/// to the kernel side); it defaults to a locally administered address derived from
/// the interface index.
///
/// With ``Options/vnetHeader`` the TAP carries a `virtio_net_hdr` before each frame
/// and the kernel may hand over frames whose checksum it left to finish
/// (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, set when checksum offload is on): the device
/// completes those checksums before the stack sees the frame (and marks them
/// vouched for in the packet's ``PacketOffload``, as those with `DATA_VALID`).
///
/// With ``Options/offload`` it goes further, both ways, as a virtio-net guest does:
/// the kernel may hand over TCP segments of up to 64 KiB it coalesced (GRO) or never
/// cut (its own TSO), read into buffers of 17 pages, their checksums left partial and
/// vouched for; and the stack may hand the device a TCP segment of up to 64 KiB with
/// a partial checksum and an MSS (``DeviceCapabilities/maximumSegmentationSize``,
/// ``PacketOffload``), which goes to the kernel as `VIRTIO_NET_HDR_GSO_TCPV4` for it
/// to cut, or to deliver whole to its own TCP.
public final class TapDevice: NetworkDevice {
    public struct Options: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Carry a `virtio_net_hdr` and let the kernel skip checksums of frames it sends.
        public static let vnetHeader = Options(rawValue: 1)
        /// Carry a `virtio_net_hdr` (implies ``vnetHeader``) and offload TCP both ways:
        /// segmentation of what the stack sends (TSO), coalesced segments and
        /// partial checksums from the kernel (TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6).
        public static let offload = Options(rawValue: 2)
        /// Attach as one queue of a multi-queue TAP (IFF_MULTI_QUEUE): open one device
        /// per queue, each on its own loop, with the same name; the kernel spreads the
        /// frames it sends over the queues by their flow's hash, and any queue may
        /// transmit. Every queue of the interface must be opened with it.
        ///
        /// ```swift
        /// let first = try TapDevice(attachingTo: "tap0", on: loop, options: .multiQueue)
        /// // on another thread, with its own loop:
        /// let second = try TapDevice(attachingTo: "tap0", on: otherLoop, options: .multiQueue)
        /// ```
        public static let multiQueue = Options(rawValue: 4)
    }

    /// The pages of a buffer when offloads are on: a 64 KiB IP packet, its Ethernet
    /// header and the virtio header behind the pool's headroom.
    public static let offloadBufferPages = 17
    /// The most large buffers a device with offloads makes (17 MiB).
    public static let offloadPoolLimit = 256
    /// The largest IPv4 packet a TCP segment handed over for segmentation may be.
    public static let maximumSegmentationSize = 65_535

    public let name: String
    public let macAddress: MACAddress
    public let capabilities: DeviceCapabilities
    /// Whether the interface is up. Once it has moved to another namespace (a switch's
    /// port handed to a host) its name means nothing here and its flags cannot be read:
    /// it counts as up while the descriptor is open, as frames still pass through it.
    public var isLinkUp: Bool { (try? interface.isLinkUp) ?? !interface.isClosed }
    // Loop-confined, like every device: no dynamic exclusivity checks per frame.
    @exclusivity(unchecked) public private(set) var counters = DeviceCounters()
    public let pool: BufferPool
    public let options: Options
    /// The underlying interface.
    public let interface: TapInterface

    private let loop: EventLoop
    private var descriptor: FileDescriptor?
    private var handler = CallbackSlot<PacketBatch>()
    private var failureHandler: ((DeviceError) -> Void)?
    private var batch = PacketBatch(capacity: deviceReceiveBatch)
    /// Where a frame is read when the pool has no buffer free, to be dropped: a full
    /// pool must not leave the frame in the kernel's queue, where level-triggered
    /// readiness would wake the loop for it again at once, and again.
    private lazy var scratch = Buffer(pageCount: TapDevice.offloadBufferPages)
    /// Whether frames carry a virtio header.
    private let carriesVnetHeader: Bool

    /// Size of `struct virtio_net_hdr` (no mergeable buffers).
    static let vnetHeaderSize = VirtioNetHeader.size

    /// Attaches to the TAP interface `name` (creating it if it does not exist) in the
    /// current network namespace, or lets the kernel choose a name, and brings it up.
    public init(
        attachingTo name: String?, on loop: EventLoop, macAddress: MACAddress? = nil,
        options: Options = [], poolLimit: Int = 1024
    ) throws(DeviceError) {
        let offload = options.contains(.offload)
        let vnet = offload || options.contains(.vnetHeader)
        var tapOptions: TapInterface.Options = []
        if vnet { tapOptions.insert(.vnetHeader) }
        if options.contains(.multiQueue) { tapOptions.insert(.multiQueue) }
        // With offloads a frame may be a 64 KiB segment: buffers of 17 pages, fewer.
        let pool =
            offload
            ? BufferPool(
                limit: min(poolLimit, TapDevice.offloadPoolLimit),
                pagesPerBuffer: TapDevice.offloadBufferPages)
            : BufferPool(limit: poolLimit)
        do {
            interface = try TapInterface.open(name: name, options: tapOptions)
            if vnet {
                try interface.setVnetHeaderSize(TapDevice.vnetHeaderSize)
                // TSO4 alone is refused: the kernel's ABI wants TSO6 with it (we
                // speak no IPv6; such frames are dropped by the link).
                try interface.setOffload(
                    offload
                        ? [.checksum, .tcpSegmentationIPv4, .tcpSegmentationIPv6] : .checksum)
            }
            try interface.setLinkUp(true)
            // A frame is read into one pool buffer: the largest we take is what its
            // tailroom holds (longer ones, with a larger interface MTU, are dropped).
            let room =
                pool.bufferCapacity - pool.headroom - (vnet ? TapDevice.vnetHeaderSize : 0)
            capabilities = DeviceCapabilities(
                mtu: min(try interface.mtu, room - 18),
                transmitChecksums: offload ? .tcp : [],
                maximumSegmentationSize: offload ? TapDevice.maximumSegmentationSize : 0)
            let index = try interface.index
            self.macAddress = macAddress ?? MACAddress(0x0200_0a5e_0000 | UInt64(index & 0xffff))
        } catch {
            throw .tap(error)
        }
        self.name = interface.name
        self.options = options
        self.carriesVnetHeader = vnet
        self.loop = loop
        self.pool = pool
    }

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        guard !interface.isClosed else { throw .closed(device: name) }
        guard !self.handler.isSet else { throw .alreadyStarted(device: name) }
        let fd: FileDescriptor
        do {
            fd = try interface.fileDescriptor
        } catch {
            throw .tap(error)
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

    /// Reads up to ``deviceReceiveBatch`` frames, each straight into a pool buffer, and
    /// hands them to the handler as one batch.
    private func receiveBatch() {
        guard handler.isSet else { return }
        defer {
            if !batch.isEmpty {
                handler(&batch)
                batch.removeAll()
            }
        }
        for _ in 0..<deviceReceiveBatch {
            guard var frame = try? pool.allocatePacket() else {
                // No buffer: the frame is read and dropped (counted), as a NIC drops
                // what arrives while its ring is full.
                guard readIntoScratch() else { return }
                counters.receiveDrops &+= 1
                continue
            }
            var outcome: Int? = nil
            var failure: TapError? = nil
            frame.withUnsafeMutableTailroom { room in
                do throws(TapError) {
                    outcome = try interface.read(into: room)
                } catch {
                    failure = error
                }
                return outcome ?? 0
            }
            if let failure {
                counters.receiveErrors &+= 1
                // EBADFD: the interface was deleted under us. Reading again would fail
                // again, on every turn of the loop (the descriptor stays readable).
                if case .readFailed(_, let errno) = failure, errno.rawValue == EBADFD {
                    fail(.tap(failure))
                }
                return
            }
            guard outcome != nil else { return }  // EAGAIN: drained
            if frame.tailroom == 0 {
                // The read filled the room: the kernel cut a longer frame to fit (an
                // interface MTU above what a buffer holds). Dropped, counted.
                counters.receiveDrops &+= 1
                continue
            }
            if carriesVnetHeader {
                guard completeVnetFrame(&frame) else {
                    counters.receiveDrops &+= 1
                    continue
                }
            }
            counters.countReceived(frame.count)
            batch.append(frame)
        }
    }

    /// Reads one frame into the scratch buffer; false when there was none (or an error).
    private func readIntoScratch() -> Bool {
        let room = UnsafeMutableRawBufferPointer(
            start: scratch.baseAddress, count: scratch.capacity)
        do {
            return try interface.read(into: room) != nil
        } catch {
            counters.receiveErrors &+= 1
            return false
        }
    }

    /// Strips the `virtio_net_hdr` and says in the packet's ``PacketOffload`` what it
    /// told: a frame coalesced from segments (TSO/GRO, only with ``Options/offload``),
    /// a checksum vouched for. A partial checksum (`NEEDS_CSUM`) is finished first,
    /// but for a coalesced frame, whose checksum nobody reads: the kernel's data never
    /// crossed a wire. Returns false for a header that points outside the frame or
    /// names a segmentation we did not offer.
    private func completeVnetFrame(_ frame: inout Packet) -> Bool {
        guard
            let header = frame.withUnsafeBytes({
                try? VirtioNetHeader(parsing: $0)
            }),
            (try? frame.shift(by: TapDevice.vnetHeaderSize)) != nil
        else { return false }
        if header.segmentation != .none {
            // TCP only: TUN_F_UFO/USO are not offered. TCPv6 is (the kernel wants it
            // with TSO4), and the link drops it.
            guard header.segmentation == .tcpIPv4 || header.segmentation == .tcpIPv6 else {
                return false
            }
            frame.offload.coalesced = true
            frame.offload.segmentSize = header.segmentSize
            counters.coalescedReceives &+= 1
            counters.coalescedReceiveBytes &+= UInt64(frame.count)
        }
        if header.flags.contains(.needsChecksum) {
            let checksumStart = Int(header.checksumStart)
            let field = checksumStart + Int(header.checksumOffset)
            guard checksumStart <= frame.count, field + 2 <= frame.count else { return false }
            frame.offload.checksumVerified = true
            if frame.offload.coalesced { return true }
            // The field holds the pseudo-header sum; the checksum over the rest, that
            // field included, is the final one.
            let value = frame.withUnsafeBytes {
                InternetChecksum.checksum(
                    of: UnsafeRawBufferPointer(rebasing: $0[checksumStart...]))
            }
            // A zero sum goes out as 0xFFFF in UDP only (zero there means none, RFC
            // 768); TCP keeps 0x0000 (RFC 1624: 0xFFFF is the one it never sends).
            let udp = header.checksumOffset == 6
            return (try? frame.write(value == 0 && udp ? 0xffff : value, at: field)) != nil
        }
        if header.flags.contains(.dataValid) { frame.offload.checksumVerified = true }
        return true
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard !interface.isClosed else { throw .closed(device: name) }
        let count = frame.count
        let segmenting = frame.offload.needsSegmentation
        let limit =
            segmenting && capabilities.segmentsTCP
            ? capabilities.maximumFrameSize - capabilities.mtu
                + capabilities.maximumSegmentationSize
            : capabilities.maximumFrameSize
        guard count <= limit else {
            throw .frameTooLarge(device: name, size: count, limit: limit)
        }
        var outgoing = frame
        if carriesVnetHeader {
            // What the packet asks (a checksum finished, a segment cut), or zeros.
            guard let header = VirtioNetHeader(transmitting: outgoing),
                (try? outgoing.prepend(TapDevice.vnetHeaderSize)) != nil
            else {
                counters.transmitErrors &+= 1
                return
            }
            outgoing.withUnsafeMutableBytes { header.write(to: $0.baseAddress!) }
        } else if outgoing.offload.needsChecksum {
            // Nobody to finish the checksum: the stack asks only what the
            // capabilities offer, so this is a caller's mistake. Not sent.
            counters.transmitErrors &+= 1
            return
        }
        let sent: Bool
        do {
            sent = try outgoing.withUnsafeBytes { bytes throws(TapError) in
                try interface.write(bytes)
            }
        } catch {
            counters.transmitErrors &+= 1
            throw .tap(error)
        }
        if sent {
            counters.countTransmitted(count)
            if segmenting {
                counters.segmentedTransmits &+= 1
                counters.segmentedTransmitBytes &+= UInt64(count)
            }
        } else {
            counters.transmitDrops &+= 1
        }
    }

    public func close() {
        if let descriptor {
            try? loop.deregister(descriptor)
            self.descriptor = nil
        }
        handler.clear()
        // A persistent TAP (made by `ip tuntap add`) keeps TUNSETOFFLOAD after its
        // descriptor closes: the next program on it would get partial checksums and
        // coalesced frames it never asked for. Leave it as found.
        if options.contains(.vnetHeader) || options.contains(.offload) {
            try? interface.setOffload([])
        }
        try? interface.close()
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
