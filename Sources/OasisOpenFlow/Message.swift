// The messages of OpenFlow 1.0.0 (§5): a header (version, type, length, xid) and a
// body per type. Decoding and encoding live in MessageCodec.swift.

import OasisBits
import OasisWire

/// `ofp_type`: the message types of OpenFlow 1.0.
public enum MessageType: UInt8, Hashable, Sendable, CaseIterable {
    /// In wire order: `OFPT_HELLO` (0) through `OFPT_QUEUE_GET_CONFIG_REPLY` (21).
    case hello = 0, error, echoRequest, echoReply, vendor
    case featuresRequest, featuresReply, getConfigRequest, getConfigReply, setConfig
    case packetIn, flowRemoved, portStatus
    case packetOut, flowMod, portMod
    case statsRequest, statsReply
    case barrierRequest, barrierReply
    case queueGetConfigRequest, queueGetConfigReply
}

/// One OpenFlow 1.0 message: its transaction id and its body.
///
/// ```swift
/// let message = try Message.decode(bits)            // bits: one whole message
/// var out = try pool.allocate()
/// try Message(xid: 7, body: .barrierRequest).encode(into: &out)
/// ```
public struct Message: Equatable {
    /// The transaction id; replies carry the xid of their request.
    public var xid: UInt32
    /// What the message says.
    public var body: MessageBody

    /// A message.
    public init(xid: UInt32, body: MessageBody) {
        self.xid = xid
        self.body = body
    }

    /// The header's type.
    public var type: MessageType { body.type }
}

/// The body of each OpenFlow 1.0 message type.
public enum MessageBody: Equatable {
    /// `OFPT_HELLO`; the body is ignored by OpenFlow 1.0 but kept.
    case hello(Payload = Payload())
    /// `OFPT_ERROR`.
    case error(ErrorMessage)
    /// `OFPT_ECHO_REQUEST` with arbitrary data.
    case echoRequest(Payload = Payload())
    /// `OFPT_ECHO_REPLY`, echoing the request's data.
    case echoReply(Payload = Payload())
    /// `OFPT_VENDOR`: a vendor id and the vendor's bytes.
    case vendor(UInt32, body: Payload)
    /// `OFPT_FEATURES_REQUEST`.
    case featuresRequest
    /// `OFPT_FEATURES_REPLY`.
    case featuresReply(SwitchFeatures)
    /// `OFPT_GET_CONFIG_REQUEST`.
    case getConfigRequest
    /// `OFPT_GET_CONFIG_REPLY`.
    case getConfigReply(SwitchConfig)
    /// `OFPT_SET_CONFIG`.
    case setConfig(SwitchConfig)
    /// `OFPT_PACKET_IN`.
    case packetIn(PacketIn)
    /// `OFPT_FLOW_REMOVED`.
    case flowRemoved(FlowRemoved)
    /// `OFPT_PORT_STATUS`.
    case portStatus(PortStatus)
    /// `OFPT_PACKET_OUT`.
    case packetOut(PacketOut)
    /// `OFPT_FLOW_MOD`.
    case flowMod(FlowMod)
    /// `OFPT_PORT_MOD`.
    case portMod(PortMod)
    /// `OFPT_STATS_REQUEST`; `flags` is reserved (zero) in 1.0 but kept.
    case statsRequest(StatsRequest, flags: UInt16 = 0)
    /// `OFPT_STATS_REPLY`; `.more` says that more replies follow.
    case statsReply(StatsReply, flags: StatsReplyFlags = [])
    /// `OFPT_BARRIER_REQUEST`.
    case barrierRequest
    /// `OFPT_BARRIER_REPLY`.
    case barrierReply
    /// `OFPT_QUEUE_GET_CONFIG_REQUEST` for one port.
    case queueGetConfigRequest(port: PortNumber)
    /// `OFPT_QUEUE_GET_CONFIG_REPLY`.
    case queueGetConfigReply(port: PortNumber, queues: [PacketQueue])

