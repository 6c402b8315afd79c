import OasisBits
import Testing

@testable import OasisOpenFlow

@Suite("Encoding and decoding every OpenFlow 1.0 message")
struct CodecTests {
    @Test(
        "decode(encode(x)) == x and encode(decode(bytes)) == bytes",
        arguments: 0..<sampleBodies.count)
    func roundTrip(index: Int) throws {
        let message = sampleMessages[index]
        let bits = try message.encoded()
        #expect(Int(try bits.read(UInt16.self, at: 2)) == bits.count)
        let decoded = try Message.decode(bits)
        #expect(decoded == message)
        #expect(try decoded.encoded().copyBytes() == bits.copyBytes())
    }

    @Test func everyTypeIsSampled() {
        let types = Set(sampleMessages.map(\.type))
        #expect(types == Set(MessageType.allCases))
        let commands = Set(
            sampleBodies.compactMap { body -> FlowModCommand? in
                if case .flowMod(let flowMod) = body { return flowMod.command }
                return nil
            })
        #expect(commands == Set(FlowModCommand.allCases))
        let statsTypes = Set(
            sampleBodies.compactMap { body -> StatsType? in
                if case .statsReply(let reply, _) = body { return reply.type }
                return nil
            })
        #expect(statsTypes == Set(StatsType.allCases))
    }

