// ICMP for IPv4: echo answered in place; errors handed to the transport they are
// about; the other messages counted.

import OasisBits
import OasisDevices
import OasisWire

/// An ICMP error about a datagram this host sent (RFC 792; RFC 1122 §3.2.2): the
/// message, and what its quote says of the original — addresses, protocol and the
/// first 8 bytes of the transport header (ports; for TCP, the sequence number).
public struct ICMPErrorReport: Hashable, Sendable {
    public var message: ICMPv4Repr
    /// Who sent the error (a router, or the destination).
    public var reporter: IPv4Address
    public var source: IPv4Address
    public var destination: IPv4Address
    public var `protocol`: IPProtocol
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    /// Bytes 4..<8 of the transport header: TCP's sequence number.
    public var transportWord: UInt32
}

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
    /// Where errors about our datagrams go (the stack hands them to TCP); an error no
    /// handler takes is counted as ``ICMPv4DropReason/errorNotDelivered``.
    public var errorHandler: ((ICMPErrorReport) -> Bool)?

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
            if icmp.isError {
                if !deliverError(icmp, message: message, info: info) {
                    ownDrops.count(.errorNotDelivered)
                }
            } else {
                ownDrops.count(.unhandledType)
            }
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

    /// Reads the quote of an error (checked by the parse: an IPv4 header and 8 bytes
    /// of its data) and hands the report to the handler; false if none took it.
    @usableFromInline
    internal func deliverError(_ icmp: ICMPv4Repr, message: borrowing Packet, info: IPv4Info)
        -> Bool
    {
        guard let errorHandler else { return false }
        var report: ICMPErrorReport? = nil
        do {
            let data = message.bytes.extracting(droppingFirst: ICMPv4Header.size)
            guard let quoted = try? IPv4Packet(checkingHeaderOnly: data) else { return false }
            let transport = data.extracting(droppingFirst: quoted.headerLength)
            guard transport.byteCount >= 8 else { return false }
            report = ICMPErrorReport(
                message: icmp, reporter: info.source, source: quoted.source,
                destination: quoted.destination, protocol: quoted.protocol,
                sourcePort: transport[UInt16.self, at: 0],
                destinationPort: transport[UInt16.self, at: 2],
                transportWord: transport[UInt32.self, at: 4])
        }
        // Only about what we sent.
        guard let report, report.source == ip.address else { return false }
        return errorHandler(report)
    }
}
