// Why a call to a switch failed, and why a channel closed.

import OasisNet
import OasisOpenFlow

/// Why a call to a switch failed.
///
/// ```swift
/// do { let flows = try await datapath.stats(.flow(FlowStatsRequest())) }
/// catch .switchError(let kind, _) { print("the switch said \(kind)") }
/// ```
public enum ControllerError: Error, CustomStringConvertible {
    /// The channel is closed (or was closed while the request waited).
    case disconnected
    /// The switch answered the request with an OFPT_ERROR (its data copied out).
    case switchError(ErrorKind, data: [UInt8])
    /// No reply within ``ChannelLimits/requestTimeout``.
    case timedOut
    /// ``ChannelLimits/outstandingRequests`` requests already wait for their replies.
    case tooManyOutstanding
    /// The message does not fit in what is left of ``ChannelLimits/sendQueueLimit``:
    /// the switch is not reading.
    case sendQueueFull
    /// The message could not be encoded (too long for 16 bits of length, say).
    case encoding(OpenFlowError)
    /// A multipart stats reply went beyond ``ChannelLimits/statsEntries`` entries.
    case replyTooLarge
    /// The reply was not of the kind the request asks for.
    case unexpectedReply(MessageType)
    /// The awaiting task was cancelled.
    case cancelled

    public var description: String {
        switch self {
        case .disconnected: "the switch is disconnected"
        case .switchError(let kind, _): "the switch answered \(kind)"
        case .timedOut: "the switch did not answer in time"
        case .tooManyOutstanding: "too many requests wait for replies"
        case .sendQueueFull: "the send queue is full: the switch is not reading"
        case .encoding(let error): "cannot encode: \(error)"
        case .replyTooLarge: "the multipart reply is too large"
        case .unexpectedReply(let type): "unexpected reply \(type)"
        case .cancelled: "cancelled"
        }
    }
}

/// Why a channel to a switch closed: logged, and handed to
/// ``OpenFlowApplication/datapathLeft(_:reason:)``.
public enum DisconnectReason: Equatable, CustomStringConvertible {
    /// The switch closed the connection (end of stream).
    case closedBySwitch
    /// The transport failed (reset, timeout...).
    case transport(StreamError)
    /// The switch's HELLO offered no version we speak (we sent HELLO_FAILED).
    case incompatibleVersion(UInt8)
    /// The switch answered our HELLO with HELLO_FAILED.
    case helloFailed(ErrorKind)
    /// HELLO and FEATURES_REPLY did not both arrive in time.
    case handshakeTimeout
    /// Nothing came from the switch, not even an echo reply, for the dead-peer time.
    case echoTimeout
    /// Our output to the switch stayed blocked for the dead-peer time: it does not read.
    case notReading(queued: Int)
    /// A header announced an impossible length: the stream cannot be resynchronised
    /// (we sent OFPT_ERROR BAD_REQUEST/BAD_LEN first).
    case unframeable(OpenFlowError)
    /// The stream ended in the middle of a message.
    case truncatedStream(bytes: Int)
    /// A message arrived before HELLO.
    case noHello(UInt8)
    /// The controller (or an application) closed the channel.
    case closedByController

    public var description: String {
        switch self {
        case .closedBySwitch: "the switch closed the connection"
        case .transport(let error): "transport: \(error)"
        case .incompatibleVersion(let version): "HELLO version \(version): incompatible"
        case .helloFailed(let kind): "the switch answered HELLO with \(kind)"
        case .handshakeTimeout: "no HELLO and FEATURES_REPLY in time"
        case .echoTimeout: "no message, not even an echo reply, in time: dead peer"
        case .notReading(let queued): "the switch does not read (\(queued) bytes queued)"
        case .unframeable(let error): "unframeable stream: \(error)"
        case .truncatedStream(let bytes): "the stream ended inside a message (\(bytes) bytes)"
        case .noHello(let type): "message type \(type) before HELLO"
        case .closedByController: "closed by the controller"
        }
    }
}
