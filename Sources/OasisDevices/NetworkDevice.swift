// The device protocol: what the stack needs from anything that moves Ethernet frames.

import OasisBits
import OasisLoop
import OasisWire

/// Something that moves Ethernet frames: a TAP device, a libpcap handle, an AF_XDP
/// queue, a Xen netfront, one end of an in-memory pair.
///
/// A device does no protocol work. It receives frames into buffers from its own
/// ``pool`` (so a frame is read once, where it will be parsed, and never copied
/// again), hands them to the receive handler in batches on the loop, transmits the
/// frames it is given, and counts what it did.
///
/// Frames are ``Packet``s: a received frame is owned by the batch it arrives in until
/// the handler takes it; a transmitted frame is consumed by ``transmit(_:)``, which
/// owns it until the wire has it. Nothing on the way costs a reference count.
///
/// Every call happens on the loop thread the device was created on.
///
/// ```swift
/// let device = try TapDevice(attachingTo: "tap0", on: loop)
/// try device.start { batch in stack.receive(&batch) }
/// try device.transmit(reply)
/// ```
public protocol NetworkDevice: AnyObject {
    /// A name for messages and counters: the interface name, "memory0", …
    var name: String { get }
    /// The device's own Ethernet address: the one the stack answers for.
    var macAddress: MACAddress { get }
    /// What the device carries and checks: MTU, largest frame, checksum offloads.
    var capabilities: DeviceCapabilities { get }
    /// Whether the link is up.
    var isLinkUp: Bool { get }
    /// What the device has done so far.
    var counters: DeviceCounters { get }
    /// The pool received frames live in; the stack allocates frames to transmit from it
    /// too, so that headers are prepended in place in the buffer that goes to the wire.
    var pool: BufferPool { get }

    /// Starts delivering received frames to `handler`, on the loop: one call per
    /// readiness of the underlying device, with the frames it brought in (at most
    /// ``deviceReceiveBatch``). The handler takes the frames it keeps out of the batch
    /// (``Batch/take(at:)``); those it leaves are dropped when it returns, and their
    /// buffers go back to ``pool``.
    func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)

    /// Transmits one frame (Ethernet header included), taking it over. A frame that
    /// cannot be sent right now (the device's queue is full) is dropped and counted,
    /// as a NIC does.
    func transmit(_ frame: consuming Packet) throws(DeviceError)

    /// Stops receiving and releases the underlying resource. Calling it twice does
    /// nothing.
    func close()

    /// Calls `handler` once, on the loop, if the device stops on its own: its interface
    /// went away under it (a TAP or a veth deleted), or it failed in a way that reading
    /// again cannot mend. The device has closed itself by then. A device that cannot
    /// fail this way never calls it (the default).
    func onFailure(_ handler: @escaping (DeviceError) -> Void)
}

extension NetworkDevice {
    public func onFailure(_ handler: @escaping (DeviceError) -> Void) {}

    /// The largest IP packet the device carries (``DeviceCapabilities/mtu``).
    @inlinable public var mtu: Int { capabilities.mtu }

    /// Starts delivering received frames one at a time: for tools and tests (the stack
    /// takes batches).
    public func startEach(_ handler: @escaping (consuming Packet) -> Void) throws(DeviceError) {
        try start { (batch: inout PacketBatch) in
            for index in batch.indices {
                if let frame = batch.take(at: index) { handler(frame) }
            }
        }
    }

    /// Transmits a frame held as a copyable view (its bytes are not copied).
    public func transmit(_ frame: Bits) throws(DeviceError) {
        try transmit(Packet(frame))
    }
}

/// What a device carries and what it checks, as smoltcp's `DeviceCapabilities` has it:
/// the stack reads the largest frame and the checksum offloads from here rather than
/// assuming them.
public struct DeviceCapabilities: Hashable, Sendable {
    /// The largest IP packet (the MTU), without the Ethernet header: 1500 unless the
    /// link says otherwise.
    public var mtu: Int
    /// How many VLAN tags a frame may carry beyond the MTU: 1 (802.1Q) where the link
    /// allows one, as Linux's veth and TAP do; 2 for QinQ.
    public var vlanTags: Int
    /// Checksums the device has already verified on the frames it delivers: the stack
    /// does not verify them again.
    public var receiveChecksums: ChecksumOffloads
    /// Checksums the device would fill in on the frames it transmits, the stack then
    /// writing only their pseudo-header sum and saying so in the packet's
    /// ``PacketOffload`` (a TAP with ``TapDevice/Options/offload``: TCP uses it; UDP
    /// always writes the whole sum).
    public var transmitChecksums: ChecksumOffloads
    /// TCP segmentation offload: the largest IPv4 packet, headers included, carrying
    /// one TCP segment that the device cuts into segments of the MSS the packet's
    /// ``PacketOffload/segmentSize`` names (a TAP with a virtio header hands it to the
    /// kernel as `VIRTIO_NET_HDR_GSO_TCPV4`). 0, the default: the device cuts nothing,
    /// and no packet may be larger than ``mtu``. A device that segments also finishes
    /// TCP checksums (``transmitChecksums`` holds `.tcp`).
    public var maximumSegmentationSize: Int

