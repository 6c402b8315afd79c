// Small value types shared by every OpenFlow 1.0 structure: ports, addresses,
// payload views, fixed-width text and the bit sets of the specification.

import OasisBits

/// The OpenFlow protocol version this module speaks: 1.0.0, wire version `0x01`.
public let openFlowVersion: UInt8 = 0x01

/// `OFP_NO_BUFFER`: a PACKET_IN or PACKET_OUT that carries its whole frame.
public let noBuffer: UInt32 = 0xffff_ffff

/// A switch port number (`ofp_port`), including the reserved "fake" ports.
public struct PortNumber: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 16-bit port number on the wire.
    public var rawValue: UInt16
    /// A port number.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// A port number.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// `OFPP_MAX`: the highest number of a physical port.
    public static let max = PortNumber(0xff00)
    /// `OFPP_IN_PORT`: send the packet out the port it came in on.
    public static let inPort = PortNumber(0xfff8)
    /// `OFPP_TABLE`: submit the packet to the flow table (PACKET_OUT only).
    public static let table = PortNumber(0xfff9)
    /// `OFPP_NORMAL`: the switch's traditional L2/L3 processing.
    public static let normal = PortNumber(0xfffa)
    /// `OFPP_FLOOD`: every physical port except the input port and those with
    /// flooding disabled.
    public static let flood = PortNumber(0xfffb)
    /// `OFPP_ALL`: every physical port except the input port.
    public static let all = PortNumber(0xfffc)
    /// `OFPP_CONTROLLER`: send to the controller.
    public static let controller = PortNumber(0xfffd)
    /// `OFPP_LOCAL`: the switch's local networking stack.
    public static let local = PortNumber(0xfffe)
    /// `OFPP_NONE`: no port (also "any port" as a FLOW_MOD/stats out_port filter).
    public static let none = PortNumber(0xffff)

    /// The reserved name (`IN_PORT`, `LOCAL`, …) or the decimal number.
    public var description: String {
        switch rawValue {
        case 0xfff8: "IN_PORT"
        case 0xfff9: "TABLE"
        case 0xfffa: "NORMAL"
        case 0xfffb: "FLOOD"
        case 0xfffc: "ALL"
        case 0xfffd: "CONTROLLER"
        case 0xfffe: "LOCAL"
        case 0xffff: "NONE"
        default: String(rawValue)
        }
    }
}

/// Dotted-quad text for an IPv4 address held in a `UInt32`.
public func ipv4Description(_ address: UInt32) -> String {
    "\(address >> 24).\(address >> 16 & 0xff).\(address >> 8 & 0xff).\(address & 0xff)"
}

func hex2(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}

/// Bytes a message carries without interpreting them — a PACKET_IN's frame, an echo's
/// data, a vendor body — as a view of the buffer the message arrived in (no copy).
///
/// Two payloads are equal when their bytes are equal, wherever they live.
public struct Payload: Equatable, CustomStringConvertible {
    /// The bytes, as a view.
    public var bits: Bits

    /// A payload showing `bits` (no copy).
    public init(_ bits: Bits) { self.bits = bits }

    /// A payload holding a copy of `bytes` in a fresh buffer (allocates; for tests and
    /// applications, not the per-packet path).
    public init(_ bytes: [UInt8] = []) { self.bits = Bits(bytes) }

    /// The number of bytes.
    public var count: Int { bits.count }

    /// Whether there are no bytes.
    public var isEmpty: Bool { bits.isEmpty }

    /// A copy of the bytes (allocates).
    public var bytes: [UInt8] { bits.copyBytes() }

    /// Whether the two payloads hold the same bytes.
    public static func == (lhs: Payload, rhs: Payload) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.bits.withUnsafeBytes { left in
            rhs.bits.withUnsafeBytes { right in left.elementsEqual(right) }
        }
    }

    /// Up to 64 bytes in hexadecimal.
    public var description: String {
        bits.withUnsafeBytes { raw in
            raw.prefix(64).map(hex2).joined() + (raw.count > 64 ? "…" : "")
        }
    }
}

