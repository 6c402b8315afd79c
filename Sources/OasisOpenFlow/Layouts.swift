// Wire layouts of OpenFlow 1.0.0 structures, declared once (offsets as in the
// specification's openflow.h; message layouts count from the start of the message, so
// they include the 8-byte header).

import OasisBits

/// `ofp_header` (8 bytes). The version is checked by the decoder, not as a layout
/// constant, so that a wrong version becomes the right OFPT_ERROR.
enum OFHeader: HeaderLayout {
    static let version = Field<UInt8>.at(byte: 0)
    static let type = Field<UInt8>.at(byte: 1)
    static let length = Field<UInt16>.at(byte: 2)
    static let xid = Field<UInt32>.at(byte: 4)
    static let size = 8
}

/// `ofp_error_msg` (12 bytes and data).
enum ErrorLayout: HeaderLayout {
    static let type = Field<UInt16>.at(byte: 8)
    static let code = Field<UInt16>.at(byte: 10)
    static let size = 12
}

/// `ofp_vendor_header` (12 bytes and data).
enum VendorLayout: HeaderLayout {
    static let vendor = Field<UInt32>.at(byte: 8)
    static let size = 12
}

/// `ofp_switch_features` (32 bytes and ports).
enum FeaturesLayout: HeaderLayout {
    static let datapathID = Field<UInt64>.at(byte: 8)
    static let bufferCount = Field<UInt32>.at(byte: 16)
    static let tableCount = Field<UInt8>.at(byte: 20)
    // bytes 21-23: pad
    static let capabilities = Field<UInt32>.at(byte: 24)
    static let actions = Field<UInt32>.at(byte: 28)
    static let size = 32
}

/// `ofp_phy_port` (48 bytes).
enum PhysicalPortLayout: HeaderLayout {
    static let portNumber = Field<UInt16>.at(byte: 0)
    static let hardwareAddress = Field<UInt64>.at(byte: 2, bits: 48)
    static let name = (offset: 8, width: 16)
    static let config = Field<UInt32>.at(byte: 24)
    static let state = Field<UInt32>.at(byte: 28)
    static let current = Field<UInt32>.at(byte: 32)
    static let advertised = Field<UInt32>.at(byte: 36)
    static let supported = Field<UInt32>.at(byte: 40)
    static let peer = Field<UInt32>.at(byte: 44)
    static let size = 48
}

/// `ofp_switch_config` (12 bytes).
enum ConfigLayout: HeaderLayout {
    static let flags = Field<UInt16>.at(byte: 8)
    static let missSendLength = Field<UInt16>.at(byte: 10)
    static let size = 12
}

/// `ofp_packet_in` (18 bytes and data; `sizeof` is 20 because of tail padding, but
/// the data starts at byte 18).
enum PacketInLayout: HeaderLayout {
    static let bufferID = Field<UInt32>.at(byte: 8)
    static let totalLength = Field<UInt16>.at(byte: 12)
    static let inPort = Field<UInt16>.at(byte: 14)
    static let reason = Field<UInt8>.at(byte: 16)
    static let size = 18
}

/// `ofp_flow_removed` (88 bytes).
enum FlowRemovedLayout: HeaderLayout {
    static let match = 8
    static let cookie = Field<UInt64>.at(byte: 48)
    static let priority = Field<UInt16>.at(byte: 56)
    static let reason = Field<UInt8>.at(byte: 58)
    static let durationSeconds = Field<UInt32>.at(byte: 60)
    static let durationNanoseconds = Field<UInt32>.at(byte: 64)
    static let idleTimeout = Field<UInt16>.at(byte: 68)
    static let packetCount = Field<UInt64>.at(byte: 72)
    static let byteCount = Field<UInt64>.at(byte: 80)
    static let size = 88
}

/// `ofp_port_status` (64 bytes).
enum PortStatusLayout: HeaderLayout {
    static let reason = Field<UInt8>.at(byte: 8)
    static let port = 16
    static let size = 64
}

/// `ofp_packet_out` (16 bytes, actions, data).
enum PacketOutLayout: HeaderLayout {
    static let bufferID = Field<UInt32>.at(byte: 8)
    static let inPort = Field<UInt16>.at(byte: 12)
    static let actionsLength = Field<UInt16>.at(byte: 14)
    static let size = 16
}

/// `ofp_flow_mod` (72 bytes and actions).
enum FlowModLayout: HeaderLayout {
    static let match = 8
    static let cookie = Field<UInt64>.at(byte: 48)
    static let command = Field<UInt16>.at(byte: 56)
    static let idleTimeout = Field<UInt16>.at(byte: 58)
    static let hardTimeout = Field<UInt16>.at(byte: 60)
    static let priority = Field<UInt16>.at(byte: 62)
    static let bufferID = Field<UInt32>.at(byte: 64)
    static let outPort = Field<UInt16>.at(byte: 68)
    static let flags = Field<UInt16>.at(byte: 70)
    static let size = 72
}

/// `ofp_port_mod` (32 bytes).
enum PortModLayout: HeaderLayout {
    static let portNumber = Field<UInt16>.at(byte: 8)
    static let hardwareAddress = Field<UInt64>.at(byte: 10, bits: 48)
    static let config = Field<UInt32>.at(byte: 16)
    static let mask = Field<UInt32>.at(byte: 20)
    static let advertise = Field<UInt32>.at(byte: 24)
    static let size = 32
}

