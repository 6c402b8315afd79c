// Decoding and encoding of every OpenFlow 1.0 message through OasisBits layouts.
// Decoding never copies payload bytes: PACKET_IN/PACKET_OUT data, echo data and vendor
// bodies stay views of the message's buffer. Lists (ports, actions, stats entries) are
// Swift arrays: one allocation per non-empty list.

import OasisBits
import OasisWire

/// The default bound on a message's length: the largest a 16-bit length can say.
public let maximumMessageLength = 65535

extension Message {
    /// Decodes the message at the start of `bits`.
    ///
    /// `bits` must hold at least the header's `length` bytes; bytes after the message
    /// are ignored (use ``MessageFramer`` to split a stream). Fails with a typed
    /// ``OpenFlowError`` that ``errorMessage(for:offending:)`` turns into the
    /// OFPT_ERROR the specification requires.
    public static func decode(
        _ bits: Bits, maximumLength: Int = maximumMessageLength
    ) throws(OpenFlowError) -> Message {
        guard let header = try? bits.header(OFHeader.self) else {
            let type = (try? bits.read(UInt8.self, at: 1)) ?? 0
            throw .truncated(type: type, length: OFHeader.size, available: bits.count)
        }
        let rawType = header[OFHeader.type]
        let version = header[OFHeader.version]
        guard version == openFlowVersion else { throw .badVersion(version, type: rawType) }
        let length = Int(header[OFHeader.length])
        guard length >= OFHeader.size, length <= maximumLength else {
            throw .badLength(type: rawType, length: length, expected: "8...\(maximumLength)")
        }
        guard let message = try? bits.prefix(length) else {
            throw .truncated(type: rawType, length: length, available: bits.count)
        }
        guard let type = MessageType(rawValue: rawType) else { throw .badType(rawType) }
        let decoder = BodyDecoder(message: message, type: rawType)
        return Message(xid: header[OFHeader.xid], body: try decoder.decode(type))
    }

    /// Appends the encoded message to `out` (within its tailroom) and sets the header's
    /// length. On failure `out` is left as it was.
    public func encode(into out: inout Bits) throws(OpenFlowError) {
        let start = out.count
        do {
            try BodyEncoder.encode(self, into: &out)
        } catch {
            try? out.truncate(to: start)
            throw .noRoom(error)
        }
        let length = out.count - start
        guard length <= maximumMessageLength else {
            try? out.truncate(to: start)
            throw .badLength(type: type.rawValue, length: length, expected: "at most 65535")
        }
        try? out.write(UInt16(length), at: start + 2)
    }

    /// The message encoded into a fresh buffer (allocates; for tests and tools — the
    /// packet path encodes into a pool buffer with ``encode(into:)``).
    public func encoded() throws(OpenFlowError) -> Bits {
        var small = emptyView(Buffer())
        do {
            try encode(into: &small)
            return small
        } catch {
            guard case .noRoom = error else { throw error }
            var large = emptyView(Buffer(byteCount: 2 * maximumMessageLength))
            try encode(into: &large)
            return large
        }
    }
}

/// An empty view at the start of `buffer`, for encoding into.
func emptyView(_ buffer: Buffer) -> Bits {
    (try? Bits(buffer: buffer, offset: 0, count: 0)) ?? Bits([])
}

// MARK: - Text fields

/// The NUL-terminated text in `width` bytes at `offset` of `bits` (inside the view).
func readText(_ bits: Bits, at offset: Int, width: Int) -> OpenFlowText {
    guard let field = try? bits.slice(from: offset, length: width) else {
        return OpenFlowText(bytes: [])
    }
    return field.withUnsafeBytes { raw in OpenFlowText(bytes: Array(raw.prefix(while: { $0 != 0 })))
    }
}

/// Writes `text` (at most `width` bytes) at `offset` of `bits`; the rest stays as is
/// (zero, in a freshly appended layout).
func writeText(_ text: OpenFlowText, into bits: Bits, at offset: Int, width: Int) {
    var target = bits
    for (index, byte) in text.bytes.prefix(width).enumerated() {
        try? target.write(byte, at: offset + index)
    }
}

// MARK: - Decoding

/// Decodes one message's body; `message` is exactly the message's bytes.
struct BodyDecoder {
    let message: Bits
    let type: UInt8

