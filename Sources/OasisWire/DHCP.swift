// DHCP messages (RFC 2131 §2, the BOOTP layout of RFC 951) and their options (RFC 2132).
// Off the data path: a message is parsed into a value and emitted as bytes.

import OasisBits

/// The fixed part of a DHCP message (RFC 2131 §2, Figure 1): 236 bytes, then the magic
/// cookie and the options.
public enum DHCPHeader {
    /// `op`: 1 BOOTREQUEST, 2 BOOTREPLY.
    public static let operation = 0
    /// `htype`, `hlen`, `hops`.
    public static let hardwareType = 1
    public static let hardwareLength = 2
    public static let hops = 3
    /// `xid`: the transaction, chosen by the client.
    public static let transactionID = 4
    /// `secs`, `flags`.
    public static let seconds = 8
    public static let flags = 10
    /// `ciaddr`, `yiaddr`, `siaddr`, `giaddr`.
    public static let clientAddress = 12
    public static let yourAddress = 16
    public static let serverAddress = 20
    public static let relayAddress = 24
    /// `chaddr`: 16 bytes, the Ethernet address in the first 6.
    public static let clientHardwareAddress = 28
    /// `sname` (64 bytes) and `file` (128 bytes): options may overflow into them
    /// (option 52).
    public static let serverName = 44
    public static let serverNameLength = 64
    public static let file = 108
    public static let fileLength = 128
    /// The magic cookie 99.130.83.99 (RFC 2131 §3), in front of the options.
    public static let magicCookieOffset = 236
    public static let magicCookie: UInt32 = 0x6382_5363
    /// Where the options begin.
    public static let optionsOffset = 240
    /// The smallest BOOTP message relays must accept (RFC 1542 §2.1): 300 bytes.
    public static let minimumLength = 300
    /// The largest message this codec reads: a DHCP message fits an Ethernet frame in
    /// practice (RFC 2131 §2: at least 576 bytes of IP datagram must be accepted).
    public static let maximumLength = 65_507
    /// The broadcast bit of `flags` (RFC 2131 §2, Figure 2).
    public static let broadcastFlag: UInt16 = 0x8000
}

/// The DHCP message types (option 53, RFC 2132 §9.6).
public enum DHCPMessageType: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case discover = 1
    case offer = 2
    case request = 3
    case decline = 4
    case ack = 5
    case nak = 6
    case release = 7
    case inform = 8

    public var description: String {
        switch self {
        case .discover: "DHCPDISCOVER"
        case .offer: "DHCPOFFER"
        case .request: "DHCPREQUEST"
        case .decline: "DHCPDECLINE"
        case .ack: "DHCPACK"
        case .nak: "DHCPNAK"
        case .release: "DHCPRELEASE"
        case .inform: "DHCPINFORM"
        }
    }
}

/// Option codes this codec reads into named fields (RFC 2132).
public enum DHCPOptionCode {
    public static let pad: UInt8 = 0
    public static let subnetMask: UInt8 = 1
    public static let router: UInt8 = 3
    public static let domainNameServer: UInt8 = 6
    public static let hostName: UInt8 = 12
    public static let domainName: UInt8 = 15
    public static let interfaceMTU: UInt8 = 26
    public static let requestedAddress: UInt8 = 50
    public static let leaseTime: UInt8 = 51
    public static let overload: UInt8 = 52
    public static let messageType: UInt8 = 53
    public static let serverIdentifier: UInt8 = 54
    public static let parameterRequestList: UInt8 = 55
    public static let message: UInt8 = 56
    public static let maximumMessageSize: UInt8 = 57
    public static let renewalTime: UInt8 = 58
    public static let rebindingTime: UInt8 = 59
    public static let clientIdentifier: UInt8 = 61
    public static let end: UInt8 = 255
}

