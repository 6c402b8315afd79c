// STATS_REQUEST / STATS_REPLY bodies (OpenFlow 1.0.0 §5.3.5).

import OasisBits

/// `ofp_stats_types`.
public enum StatsType: UInt16, Hashable, Sendable, CaseIterable {
    /// `OFPST_DESC` (0) through `OFPST_QUEUE` (5), and `OFPST_VENDOR`.
    case description = 0, flow, aggregate, table, port, queue
    case vendor = 0xffff
}

/// `ofp_flow_stats_request` / `ofp_aggregate_stats_request` (44 bytes).
public struct FlowStatsRequest: Hashable, Sendable {
    /// Fields to match.
    public var match: Match
    /// A table, or `0xff` for all tables.
    public var tableID: UInt8
    /// Only flows that output to this port (`.none`: any).
    public var outPort: PortNumber
    /// A flow or aggregate stats request.
    public init(match: Match = .any, tableID: UInt8 = 0xff, outPort: PortNumber = .none) {
        self.match = match
        self.tableID = tableID
        self.outPort = outPort
    }
}

/// The body of a STATS_REQUEST.
public enum StatsRequest: Equatable {
    /// `OFPST_DESC`.
    case description
    /// `OFPST_FLOW`.
    case flow(FlowStatsRequest)
    /// `OFPST_AGGREGATE`.
    case aggregate(FlowStatsRequest)
    /// `OFPST_TABLE`.
    case table
    /// `OFPST_PORT` for one port, or `.none` for all.
    case port(PortNumber)
    /// `OFPST_QUEUE` for a port (`.all`) and a queue (`0xffffffff`: all).
    case queue(port: PortNumber, queueID: UInt32)
    /// `OFPST_VENDOR`.
    case vendor(UInt32, body: Payload)

    /// The stats type.
    public var type: StatsType {
        switch self {
        case .description: .description
        case .flow: .flow
        case .aggregate: .aggregate
        case .table: .table
        case .port: .port
        case .queue: .queue
        case .vendor: .vendor
        }
    }
}

/// `ofp_desc_stats` (1056 bytes).
public struct DescriptionStats: Hashable, Sendable {
    /// Manufacturer (256 bytes).
    public var manufacturer: OpenFlowText
    /// Hardware (256 bytes).
    public var hardware: OpenFlowText
    /// Software (256 bytes).
    public var software: OpenFlowText
    /// Serial number (32 bytes).
    public var serialNumber: OpenFlowText
    /// Datapath (256 bytes).
    public var datapath: OpenFlowText
    /// A description.
    public init(
        manufacturer: OpenFlowText, hardware: OpenFlowText, software: OpenFlowText,
        serialNumber: OpenFlowText, datapath: OpenFlowText
    ) {
        self.manufacturer = manufacturer
        self.hardware = hardware
        self.software = software
        self.serialNumber = serialNumber
        self.datapath = datapath
    }
}

/// `ofp_flow_stats` (88 bytes and actions).
public struct FlowStats: Equatable {
    /// The table (0xff: all tables, in requests).
    public var tableID: UInt8
    /// The fields matched (`ofp_match`).
    public var match: Match
    /// How long the flow has been installed, whole seconds.
    public var durationSeconds: UInt32
    /// How long the flow has been installed beyond `durationSeconds`, in nanoseconds.
    public var durationNanoseconds: UInt32
    /// The flow's priority; higher wins among overlapping wildcard flows.
    public var priority: UInt16
    /// Seconds without traffic before the flow expires (0: never).
    public var idleTimeout: UInt16
    /// Seconds before the flow expires regardless of traffic (0: never).
    public var hardTimeout: UInt16
    /// The controller's opaque flow identifier.
    public var cookie: UInt64
    /// Packets counted.
    public var packetCount: UInt64
    /// Bytes counted.
    public var byteCount: UInt64
    /// The actions, in order.
    public var actions: [Action]

    /// One flow's statistics.
    public init(
        tableID: UInt8, match: Match, durationSeconds: UInt32, durationNanoseconds: UInt32,
        priority: UInt16, idleTimeout: UInt16, hardTimeout: UInt16, cookie: UInt64,
        packetCount: UInt64, byteCount: UInt64, actions: [Action]
    ) {
        self.tableID = tableID
        self.match = match
        self.durationSeconds = durationSeconds
        self.durationNanoseconds = durationNanoseconds
        self.priority = priority
        self.idleTimeout = idleTimeout
        self.hardTimeout = hardTimeout
        self.cookie = cookie
        self.packetCount = packetCount
        self.byteCount = byteCount
        self.actions = actions
    }
}

/// `ofp_aggregate_stats_reply` (24 bytes).
public struct AggregateStats: Hashable, Sendable {
    /// Packets counted.
    public var packetCount: UInt64
    /// Bytes counted.
    public var byteCount: UInt64
    /// Flows counted.
    public var flowCount: UInt32
    /// Aggregate counters.
    public init(packetCount: UInt64, byteCount: UInt64, flowCount: UInt32) {
        self.packetCount = packetCount
        self.byteCount = byteCount
        self.flowCount = flowCount
    }
}