    func badLength(_ expected: String) -> OpenFlowError {
        .badLength(type: type, length: message.count, expected: expected)
    }

    /// The message as a `Layout`, at least (or, if `exact`, exactly) its size.
    func fixed<Layout: HeaderLayout>(
        _: Layout.Type, exact: Bool = false
    ) throws(OpenFlowError) -> Header<Layout> {
        if exact && message.count != Layout.size { throw badLength("exactly \(Layout.size)") }
        guard let header = try? message.header(Layout.self) else {
            throw badLength("at least \(Layout.size)")
        }
        return header
    }

    /// The bytes of `bits` from `offset` on (offset already checked by a layout).
    func rest(_ bits: Bits, from offset: Int) -> Bits {
        (try? bits.shifted(by: offset)) ?? bits
    }

    /// Decodes `bits` as back-to-back `Layout`s; its length must be a multiple.
    func array<Layout: HeaderLayout, Element>(
        _ bits: Bits, _: Layout.Type, _ element: (Header<Layout>) -> Element
    ) throws(OpenFlowError) -> [Element] {
        guard bits.count % Layout.size == 0 else {
            throw badLength("a multiple of \(Layout.size) after the fixed part")
        }
        var result: [Element] = []
        result.reserveCapacity(bits.count / Layout.size)
        var offset = 0
        while offset < bits.count {
            guard
                let header = try? bits.slice(from: offset, length: Layout.size).header(Layout.self)
            else { throw badLength("a multiple of \(Layout.size)") }
            result.append(element(header))
            offset += Layout.size
        }
        return result
    }

    func match(_ bits: Bits, at offset: Int) throws(OpenFlowError) -> Match {
        guard
            let header = try? bits.slice(from: offset, length: MatchLayout.size).header(
                MatchLayout.self)
        else { throw badLength("room for ofp_match") }
        return Match(header)
    }

