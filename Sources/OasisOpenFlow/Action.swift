// Actions (OpenFlow 1.0.0 §5.2.4): what a flow or a PACKET_OUT does to a packet.
// Every action is a multiple of 8 bytes: type (16), len (16), then its fields.

import OasisBits
import OasisWire

/// `ofp_action_type`.
public enum ActionType: UInt16, Hashable, Sendable, CaseIterable {
    /// In wire order: `OFPAT_OUTPUT` (0) through `OFPAT_ENQUEUE` (11), and `OFPAT_VENDOR`.
    case output = 0, setVLANID, setVLANPriority, stripVLAN, setDLSource, setDLDestination
    case setNWSource, setNWDestination, setNWToS, setTPSource, setTPDestination, enqueue
    case vendor = 0xffff

    /// The length every action of this type has on the wire (at least, for VENDOR).
    var wireLength: Int {
        switch self {
        case .setDLSource, .setDLDestination, .enqueue: 16
        default: 8
        }
    }
}

/// The common start of every action, with the fields of the fixed-size actions.
enum ActionLayout: HeaderLayout {
    static let type = Field<UInt16>.at(byte: 0)
    static let length = Field<UInt16>.at(byte: 2)
    /// OUTPUT port, ENQUEUE port, SET_VLAN_VID vid, SET_TP_* port.
    static let short = Field<UInt16>.at(byte: 4)
    /// OUTPUT max_len.
    static let maxLength = Field<UInt16>.at(byte: 6)
    /// SET_VLAN_PCP pcp, SET_NW_TOS tos.
    static let byte = Field<UInt8>.at(byte: 4)
    /// SET_NW_SRC/DST address, VENDOR vendor.
    static let word = Field<UInt32>.at(byte: 4)
    static let size = 8
}

/// The 16-byte actions: SET_DL_SRC/DST and ENQUEUE.
enum LongActionLayout: HeaderLayout {
    static let address = Field<UInt64>.at(byte: 4, bits: 48)
    static let queueID = Field<UInt32>.at(byte: 12)
    static let size = 16
}

/// One OpenFlow 1.0 action.
public enum Action: Equatable {
    /// `OFPAT_OUTPUT`: send out `port`; to the controller, at most `maxLength` bytes.
    case output(port: PortNumber, maxLength: UInt16 = 0)
    /// `OFPAT_SET_VLAN_VID`: set (or add) the 802.1Q VLAN id.
    case setVLANID(UInt16)
    /// `OFPAT_SET_VLAN_PCP`: set (or add) the 802.1Q priority.
    case setVLANPriority(UInt8)
    /// `OFPAT_STRIP_VLAN`: remove the 802.1Q header.
    case stripVLAN
    /// `OFPAT_SET_DL_SRC`.
    case setDLSource(MACAddress)
    /// `OFPAT_SET_DL_DST`.
    case setDLDestination(MACAddress)
    /// `OFPAT_SET_NW_SRC`.
    case setNWSource(UInt32)
    /// `OFPAT_SET_NW_DST`.
    case setNWDestination(UInt32)
    /// `OFPAT_SET_NW_TOS`: set the DSCP bits of the IP ToS.
    case setNWToS(UInt8)
    /// `OFPAT_SET_TP_SRC`.
    case setTPSource(UInt16)
    /// `OFPAT_SET_TP_DST`.
    case setTPDestination(UInt16)
    /// `OFPAT_ENQUEUE`: send out `port` through queue `queueID`.
    case enqueue(port: PortNumber, queueID: UInt32)
    /// `OFPAT_VENDOR`: a vendor's action; `body` follows the vendor id and makes the
    /// action a multiple of 8 bytes long.
    case vendor(UInt32, body: Payload)

    /// The action's type.
    public var type: ActionType {
        switch self {
        case .output: .output
        case .setVLANID: .setVLANID
        case .setVLANPriority: .setVLANPriority
        case .stripVLAN: .stripVLAN
        case .setDLSource: .setDLSource
        case .setDLDestination: .setDLDestination
        case .setNWSource: .setNWSource
        case .setNWDestination: .setNWDestination
        case .setNWToS: .setNWToS
        case .setTPSource: .setTPSource
        case .setTPDestination: .setTPDestination
        case .enqueue: .enqueue
        case .vendor: .vendor
        }
    }

    /// Bytes on the wire.
    public var wireLength: Int {
        if case .vendor(_, let body) = self { return 8 + (body.count + 7) / 8 * 8 }
        return type.wireLength
    }

    /// Decodes the action list in `bits` (all of it).
    static func decodeList(_ bits: Bits) throws(OpenFlowError) -> [Action] {
        var actions: [Action] = []
        if bits.isEmpty { return actions }
        actions.reserveCapacity(bits.count / 8)  // one allocation: every action is >= 8 bytes
        var rest = bits
        while !rest.isEmpty {
            let (action, length) = try decodeOne(rest)
            actions.append(action)
            rest = (try? rest.shifted(by: length)) ?? rest
        }
        return actions
    }