/// What was wrong with a DHCP message.
public enum DHCPError: Error, Hashable, Sendable {
    /// Shorter than the fixed header and the magic cookie (240 bytes).
    case truncated(available: Int)
    /// Longer than a UDP payload can be.
    case tooLong(Int)
    /// `op` neither 1 nor 2.
    case badOperation(UInt8)
    /// Not Ethernet: `htype` and `hlen` as found.
    case unsupportedHardware(type: UInt8, length: UInt8)
    /// The four bytes where 99.130.83.99 belongs.
    case badMagicCookie(UInt32)
    /// An option's length byte, or its value, runs past the end of its field.
    case optionTruncated(code: UInt8)
    /// A known option with a length its definition does not allow.
    case badOptionLength(code: UInt8, length: Int)
    /// Option 53 with an unknown type.
    case unknownMessageType(UInt8)
    /// Option 52 with a value other than 1, 2 or 3.
    case badOverload(UInt8)
    /// A text option (host or domain name) that is not UTF-8.
    case badText(code: UInt8)
}

/// The options of a DHCP message: the ones the client uses by name, the rest kept by
/// code. Repeated instances of an option are joined (RFC 3396 §5) before they are read.
public struct DHCPOptions: Hashable, Sendable {
    /// Option 53.
    public var messageType: DHCPMessageType?
    /// Option 1.
    public var subnetMask: IPv4Address?
    /// Option 3: routers, in order of preference.
    public var routers: [IPv4Address] = []
    /// Option 6: DNS servers, in order of preference.
    public var domainNameServers: [IPv4Address] = []
    /// Option 12.
    public var hostName: String?
    /// Option 15.
    public var domainName: String?
    /// Option 26: the interface MTU (68 at least).
    public var interfaceMTU: UInt16?
    /// Option 50: the address the client asks for.
    public var requestedAddress: IPv4Address?
    /// Option 51: the lease, in seconds (0xffff_ffff: infinite).
    public var leaseTime: UInt32?
    /// Option 54: the server's identifier (its address).
    public var serverIdentifier: IPv4Address?
    /// Option 55: the options the client asks for.
    public var parameterRequestList: [UInt8] = []
    /// Option 56: a message from the server (a NAK's reason), as text.
    public var message: String?
    /// Option 57: the largest message the client accepts.
    public var maximumMessageSize: UInt16?
    /// Option 58: T1, seconds from the lease's start to RENEWING.
    public var renewalTime: UInt32?
    /// Option 59: T2, seconds from the lease's start to REBINDING.
    public var rebindingTime: UInt32?
    /// Option 61: the client identifier (its first byte a hardware type, 1 for
    /// Ethernet, then the address; or 0 and any bytes).
    public var clientIdentifier: [UInt8]?
    /// Every other option, by code, in the order first seen.
    public var other: [(code: UInt8, value: [UInt8])] = []

    public init() {}

    public static func == (a: DHCPOptions, b: DHCPOptions) -> Bool {
        a.messageType == b.messageType && a.subnetMask == b.subnetMask && a.routers == b.routers
            && a.domainNameServers == b.domainNameServers && a.hostName == b.hostName
            && a.domainName == b.domainName && a.interfaceMTU == b.interfaceMTU
            && a.requestedAddress == b.requestedAddress && a.leaseTime == b.leaseTime
            && a.serverIdentifier == b.serverIdentifier
            && a.parameterRequestList == b.parameterRequestList && a.message == b.message
            && a.maximumMessageSize == b.maximumMessageSize && a.renewalTime == b.renewalTime
            && a.rebindingTime == b.rebindingTime && a.clientIdentifier == b.clientIdentifier
            && a.other.count == b.other.count
            && zip(a.other, b.other).allSatisfy { $0.code == $1.code && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(messageType)
        hasher.combine(requestedAddress)
        hasher.combine(serverIdentifier)
        hasher.combine(leaseTime)
    }

    /// The value of an option kept by code, if present.
    public func value(of code: UInt8) -> [UInt8]? {
        other.first { $0.code == code }?.value
    }
}

/// A DHCP message (RFC 2131 §2): the fixed header and the options.
///
/// ```swift
/// var discover = DHCPMessage(operation: .request, transactionID: 0x1234_5678, clientHardwareAddress: mac)
/// discover.options.messageType = .discover
/// let bytes = discover.encoded()                      // ready for UDP port 67
/// let offer = try DHCPMessage.parse(replyBytes)       // typed DHCPError on bad input
/// ```
public struct DHCPMessage: Hashable, Sendable {
    /// BOOTREQUEST (client to server) or BOOTREPLY.
    public enum Operation: UInt8, Hashable, Sendable {
        case request = 1
        case reply = 2
    }

