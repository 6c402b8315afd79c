// The hub: every packet that reaches the controller goes out of every other port.

import OasisOpenFlow

/// NOX's hub: answers each PACKET_IN with a PACKET_OUT that floods the packet (the
/// switch's buffer when it kept one, else the frame itself). Installs no flows, so
/// every packet goes through the controller.
///
/// ```swift
/// controller.add(Hub())
/// ```
public final class Hub: OpenFlowApplication {
    /// Packets flooded.
    public private(set) var flooded: UInt64 = 0
    /// PACKET_OUTs that could not be sent (the switch's queue was full).
    public private(set) var failures: UInt64 = 0

    /// A hub.
    public init() {}

    public func packetIn(_ event: PacketInEvent, from datapath: Datapath) {
        do {
            try datapath.packetOut(flooding: event.packetIn)
            flooded &+= 1
        } catch {
            failures &+= 1
        }
    }
}

extension Datapath {
    /// Sends a PACKET_IN's packet out with `actions`: through the switch's buffer when
    /// it kept the packet, else with the frame the PACKET_IN carried.
    @discardableResult
    public func packetOut(_ packetIn: PacketIn, actions: [Action]) throws(ControllerError) -> UInt32
    {
        let buffered = packetIn.bufferID != noBuffer
        return try packetOut(
            PacketOut(
                bufferID: packetIn.bufferID, inPort: packetIn.inPort, actions: actions,
                data: buffered ? Payload() : packetIn.data))
    }

    /// Floods a PACKET_IN's packet (out of every port but the one it came in on).
    @discardableResult
    public func packetOut(flooding packetIn: PacketIn) throws(ControllerError) -> UInt32 {
        try packetOut(packetIn, actions: [.output(port: .flood)])
    }
}