/// `ofp_table_stats` (64 bytes).
public struct TableStats: Hashable, Sendable {
    /// The table (0xff: all tables, in requests).
    public var tableID: UInt8
    /// Up to 32 bytes of name.
    public var name: OpenFlowText
    /// The wildcards the table supports.
    public var wildcards: Wildcards
    /// The most flows the table holds.
    public var maxEntries: UInt32
    /// Flows in the table now.
    public var activeCount: UInt32
    /// Packets looked up in the table.
    public var lookupCount: UInt64
    /// Packets that hit the table.
    public var matchedCount: UInt64
    /// One table's statistics.
    public init(
        tableID: UInt8, name: OpenFlowText, wildcards: Wildcards, maxEntries: UInt32,
        activeCount: UInt32, lookupCount: UInt64, matchedCount: UInt64
    ) {
        self.tableID = tableID
        self.name = name
        self.wildcards = wildcards
        self.maxEntries = maxEntries
        self.activeCount = activeCount
        self.lookupCount = lookupCount
        self.matchedCount = matchedCount
    }
}

/// `ofp_port_stats` (104 bytes). `UInt64.max` means "not available".
public struct PortStats: Hashable, Sendable {
    /// The port number (`port_no`).
    public var portNumber: PortNumber
    /// Packets received.
    public var rxPackets: UInt64 = 0
    /// Packets sent.
    public var txPackets: UInt64 = 0
    /// Bytes received.
    public var rxBytes: UInt64 = 0
    /// Bytes sent.
    public var txBytes: UInt64 = 0
    /// Received packets dropped.
    public var rxDropped: UInt64 = 0
    /// Packets dropped on sending.
    public var txDropped: UInt64 = 0
    /// Receive errors (all kinds).
    public var rxErrors: UInt64 = 0
    /// Transmit errors.
    public var txErrors: UInt64 = 0
    /// Frame alignment errors.
    public var rxFrameErrors: UInt64 = 0
    /// Receive overruns.
    public var rxOverrunErrors: UInt64 = 0
    /// CRC errors.
    public var rxCRCErrors: UInt64 = 0
    /// Collisions.
    public var collisions: UInt64 = 0
    /// Port counters, all zero.
    public init(portNumber: PortNumber) { self.portNumber = portNumber }

    /// The twelve counters in wire order.
    var counters: [UInt64] {
        get {
            [
                rxPackets, txPackets, rxBytes, txBytes, rxDropped, txDropped, rxErrors, txErrors,
                rxFrameErrors, rxOverrunErrors, rxCRCErrors, collisions,
            ]
        }
        set {
            rxPackets = newValue[0]
            txPackets = newValue[1]
            rxBytes = newValue[2]
            txBytes = newValue[3]
            rxDropped = newValue[4]
            txDropped = newValue[5]
            rxErrors = newValue[6]
            txErrors = newValue[7]
            rxFrameErrors = newValue[8]
            rxOverrunErrors = newValue[9]
            rxCRCErrors = newValue[10]
            collisions = newValue[11]
        }
    }
}

/// `ofp_queue_stats` (32 bytes).
public struct QueueStats: Hashable, Sendable {
    /// The port number (`port_no`).
    public var portNumber: PortNumber
    /// The queue id.
    public var queueID: UInt32
    /// Bytes sent.
    public var txBytes: UInt64
    /// Packets sent.
    public var txPackets: UInt64
    /// Transmit errors.
    public var txErrors: UInt64
    /// One queue's counters.
    public init(
        portNumber: PortNumber, queueID: UInt32, txBytes: UInt64, txPackets: UInt64,
        txErrors: UInt64
    ) {
        self.portNumber = portNumber
        self.queueID = queueID
        self.txBytes = txBytes
        self.txPackets = txPackets
        self.txErrors = txErrors
    }
}

/// The body of a STATS_REPLY.
public enum StatsReply: Equatable {
    /// `OFPST_DESC`: the switch's description.
    case description(DescriptionStats)
    /// `OFPST_FLOW`: one entry per flow (split over replies with `.more`).
    case flow([FlowStats])
    /// `OFPST_AGGREGATE`.
    case aggregate(AggregateStats)
    /// `OFPST_TABLE`: one entry per table.
    case table([TableStats])
    /// `OFPST_PORT`: one entry per port.
    case port([PortStats])
    /// `OFPST_QUEUE`: one entry per queue.
    case queue([QueueStats])
    /// `OFPST_VENDOR`: a vendor id and its bytes.
    case vendor(UInt32, body: Payload)

    /// The stats type.
    public var type: StatsType {
        switch self {
        case .description: .description
        case .flow: .flow
        case .aggregate: .aggregate
        case .table: .table
        case .port: .port
        case .queue: .queue
        case .vendor: .vendor
        }
    }
}