    func decode(_ type: MessageType) throws(OpenFlowError) -> MessageBody {
        switch type {
        case .hello: return .hello(Payload(rest(message, from: 8)))
        case .echoRequest: return .echoRequest(Payload(rest(message, from: 8)))
        case .echoReply: return .echoReply(Payload(rest(message, from: 8)))
        case .error:
            let header = try fixed(ErrorLayout.self)
            let kind = ErrorKind(type: header[ErrorLayout.type], code: header[ErrorLayout.code])
            return .error(ErrorMessage(kind: kind, data: Payload(rest(message, from: 12))))
        case .vendor:
            let header = try fixed(VendorLayout.self)
            return .vendor(header[VendorLayout.vendor], body: Payload(rest(message, from: 12)))
        case .featuresRequest:
            _ = try fixed(OFHeader.self, exact: true)
            return .featuresRequest
        case .getConfigRequest:
            _ = try fixed(OFHeader.self, exact: true)
            return .getConfigRequest
        case .barrierRequest:
            _ = try fixed(OFHeader.self, exact: true)
            return .barrierRequest
        case .barrierReply:
            _ = try fixed(OFHeader.self, exact: true)
            return .barrierReply
        case .featuresReply:
            let header = try fixed(FeaturesLayout.self)
            let ports = try array(
                rest(message, from: 32), PhysicalPortLayout.self, PhysicalPort.init)
            return .featuresReply(
                SwitchFeatures(
                    datapathID: header[FeaturesLayout.datapathID],
                    bufferCount: header[FeaturesLayout.bufferCount],
                    tableCount: header[FeaturesLayout.tableCount],
                    capabilities: Capabilities(rawValue: header[FeaturesLayout.capabilities]),
                    actions: ActionTypes(rawValue: header[FeaturesLayout.actions]), ports: ports))
        case .getConfigReply, .setConfig:
            let header = try fixed(ConfigLayout.self, exact: true)
            let config = SwitchConfig(
                flags: ConfigFlags(rawValue: header[ConfigLayout.flags]),
                missSendLength: header[ConfigLayout.missSendLength])
            return type == .setConfig ? .setConfig(config) : .getConfigReply(config)
        case .packetIn:
            let header = try fixed(PacketInLayout.self)
            return .packetIn(
                PacketIn(
                    bufferID: header[PacketInLayout.bufferID],
                    totalLength: header[PacketInLayout.totalLength],
                    inPort: PortNumber(header[PacketInLayout.inPort]),
                    reason: PacketInReason(rawValue: header[PacketInLayout.reason]),
                    data: Payload(rest(message, from: PacketInLayout.size))))
        case .flowRemoved:
            let header = try fixed(FlowRemovedLayout.self, exact: true)
            return .flowRemoved(
                FlowRemoved(
                    match: try match(message, at: FlowRemovedLayout.match),
                    cookie: header[FlowRemovedLayout.cookie],
                    priority: header[FlowRemovedLayout.priority],
                    reason: FlowRemovedReason(rawValue: header[FlowRemovedLayout.reason]),
                    durationSeconds: header[FlowRemovedLayout.durationSeconds],
                    durationNanoseconds: header[FlowRemovedLayout.durationNanoseconds],
                    idleTimeout: header[FlowRemovedLayout.idleTimeout],
                    packetCount: header[FlowRemovedLayout.packetCount],
                    byteCount: header[FlowRemovedLayout.byteCount]))
        case .portStatus:
            let header = try fixed(PortStatusLayout.self, exact: true)
            let ports = try array(
                rest(message, from: PortStatusLayout.port), PhysicalPortLayout.self,
                PhysicalPort.init)
            guard let port = ports.first else { throw badLength("exactly 64") }
            return .portStatus(
                PortStatus(
                    reason: PortStatusReason(rawValue: header[PortStatusLayout.reason]), port: port)
            )
        case .packetOut:
            let header = try fixed(PacketOutLayout.self)
            let actionsLength = Int(header[PacketOutLayout.actionsLength])
            let afterHeader = rest(message, from: PacketOutLayout.size)
            guard let (actionBits, data) = try? afterHeader.split(at: actionsLength) else {
                throw badLength("16 + actions_len (\(actionsLength)) at least")
            }
            return .packetOut(
                PacketOut(
                    bufferID: header[PacketOutLayout.bufferID],
                    inPort: PortNumber(header[PacketOutLayout.inPort]),
                    actions: try Action.decodeList(actionBits), data: Payload(data)))
        case .flowMod:
            let header = try fixed(FlowModLayout.self)
            let rawCommand = header[FlowModLayout.command]
            guard let command = FlowModCommand(rawValue: rawCommand) else {
                throw .badFlowModCommand(rawCommand)
            }
            return .flowMod(
                FlowMod(
                    match: try match(message, at: FlowModLayout.match),
                    cookie: header[FlowModLayout.cookie], command: command,
                    idleTimeout: header[FlowModLayout.idleTimeout],
                    hardTimeout: header[FlowModLayout.hardTimeout],
                    priority: header[FlowModLayout.priority],
                    bufferID: header[FlowModLayout.bufferID],
                    outPort: PortNumber(header[FlowModLayout.outPort]),
                    flags: FlowModFlags(rawValue: header[FlowModLayout.flags]),
                    actions: try Action.decodeList(rest(message, from: FlowModLayout.size))))
        case .portMod:
            let header = try fixed(PortModLayout.self, exact: true)
            return .portMod(
                PortMod(
                    portNumber: PortNumber(header[PortModLayout.portNumber]),
                    hardwareAddress: MACAddress(rawValue: header[PortModLayout.hardwareAddress]),
                    config: PortConfig(rawValue: header[PortModLayout.config]),
                    mask: PortConfig(rawValue: header[PortModLayout.mask]),
                    advertise: PortFeatures(rawValue: header[PortModLayout.advertise])))
        case .statsRequest:
            let header = try fixed(StatsLayout.self)
            return .statsRequest(
                try statsRequest(header[StatsLayout.type], rest(message, from: 12)),
                flags: header[StatsLayout.flags])
        case .statsReply:
            let header = try fixed(StatsLayout.self)
            return .statsReply(
                try statsReply(header[StatsLayout.type], rest(message, from: 12)),
                flags: StatsReplyFlags(rawValue: header[StatsLayout.flags]))
        case .queueGetConfigRequest:
            let header = try fixed(QueueGetConfigRequestLayout.self, exact: true)
            return .queueGetConfigRequest(
                port: PortNumber(header[QueueGetConfigRequestLayout.port]))
        case .queueGetConfigReply:
            let header = try fixed(QueueGetConfigReplyLayout.self)
            return .queueGetConfigReply(
                port: PortNumber(header[QueueGetConfigReplyLayout.port]),
                queues: try queues(rest(message, from: QueueGetConfigReplyLayout.size)))
        }
    }