/// `ofp_stats_request` / `ofp_stats_reply` (12 bytes and body).
enum StatsLayout: HeaderLayout {
    static let type = Field<UInt16>.at(byte: 8)
    static let flags = Field<UInt16>.at(byte: 10)
    static let size = 12
}

/// `ofp_queue_get_config_request` (12 bytes).
enum QueueGetConfigRequestLayout: HeaderLayout {
    static let port = Field<UInt16>.at(byte: 8)
    static let size = 12
}

/// `ofp_queue_get_config_reply` (16 bytes and queues).
enum QueueGetConfigReplyLayout: HeaderLayout {
    static let port = Field<UInt16>.at(byte: 8)
    static let size = 16
}

/// `ofp_packet_queue` (8 bytes and properties).
enum PacketQueueLayout: HeaderLayout {
    static let queueID = Field<UInt32>.at(byte: 0)
    static let length = Field<UInt16>.at(byte: 4)
    static let size = 8
}

/// `ofp_queue_prop_header` (8 bytes); `ofp_queue_prop_min_rate` adds `rate` (16).
enum QueuePropertyLayout: HeaderLayout {
    static let property = Field<UInt16>.at(byte: 0)
    static let length = Field<UInt16>.at(byte: 2)
    static let size = 8
}

enum MinRateLayout: HeaderLayout {
    static let rate = Field<UInt16>.at(byte: 8)
    static let size = 16
}

/// `ofp_flow_stats_request` and `ofp_aggregate_stats_request` (44 bytes).
enum FlowStatsRequestLayout: HeaderLayout {
    static let match = 0
    static let tableID = Field<UInt8>.at(byte: 40)
    static let outPort = Field<UInt16>.at(byte: 42)
    static let size = 44
}

/// `ofp_port_stats_request` (8 bytes).
enum PortStatsRequestLayout: HeaderLayout {
    static let port = Field<UInt16>.at(byte: 0)
    static let size = 8
}

/// `ofp_queue_stats_request` (8 bytes).
enum QueueStatsRequestLayout: HeaderLayout {
    static let port = Field<UInt16>.at(byte: 0)
    static let queueID = Field<UInt32>.at(byte: 4)
    static let size = 8
}

/// `ofp_desc_stats` (1056 bytes): five NUL-padded strings.
enum DescriptionLayout: HeaderLayout {
    static let texts = [(0, 256), (256, 256), (512, 256), (768, 32), (800, 256)]
    static let size = 1056
}

/// `ofp_flow_stats` (88 bytes and actions).
enum FlowStatsLayout: HeaderLayout {
    static let length = Field<UInt16>.at(byte: 0)
    static let tableID = Field<UInt8>.at(byte: 2)
    static let match = 4
    static let durationSeconds = Field<UInt32>.at(byte: 44)
    static let durationNanoseconds = Field<UInt32>.at(byte: 48)
    static let priority = Field<UInt16>.at(byte: 52)
    static let idleTimeout = Field<UInt16>.at(byte: 54)
    static let hardTimeout = Field<UInt16>.at(byte: 56)
    // bytes 58-63: pad
    static let cookie = Field<UInt64>.at(byte: 64)
    static let packetCount = Field<UInt64>.at(byte: 72)
    static let byteCount = Field<UInt64>.at(byte: 80)
    static let size = 88
}

/// `ofp_aggregate_stats_reply` (24 bytes).
enum AggregateLayout: HeaderLayout {
    static let packetCount = Field<UInt64>.at(byte: 0)
    static let byteCount = Field<UInt64>.at(byte: 8)
    static let flowCount = Field<UInt32>.at(byte: 16)
    static let size = 24
}

/// `ofp_table_stats` (64 bytes).
enum TableStatsLayout: HeaderLayout {
    static let tableID = Field<UInt8>.at(byte: 0)
    static let name = (offset: 4, width: 32)
    static let wildcards = Field<UInt32>.at(byte: 36)
    static let maxEntries = Field<UInt32>.at(byte: 40)
    static let activeCount = Field<UInt32>.at(byte: 44)
    static let lookupCount = Field<UInt64>.at(byte: 48)
    static let matchedCount = Field<UInt64>.at(byte: 56)
    static let size = 64
}

/// `ofp_port_stats` (104 bytes): a port and twelve 64-bit counters from byte 8.
enum PortStatsLayout: HeaderLayout {
    static let port = Field<UInt16>.at(byte: 0)
    static let counters = (0..<12).map { Field<UInt64>.at(byte: 8 + 8 * $0) }
    static let size = 104
}

/// `ofp_queue_stats` (32 bytes).
enum QueueStatsLayout: HeaderLayout {
    static let port = Field<UInt16>.at(byte: 0)
    static let queueID = Field<UInt32>.at(byte: 4)
    static let txBytes = Field<UInt64>.at(byte: 8)
    static let txPackets = Field<UInt64>.at(byte: 16)
    static let txErrors = Field<UInt64>.at(byte: 24)
    static let size = 32
}