    public var operation: Operation
    /// `hops`: set by relays.
    public var hops: UInt8 = 0
    /// `xid`.
    public var transactionID: UInt32
    /// `secs`: seconds since the client began acquiring or renewing.
    public var seconds: UInt16 = 0
    /// `flags`: the broadcast bit (``DHCPHeader/broadcastFlag``) asks the server to
    /// broadcast its replies.
    public var flags: UInt16 = 0
    /// `ciaddr`: the client's address, when it has one (BOUND, RENEWING, REBINDING).
    public var clientAddress: IPv4Address = .any
    /// `yiaddr`: the address the server offers or assigns.
    public var yourAddress: IPv4Address = .any
    /// `siaddr`: the next server in bootstrap.
    public var serverAddress: IPv4Address = .any
    /// `giaddr`: the relay agent.
    public var relayAddress: IPv4Address = .any
    /// `chaddr`: the client's Ethernet address.
    public var clientHardwareAddress: MACAddress
    /// `sname` and `file`, when they hold text rather than overloaded options (their
    /// bytes up to the first zero).
    public var serverName: [UInt8] = []
    public var bootFile: [UInt8] = []
    public var options = DHCPOptions()

    public init(operation: Operation, transactionID: UInt32, clientHardwareAddress: MACAddress) {
        self.operation = operation
        self.transactionID = transactionID
        self.clientHardwareAddress = clientHardwareAddress
    }

    /// Whether the broadcast bit is set.
    public var broadcast: Bool {
        get { flags & DHCPHeader.broadcastFlag != 0 }
        set {
            flags = newValue ? flags | DHCPHeader.broadcastFlag : flags & ~DHCPHeader.broadcastFlag
        }
    }

    // MARK: Parse

    /// Parses a DHCP message (a UDP payload). Options are read from the options field,
    /// then from `file` and `sname` when option 52 says they hold some (RFC 2131 §4.1);
    /// pads are skipped, parsing stops at the end option (or the field's end, for
    /// senders that leave it out). Work and memory are linear in the input.
    public static func parse(_ bytes: RawSpan) throws(DHCPError) -> DHCPMessage {
        try bytes.withUnsafeBytes { (buffer) throws(DHCPError) -> DHCPMessage in
            try parse(buffer)
        }
    }