    /// The message type of this body.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .error: .error
        case .echoRequest: .echoRequest
        case .echoReply: .echoReply
        case .vendor: .vendor
        case .featuresRequest: .featuresRequest
        case .featuresReply: .featuresReply
        case .getConfigRequest: .getConfigRequest
        case .getConfigReply: .getConfigReply
        case .setConfig: .setConfig
        case .packetIn: .packetIn
        case .flowRemoved: .flowRemoved
        case .portStatus: .portStatus
        case .packetOut: .packetOut
        case .flowMod: .flowMod
        case .portMod: .portMod
        case .statsRequest: .statsRequest
        case .statsReply: .statsReply
        case .barrierRequest: .barrierRequest
        case .barrierReply: .barrierReply
        case .queueGetConfigRequest: .queueGetConfigRequest
        case .queueGetConfigReply: .queueGetConfigReply
        }
    }
}

/// `ofp_error_msg`: what went wrong and (usually) the first 64 bytes of the cause.
public struct ErrorMessage: Equatable {
    /// The error's type and code.
    public var kind: ErrorKind
    /// Type-specific data: for most errors, the start of the offending message.
    public var data: Payload
    /// An error message.
    public init(kind: ErrorKind, data: Payload = Payload()) {
        self.kind = kind
        self.data = data
    }
}

/// `ofp_phy_port` (48 bytes): a port's number, address, name, settings and abilities.
public struct PhysicalPort: Hashable, Sendable {
    /// The port number (`port_no`).
    public var portNumber: PortNumber
    /// The port's Ethernet address (`hw_addr`).
    public var hardwareAddress: MACAddress
    /// Up to 16 bytes of name.
    public var name: OpenFlowText
    /// Administrative settings (`config`).
    public var config: PortConfig
    /// Link and STP state (`state`).
    public var state: PortState
    /// Current features.
    public var current: PortFeatures
    /// Features advertised by the port.
    public var advertised: PortFeatures
    /// Features supported by the port.
    public var supported: PortFeatures
    /// Features advertised by the peer.
    public var peer: PortFeatures

    /// A port description.
    public init(
        portNumber: PortNumber, hardwareAddress: MACAddress, name: OpenFlowText,
        config: PortConfig = [], state: PortState = [], current: PortFeatures = [],
        advertised: PortFeatures = [], supported: PortFeatures = [], peer: PortFeatures = []
    ) {
        self.portNumber = portNumber
        self.hardwareAddress = hardwareAddress
        self.name = name
        self.config = config
        self.state = state
        self.current = current
        self.advertised = advertised
        self.supported = supported
        self.peer = peer
    }
}

/// `ofp_switch_features` (FEATURES_REPLY).
public struct SwitchFeatures: Hashable, Sendable {
    /// The datapath id: 48 bits of MAC address and 16 implementer-defined bits.
    public var datapathID: UInt64
    /// Packets the switch can buffer for PACKET_IN.
    public var bufferCount: UInt32
    /// Number of flow tables.
    public var tableCount: UInt8
    /// What the switch supports (`capabilities`).
    public var capabilities: Capabilities
    /// Supported actions, one bit per `ActionType`.
    public var actions: ActionTypes
    /// The switch's ports.
    public var ports: [PhysicalPort]

    /// A features reply.
    public init(
        datapathID: UInt64, bufferCount: UInt32, tableCount: UInt8,
        capabilities: Capabilities, actions: ActionTypes, ports: [PhysicalPort]
    ) {
        self.datapathID = datapathID
        self.bufferCount = bufferCount
        self.tableCount = tableCount
        self.capabilities = capabilities
        self.actions = actions
        self.ports = ports
    }
}

/// `ofp_switch_config` (GET_CONFIG_REPLY, SET_CONFIG).
public struct SwitchConfig: Hashable, Sendable {
    /// Fragment handling.
    public var flags: ConfigFlags
    /// How many bytes of a table-miss packet to send to the controller.
    public var missSendLength: UInt16
    /// A configuration; 128 bytes is `OFP_DEFAULT_MISS_SEND_LEN`.
    public init(flags: ConfigFlags = [], missSendLength: UInt16 = 128) {
        self.flags = flags
        self.missSendLength = missSendLength
    }
}

