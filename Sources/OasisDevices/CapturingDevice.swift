// `--capture FILE.pcap` on any backend: every frame in and out, written to a pcap
// file that tshark and Wireshark open.

import OasisBits
import OasisLoop
import OasisWire

/// Wraps a device and records every frame it receives and transmits, with the time
/// it passed, in a pcap file (Ethernet link type). The wrapped device is otherwise
/// untouched: the stack sees the same frames, the wire sees the same frames.
///
/// A frame that cannot be written (disk full) is counted in ``captureErrors`` and the
/// device carries on: losing the capture must not lose the traffic.
public final class CapturingDevice<Base: NetworkDevice>: NetworkDevice {
    public let base: Base
    private let writer: PcapFileWriter
    /// Frames that could not be written to the capture.
    public private(set) var captureErrors: UInt64 = 0

    public init(_ base: Base, path: String) throws(DeviceError) {
        self.base = base
        do {
            writer = try PcapFileWriter(path: path)
        } catch {
            throw .pcap(error)
        }
    }

    public var name: String { base.name }
    public var macAddress: MACAddress { base.macAddress }
    public var capabilities: DeviceCapabilities { base.capabilities }
    public var isLinkUp: Bool { base.isLinkUp }
    public var counters: DeviceCounters { base.counters }
    public var pool: BufferPool { base.pool }

    public func start(receiving handler: @escaping (inout PacketBatch) -> Void) throws(DeviceError)
    {
        let capture = Unretained(self)
        try base.start { (batch: inout PacketBatch) in
            capture.call { capture in
                for index in batch.indices {
                    _ = batch.withElement(at: index) { frame in capture.record(frame) }
                }
            }
            handler(&batch)
        }
    }

    public func transmit(_ frame: consuming Packet) throws(DeviceError) {
        record(frame)
        try base.transmit(frame)
    }

    private func record(_ frame: borrowing Packet) {
        do {
            try frame.withUnsafeBytes { bytes throws(PcapError) in
                try writer.write(bytes, timestamp: PcapTimestamp.now())
            }
            try writer.flush()
        } catch {
            captureErrors &+= 1
        }
    }

    public func close() {
        base.close()
        try? writer.close()
    }

    public func onFailure(_ handler: @escaping (DeviceError) -> Void) {
        base.onFailure(handler)
    }

    /// The base device's handler holds this one unretained: dropping it closes both.
    deinit { close() }
}