/// A fixed-width, NUL-padded text field (`name[16]`, `mfr_desc[256]`): the bytes up to
/// the first NUL, kept exactly so that decoding and encoding are inverse.
public struct OpenFlowText: Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The bytes before the first NUL; encoding writes at most the field's width.
    public var bytes: [UInt8]
    /// Text from bytes (cut at the first NUL).
    public init(bytes: [UInt8]) { self.bytes = Array(bytes.prefix(while: { $0 != 0 })) }
    /// Text from a string's UTF-8.
    public init(_ string: String) { self.init(bytes: Array(string.utf8)) }
    /// Text from a literal.
    public init(stringLiteral value: String) { self.init(value) }
    /// The text, with invalid UTF-8 repaired.
    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

/// `ofp_capabilities`: what a switch supports (FEATURES_REPLY).
public struct Capabilities: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt32
    /// A value from its wire bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `OFPC_FLOW_STATS`: flow statistics.
    public static let flowStats = Capabilities(rawValue: 1 << 0)
    /// `OFPC_TABLE_STATS`: table statistics.
    public static let tableStats = Capabilities(rawValue: 1 << 1)
    /// `OFPC_PORT_STATS`: port statistics.
    public static let portStats = Capabilities(rawValue: 1 << 2)
    /// `OFPC_STP`: 802.1d spanning tree.
    public static let stp = Capabilities(rawValue: 1 << 3)
    /// `OFPC_RESERVED`: must be zero.
    public static let reserved = Capabilities(rawValue: 1 << 4)
    /// `OFPC_IP_REASM`: can reassemble IP fragments.
    public static let ipReassembly = Capabilities(rawValue: 1 << 5)
    /// `OFPC_QUEUE_STATS`: queue statistics.
    public static let queueStats = Capabilities(rawValue: 1 << 6)
    /// `OFPC_ARP_MATCH_IP`: matches IP addresses in ARP packets.
    public static let arpMatchIP = Capabilities(rawValue: 1 << 7)
}

/// The FEATURES_REPLY actions bitmap: bit `n` set means action type `n` is supported.
public struct ActionTypes: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt32
    /// A value from its wire bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The bit for one action type.
    public init(_ type: ActionType) { self.rawValue = type.rawValue < 32 ? 1 << type.rawValue : 0 }
    /// Every action of OpenFlow 1.0 (OUTPUT through ENQUEUE).
    public static let all = ActionTypes(rawValue: 0xfff)
}

/// `ofp_port_config`: administrative settings of a port.
public struct PortConfig: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt32
    /// A value from its wire bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `OFPPC_PORT_DOWN`: administratively down.
    public static let portDown = PortConfig(rawValue: 1 << 0)
    /// `OFPPC_NO_STP`: 802.1D spanning tree disabled.
    public static let noSTP = PortConfig(rawValue: 1 << 1)
    /// `OFPPC_NO_RECV`: drop everything but STP received.
    public static let noReceive = PortConfig(rawValue: 1 << 2)
    /// `OFPPC_NO_RECV_STP`: drop received STP.
    public static let noReceiveSTP = PortConfig(rawValue: 1 << 3)
    /// `OFPPC_NO_FLOOD`: not part of OFPP_FLOOD.
    public static let noFlood = PortConfig(rawValue: 1 << 4)
    /// `OFPPC_NO_FWD`: drop packets forwarded to the port.
    public static let noForward = PortConfig(rawValue: 1 << 5)
    /// `OFPPC_NO_PACKET_IN`: no PACKET_IN for this port.
    public static let noPacketIn = PortConfig(rawValue: 1 << 6)
}