/// `ofp_packet_in_reason`.
public struct PacketInReason: RawRepresentable, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt8
    /// A value from its wire bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// `OFPR_NO_MATCH`: no flow matched.
    public static let noMatch = PacketInReason(rawValue: 0)
    /// `OFPR_ACTION`: an output-to-controller action.
    public static let action = PacketInReason(rawValue: 1)
}

/// `ofp_packet_in`: a packet sent to the controller. `data` is a view of the message's
/// own buffer (no copy).
public struct PacketIn: Equatable {
    /// Where the switch buffered the packet, or ``noBuffer``.
    public var bufferID: UInt32
    /// The full length of the frame (`data` may hold less).
    public var totalLength: UInt16
    /// The port the packet arrived on.
    public var inPort: PortNumber
    /// Why the message was sent (`reason`).
    public var reason: PacketInReason
    /// The frame (or its first `miss_send_len` bytes).
    public var data: Payload

    /// A packet-in.
    public init(
        bufferID: UInt32 = noBuffer, totalLength: UInt16, inPort: PortNumber,
        reason: PacketInReason, data: Payload
    ) {
        self.bufferID = bufferID
        self.totalLength = totalLength
        self.inPort = inPort
        self.reason = reason
        self.data = data
    }
}

/// `ofp_flow_removed_reason`.
public struct FlowRemovedReason: RawRepresentable, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt8
    /// A value from its wire bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// `OFPRR_IDLE_TIMEOUT`.
    public static let idleTimeout = FlowRemovedReason(rawValue: 0)
    /// `OFPRR_HARD_TIMEOUT`.
    public static let hardTimeout = FlowRemovedReason(rawValue: 1)
    /// `OFPRR_DELETE`: evicted by a DELETE flow mod.
    public static let delete = FlowRemovedReason(rawValue: 2)
}

/// `ofp_flow_removed` (88 bytes).
public struct FlowRemoved: Hashable, Sendable {
    /// The fields matched (`ofp_match`).
    public var match: Match
    /// The controller's opaque flow identifier.
    public var cookie: UInt64
    /// The flow's priority; higher wins among overlapping wildcard flows.
    public var priority: UInt16
    /// Why the message was sent (`reason`).
    public var reason: FlowRemovedReason
    /// How long the flow has been installed, whole seconds.
    public var durationSeconds: UInt32
    /// How long the flow has been installed beyond `durationSeconds`, in nanoseconds.
    public var durationNanoseconds: UInt32
    /// Seconds without traffic before the flow expires (0: never).
    public var idleTimeout: UInt16
    /// Packets counted.
    public var packetCount: UInt64
    /// Bytes counted.
    public var byteCount: UInt64

    /// A flow-removed notice.
    public init(
        match: Match, cookie: UInt64, priority: UInt16, reason: FlowRemovedReason,
        durationSeconds: UInt32, durationNanoseconds: UInt32, idleTimeout: UInt16,
        packetCount: UInt64, byteCount: UInt64
    ) {
        self.match = match
        self.cookie = cookie
        self.priority = priority
        self.reason = reason
        self.durationSeconds = durationSeconds
        self.durationNanoseconds = durationNanoseconds
        self.idleTimeout = idleTimeout
        self.packetCount = packetCount
        self.byteCount = byteCount
    }
}

/// `ofp_port_reason`.
public struct PortStatusReason: RawRepresentable, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt8
    /// A value from its wire bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// `OFPPR_ADD`: a port was added.
    public static let add = PortStatusReason(rawValue: 0)
    /// `OFPPR_DELETE`: a port was removed.
    public static let delete = PortStatusReason(rawValue: 1)
    /// `OFPPR_MODIFY`: some attribute of the port changed.
    public static let modify = PortStatusReason(rawValue: 2)
}

/// `ofp_port_status` (64 bytes).
public struct PortStatus: Hashable, Sendable {
    /// Why the message was sent (`reason`).
    public var reason: PortStatusReason
    /// The port described.
    public var port: PhysicalPort
    /// A port-status notice.
    public init(reason: PortStatusReason, port: PhysicalPort) {
        self.reason = reason
        self.port = port
    }
}

