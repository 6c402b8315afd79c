// NOX's events: what the controller tells applications about its switches.

import OasisBits
import OasisOpenFlow

/// A PACKET_IN with the flow it belongs to, extracted through the wire module.
public struct PacketInEvent {
    /// The message as the switch sent it (`packetIn.data` is a view of the message).
    public var packetIn: PacketIn
    /// The 12-tuple of the frame (`Match(frame:inPort:)`), exact in every field.
    public var flow: Match
    /// The message's xid.
    public var xid: UInt32
}

/// One event of a switch, as handed to ``OpenFlowController/subscribe(_:)`` and
/// ``OpenFlowController/events()``.
public enum ControllerEvent {
    /// A switch finished its handshake; ``Datapath/features`` is set.
    case datapathJoin(Datapath)
    /// A switch's channel closed.
    case datapathLeave(Datapath, DisconnectReason)
    /// A packet the switch sent up.
    case packetIn(Datapath, PacketInEvent)
    /// A flow expired or was deleted (flows added with `OFPFF_SEND_FLOW_REM`).
    case flowRemoved(Datapath, FlowRemoved)
    /// A port was added, removed or changed.
    case portStatus(Datapath, PortStatus)
    /// A whole stats reply (multipart replies reassembled), with its request's xid.
    case statsReply(Datapath, xid: UInt32, StatsReply)
    /// An OFPT_ERROR from the switch (also the failure of the request it answers).
    case error(Datapath, xid: UInt32, ErrorMessage)
    /// A BARRIER_REPLY.
    case barrierReply(Datapath, xid: UInt32)

    /// The switch the event is about.
    public var datapath: Datapath {
        switch self {
        case .datapathJoin(let datapath), .datapathLeave(let datapath, _),
            .packetIn(let datapath, _), .flowRemoved(let datapath, _),
            .portStatus(let datapath, _), .statsReply(let datapath, _, _),
            .error(let datapath, _, _), .barrierReply(let datapath, _):
            datapath
        }
    }
}

/// An application: a plain Swift type that handles the events it cares about (every
/// method has an empty default). Several run at once, each sees every event, in the
/// order they were added.
///
/// ```swift
/// final class Logger: OpenFlowApplication {
///     func datapathJoined(_ datapath: Datapath) { print("join \(datapath)") }
/// }
/// controller.add(Logger())
/// ```
public protocol OpenFlowApplication: AnyObject {
    /// A switch finished its handshake (features known).
    func datapathJoined(_ datapath: Datapath)
    /// A switch's channel closed.
    func datapathLeft(_ datapath: Datapath, reason: DisconnectReason)
    /// A PACKET_IN.
    func packetIn(_ event: PacketInEvent, from datapath: Datapath)
    /// A FLOW_REMOVED.
    func flowRemoved(_ removed: FlowRemoved, from datapath: Datapath)
    /// A PORT_STATUS (``Datapath/ports`` is already updated).
    func portStatus(_ status: PortStatus, from datapath: Datapath)
    /// A whole stats reply.
    func statsReply(_ reply: StatsReply, xid: UInt32, from datapath: Datapath)
    /// An OFPT_ERROR.
    func error(_ error: ErrorMessage, xid: UInt32, from datapath: Datapath)
    /// A BARRIER_REPLY.
    func barrierReply(xid: UInt32, from datapath: Datapath)
}

extension OpenFlowApplication {
    public func datapathJoined(_ datapath: Datapath) {}
    public func datapathLeft(_ datapath: Datapath, reason: DisconnectReason) {}
    public func packetIn(_ event: PacketInEvent, from datapath: Datapath) {}
    public func flowRemoved(_ removed: FlowRemoved, from datapath: Datapath) {}
    public func portStatus(_ status: PortStatus, from datapath: Datapath) {}
    public func statsReply(_ reply: StatsReply, xid: UInt32, from datapath: Datapath) {}
    public func error(_ error: ErrorMessage, xid: UInt32, from datapath: Datapath) {}
    public func barrierReply(xid: UInt32, from datapath: Datapath) {}
}

extension ControllerEvent {
    /// Calls the application's method for this event.
    func deliver(to application: any OpenFlowApplication) {
        switch self {
        case .datapathJoin(let datapath): application.datapathJoined(datapath)
        case .datapathLeave(let datapath, let reason):
            application.datapathLeft(datapath, reason: reason)
        case .packetIn(let datapath, let event): application.packetIn(event, from: datapath)
        case .flowRemoved(let datapath, let removed):
            application.flowRemoved(removed, from: datapath)
        case .portStatus(let datapath, let status):
            application.portStatus(status, from: datapath)
        case .statsReply(let datapath, let xid, let reply):
            application.statsReply(reply, xid: xid, from: datapath)
        case .error(let datapath, let xid, let error):
            application.error(error, xid: xid, from: datapath)
        case .barrierReply(let datapath, let xid):
            application.barrierReply(xid: xid, from: datapath)
        }
    }
}
