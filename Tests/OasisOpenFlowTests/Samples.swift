// One or more sample messages of every OpenFlow 1.0 type, shared by the round-trip and
// peer tests.

import OasisBits
import OasisWire

@testable import OasisOpenFlow

func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { $0.isHexDigit })
    return stride(from: 0, to: digits.count - 1, by: 2).map {
        UInt8(String(digits[$0...$0 + 1]), radix: 16)!
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// A small TCP/IPv4 frame (60 bytes) for PACKET_IN/PACKET_OUT data.
let sampleFrame: [UInt8] = hex(
    """
    00 00 00 00 00 02 00 00 00 00 00 01 08 00
    45 10 00 2c 00 01 00 00 40 06 f9 68 0a 00 00 01 0a 00 00 02
    30 39 00 50 00 00 00 01 00 00 00 00 60 02 20 00 00 00 00 00 02 04 05 b4 00 00
    """)

let samplePort = PhysicalPort(
    portNumber: PortNumber(1), hardwareAddress: MACAddress(rawValue: 0x0200_0000_0001),
    name: "eth1", config: [.noFlood], state: [.stpForward],
    current: [.full1Gb, .copper], advertised: [.full1Gb, .autoNegotiation],
    supported: [.full1Gb, .full100Mb, .copper], peer: [])

let sampleMatch = Match(
    wildcards: Wildcards(
        rawValue: Wildcards.tpSrc.rawValue | (8 << 8) | Wildcards.dlVlanPcp.rawValue),
    inPort: PortNumber(1), dlSrc: MACAddress(rawValue: 0x0000_0000_0001),
    dlDst: MACAddress(rawValue: 0x0000_0000_0002), dlVlan: 10, dlType: 0x0800, nwTos: 0x10,
    nwProto: 6, nwSrc: 0x0a00_0000, nwDst: 0x0a00_0002, tpDst: 80)

var allActions: [Action] {
    [
        .output(port: PortNumber(2), maxLength: 0), .output(port: .controller, maxLength: 128),
        .output(port: .inPort), .output(port: .table), .output(port: .normal),
        .output(port: .flood),
        .output(port: .all), .output(port: .local),
        .setVLANID(42), .setVLANPriority(5), .stripVLAN,
        .setDLSource(MACAddress(rawValue: 0x0200_0000_00aa)),
        .setDLDestination(MACAddress(rawValue: 0x0200_0000_00bb)),
        .setNWSource(0xc000_0201), .setNWDestination(0xc000_0202), .setNWToS(0x20),
        .setTPSource(1234), .setTPDestination(4321), .enqueue(port: PortNumber(3), queueID: 7),
    ]
}

var vendorAction: Action { .vendor(0x0000_2320, body: Payload(hex("0000000000000000"))) }

/// Every message type, most with their variants (the xid is the index + 1).
var sampleBodies: [MessageBody] {
    [
        .hello(),
        .error(
            ErrorMessage(kind: .helloFailed(.incompatible), data: Payload(Array("no version".utf8)))
        ),
        .error(ErrorMessage(kind: .badRequest(.badType), data: Payload(hex("01ff000800000001")))),
        .error(ErrorMessage(kind: .badAction(.badOutPort), data: Payload(hex("010e004800000002")))),
        .error(ErrorMessage(kind: .flowModFailed(.overlap), data: Payload())),
        .error(ErrorMessage(kind: .portModFailed(.badHardwareAddress), data: Payload())),
        .error(ErrorMessage(kind: .queueOperationFailed(.badQueue), data: Payload())),
        .echoRequest(Payload([1, 2, 3, 4])),
        .echoReply(Payload([1, 2, 3, 4])),
        .vendor(0x0000_2320, body: Payload(hex("0000000b00000000"))),
        .featuresRequest,
        .featuresReply(
            SwitchFeatures(
                datapathID: 0x0000_0200_0000_0001, bufferCount: 256, tableCount: 254,
                capabilities: [.flowStats, .tableStats, .portStats, .queueStats, .arpMatchIP],
                actions: .all,
                ports: [
                    samplePort,
                    PhysicalPort(
                        portNumber: .local, hardwareAddress: MACAddress(rawValue: 0x0200_0000_0000),
                        name: "br0", config: [.portDown], state: [.linkDown]),
                ])),
        .getConfigRequest,
        .getConfigReply(SwitchConfig(flags: .fragmentNormal, missSendLength: 128)),
        .setConfig(SwitchConfig(flags: .fragmentDrop, missSendLength: 0xffff)),
        .packetIn(
            PacketIn(
                bufferID: 0x100, totalLength: 60, inPort: PortNumber(1), reason: .noMatch,
                data: Payload(sampleFrame))),
        .packetIn(
            PacketIn(
                totalLength: 60, inPort: PortNumber(2), reason: .action, data: Payload(sampleFrame))
        ),
        .flowRemoved(
            FlowRemoved(
                match: sampleMatch, cookie: 0x1234, priority: 100, reason: .idleTimeout,
                durationSeconds: 12, durationNanoseconds: 345_000_000, idleTimeout: 10,
                packetCount: 5, byteCount: 300)),
        .flowRemoved(
            FlowRemoved(
                match: .any, cookie: 0, priority: 0x8000, reason: .delete, durationSeconds: 1,
                durationNanoseconds: 0, idleTimeout: 0, packetCount: 0, byteCount: 0)),
        .portStatus(PortStatus(reason: .add, port: samplePort)),
        .portStatus(PortStatus(reason: .modify, port: samplePort)),
        .portStatus(PortStatus(reason: .delete, port: samplePort)),
        .packetOut(
            PacketOut(
                inPort: PortNumber(1), actions: [.output(port: .flood)], data: Payload(sampleFrame))
        ),
        .packetOut(
            PacketOut(
                bufferID: 0x100, inPort: PortNumber(1), actions: [.output(port: PortNumber(2))])),
        .flowMod(
            FlowMod(
                match: sampleMatch, cookie: 0xabcd, command: .add, idleTimeout: 10, hardTimeout: 30,
                priority: 100, flags: [.sendFlowRemoved, .checkOverlap], actions: allActions)),
        .flowMod(
            FlowMod(match: sampleMatch, command: .modify, actions: [.output(port: PortNumber(3))])),
        .flowMod(
            FlowMod(
                match: sampleMatch, command: .modifyStrict, priority: 100,
                actions: [.stripVLAN, .output(port: PortNumber(3))])),
        .flowMod(FlowMod(match: .any, command: .delete)),
        .flowMod(
            FlowMod(
                match: sampleMatch, command: .deleteStrict, priority: 100, outPort: PortNumber(2),
                flags: [.emergency])),
        .portMod(
            PortMod(
                portNumber: PortNumber(1), hardwareAddress: MACAddress(rawValue: 0x0200_0000_0001),
                config: [.noFlood], mask: [.noFlood, .portDown], advertise: [.full1Gb])),
        .statsRequest(.description),
        .statsRequest(.flow(FlowStatsRequest(match: sampleMatch, tableID: 0xff, outPort: .none))),
        .statsRequest(.aggregate(FlowStatsRequest())),
        .statsRequest(.table),
        .statsRequest(.port(.none)),
        .statsRequest(.queue(port: .all, queueID: 0xffff_ffff)),
        .statsRequest(.vendor(0x0000_2320, body: Payload(hex("0000000100000000")))),
        .statsReply(
            .description(
                DescriptionStats(
                    manufacturer: "Oasis", hardware: "Swift datapath", software: "0.1",
                    serialNumber: "None", datapath: "br0"))),
        .statsReply(
            .flow([
                FlowStats(
                    tableID: 0, match: sampleMatch, durationSeconds: 3, durationNanoseconds: 5,
                    priority: 100, idleTimeout: 10, hardTimeout: 0, cookie: 7, packetCount: 2,
                    byteCount: 120, actions: [.output(port: PortNumber(2))]),
                FlowStats(
                    tableID: 0, match: .any, durationSeconds: 4, durationNanoseconds: 0,
                    priority: 0, idleTimeout: 0, hardTimeout: 0, cookie: 0, packetCount: 0,
                    byteCount: 0, actions: []),
            ]), flags: .more),
        .statsReply(.aggregate(AggregateStats(packetCount: 10, byteCount: 1000, flowCount: 2))),
        .statsReply(
            .table([
                TableStats(
                    tableID: 0, name: "classifier", wildcards: .all, maxEntries: 1_000_000,
                    activeCount: 2, lookupCount: 100, matchedCount: 90)
            ])),
        .statsReply(
            .port([
                {
                    var stats = PortStats(portNumber: PortNumber(1))
                    stats.rxPackets = 10
                    stats.txBytes = 1500
                    stats.collisions = 0
                    stats.rxCRCErrors = .max
                    return stats
                }()
            ])),
        .statsReply(
            .queue([
                QueueStats(
                    portNumber: PortNumber(1), queueID: 1, txBytes: 100, txPackets: 1, txErrors: 0)
            ])),
        .statsReply(.vendor(0x0000_2320, body: Payload(hex("00000001")))),
        .barrierRequest,
        .barrierReply,
        .queueGetConfigRequest(port: PortNumber(1)),
        .queueGetConfigReply(
            port: PortNumber(1),
            queues: [
                PacketQueue(queueID: 1, properties: [.minRate(500)]),
                PacketQueue(queueID: 2, properties: []),
            ]),
    ]
}

var sampleMessages: [Message] {
    sampleBodies.enumerated().map { Message(xid: UInt32($0.offset + 1), body: $0.element) }
}