    /// Capabilities of a link with MTU `mtu` and no offloads.
    @inlinable
    public init(
        mtu: Int = 1500, vlanTags: Int = 1, receiveChecksums: ChecksumOffloads = [],
        transmitChecksums: ChecksumOffloads = [], maximumSegmentationSize: Int = 0
    ) {
        self.mtu = mtu
        self.vlanTags = vlanTags
        self.receiveChecksums = receiveChecksums
        self.transmitChecksums = transmitChecksums
        self.maximumSegmentationSize = maximumSegmentationSize
    }

    /// The largest frame the device carries: the Ethernet header, the tags and the MTU.
    @inlinable
    public var maximumFrameSize: Int { EthernetHeader.size &+ 4 &* vlanTags &+ mtu }

    /// Whether the device cuts large TCP segments itself.
    @inlinable
    public var segmentsTCP: Bool { maximumSegmentationSize > mtu }
}

/// Checksums a device verifies or fills in.
public struct ChecksumOffloads: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The IPv4 header checksum.
    @inlinable public static var ipv4: ChecksumOffloads { ChecksumOffloads(rawValue: 1) }
    /// UDP checksums.
    @inlinable public static var udp: ChecksumOffloads { ChecksumOffloads(rawValue: 2) }
    /// TCP checksums.
    @inlinable public static var tcp: ChecksumOffloads { ChecksumOffloads(rawValue: 4) }
    /// ICMP checksums.
    @inlinable public static var icmp: ChecksumOffloads { ChecksumOffloads(rawValue: 8) }
}

/// What a device has done: packets and bytes each way, and what it dropped or failed.
public struct DeviceCounters: Hashable, Sendable, CustomStringConvertible {
    public var receivedPackets: UInt64 = 0
    public var receivedBytes: UInt64 = 0
    public var transmittedPackets: UInt64 = 0
    public var transmittedBytes: UInt64 = 0
    /// Frames lost on receive: the pool was exhausted, or a frame was malformed at the
    /// device level (a bad virtio header, a truncated capture).
    public var receiveDrops: UInt64 = 0
    /// Frames not sent because the device's queue was full.
    public var transmitDrops: UInt64 = 0
    /// Errors reported by the underlying device on receive and transmit.
    public var receiveErrors: UInt64 = 0
    public var transmitErrors: UInt64 = 0
    /// Frames sent for the device to segment (TSO/GSO), and their bytes (counted in
    /// ``transmittedPackets`` and ``transmittedBytes`` too).
    public var segmentedTransmits: UInt64 = 0
    public var segmentedTransmitBytes: UInt64 = 0
    /// Frames received coalesced from several segments (GRO, or a peer's TSO send
    /// never cut), and their bytes (counted in ``receivedPackets`` too).
    public var coalescedReceives: UInt64 = 0
    public var coalescedReceiveBytes: UInt64 = 0

    public init() {}

    @inlinable
    public mutating func countReceived(_ bytes: Int) {
        receivedPackets &+= 1
        receivedBytes &+= UInt64(bytes)
    }

    @inlinable
    public mutating func countTransmitted(_ bytes: Int) {
        transmittedPackets &+= 1
        transmittedBytes &+= UInt64(bytes)
    }

    public var description: String {
        var text =
            "rx \(receivedPackets) pkts \(receivedBytes) B (drops \(receiveDrops), errors \(receiveErrors)); "
            + "tx \(transmittedPackets) pkts \(transmittedBytes) B (drops \(transmitDrops), errors \(transmitErrors))"
        if segmentedTransmits > 0 || coalescedReceives > 0 {
            text +=
                "; offloads: tx segmented \(segmentedTransmits) frames \(segmentedTransmitBytes) B, "
                + "rx coalesced \(coalescedReceives) frames \(coalescedReceiveBytes) B"
        }
        return text
    }
}

/// Why a device operation failed.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    case tap(TapError)
    case pcap(PcapError)
    case xdp(XdpError)
    case loop(LoopError)
    /// The device was used after ``NetworkDevice/close()``.
    case closed(device: String)
    /// ``NetworkDevice/start(receiving:)`` was called twice.
    case alreadyStarted(device: String)
    /// A frame larger than the device can carry.
    case frameTooLarge(device: String, size: Int, limit: Int)
    /// The device needs something this build or machine does not have.
    case unavailable(String)

    public var description: String {
        switch self {
        case .tap(let error): return error.description
        case .pcap(let error): return "\(error)"
        case .xdp(let error): return error.description
        case .loop(let error): return "\(error)"
        case .closed(let device): return "\(device): used after close"
        case .alreadyStarted(let device): return "\(device): already started"
        case .frameTooLarge(let device, let size, let limit):
            return "\(device): a \(size)-byte frame is larger than the \(limit) bytes it carries"
        case .unavailable(let reason): return reason
        }
    }
}

/// How many frames a device reads per readiness before returning to the loop, so that
/// one busy device cannot starve timers and other descriptors.
public let deviceReceiveBatch = 64
