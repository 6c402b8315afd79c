// ICMP for IPv4: echo answered in place; the other messages counted.

import OasisBits
import OasisDevices
import OasisWire

/// ICMP over an IP layer: answers echo requests (the tutorial's ping responder) in the
/// request's own buffer, and counts what it does not handle.
public final class ICMPv4Layer<IP: IPLayer> {
    /// The IP layer below.
    public let ip: IP
    /// Whether echo requests are answered.
    @exclusivity(unchecked) public var answersPing: Bool
    /// Echo requests answered.
    public var echoRepliesSent: UInt64 { _echoRepliesSent }
    @exclusivity(unchecked) @usableFromInline internal var _echoRepliesSent: UInt64 = 0
    @exclusivity(unchecked) @usableFromInline internal var ownDrops = DropCounters<
        ICMPv4DropReason
    >()
    /// Echo requests to a broadcast address, ignored (RFC 1122 §3.2.2.6 allows it).
    public var broadcastEchoesIgnored: UInt64 { ownDrops[.broadcastEcho] }

    public init(ip: IP, answersPing: Bool = true) {
        self.ip = ip
        self.answersPing = answersPing
    }

    /// What was dropped, and why.
    public var drops: DropCounters<ICMPv4DropReason> { ownDrops }

    /// Handles one ICMP message (`message` is the IP payload).
    @inlinable
    public func receive(_ message: consuming Packet, info: IPv4Info) {
        var message = message
        let icmp: ICMPv4Repr
        do {
            icmp = try ICMPv4Repr.parse(
                message.bytes, verifyChecksum: !ip.receiveChecksums.contains(.icmp))
        } catch {
            ownDrops.count(error.dropReason)
            return
        }
        guard answersPing, let reply = icmp.echoReply else {
            ownDrops.count(icmp.isError ? .errorNotDelivered : .unhandledType)
            return
        }
        // RFC 1122 §3.2.2.6: an echo request to a broadcast address may be ignored.
        guard !info.isBroadcast else {
            ownDrops.count(.broadcastEcho)
            return
        }
        // The reply is built in front of the request's data, in the same buffer.
        do {
            try message.shift(by: ICMPv4Header.size)
            try reply.emit(prependingTo: &message)
        } catch {
            ownDrops.count(.tooShort)
            return
        }
        _echoRepliesSent &+= 1
        ip.send(message, protocol: .icmp, to: info.source)
    }
}
