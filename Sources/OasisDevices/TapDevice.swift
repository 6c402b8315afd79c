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
/// completes those checksums before the stack sees the frame, and sends its own
/// frames with a zero header (checksums complete, no segmentation offload).
public final class TapDevice: NetworkDevice {
    public struct Options: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Carry a `virtio_net_hdr` and let the kernel skip checksums of frames it sends.
        public static let vnetHeader = Options(rawValue: 1)
    }

    public let name: String
    public let macAddress: MACAddress
    public let capabilities: DeviceCapabilities
    public var isLinkUp: Bool { (try? interface.isLinkUp) ?? false }
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
    private lazy var scratch = Buffer(byteCount: 65_536 + TapDevice.vnetHeaderSize)

    /// Size of `struct virtio_net_hdr` (no mergeable buffers).
    static let vnetHeaderSize = 10

    /// Attaches to the TAP interface `name` (creating it if it does not exist) in the
    /// current network namespace, or lets the kernel choose a name, and brings it up.
    public init(
        attachingTo name: String?, on loop: EventLoop, macAddress: MACAddress? = nil,
        options: Options = [], poolLimit: Int = 1024
    ) throws(DeviceError) {
        var tapOptions: TapInterface.Options = []
        if options.contains(.vnetHeader) { tapOptions.insert(.vnetHeader) }
        do {
            interface = try TapInterface.open(name: name, options: tapOptions)
            if options.contains(.vnetHeader) {
                try interface.setVnetHeaderSize(TapDevice.vnetHeaderSize)
                try interface.setOffload(.checksum)
            }
            try interface.setLinkUp(true)
            // A frame is read into one pool buffer: the largest we take is what its
            // tailroom holds (longer ones, with a larger interface MTU, are dropped).
            let room =
                Buffer.pageSize - BufferPool.defaultHeadroom
                - (options.contains(.vnetHeader) ? TapDevice.vnetHeaderSize : 0)
            capabilities = DeviceCapabilities(mtu: min(try interface.mtu, room - 18))
            let index = try interface.index
            self.macAddress = macAddress ?? MACAddress(0x0200_0a5e_0000 | UInt64(index & 0xffff))
        } catch {
            throw .tap(error)
        }
        self.name = interface.name
        self.options = options
        self.loop = loop
        self.pool = BufferPool(limit: poolLimit)
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
            if options.contains(.vnetHeader) {
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

    /// Strips the `virtio_net_hdr`, finishing a partial checksum first when the kernel
    /// asked for it. Returns false for a header that points outside the frame.
    private func completeVnetFrame(_ frame: inout Packet) -> Bool {
        guard frame.count >= TapDevice.vnetHeaderSize,
            let flags = try? frame.read(UInt8.self, at: 0),
            let start = try? frame.read(UInt16.self, at: 6, byteOrder: .littleEndian),
            let offset = try? frame.read(UInt16.self, at: 8, byteOrder: .littleEndian),
            (try? frame.shift(by: TapDevice.vnetHeaderSize)) != nil
        else { return false }
        if flags & 1 != 0 {  // VIRTIO_NET_HDR_F_NEEDS_CSUM
            let checksumStart = Int(start)
            let field = checksumStart + Int(offset)
            guard checksumStart <= frame.count, field + 2 <= frame.count else { return false }
            // The field holds the pseudo-header sum; the checksum over the rest, that
            // field included, is the final one.
            let value = frame.withUnsafeBytes {
                InternetChecksum.checksum(
                    of: UnsafeRawBufferPointer(rebasing: $0[checksumStart...]))
            }
            return (try? frame.write(value == 0 ? 0xffff : value, at: field)) != nil
        }
        return true
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        guard !interface.isClosed else { throw .closed(device: name) }
        let limit = capabilities.maximumFrameSize
        let count = frame.count
        guard count <= limit else {
            throw .frameTooLarge(device: name, size: count, limit: limit)
        }
        var outgoing = frame
        if options.contains(.vnetHeader) {
            do {
                try outgoing.prepend(TapDevice.vnetHeaderSize)
                for byteOffset in stride(from: 0, to: TapDevice.vnetHeaderSize, by: 2) {
                    try outgoing.write(UInt16(0), at: byteOffset)
                }
            } catch {
                counters.transmitErrors &+= 1
                return
            }
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