    /// Parses a DHCP message from bytes (see ``parse(_:)-(RawSpan)``).
    public static func parse(_ bytes: [UInt8]) throws(DHCPError) -> DHCPMessage {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(DHCPError) -> DHCPMessage in try parse(buffer) }
        }
        return try result.get()
    }

    /// Parses a DHCP message from raw bytes.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(DHCPError) -> DHCPMessage {
        let count = bytes.count
        guard count >= DHCPHeader.optionsOffset else { throw .truncated(available: count) }
        guard count <= DHCPHeader.maximumLength else { throw .tooLong(count) }
        func u16(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
        func u32(_ offset: Int) -> UInt32 { UInt32(u16(offset)) << 16 | UInt32(u16(offset + 2)) }
        guard let operation = Operation(rawValue: bytes[DHCPHeader.operation]) else {
            throw .badOperation(bytes[DHCPHeader.operation])
        }
        let htype = bytes[DHCPHeader.hardwareType]
        let hlen = bytes[DHCPHeader.hardwareLength]
        guard htype == 1, hlen == 6 else { throw .unsupportedHardware(type: htype, length: hlen) }
        let cookie = u32(DHCPHeader.magicCookieOffset)
        guard cookie == DHCPHeader.magicCookie else { throw .badMagicCookie(cookie) }
        let chaddr = DHCPHeader.clientHardwareAddress
        var message = DHCPMessage(
            operation: operation, transactionID: u32(DHCPHeader.transactionID),
            clientHardwareAddress: MACAddress(
                rawValue: UInt64(u16(chaddr)) << 32 | UInt64(u32(chaddr + 2))))
        message.hops = bytes[DHCPHeader.hops]
        message.seconds = u16(DHCPHeader.seconds)
        message.flags = u16(DHCPHeader.flags)
        message.clientAddress = IPv4Address(rawValue: u32(DHCPHeader.clientAddress))
        message.yourAddress = IPv4Address(rawValue: u32(DHCPHeader.yourAddress))
        message.serverAddress = IPv4Address(rawValue: u32(DHCPHeader.serverAddress))
        message.relayAddress = IPv4Address(rawValue: u32(DHCPHeader.relayAddress))

        // Gather the raw options: by code, repeated instances joined (RFC 3396).
        var raw = RawOptions()
        let overload = try raw.read(
            bytes, from: DHCPHeader.optionsOffset, to: count, allowOverload: true)
        let sname = DHCPHeader.serverName..<(DHCPHeader.serverName + DHCPHeader.serverNameLength)
        let file = DHCPHeader.file..<(DHCPHeader.file + DHCPHeader.fileLength)
        // RFC 2131 §4.1: the options field first, then `file`, then `sname`.
        if overload & 1 != 0 {
            _ = try raw.read(
                bytes, from: file.lowerBound, to: file.upperBound, allowOverload: false)
        } else {
            message.bootFile = text(bytes, file)
        }
        if overload & 2 != 0 {
            _ = try raw.read(
                bytes, from: sname.lowerBound, to: sname.upperBound, allowOverload: false)
        } else {
            message.serverName = text(bytes, sname)
        }
        message.options = try raw.decode()
        return message
    }

    /// A field's bytes up to its first zero.
    private static func text(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> [UInt8] {
        var end = range.lowerBound
        while end < range.upperBound && bytes[end] != 0 { end += 1 }
        return Array(bytes[range.lowerBound..<end])
    }

    // MARK: Emit

    /// The message as bytes: the fixed header, the magic cookie, the options (each
    /// longer than 255 bytes split as RFC 3396 says), the end option, padded with zeros
    /// to 300 bytes (RFC 1542 §2.1).
    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: DHCPHeader.optionsOffset)
        func put16(_ value: UInt16, _ offset: Int) {
            bytes[offset] = UInt8(truncatingIfNeeded: value >> 8)
            bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
        }
        func put32(_ value: UInt32, _ offset: Int) {
            put16(UInt16(truncatingIfNeeded: value >> 16), offset)
            put16(UInt16(truncatingIfNeeded: value), offset + 2)
        }
        bytes[DHCPHeader.operation] = operation.rawValue
        bytes[DHCPHeader.hardwareType] = 1
        bytes[DHCPHeader.hardwareLength] = 6
        bytes[DHCPHeader.hops] = hops
        put32(transactionID, DHCPHeader.transactionID)
        put16(seconds, DHCPHeader.seconds)
        put16(flags, DHCPHeader.flags)
        put32(clientAddress.rawValue, DHCPHeader.clientAddress)
        put32(yourAddress.rawValue, DHCPHeader.yourAddress)
        put32(serverAddress.rawValue, DHCPHeader.serverAddress)
        put32(relayAddress.rawValue, DHCPHeader.relayAddress)
        for index in 0..<6 {
            bytes[DHCPHeader.clientHardwareAddress + index] = clientHardwareAddress[index]
        }
        for (index, byte) in serverName.prefix(DHCPHeader.serverNameLength).enumerated() {
            bytes[DHCPHeader.serverName + index] = byte
        }
        for (index, byte) in bootFile.prefix(DHCPHeader.fileLength).enumerated() {
            bytes[DHCPHeader.file + index] = byte
        }
        put32(DHCPHeader.magicCookie, DHCPHeader.magicCookieOffset)
        for (code, value) in options.encodedOptions() {
            // RFC 3396 §6: a value longer than 255 bytes goes in consecutive instances.
            var rest = value[...]
            repeat {
                let chunk = rest.prefix(255)
                bytes.append(code)
                bytes.append(UInt8(chunk.count))
                bytes.append(contentsOf: chunk)
                rest = rest.dropFirst(chunk.count)
            } while !rest.isEmpty
        }
        bytes.append(DHCPOptionCode.end)
        if bytes.count < DHCPHeader.minimumLength {
            bytes.append(
                contentsOf: repeatElement(0, count: DHCPHeader.minimumLength - bytes.count))
        }
        return bytes
    }
}