    /// Decodes the action at the start of `bits`; returns it and its length.
    static func decodeOne(_ bits: Bits) throws(OpenFlowError) -> (Action, Int) {
        guard let header = try? bits.header(ActionLayout.self) else {
            let type = (try? bits.read(UInt16.self, at: 0)) ?? 0
            throw .badActionLength(type: type, length: bits.count)
        }
        let rawType = header[ActionLayout.type]
        let length = Int(header[ActionLayout.length])
        guard length >= 8, length % 8 == 0, length <= bits.count else {
            throw .badActionLength(type: rawType, length: length)
        }
        guard let type = ActionType(rawValue: rawType) else { throw .badActionType(rawType) }
        if type != .vendor && length != type.wireLength {
            throw .badActionLength(type: rawType, length: length)
        }
        let action: Action
        switch type {
        case .output:
            action = .output(
                port: PortNumber(header[ActionLayout.short]),
                maxLength: header[ActionLayout.maxLength])
        case .setVLANID: action = .setVLANID(header[ActionLayout.short])
        case .setVLANPriority: action = .setVLANPriority(header[ActionLayout.byte])
        case .stripVLAN: action = .stripVLAN
        case .setDLSource, .setDLDestination, .enqueue:
            guard let long = try? bits.header(LongActionLayout.self) else {
                throw .badActionLength(type: rawType, length: length)
            }
            switch type {
            case .setDLSource:
                action = .setDLSource(MACAddress(rawValue: long[LongActionLayout.address]))
            case .setDLDestination:
                action = .setDLDestination(MACAddress(rawValue: long[LongActionLayout.address]))
            default:
                action = .enqueue(
                    port: PortNumber(header[ActionLayout.short]),
                    queueID: long[LongActionLayout.queueID])
            }
        case .setNWSource: action = .setNWSource(header[ActionLayout.word])
        case .setNWDestination: action = .setNWDestination(header[ActionLayout.word])
        case .setNWToS: action = .setNWToS(header[ActionLayout.byte])
        case .setTPSource: action = .setTPSource(header[ActionLayout.short])
        case .setTPDestination: action = .setTPDestination(header[ActionLayout.short])
        case .vendor:
            guard let body = try? bits.slice(from: 8, length: length - 8) else {
                throw .badActionLength(type: rawType, length: length)
            }
            action = .vendor(header[ActionLayout.word], body: Payload(body))
        }
        return (action, length)
    }

    /// Appends the action to `out`.
    func encode(into out: inout Bits) throws(BitsError) {
        let start = out.count
        var header = try out.appendHeader(ActionLayout.self)
        let length = wireLength
        header[ActionLayout.type] = type.rawValue
        header[ActionLayout.length] = UInt16(truncatingIfNeeded: length)
        switch self {
        case .output(let port, let maxLength):
            header[ActionLayout.short] = port.rawValue
            header[ActionLayout.maxLength] = maxLength
        case .setVLANID(let vid): header[ActionLayout.short] = vid
        case .setVLANPriority(let pcp): header[ActionLayout.byte] = pcp
        case .stripVLAN: break
        case .setDLSource(let address), .setDLDestination(let address):
            try out.extend(by: 8)
            var long = try out.slice(from: start, length: 16).header(LongActionLayout.self)
            long[LongActionLayout.address] = address.rawValue
            long.zero(from: 10, count: 6)
        case .setNWSource(let address), .setNWDestination(let address):
            header[ActionLayout.word] = address
        case .setNWToS(let tos): header[ActionLayout.byte] = tos
        case .setTPSource(let port), .setTPDestination(let port): header[ActionLayout.short] = port
        case .enqueue(let port, let queueID):
            try out.extend(by: 8)
            var long = try out.slice(from: start, length: 16).header(LongActionLayout.self)
            header[ActionLayout.short] = port.rawValue
            long.zero(from: 6, count: 6)
            long[LongActionLayout.queueID] = queueID
        case .vendor(let vendor, let body):
            header[ActionLayout.word] = vendor
            try out.append(contentsOf: body.bits)
            try out.appendZeros(length - 8 - body.count)
        }
    }
}

extension Header {
    /// Zeroes `count` bytes at `offset` of the header (padding in recycled buffers).
    mutating func zero(from offset: Int, count: Int) {
        for index in offset..<offset + count { self[Field<UInt8>.at(byte: index)] = 0 }
    }
}

extension Bits {
    /// Appends `count` zero bytes.
    mutating func appendZeros(_ count: Int) throws(BitsError) {
        let start = self.count
        try extend(by: count)
        for index in start..<start + count { try write(UInt8(0), at: index) }
    }
}