    func exactly<Layout: HeaderLayout>(_ body: Bits, _: Layout.Type) throws(OpenFlowError)
        -> Header<Layout>
    {
        guard body.count == Layout.size, let header = try? body.header(Layout.self) else {
            throw badLength("a body of exactly \(Layout.size)")
        }
        return header
    }

    func statsRequest(_ rawType: UInt16, _ body: Bits) throws(OpenFlowError) -> StatsRequest {
        guard let type = StatsType(rawValue: rawType) else { throw .badStatsType(rawType) }
        switch type {
        case .description, .table:
            guard body.isEmpty else { throw badLength("no body") }
            return type == .table ? .table : .description
        case .flow, .aggregate:
            let header = try exactly(body, FlowStatsRequestLayout.self)
            let request = FlowStatsRequest(
                match: try match(body, at: 0), tableID: header[FlowStatsRequestLayout.tableID],
                outPort: PortNumber(header[FlowStatsRequestLayout.outPort]))
            return type == .flow ? .flow(request) : .aggregate(request)
        case .port:
            let header = try exactly(body, PortStatsRequestLayout.self)
            return .port(PortNumber(header[PortStatsRequestLayout.port]))
        case .queue:
            let header = try exactly(body, QueueStatsRequestLayout.self)
            return .queue(
                port: PortNumber(header[QueueStatsRequestLayout.port]),
                queueID: header[QueueStatsRequestLayout.queueID])
        case .vendor:
            guard let vendor = try? body.read(UInt32.self, at: 0) else {
                throw badLength("a vendor id")
            }
            return .vendor(vendor, body: Payload(rest(body, from: 4)))
        }
    }

    func statsReply(_ rawType: UInt16, _ body: Bits) throws(OpenFlowError) -> StatsReply {
        guard let type = StatsType(rawValue: rawType) else { throw .badStatsType(rawType) }
        switch type {
        case .description:
            let header = try exactly(body, DescriptionLayout.self)
            let texts = DescriptionLayout.texts.map { readText(header.bits, at: $0.0, width: $0.1) }
            return .description(
                DescriptionStats(
                    manufacturer: texts[0], hardware: texts[1], software: texts[2],
                    serialNumber: texts[3], datapath: texts[4]))
        case .flow:
            var entries: [FlowStats] = []
            var remaining = body
            while !remaining.isEmpty {
                guard let header = try? remaining.header(FlowStatsLayout.self) else {
                    throw badLength("ofp_flow_stats of at least 88")
                }
                let length = Int(header[FlowStatsLayout.length])
                guard length >= FlowStatsLayout.size,
                    let (entry, next) = try? remaining.split(at: length)
                else {
                    throw badLength("ofp_flow_stats length \(length) within the body")
                }
                entries.append(
                    FlowStats(
                        tableID: header[FlowStatsLayout.tableID],
                        match: try match(entry, at: FlowStatsLayout.match),
                        durationSeconds: header[FlowStatsLayout.durationSeconds],
                        durationNanoseconds: header[FlowStatsLayout.durationNanoseconds],
                        priority: header[FlowStatsLayout.priority],
                        idleTimeout: header[FlowStatsLayout.idleTimeout],
                        hardTimeout: header[FlowStatsLayout.hardTimeout],
                        cookie: header[FlowStatsLayout.cookie],
                        packetCount: header[FlowStatsLayout.packetCount],
                        byteCount: header[FlowStatsLayout.byteCount],
                        actions: try Action.decodeList(rest(entry, from: FlowStatsLayout.size))))
                remaining = next
            }
            return .flow(entries)
        case .aggregate:
            let header = try exactly(body, AggregateLayout.self)
            return .aggregate(
                AggregateStats(
                    packetCount: header[AggregateLayout.packetCount],
                    byteCount: header[AggregateLayout.byteCount],
                    flowCount: header[AggregateLayout.flowCount]))
        case .table:
            return .table(
                try array(body, TableStatsLayout.self) { header in
                    TableStats(
                        tableID: header[TableStatsLayout.tableID],
                        name: readText(
                            header.bits, at: TableStatsLayout.name.offset,
                            width: TableStatsLayout.name.width),
                        wildcards: Wildcards(rawValue: header[TableStatsLayout.wildcards]),
                        maxEntries: header[TableStatsLayout.maxEntries],
                        activeCount: header[TableStatsLayout.activeCount],
                        lookupCount: header[TableStatsLayout.lookupCount],
                        matchedCount: header[TableStatsLayout.matchedCount])
                })
        case .port:
            return .port(
                try array(body, PortStatsLayout.self) { header in
                    var stats = PortStats(portNumber: PortNumber(header[PortStatsLayout.port]))
                    stats.counters = PortStatsLayout.counters.map { header[$0] }
                    return stats
                })
        case .queue:
            return .queue(
                try array(body, QueueStatsLayout.self) { header in
                    QueueStats(
                        portNumber: PortNumber(header[QueueStatsLayout.port]),
                        queueID: header[QueueStatsLayout.queueID],
                        txBytes: header[QueueStatsLayout.txBytes],
                        txPackets: header[QueueStatsLayout.txPackets],
                        txErrors: header[QueueStatsLayout.txErrors])
                })
        case .vendor:
            guard let vendor = try? body.read(UInt32.self, at: 0) else {
                throw badLength("a vendor id")
            }
            return .vendor(vendor, body: Payload(rest(body, from: 4)))
        }
    }