extension DHCPOptions {
    /// The options as (code, value) pairs, in the order they are emitted: the message
    /// type first (RFC 2131 does not ask it, but servers and dissectors expect it).
    func encodedOptions() -> [(UInt8, [UInt8])] {
        func address(_ value: IPv4Address) -> [UInt8] {
            let raw = value.rawValue
            return [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: raw >> $0) }
        }
        func u32(_ value: UInt32) -> [UInt8] { address(IPv4Address(rawValue: value)) }
        func u16(_ value: UInt16) -> [UInt8] {
            [UInt8(value >> 8), UInt8(truncatingIfNeeded: value)]
        }
        var list: [(UInt8, [UInt8])] = []
        if let messageType { list.append((DHCPOptionCode.messageType, [messageType.rawValue])) }
        if let clientIdentifier, !clientIdentifier.isEmpty {
            list.append((DHCPOptionCode.clientIdentifier, clientIdentifier))
        }
        if let requestedAddress {
            list.append((DHCPOptionCode.requestedAddress, address(requestedAddress)))
        }
        if let serverIdentifier {
            list.append((DHCPOptionCode.serverIdentifier, address(serverIdentifier)))
        }
        if let maximumMessageSize {
            list.append((DHCPOptionCode.maximumMessageSize, u16(maximumMessageSize)))
        }
        if let leaseTime { list.append((DHCPOptionCode.leaseTime, u32(leaseTime))) }
        if let renewalTime { list.append((DHCPOptionCode.renewalTime, u32(renewalTime))) }
        if let rebindingTime { list.append((DHCPOptionCode.rebindingTime, u32(rebindingTime))) }
        if let subnetMask { list.append((DHCPOptionCode.subnetMask, address(subnetMask))) }
        if !routers.isEmpty { list.append((DHCPOptionCode.router, routers.flatMap(address))) }
        if !domainNameServers.isEmpty {
            list.append((DHCPOptionCode.domainNameServer, domainNameServers.flatMap(address)))
        }
        if let hostName, !hostName.isEmpty {
            list.append((DHCPOptionCode.hostName, Array(hostName.utf8)))
        }
        if let domainName, !domainName.isEmpty {
            list.append((DHCPOptionCode.domainName, Array(domainName.utf8)))
        }
        if let interfaceMTU { list.append((DHCPOptionCode.interfaceMTU, u16(interfaceMTU))) }
        if let message, !message.isEmpty {
            list.append((DHCPOptionCode.message, Array(message.utf8)))
        }
        if !parameterRequestList.isEmpty {
            list.append((DHCPOptionCode.parameterRequestList, parameterRequestList))
        }
        for (code, value) in other where !value.isEmpty || code != DHCPOptionCode.pad {
            guard code != DHCPOptionCode.pad, code != DHCPOptionCode.end else { continue }
            list.append((code, value))
        }
        return list
    }
}

/// Options as read off the wire, before they are decoded: each code's value, repeated
/// instances joined, in the order codes were first seen.
private struct RawOptions {
    var order: [UInt8] = []
    var values = [[UInt8]?](repeating: nil, count: 256)

    /// Reads options from `bytes[start..<end]`; returns option 52's value if it was
    /// there and allowed (0 otherwise).
    mutating func read(
        _ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int, allowOverload: Bool
    ) throws(DHCPError) -> UInt8 {
        var offset = start
        var overload: UInt8 = 0
        while offset < end {
            let code = bytes[offset]
            offset += 1
            if code == DHCPOptionCode.pad { continue }
            if code == DHCPOptionCode.end { break }
            guard offset < end else { throw .optionTruncated(code: code) }
            let length = Int(bytes[offset])
            offset += 1
            guard length <= end - offset else { throw .optionTruncated(code: code) }
            let value = bytes[offset..<(offset + length)]
            offset += length
            if code == DHCPOptionCode.overload {
                // RFC 2131 §4.1: only in the options field; elsewhere ignored.
                guard allowOverload else { continue }
                guard length == 1 else { throw .badOptionLength(code: code, length: length) }
                guard (1...3).contains(value.first!) else { throw .badOverload(value.first!) }
                overload = value.first!
                continue
            }
            if values[Int(code)] == nil {
                order.append(code)
                values[Int(code)] = Array(value)
            } else {
                values[Int(code)]!.append(contentsOf: value)
            }
        }
        return overload
    }