/// `ofp_port_state`: link state and, in bits 8–9, the STP state.
public struct PortState: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt32
    /// A value from its wire bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `OFPPS_LINK_DOWN`: no physical link.
    public static let linkDown = PortState(rawValue: 1 << 0)
    /// `OFPPS_STP_LISTEN`: not learning or relaying (value 0 of the STP mask).
    public static let stpListen = PortState(rawValue: 0 << 8)
    /// `OFPPS_STP_LEARN`: learning, not relaying.
    public static let stpLearn = PortState(rawValue: 1 << 8)
    /// `OFPPS_STP_FORWARD`: learning and relaying.
    public static let stpForward = PortState(rawValue: 2 << 8)
    /// `OFPPS_STP_BLOCK`: not part of the spanning tree.
    public static let stpBlock = PortState(rawValue: 3 << 8)
    /// `OFPPS_STP_MASK`: the bits of the STP state.
    public static let stpMask = PortState(rawValue: 3 << 8)
}

/// `ofp_port_features`: speeds, media and pause abilities of a port.
public struct PortFeatures: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt32
    /// A value from its wire bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `OFPPF_10MB_HD`.
    public static let half10Mb = PortFeatures(rawValue: 1 << 0)
    /// `OFPPF_10MB_FD`.
    public static let full10Mb = PortFeatures(rawValue: 1 << 1)
    /// `OFPPF_100MB_HD`.
    public static let half100Mb = PortFeatures(rawValue: 1 << 2)
    /// `OFPPF_100MB_FD`.
    public static let full100Mb = PortFeatures(rawValue: 1 << 3)
    /// `OFPPF_1GB_HD`.
    public static let half1Gb = PortFeatures(rawValue: 1 << 4)
    /// `OFPPF_1GB_FD`.
    public static let full1Gb = PortFeatures(rawValue: 1 << 5)
    /// `OFPPF_10GB_FD`.
    public static let full10Gb = PortFeatures(rawValue: 1 << 6)
    /// `OFPPF_COPPER`.
    public static let copper = PortFeatures(rawValue: 1 << 7)
    /// `OFPPF_FIBER`.
    public static let fiber = PortFeatures(rawValue: 1 << 8)
    /// `OFPPF_AUTONEG`.
    public static let autoNegotiation = PortFeatures(rawValue: 1 << 9)
    /// `OFPPF_PAUSE`.
    public static let pause = PortFeatures(rawValue: 1 << 10)
    /// `OFPPF_PAUSE_ASYM`.
    public static let pauseAsymmetric = PortFeatures(rawValue: 1 << 11)
}

/// `ofp_flow_mod_flags`.
public struct FlowModFlags: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt16
    /// A value from its wire bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// `OFPFF_SEND_FLOW_REM`: send FLOW_REMOVED when the flow expires or is deleted.
    public static let sendFlowRemoved = FlowModFlags(rawValue: 1 << 0)
    /// `OFPFF_CHECK_OVERLAP`: refuse an ADD that overlaps a flow of equal priority.
    public static let checkOverlap = FlowModFlags(rawValue: 1 << 1)
    /// `OFPFF_EMERG`: an emergency flow (used when the controller is lost).
    public static let emergency = FlowModFlags(rawValue: 1 << 2)
}

/// `ofp_config_flags`: how the switch handles IP fragments (bits 0–1).
public struct ConfigFlags: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt16
    /// A value from its wire bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// `OFPC_FRAG_NORMAL`: no special handling.
    public static let fragmentNormal = ConfigFlags([])
    /// `OFPC_FRAG_DROP`: drop fragments.
    public static let fragmentDrop = ConfigFlags(rawValue: 1)
    /// `OFPC_FRAG_REASM`: reassemble (only with `Capabilities.ipReassembly`).
    public static let fragmentReassemble = ConfigFlags(rawValue: 2)
    /// `OFPC_FRAG_MASK`.
    public static let fragmentMask = ConfigFlags(rawValue: 3)
}

/// `ofp_stats_reply_flags`.
public struct StatsReplyFlags: OptionSet, Hashable, Sendable {
    /// The bits on the wire.
    public var rawValue: UInt16
    /// A value from its wire bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// `OFPSF_REPLY_MORE`: more replies follow with the same xid.
    public static let more = StatsReplyFlags(rawValue: 1)
}