    func queues(_ body: Bits) throws(OpenFlowError) -> [PacketQueue] {
        var queues: [PacketQueue] = []
        var remaining = body
        while !remaining.isEmpty {
            guard let header = try? remaining.header(PacketQueueLayout.self) else {
                throw badLength("ofp_packet_queue of at least 8")
            }
            let length = Int(header[PacketQueueLayout.length])
            guard length >= PacketQueueLayout.size,
                let (queue, next) = try? remaining.split(at: length)
            else {
                throw badLength("ofp_packet_queue length \(length) within the body")
            }
            var properties: [QueueProperty] = []
            var propertyBits = rest(queue, from: PacketQueueLayout.size)
            while !propertyBits.isEmpty {
                guard let property = try? propertyBits.header(QueuePropertyLayout.self) else {
                    throw badLength("ofp_queue_prop_header of at least 8")
                }
                let propertyLength = Int(property[QueuePropertyLayout.length])
                guard propertyLength >= QueuePropertyLayout.size,
                    let (one, after) = try? propertyBits.split(at: propertyLength)
                else { throw badLength("queue property length \(propertyLength) within the queue") }
                let kind = property[QueuePropertyLayout.property]
                if kind == 1 {
                    guard propertyLength == MinRateLayout.size,
                        let minRate = try? one.header(MinRateLayout.self)
                    else {
                        throw badLength("OFPQT_MIN_RATE of exactly 16")
                    }
                    properties.append(.minRate(minRate[MinRateLayout.rate]))
                } else {
                    properties.append(.other(property: kind, body: Payload(rest(one, from: 8))))
                }
                propertyBits = after
            }
            queues.append(
                PacketQueue(queueID: header[PacketQueueLayout.queueID], properties: properties))
            remaining = next
        }
        return queues
    }
}

extension PhysicalPort {
    init(_ header: Header<PhysicalPortLayout>) {
        self.init(
            portNumber: PortNumber(header[PhysicalPortLayout.portNumber]),
            hardwareAddress: MACAddress(rawValue: header[PhysicalPortLayout.hardwareAddress]),
            name: readText(
                header.bits, at: PhysicalPortLayout.name.offset,
                width: PhysicalPortLayout.name.width),
            config: PortConfig(rawValue: header[PhysicalPortLayout.config]),
            state: PortState(rawValue: header[PhysicalPortLayout.state]),
            current: PortFeatures(rawValue: header[PhysicalPortLayout.current]),
            advertised: PortFeatures(rawValue: header[PhysicalPortLayout.advertised]),
            supported: PortFeatures(rawValue: header[PhysicalPortLayout.supported]),
            peer: PortFeatures(rawValue: header[PhysicalPortLayout.peer]))
    }

    func write(into out: inout Bits) throws(BitsError) {
        let start = out.count
        _ = try out.appendHeader(PhysicalPortLayout.self)
        try write(into: out, at: start)
    }