    func decode() throws(DHCPError) -> DHCPOptions {
        var options = DHCPOptions()
        for code in order {
            let value = values[Int(code)]!
            try options.decode(code: code, value: value)
        }
        return options
    }
}

extension DHCPOptions {
    /// Sets the field of option `code` from its (joined) value.
    fileprivate mutating func decode(code: UInt8, value: [UInt8]) throws(DHCPError) {
        func address(at offset: Int) -> IPv4Address {
            IPv4Address(value[offset], value[offset + 1], value[offset + 2], value[offset + 3])
        }
        func one() throws(DHCPError) -> IPv4Address {
            guard value.count == 4 else { throw .badOptionLength(code: code, length: value.count) }
            return address(at: 0)
        }
        func list() throws(DHCPError) -> [IPv4Address] {
            guard value.count >= 4, value.count % 4 == 0 else {
                throw .badOptionLength(code: code, length: value.count)
            }
            return stride(from: 0, to: value.count, by: 4).map { address(at: $0) }
        }
        func u32() throws(DHCPError) -> UInt32 { try one().rawValue }
        func u16() throws(DHCPError) -> UInt16 {
            guard value.count == 2 else { throw .badOptionLength(code: code, length: value.count) }
            return UInt16(value[0]) << 8 | UInt16(value[1])
        }
        /// Text, without the trailing zeros some servers count in the length; nil
        /// when nothing is left (the option is then treated as absent).
        func text() throws(DHCPError) -> String? {
            guard !value.isEmpty else { throw .badOptionLength(code: code, length: 0) }
            var bytes = value[...]
            while bytes.last == 0 { bytes = bytes.dropLast() }
            guard !bytes.isEmpty else { return nil }
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw .badText(code: code)
            }
            return string
        }
        switch code {
        case DHCPOptionCode.messageType:
            guard value.count == 1 else { throw .badOptionLength(code: code, length: value.count) }
            guard let type = DHCPMessageType(rawValue: value[0]) else {
                throw .unknownMessageType(value[0])
            }
            messageType = type
        case DHCPOptionCode.subnetMask: subnetMask = try one()
        case DHCPOptionCode.router: routers = try list()
        case DHCPOptionCode.domainNameServer: domainNameServers = try list()
        case DHCPOptionCode.hostName: hostName = try text()
        case DHCPOptionCode.domainName: domainName = try text()
        case DHCPOptionCode.interfaceMTU:
            let mtu = try u16()
            // RFC 2132 §5.1: 68 at least.
            guard mtu >= 68 else { throw .badOptionLength(code: code, length: Int(mtu)) }
            interfaceMTU = mtu
        case DHCPOptionCode.requestedAddress: requestedAddress = try one()
        case DHCPOptionCode.leaseTime: leaseTime = try u32()
        case DHCPOptionCode.serverIdentifier: serverIdentifier = try one()
        case DHCPOptionCode.parameterRequestList:
            guard !value.isEmpty else { throw .badOptionLength(code: code, length: 0) }
            parameterRequestList = value
        case DHCPOptionCode.message: message = try text()
        case DHCPOptionCode.maximumMessageSize:
            let size = try u16()
            // RFC 2132 §9.10: 576 at least.
            guard size >= 576 else { throw .badOptionLength(code: code, length: Int(size)) }
            maximumMessageSize = size
        case DHCPOptionCode.renewalTime: renewalTime = try u32()
        case DHCPOptionCode.rebindingTime: rebindingTime = try u32()
        case DHCPOptionCode.clientIdentifier:
            // RFC 2132 §9.14: two bytes at least.
            guard value.count >= 2 else { throw .badOptionLength(code: code, length: value.count) }
            clientIdentifier = value
        default:
            other.append((code, value))
        }
    }
}
