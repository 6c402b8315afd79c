// What can be wrong with an OpenFlow message, and the OFPT_ERROR (type, code) that the
// specification (OpenFlow 1.0.0 §5.4.4) says answers it.

import OasisBits

/// Why an OpenFlow 1.0 message could not be decoded (or encoded).
///
/// Each case maps to the `OFPT_ERROR` type and code the specification requires, see
/// ``errorKind`` and ``errorMessage(for:offending:)``.
public enum OpenFlowError: Error, Hashable, Sendable {
    /// The header's version is not `0x01`. `type` is the header's type byte: a HELLO
    /// with a newer version is normal negotiation, which a channel may accept.
    case badVersion(UInt8, type: UInt8)
    /// The message type is not one of OpenFlow 1.0's (0…21).
    case badType(UInt8)
    /// The header's length is below 8, above the bound, or the body's length is not
    /// what the message type requires (`expected` describes what it requires).
    case badLength(type: UInt8, length: Int, expected: String)
    /// The view holds fewer bytes than the header's length says.
    case truncated(type: UInt8, length: Int, available: Int)
    /// A stats request or reply of an unknown `ofp_stats_types` value.
    case badStatsType(UInt16)
    /// An action of an unknown `ofp_action_type`.
    case badActionType(UInt16)
    /// An action whose length is below 8, not a multiple of 8, past the end of the list
    /// or wrong for its type.
    case badActionLength(type: UInt16, length: Int)
    /// A FLOW_MOD whose command is not ADD, MODIFY, MODIFY_STRICT, DELETE or
    /// DELETE_STRICT.
    case badFlowModCommand(UInt16)
    /// The encoder ran out of room in the destination view (not an input problem).
    case noRoom(BitsError)

    /// Whether this is a HELLO announcing a newer version than 1.0. Version
    /// negotiation (OpenFlow 1.0.0 §6.3.1) uses the lower of the two versions, so a
    /// channel accepts such a HELLO and speaks 1.0, instead of answering
    /// HELLO_FAILED/INCOMPATIBLE (which is for versions it cannot speak at all).
    public var isNewerVersionHello: Bool {
        if case .badVersion(let version, let type) = self {
            return type == MessageType.hello.rawValue && version > openFlowVersion
        }
        return false
    }

    /// The `OFPT_ERROR` type and code that answer this error.
    public var errorKind: ErrorKind {
        switch self {
        case .badVersion(_, let type):
            type == MessageType.hello.rawValue
                ? .helloFailed(.incompatible) : .badRequest(.badVersion)
        case .badType: .badRequest(.badType)
        case .badLength, .truncated, .noRoom: .badRequest(.badLength)
        case .badStatsType: .badRequest(.badStat)
        case .badActionType: .badAction(.badType)
        case .badActionLength: .badAction(.badLength)
        case .badFlowModCommand: .flowModFailed(.badCommand)
        }
    }
}

/// The OFPT_ERROR reply the specification requires for `error` caused by `offending`:
/// the error's type and code, the offending message's xid, and its first 64 bytes as
/// data (a view of `offending`, not a copy).
///
/// ```swift
/// do { let message = try Message.decode(bits) } catch {
///     let reply = errorMessage(for: error, offending: bits)
/// }
/// ```
public func errorMessage(for error: OpenFlowError, offending: Bits) -> Message {
    let xid = (try? offending.read(UInt32.self, at: 4)) ?? 0
    let data = (try? offending.prefix(min(64, offending.count))) ?? offending
    return Message(xid: xid, body: .error(ErrorMessage(kind: error.errorKind, data: Payload(data))))
}

/// An OFPT_ERROR's type and code (`ofp_error_type` and its code enums). Codes that
/// OpenFlow 1.0 does not define, and unknown types, are kept in ``unknown(type:code:)``.
public enum ErrorKind: Hashable, Sendable, CustomStringConvertible {
    /// `OFPET_HELLO_FAILED` (0).
    case helloFailed(HelloFailedCode)
    /// `OFPET_BAD_REQUEST` (1).
    case badRequest(BadRequestCode)
    /// `OFPET_BAD_ACTION` (2).
    case badAction(BadActionCode)
    /// `OFPET_FLOW_MOD_FAILED` (3).
    case flowModFailed(FlowModFailedCode)
    /// `OFPET_PORT_MOD_FAILED` (4).
    case portModFailed(PortModFailedCode)
    /// `OFPET_QUEUE_OP_FAILED` (5).
    case queueOperationFailed(QueueOperationFailedCode)
    /// A type or code that OpenFlow 1.0 does not define, exactly as received.
    case unknown(type: UInt16, code: UInt16)