    /// Writes the port into the (zeroed) 48 bytes at `offset` of `bits`.
    func write(into bits: Bits, at offset: Int) throws(BitsError) {
        var header = try bits.slice(from: offset, length: 48).header(PhysicalPortLayout.self)
        header[PhysicalPortLayout.portNumber] = portNumber.rawValue
        header[PhysicalPortLayout.hardwareAddress] = hardwareAddress.rawValue
        writeText(
            name, into: header.bits, at: PhysicalPortLayout.name.offset,
            width: PhysicalPortLayout.name.width)
        header[PhysicalPortLayout.config] = config.rawValue
        header[PhysicalPortLayout.state] = state.rawValue
        header[PhysicalPortLayout.current] = current.rawValue
        header[PhysicalPortLayout.advertised] = advertised.rawValue
        header[PhysicalPortLayout.supported] = supported.rawValue
        header[PhysicalPortLayout.peer] = peer.rawValue
    }
}

// MARK: - Encoding

enum BodyEncoder {
    /// Appends a zeroed `Layout` with the header's version, type and xid set.
    static func begin<Layout: HeaderLayout>(
        _ out: inout Bits, _: Layout.Type, _ message: Message
    ) throws(BitsError) -> Header<Layout> {
        var header = try out.appendHeader(Layout.self)
        header[OFHeader.version] = openFlowVersion
        header[OFHeader.type] = message.type.rawValue
        header[OFHeader.xid] = message.xid
        return header
    }

    static func writeMatch(_ match: Match, into bits: Bits, at offset: Int) throws(BitsError) {
        var header = try bits.slice(from: offset, length: MatchLayout.size).header(MatchLayout.self)
        match.write(into: &header)
    }

    static func writeActions(_ actions: [Action], into out: inout Bits) throws(BitsError) {
        for action in actions { try action.encode(into: &out) }
    }

