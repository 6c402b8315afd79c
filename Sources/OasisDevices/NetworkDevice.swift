// The device protocol: what the stack needs from anything that moves Ethernet frames.

import OasisBits
import OasisLoop
import OasisWire

/// Something that moves Ethernet frames: a TAP device, a libpcap handle, a Xen
/// netfront, one end of an in-memory pair.
///
/// A device does no protocol work. It receives frames into buffers from its own
/// ``pool`` (so a frame is read once, where it will be parsed, and never copied
/// again), hands them to the receive handler in batches on the loop, transmits
/// frames it is given, and counts what it did.
///
/// Every call happens on the loop thread the device was created on.
///
/// ```swift
/// let device = try TapDevice(attachingTo: "tap0", on: loop)
/// try device.start { frame in stack.input(frame) }
/// try device.transmit(reply)
/// ```
public protocol NetworkDevice: AnyObject {
    /// A name for messages and counters: the interface name, "memory0", …
    var name: String { get }
    /// The device's own Ethernet address: the one the stack answers for.
    var macAddress: MACAddress { get }
    /// The largest frame payload (IP packet) the device carries, without the
    /// Ethernet header: 1500 unless the link says otherwise.
    var mtu: Int { get }
    /// Whether the link is up.
    var isLinkUp: Bool { get }
    /// What the device has done so far.
    var counters: DeviceCounters { get }
    /// The pool received frames live in; the stack allocates frames to transmit from it
    /// too, so that headers are prepended in place in the buffer that goes to the wire.
    var pool: BufferPool { get }

    /// Starts delivering received frames to `handler`, on the loop, one call per frame,
    /// a bounded batch per readiness of the underlying device. The frame view is valid
    /// for as long as the handler keeps it; its buffer returns to ``pool`` when the
    /// last view of it is dropped.
    func start(receiving handler: @escaping (Bits) -> Void) throws(DeviceError)

    /// Transmits one frame (Ethernet header included). A frame that cannot be sent
    /// right now (the device's queue is full) is dropped and counted, as a NIC does.
    func transmit(_ frame: Bits) throws(DeviceError)

    /// Stops receiving and releases the underlying resource. Calling it twice does
    /// nothing.
    func close()
}

extension NetworkDevice {
    /// Transmits several frames; the default sends them one by one.
    public func transmit(batch frames: some Sequence<Bits>) throws(DeviceError) {
        for frame in frames { try transmit(frame) }
    }
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
        "rx \(receivedPackets) pkts \(receivedBytes) B (drops \(receiveDrops), errors \(receiveErrors)); "
            + "tx \(transmittedPackets) pkts \(transmittedBytes) B (drops \(transmitDrops), errors \(transmitErrors))"
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