    @Test func sizesMatchTheSpecification() throws {
        func length(_ body: MessageBody) throws -> Int {
            try Message(xid: 0, body: body).encoded().count
        }
        #expect(try length(.hello()) == 8)
        #expect(
            try length(
                .featuresReply(
                    SwitchFeatures(
                        datapathID: 1, bufferCount: 0, tableCount: 1, capabilities: [], actions: [],
                        ports: [samplePort]))) == 32 + 48)
        #expect(try length(.flowMod(FlowMod(match: .any, command: .add))) == 72)
        #expect(
            try length(
                .flowRemoved(
                    FlowRemoved(
                        match: .any, cookie: 0, priority: 0, reason: .delete, durationSeconds: 0,
                        durationNanoseconds: 0, idleTimeout: 0, packetCount: 0, byteCount: 0)))
                == 88)
        #expect(try length(.portStatus(PortStatus(reason: .add, port: samplePort))) == 64)
        #expect(
            try length(
                .portMod(
                    PortMod(portNumber: PortNumber(1), hardwareAddress: .zero, config: [], mask: [])
                )) == 32)
        #expect(try length(.packetOut(PacketOut(actions: []))) == 16)
        #expect(
            try length(
                .packetIn(
                    PacketIn(
                        totalLength: 0, inPort: PortNumber(1), reason: .noMatch, data: Payload())))
                == 18)
        #expect(try length(.setConfig(SwitchConfig())) == 12)
        #expect(try length(.statsRequest(.flow(FlowStatsRequest()))) == 12 + 44)
        #expect(
            try length(
                .statsReply(
                    .description(
                        DescriptionStats(
                            manufacturer: "", hardware: "", software: "", serialNumber: "",
                            datapath: "")))) == 12 + 1056)
        #expect(
            try length(
                .statsReply(
                    .flow([
                        FlowStats(
                            tableID: 0, match: .any, durationSeconds: 0, durationNanoseconds: 0,
                            priority: 0, idleTimeout: 0, hardTimeout: 0, cookie: 0, packetCount: 0,
                            byteCount: 0, actions: [])
                    ]))) == 12 + 88)
        #expect(
            try length(
                .statsReply(.aggregate(AggregateStats(packetCount: 0, byteCount: 0, flowCount: 0))))
                == 12 + 24)
        #expect(
            try length(
                .statsReply(
                    .table([
                        TableStats(
                            tableID: 0, name: "", wildcards: [], maxEntries: 0, activeCount: 0,
                            lookupCount: 0, matchedCount: 0)
                    ]))) == 12 + 64)
        #expect(try length(.statsReply(.port([PortStats(portNumber: PortNumber(1))]))) == 12 + 104)
        #expect(
            try length(
                .statsReply(
                    .queue([
                        QueueStats(
                            portNumber: PortNumber(1), queueID: 0, txBytes: 0, txPackets: 0,
                            txErrors: 0)
                    ]))) == 12 + 32)
        #expect(try length(.queueGetConfigRequest(port: PortNumber(1))) == 12)
        #expect(
            try length(
                .queueGetConfigReply(
                    port: PortNumber(1),
                    queues: [PacketQueue(queueID: 1, properties: [.minRate(1)])])) == 16 + 8 + 16)
        var actions = Bits([], headroom: 0)
        for action in allActions { try action.encode(into: &actions) }
        #expect(actions.count == allActions.map(\.type.wireLength).reduce(0, +))
        #expect(actions.count == 8 * 16 + 16 * 3)
    }

    /// Bytes written by hand from the specification's structures.
    @Test func decodesLiteralVectors() throws {
        let flowMod = hex(
            """
            01 0e 00 50 00 00 00 2a
            00 3f ff fe 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 00 00 00 00 00 00 00
            00 00 00 00 00 00 00 07  00 00 00 05 00 00 00 64 ff ff ff ff ff ff 00 01
            00 00 00 08 00 02 00 00
            """)
        let message = try Message.decode(Bits(flowMod))
        #expect(message.xid == 42)
        guard case .flowMod(let mod) = message.body else {
            Issue.record("not a flow mod: \(message)")
            return
        }
        #expect(mod.match.wildcards.rawValue == 0x003f_fffe)
        #expect(mod.match.inPort == PortNumber(3))
        #expect(
            mod.cookie == 7 && mod.command == .add && mod.idleTimeout == 5 && mod.priority == 100)
        #expect(mod.flags == [.sendFlowRemoved])
        #expect(mod.actions == [.output(port: PortNumber(2))])
        #expect(try message.encoded().copyBytes() == flowMod)

        let hello = try Message.decode(Bits(hex("01 00 00 08 00 00 00 01")))
        #expect(hello == Message(xid: 1, body: .hello()))
    }

    @Test func unknownErrorCodesArePreserved() throws {
        let bytes = hex("01 01 00 0c 00 00 00 05 00 01 00 63")
        let message = try Message.decode(Bits(bytes))
        #expect(message.body == .error(ErrorMessage(kind: .unknown(type: 1, code: 99))))
        #expect(try message.encoded().copyBytes() == bytes)
        let vendorType = try Message.decode(Bits(hex("01 01 00 0c 00 00 00 05 b0 c2 00 01")))
        #expect(vendorType.body == .error(ErrorMessage(kind: .unknown(type: 0xb0c2, code: 1))))
        for type in UInt16(0)...5 {
            for code in UInt16(0)...9 {
                let kind = ErrorKind(type: type, code: code)
                #expect(kind.type == type && kind.code == code)
            }
        }
    }

    @Test func vendorActionRoundTrips() throws {
        let message = Message(
            xid: 9,
            body: .packetOut(PacketOut(actions: [vendorAction, .output(port: PortNumber(1))])))
        #expect(try Message.decode(message.encoded()) == message)
    }

    @Test func packetInDataIsAViewOfTheMessage() throws {
        let bits = try sampleMessages.first { $0.type == .packetIn }!.encoded()
        guard case .packetIn(let packetIn) = try Message.decode(bits).body else {
            Issue.record("not a packet-in")
            return
        }
        #expect(packetIn.data.bits.buffer === bits.buffer)
        #expect(packetIn.data.bits.offset == bits.offset + 18)
    }

    @Test func encodingIntoATooSmallViewFailsAndLeavesItUnchanged() throws {
        let buffer = Buffer()
        var small = try Bits(buffer: buffer, offset: 4096 - 20, count: 4)
        let message = Message(xid: 1, body: .flowMod(FlowMod(match: .any, command: .add)))
        #expect(throws: OpenFlowError.self) { try message.encode(into: &small) }
        #expect(small.count == 4)
    }
}