    static func encode(_ message: Message, into out: inout Bits) throws(BitsError) {
        switch message.body {
        case .hello(let data), .echoRequest(let data), .echoReply(let data):
            _ = try begin(&out, OFHeader.self, message)
            try out.append(contentsOf: data.bits)
        case .featuresRequest, .getConfigRequest, .barrierRequest, .barrierReply:
            _ = try begin(&out, OFHeader.self, message)
        case .error(let error):
            var header = try begin(&out, ErrorLayout.self, message)
            header[ErrorLayout.type] = error.kind.type
            header[ErrorLayout.code] = error.kind.code
            try out.append(contentsOf: error.data.bits)
        case .vendor(let vendor, let body):
            var header = try begin(&out, VendorLayout.self, message)
            header[VendorLayout.vendor] = vendor
            try out.append(contentsOf: body.bits)
        case .featuresReply(let features):
            var header = try begin(&out, FeaturesLayout.self, message)
            header[FeaturesLayout.datapathID] = features.datapathID
            header[FeaturesLayout.bufferCount] = features.bufferCount
            header[FeaturesLayout.tableCount] = features.tableCount
            header[FeaturesLayout.capabilities] = features.capabilities.rawValue
            header[FeaturesLayout.actions] = features.actions.rawValue
            for port in features.ports { try port.write(into: &out) }
        case .getConfigReply(let config), .setConfig(let config):
            var header = try begin(&out, ConfigLayout.self, message)
            header[ConfigLayout.flags] = config.flags.rawValue
            header[ConfigLayout.missSendLength] = config.missSendLength
        case .packetIn(let packetIn):
            var header = try begin(&out, PacketInLayout.self, message)
            header[PacketInLayout.bufferID] = packetIn.bufferID
            header[PacketInLayout.totalLength] = packetIn.totalLength
            header[PacketInLayout.inPort] = packetIn.inPort.rawValue
            header[PacketInLayout.reason] = packetIn.reason.rawValue
            try out.append(contentsOf: packetIn.data.bits)
        case .flowRemoved(let removed):
            var header = try begin(&out, FlowRemovedLayout.self, message)
            try writeMatch(removed.match, into: header.bits, at: FlowRemovedLayout.match)
            header[FlowRemovedLayout.cookie] = removed.cookie
            header[FlowRemovedLayout.priority] = removed.priority
            header[FlowRemovedLayout.reason] = removed.reason.rawValue
            header[FlowRemovedLayout.durationSeconds] = removed.durationSeconds
            header[FlowRemovedLayout.durationNanoseconds] = removed.durationNanoseconds
            header[FlowRemovedLayout.idleTimeout] = removed.idleTimeout
            header[FlowRemovedLayout.packetCount] = removed.packetCount
            header[FlowRemovedLayout.byteCount] = removed.byteCount
        case .portStatus(let status):
            var header = try begin(&out, PortStatusLayout.self, message)
            header[PortStatusLayout.reason] = status.reason.rawValue
            try status.port.write(into: header.bits, at: PortStatusLayout.port)
        case .packetOut(let packetOut):
            let start = out.count
            var header = try begin(&out, PacketOutLayout.self, message)
            header[PacketOutLayout.bufferID] = packetOut.bufferID
            header[PacketOutLayout.inPort] = packetOut.inPort.rawValue
            try writeActions(packetOut.actions, into: &out)
            header[PacketOutLayout.actionsLength] = UInt16(
                truncatingIfNeeded: out.count - start - 16)
            try out.append(contentsOf: packetOut.data.bits)
        case .flowMod(let flowMod):
            var header = try begin(&out, FlowModLayout.self, message)
            try writeMatch(flowMod.match, into: header.bits, at: FlowModLayout.match)
            header[FlowModLayout.cookie] = flowMod.cookie
            header[FlowModLayout.command] = flowMod.command.rawValue
            header[FlowModLayout.idleTimeout] = flowMod.idleTimeout
            header[FlowModLayout.hardTimeout] = flowMod.hardTimeout
            header[FlowModLayout.priority] = flowMod.priority
            header[FlowModLayout.bufferID] = flowMod.bufferID
            header[FlowModLayout.outPort] = flowMod.outPort.rawValue
            header[FlowModLayout.flags] = flowMod.flags.rawValue
            try writeActions(flowMod.actions, into: &out)
        case .portMod(let portMod):
            var header = try begin(&out, PortModLayout.self, message)
            header[PortModLayout.portNumber] = portMod.portNumber.rawValue
            header[PortModLayout.hardwareAddress] = portMod.hardwareAddress.rawValue
            header[PortModLayout.config] = portMod.config.rawValue
            header[PortModLayout.mask] = portMod.mask.rawValue
            header[PortModLayout.advertise] = portMod.advertise.rawValue
        case .statsRequest(let request, let flags):
            var header = try begin(&out, StatsLayout.self, message)
            header[StatsLayout.type] = request.type.rawValue
            header[StatsLayout.flags] = flags
            try encodeStatsRequest(request, into: &out)
        case .statsReply(let reply, let flags):
            var header = try begin(&out, StatsLayout.self, message)
            header[StatsLayout.type] = reply.type.rawValue
            header[StatsLayout.flags] = flags.rawValue
            try encodeStatsReply(reply, into: &out)
        case .queueGetConfigRequest(let port):
            var header = try begin(&out, QueueGetConfigRequestLayout.self, message)
            header[QueueGetConfigRequestLayout.port] = port.rawValue
        case .queueGetConfigReply(let port, let queues):
            var header = try begin(&out, QueueGetConfigReplyLayout.self, message)
            header[QueueGetConfigReplyLayout.port] = port.rawValue
            for queue in queues {
                let start = out.count
                var queueHeader = try out.appendHeader(PacketQueueLayout.self)
                queueHeader[PacketQueueLayout.queueID] = queue.queueID
                for property in queue.properties {
                    switch property {
                    case .minRate(let rate):
                        var minRate = try out.appendHeader(MinRateLayout.self)
                        minRate[QueuePropertyLayout.property] = 1
                        minRate[QueuePropertyLayout.length] = 16
                        minRate[MinRateLayout.rate] = rate
                    case .other(let kind, let body):
                        var header = try out.appendHeader(QueuePropertyLayout.self)
                        header[QueuePropertyLayout.property] = kind
                        header[QueuePropertyLayout.length] = UInt16(
                            truncatingIfNeeded: 8 + body.count)
                        try out.append(contentsOf: body.bits)
                    }
                }
                queueHeader[PacketQueueLayout.length] = UInt16(
                    truncatingIfNeeded: out.count - start)
            }
        }
    }