/// `ofp_packet_out`: send a packet (buffered on the switch, or given in `data`).
public struct PacketOut: Equatable {
    /// A buffer on the switch, or ``noBuffer`` when `data` holds the frame.
    public var bufferID: UInt32
    /// The port the packet is treated as arriving on (`.none` if none).
    public var inPort: PortNumber
    /// The actions, in order.
    public var actions: [Action]
    /// The frame, when `bufferID` is ``noBuffer`` (a view, no copy).
    public var data: Payload

    /// A packet-out.
    public init(
        bufferID: UInt32 = noBuffer, inPort: PortNumber = .none, actions: [Action],
        data: Payload = Payload()
    ) {
        self.bufferID = bufferID
        self.inPort = inPort
        self.actions = actions
        self.data = data
    }
}

/// `ofp_flow_mod_command`.
public enum FlowModCommand: UInt16, Hashable, Sendable, CaseIterable {
    /// `OFPFC_ADD`, `OFPFC_MODIFY`, `OFPFC_MODIFY_STRICT`, `OFPFC_DELETE`, `OFPFC_DELETE_STRICT`.
    case add = 0, modify, modifyStrict, delete, deleteStrict
}

/// `ofp_flow_mod` (72 bytes and actions).
public struct FlowMod: Equatable {
    /// The fields matched (`ofp_match`).
    public var match: Match
    /// Opaque controller-issued identifier.
    public var cookie: UInt64
    /// What to do (`command`).
    public var command: FlowModCommand
    /// Seconds idle before discarding (0: never).
    public var idleTimeout: UInt16
    /// Seconds before discarding (0: never).
    public var hardTimeout: UInt16
    /// The flow's priority; higher wins among overlapping wildcard flows.
    public var priority: UInt16
    /// A buffered packet to apply the flow to, or ``noBuffer``.
    public var bufferID: UInt32
    /// For DELETE*: only flows that output to this port (`.none`: any).
    public var outPort: PortNumber
    /// Flags (`flags`).
    public var flags: FlowModFlags
    /// The actions, in order.
    public var actions: [Action]

    /// A flow mod; the defaults are those of `ovs-ofctl add-flow`.
    public init(
        match: Match, cookie: UInt64 = 0, command: FlowModCommand, idleTimeout: UInt16 = 0,
        hardTimeout: UInt16 = 0, priority: UInt16 = 0x8000, bufferID: UInt32 = noBuffer,
        outPort: PortNumber = .none, flags: FlowModFlags = [], actions: [Action] = []
    ) {
        self.match = match
        self.cookie = cookie
        self.command = command
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.priority = priority
        self.bufferID = bufferID
        self.outPort = outPort
        self.flags = flags
        self.actions = actions
    }
}

/// `ofp_port_mod` (32 bytes).
public struct PortMod: Hashable, Sendable {
    /// The port number (`port_no`).
    public var portNumber: PortNumber
    /// Must equal the port's address (a sanity check).
    public var hardwareAddress: MACAddress
    /// Administrative settings (`config`).
    public var config: PortConfig
    /// Which `config` bits to change.
    public var mask: PortConfig
    /// Features to advertise (none: leave unchanged).
    public var advertise: PortFeatures

    /// A port mod.
    public init(
        portNumber: PortNumber, hardwareAddress: MACAddress, config: PortConfig,
        mask: PortConfig, advertise: PortFeatures = []
    ) {
        self.portNumber = portNumber
        self.hardwareAddress = hardwareAddress
        self.config = config
        self.mask = mask
        self.advertise = advertise
    }
}

/// `ofp_packet_queue`: one queue of a port and its properties.
public struct PacketQueue: Equatable {
    /// The queue id.
    public var queueID: UInt32
    /// The queue's properties.
    public var properties: [QueueProperty]
    /// A queue description.
    public init(queueID: UInt32, properties: [QueueProperty]) {
        self.queueID = queueID
        self.properties = properties
    }
}

/// `ofp_queue_properties`.
public enum QueueProperty: Equatable {
    /// `OFPQT_MIN_RATE`: guaranteed rate in 1/10 of a percent (> 1000: disabled).
    case minRate(UInt16)
    /// Any other property (including `OFPQT_NONE`), with its bytes after the
    /// 8-byte property header.
    case other(property: UInt16, body: Payload)
}