    /// The kind for a wire type and code; never fails.
    public init(type: UInt16, code: UInt16) {
        let known: ErrorKind? =
            switch type {
            case 0: HelloFailedCode(rawValue: code).map(ErrorKind.helloFailed)
            case 1: BadRequestCode(rawValue: code).map(ErrorKind.badRequest)
            case 2: BadActionCode(rawValue: code).map(ErrorKind.badAction)
            case 3: FlowModFailedCode(rawValue: code).map(ErrorKind.flowModFailed)
            case 4: PortModFailedCode(rawValue: code).map(ErrorKind.portModFailed)
            case 5: QueueOperationFailedCode(rawValue: code).map(ErrorKind.queueOperationFailed)
            default: nil
            }
        self = known ?? .unknown(type: type, code: code)
    }

    /// The wire `type` field.
    public var type: UInt16 {
        switch self {
        case .helloFailed: 0
        case .badRequest: 1
        case .badAction: 2
        case .flowModFailed: 3
        case .portModFailed: 4
        case .queueOperationFailed: 5
        case .unknown(let type, _): type
        }
    }

    /// The wire `code` field.
    public var code: UInt16 {
        switch self {
        case .helloFailed(let code): code.rawValue
        case .badRequest(let code): code.rawValue
        case .badAction(let code): code.rawValue
        case .flowModFailed(let code): code.rawValue
        case .portModFailed(let code): code.rawValue
        case .queueOperationFailed(let code): code.rawValue
        case .unknown(_, let code): code
        }
    }

    /// `OFPET_BAD_REQUEST/OFPBRC_BAD_LEN`-style names, as the specification spells them.
    public var description: String {
        switch self {
        case .helloFailed(let code): "OFPET_HELLO_FAILED/\(code)"
        case .badRequest(let code): "OFPET_BAD_REQUEST/\(code)"
        case .badAction(let code): "OFPET_BAD_ACTION/\(code)"
        case .flowModFailed(let code): "OFPET_FLOW_MOD_FAILED/\(code)"
        case .portModFailed(let code): "OFPET_PORT_MOD_FAILED/\(code)"
        case .queueOperationFailed(let code): "OFPET_QUEUE_OP_FAILED/\(code)"
        case .unknown(let type, let code): "type \(type) code \(code)"
        }
    }
}

/// `ofp_hello_failed_code`.
public enum HelloFailedCode: UInt16, Hashable, Sendable {
    /// `OFPHFC_INCOMPATIBLE`: no compatible version.
    case incompatible = 0
    /// `OFPHFC_EPERM`: permissions error.
    case permissionDenied = 1
}

/// `ofp_bad_request_code`.
public enum BadRequestCode: UInt16, Hashable, Sendable {
    /// `OFPBRC_BAD_VERSION` … `OFPBRC_BUFFER_UNKNOWN`, in wire order.
    case badVersion = 0, badType, badStat, badVendor, badSubtype, permissionDenied, badLength
    case bufferEmpty, bufferUnknown
}

/// `ofp_bad_action_code`.
public enum BadActionCode: UInt16, Hashable, Sendable {
    /// `OFPBAC_BAD_TYPE` … `OFPBAC_BAD_QUEUE`, in wire order.
    case badType = 0, badLength, badVendor, badVendorType, badOutPort, badArgument
    case permissionDenied, tooMany, badQueue
}

/// `ofp_flow_mod_failed_code`.
public enum FlowModFailedCode: UInt16, Hashable, Sendable {
    /// `OFPFMFC_ALL_TABLES_FULL` … `OFPFMFC_UNSUPPORTED`, in wire order.
    case allTablesFull = 0, overlap, permissionDenied, badEmergencyTimeout, badCommand
    case unsupported
}

/// `ofp_port_mod_failed_code`.
public enum PortModFailedCode: UInt16, Hashable, Sendable {
    /// `OFPPMFC_BAD_PORT`, `OFPPMFC_BAD_HW_ADDR`.
    case badPort = 0, badHardwareAddress
}

/// `ofp_queue_op_failed_code`.
public enum QueueOperationFailedCode: UInt16, Hashable, Sendable {
    /// `OFPQOFC_BAD_PORT`, `OFPQOFC_BAD_QUEUE`, `OFPQOFC_EPERM`.
    case badPort = 0, badQueue, permissionDenied
}