    static func encodeStatsRequest(_ request: StatsRequest, into out: inout Bits) throws(BitsError)
    {
        switch request {
        case .description, .table: break
        case .flow(let flow), .aggregate(let flow):
            var header = try out.appendHeader(FlowStatsRequestLayout.self)
            try writeMatch(flow.match, into: header.bits, at: FlowStatsRequestLayout.match)
            header[FlowStatsRequestLayout.tableID] = flow.tableID
            header[FlowStatsRequestLayout.outPort] = flow.outPort.rawValue
        case .port(let port):
            var header = try out.appendHeader(PortStatsRequestLayout.self)
            header[PortStatsRequestLayout.port] = port.rawValue
        case .queue(let port, let queueID):
            var header = try out.appendHeader(QueueStatsRequestLayout.self)
            header[QueueStatsRequestLayout.port] = port.rawValue
            header[QueueStatsRequestLayout.queueID] = queueID
        case .vendor(let vendor, let body):
            try out.appendZeros(4)
            try out.write(vendor, at: out.count - 4)
            try out.append(contentsOf: body.bits)
        }
    }

    static func encodeStatsReply(_ reply: StatsReply, into out: inout Bits) throws(BitsError) {
        switch reply {
        case .description(let description):
            let header = try out.appendHeader(DescriptionLayout.self)
            let texts = [
                description.manufacturer, description.hardware, description.software,
                description.serialNumber, description.datapath,
            ]
            for (text, (offset, width)) in zip(texts, DescriptionLayout.texts) {
                writeText(text, into: header.bits, at: offset, width: width)
            }
        case .flow(let entries):
            for entry in entries {
                let start = out.count
                var header = try out.appendHeader(FlowStatsLayout.self)
                header[FlowStatsLayout.tableID] = entry.tableID
                try writeMatch(entry.match, into: header.bits, at: FlowStatsLayout.match)
                header[FlowStatsLayout.durationSeconds] = entry.durationSeconds
                header[FlowStatsLayout.durationNanoseconds] = entry.durationNanoseconds
                header[FlowStatsLayout.priority] = entry.priority
                header[FlowStatsLayout.idleTimeout] = entry.idleTimeout
                header[FlowStatsLayout.hardTimeout] = entry.hardTimeout
                header[FlowStatsLayout.cookie] = entry.cookie
                header[FlowStatsLayout.packetCount] = entry.packetCount
                header[FlowStatsLayout.byteCount] = entry.byteCount
                try writeActions(entry.actions, into: &out)
                header[FlowStatsLayout.length] = UInt16(truncatingIfNeeded: out.count - start)
            }
        case .aggregate(let aggregate):
            var header = try out.appendHeader(AggregateLayout.self)
            header[AggregateLayout.packetCount] = aggregate.packetCount
            header[AggregateLayout.byteCount] = aggregate.byteCount
            header[AggregateLayout.flowCount] = aggregate.flowCount
        case .table(let tables):
            for table in tables {
                var header = try out.appendHeader(TableStatsLayout.self)
                header[TableStatsLayout.tableID] = table.tableID
                writeText(
                    table.name, into: header.bits, at: TableStatsLayout.name.offset,
                    width: TableStatsLayout.name.width)
                header[TableStatsLayout.wildcards] = table.wildcards.rawValue
                header[TableStatsLayout.maxEntries] = table.maxEntries
                header[TableStatsLayout.activeCount] = table.activeCount
                header[TableStatsLayout.lookupCount] = table.lookupCount
                header[TableStatsLayout.matchedCount] = table.matchedCount
            }
        case .port(let ports):
            for port in ports {
                var header = try out.appendHeader(PortStatsLayout.self)
                header[PortStatsLayout.port] = port.portNumber.rawValue
                for (field, value) in zip(PortStatsLayout.counters, port.counters) {
                    header[field] = value
                }
            }
        case .queue(let queues):
            for queue in queues {
                var header = try out.appendHeader(QueueStatsLayout.self)
                header[QueueStatsLayout.port] = queue.portNumber.rawValue
                header[QueueStatsLayout.queueID] = queue.queueID
                header[QueueStatsLayout.txBytes] = queue.txBytes
                header[QueueStatsLayout.txPackets] = queue.txPackets
                header[QueueStatsLayout.txErrors] = queue.txErrors
            }
        case .vendor(let vendor, let body):
            try out.appendZeros(4)
            try out.write(vendor, at: out.count - 4)
            try out.append(contentsOf: body.bits)
        }
    }
}
