// Readable text for OpenFlow messages, in the style of `ovs-ofctl ofp-print`.

import OasisBits

/// Text for OpenFlow 1.0 messages in the style of `ovs-ofctl ofp-print`: the first
/// line names the message and its xid exactly as Open vSwitch does
/// (`OFPT_FLOW_MOD (xid=0x19): ADD priority=100,in_port=1 actions=output:2`).
public enum OpenFlowPrinter {
    /// A description of `message`, one or more lines.
    public static func describe(_ message: Message) -> String {
        let xid = "(xid=0x\(String(message.xid, radix: 16)))"
        switch message.body {
        case .hello(let data):
            return "OFPT_HELLO \(xid):\n version bitmap: 0x01" + bytesSuffix(data)
        case .error(let error):
            return "OFPT_ERROR \(xid): \(error.kind)" + bytesSuffix(error.data)
        case .echoRequest(let data):
            return "OFPT_ECHO_REQUEST \(xid): \(data.count) bytes of payload"
        case .echoReply(let data):
            return "OFPT_ECHO_REPLY \(xid): \(data.count) bytes of payload"
        case .vendor(let vendor, let body):
            return "OFPT_VENDOR \(xid): vendor=0x\(String(vendor, radix: 16))" + bytesSuffix(body)
        case .featuresRequest: return "OFPT_FEATURES_REQUEST \(xid):"
        case .featuresReply(let features):
            let dpid = String(features.datapathID, radix: 16)
            var lines = [
                "OFPT_FEATURES_REPLY \(xid): dpid:\(String(repeating: "0", count: 16 - dpid.count))\(dpid)",
                "n_tables:\(features.tableCount), n_buffers:\(features.bufferCount)",
                "capabilities: 0x\(String(features.capabilities.rawValue, radix: 16))",
                "actions: 0x\(String(features.actions.rawValue, radix: 16))",
            ]
            lines += features.ports.map(describe(port:))
            return lines.joined(separator: "\n")
        case .getConfigRequest: return "OFPT_GET_CONFIG_REQUEST \(xid):"
        case .getConfigReply(let config):
            return "OFPT_GET_CONFIG_REPLY \(xid): \(describe(config: config))"
        case .setConfig(let config): return "OFPT_SET_CONFIG \(xid): \(describe(config: config))"
        case .packetIn(let packetIn):
            let reason =
                packetIn.reason == .noMatch
                ? "no_match"
                : packetIn.reason == .action ? "action" : String(packetIn.reason.rawValue)
            let buffer =
                packetIn.bufferID == noBuffer
                ? "(unbuffered)" : "buffer=0x\(hex8(packetIn.bufferID))"
            let tuple = Match(frame: packetIn.data.bits, inPort: packetIn.inPort)
            return
                "OFPT_PACKET_IN \(xid): total_len=\(packetIn.totalLength) in_port=\(packetIn.inPort) (via \(reason)) data_len=\(packetIn.data.count) \(buffer)\n"
                + describe(match: tuple)
        case .flowRemoved(let removed):
            let reasons = ["idle", "hard", "delete"]
            let reason =
                removed.reason.rawValue < 3
                ? reasons[Int(removed.reason.rawValue)] : String(removed.reason.rawValue)
            return
                "OFPT_FLOW_REMOVED \(xid): priority=\(removed.priority),\(describe(match: removed.match)) reason=\(reason) cookie:0x\(String(removed.cookie, radix: 16)) duration\(removed.durationSeconds).\(String(removed.durationNanoseconds / 1_000_000))s idle\(removed.idleTimeout) pkts\(removed.packetCount) bytes\(removed.byteCount)"
        case .portStatus(let status):
            let reasons = ["ADD", "DEL", "MOD"]
            let reason =
                status.reason.rawValue < 3
                ? reasons[Int(status.reason.rawValue)] : String(status.reason.rawValue)
            return "OFPT_PORT_STATUS \(xid): \(reason):\(describe(port: status.port))"
        case .packetOut(let packetOut):
            let buffer =
                packetOut.bufferID == noBuffer
                ? "data_len=\(packetOut.data.count)" : "buffer=0x\(hex8(packetOut.bufferID))"
            return
                "OFPT_PACKET_OUT \(xid): in_port=\(packetOut.inPort) actions=\(describe(actions: packetOut.actions)) \(buffer)"
        case .flowMod(let flowMod):
            let commands = ["ADD", "MOD", "MOD_STRICT", "DEL", "DEL_STRICT"]
            var text =
                "OFPT_FLOW_MOD \(xid): \(commands[Int(flowMod.command.rawValue)]) priority=\(flowMod.priority),\(describe(match: flowMod.match))"
            if flowMod.cookie != 0 { text += " cookie:0x\(String(flowMod.cookie, radix: 16))" }
            if flowMod.idleTimeout != 0 { text += " idle:\(flowMod.idleTimeout)" }
            if flowMod.hardTimeout != 0 { text += " hard:\(flowMod.hardTimeout)" }
            if flowMod.bufferID != noBuffer {
                text += " buf:0x\(String(flowMod.bufferID, radix: 16))"
            }
            if flowMod.outPort != .none { text += " out_port:\(flowMod.outPort)" }
            if flowMod.flags.contains(.sendFlowRemoved) { text += " send_flow_rem" }
            if flowMod.flags.contains(.checkOverlap) { text += " check_overlap" }
            if flowMod.flags.contains(.emergency) { text += " emergency" }
            return text + " actions=\(describe(actions: flowMod.actions))"
        case .portMod(let portMod):
            return
                "OFPT_PORT_MOD \(xid): port: \(portMod.portNumber): addr:\(portMod.hardwareAddress)\n     config: 0x\(String(portMod.config.rawValue, radix: 16))\n     mask:   0x\(String(portMod.mask.rawValue, radix: 16))\n     advertise: 0x\(String(portMod.advertise.rawValue, radix: 16))"
        case .statsRequest(let request, _):
            return "\(statsName(request.type)) request \(xid):" + describe(request: request)
        case .statsReply(let reply, let flags):
            return "\(statsName(reply.type)) reply \(xid):"
                + (flags.contains(.more) ? " flags=[more]" : "") + describe(reply: reply)
        case .barrierRequest: return "OFPT_BARRIER_REQUEST \(xid):"
        case .barrierReply: return "OFPT_BARRIER_REPLY \(xid):"
        case .queueGetConfigRequest(let port):
            return "OFPT_QUEUE_GET_CONFIG_REQUEST \(xid): port=\(port)"
        case .queueGetConfigReply(let port, let queues):
            var lines = ["OFPT_QUEUE_GET_CONFIG_REPLY \(xid): port=\(port)"]
            for queue in queues {
                let properties = queue.properties.map { property -> String in
                    switch property {
                    case .minRate(let rate):
                        rate > 1000 ? "min_rate:disabled" : "min_rate:\(rate / 10).\(rate % 10)%"
                    case .other(let kind, let body): "property \(kind) (\(body.count) bytes)"
                    }
                }
                lines.append("queue \(queue.queueID):" + properties.map { " " + $0 }.joined())
            }
            return lines.joined(separator: "\n")
        }
    }

    /// A match in `ovs-ofctl` flow syntax (`tcp,in_port=1,nw_src=10.0.0.0/24,tp_dst=80`);
    /// wildcarded fields are left out.
    public static func describe(match: Match) -> String {
        let w = match.wildcards
        var parts: [String] = []
        if !w.contains(.inPort) { parts.append("in_port=\(match.inPort)") }
        if !w.contains(.dlVlan) {
            parts.append("dl_vlan=\(match.dlVlan == vlanNone ? "0xffff" : String(match.dlVlan))")
        }
        if !w.contains(.dlVlanPcp) { parts.append("dl_vlan_pcp=\(match.dlVlanPcp)") }
        if !w.contains(.dlSrc) { parts.append("dl_src=\(match.dlSrc)") }
        if !w.contains(.dlDst) { parts.append("dl_dst=\(match.dlDst)") }
        if !w.contains(.dlType) { parts.append("dl_type=0x\(String(match.dlType, radix: 16))") }
        let source = 32 - min(32, w.nwSrcIgnoredBits)
        let destination = 32 - min(32, w.nwDstIgnoredBits)
        if source > 0 {
            parts.append(
                "nw_src=\(ipv4Description(match.nwSrc))" + (source < 32 ? "/\(source)" : ""))
        }
        if destination > 0 {
            parts.append(
                "nw_dst=\(ipv4Description(match.nwDst))"
                    + (destination < 32 ? "/\(destination)" : ""))
        }
        if !w.contains(.nwProto) { parts.append("nw_proto=\(match.nwProto)") }
        if !w.contains(.nwTos) { parts.append("nw_tos=\(match.nwTos)") }
        if !w.contains(.tpSrc) { parts.append("tp_src=\(match.tpSrc)") }
        if !w.contains(.tpDst) { parts.append("tp_dst=\(match.tpDst)") }
        return parts.joined(separator: ",")
    }

    /// Actions in `ovs-ofctl` syntax (`output:2,CONTROLLER:128,strip_vlan`); `drop` when empty.
    public static func describe(actions: [Action]) -> String {
        if actions.isEmpty { return "drop" }
        return actions.map { action -> String in
            switch action {
            case .output(let port, let maxLength):
                if port == .controller { return "CONTROLLER:\(maxLength)" }
                return port.rawValue < PortNumber.max.rawValue ? "output:\(port)" : port.description
            case .setVLANID(let vid): return "mod_vlan_vid:\(vid)"
            case .setVLANPriority(let pcp): return "mod_vlan_pcp:\(pcp)"
            case .stripVLAN: return "strip_vlan"
            case .setDLSource(let address): return "mod_dl_src:\(address)"
            case .setDLDestination(let address): return "mod_dl_dst:\(address)"
            case .setNWSource(let address): return "mod_nw_src:\(ipv4Description(address))"
            case .setNWDestination(let address): return "mod_nw_dst:\(ipv4Description(address))"
            case .setNWToS(let tos): return "mod_nw_tos:\(tos)"
            case .setTPSource(let port): return "mod_tp_src:\(port)"
            case .setTPDestination(let port): return "mod_tp_dst:\(port)"
            case .enqueue(let port, let queue): return "enqueue:\(port):\(queue)"
            case .vendor(let vendor, let body):
                return "vendor:0x\(String(vendor, radix: 16))(\(body.count) bytes)"
            }
        }.joined(separator: ",")
    }

    static func describe(port: PhysicalPort) -> String {
        " \(port.portNumber)(\(port.name)): addr:\(port.hardwareAddress)\n     config:     0x\(String(port.config.rawValue, radix: 16))\n     state:      0x\(String(port.state.rawValue, radix: 16))\n     current:    0x\(String(port.current.rawValue, radix: 16))\n     advertised: 0x\(String(port.advertised.rawValue, radix: 16))\n     supported:  0x\(String(port.supported.rawValue, radix: 16))\n     peer:       0x\(String(port.peer.rawValue, radix: 16))"
    }

    static func describe(config: SwitchConfig) -> String {
        let fragments = ["normal", "drop", "reassemble", "nx-match"][Int(config.flags.rawValue & 3)]
        return "frags=\(fragments) miss_send_len=\(config.missSendLength)"
    }

    static func statsName(_ type: StatsType) -> String {
        switch type {
        case .description: "OFPST_DESC"
        case .flow: "OFPST_FLOW"
        case .aggregate: "OFPST_AGGREGATE"
        case .table: "OFPST_TABLE"
        case .port: "OFPST_PORT"
        case .queue: "OFPST_QUEUE"
        case .vendor: "OFPST_VENDOR"
        }
    }

    static func describe(request: StatsRequest) -> String {
        switch request {
        case .description, .table: ""
        case .flow(let flow), .aggregate(let flow):
            " \(describe(match: flow.match))"
                + (flow.tableID == 0xff ? "" : " table=\(flow.tableID)")
                + (flow.outPort == .none ? "" : " out_port=\(flow.outPort)")
        case .port(let port): " port_no=\(port == .none ? "ANY" : port.description)"
        case .queue(let port, let queue):
            " port=\(port == .all ? "ANY" : port.description) queue=\(queue == 0xffff_ffff ? "ALL" : String(queue))"
        case .vendor(let vendor, let body):
            " vendor=0x\(String(vendor, radix: 16))" + bytesSuffix(body)
        }
    }

    static func describe(reply: StatsReply) -> String {
        switch reply {
        case .description(let description):
            "\nManufacturer: \(description.manufacturer)\nHardware: \(description.hardware)\nSoftware: \(description.software)\nSerial Num: \(description.serialNumber)\nDP Description: \(description.datapath)"
        case .flow(let flows):
            flows.map { flow in
                "\n cookie=0x\(String(flow.cookie, radix: 16)), duration=\(flow.durationSeconds)s, table=\(flow.tableID), n_packets=\(flow.packetCount), n_bytes=\(flow.byteCount), idle_timeout=\(flow.idleTimeout), hard_timeout=\(flow.hardTimeout), priority=\(flow.priority),\(describe(match: flow.match)) actions=\(describe(actions: flow.actions))"
            }.joined()
        case .aggregate(let aggregate):
            " packet_count=\(aggregate.packetCount) byte_count=\(aggregate.byteCount) flow_count=\(aggregate.flowCount)"
        case .table(let tables):
            tables.map { table in
                "\n  table \(table.tableID) (\"\(table.name)\"): active=\(table.activeCount), lookup=\(table.lookupCount), matched=\(table.matchedCount), max_entries=\(table.maxEntries)"
            }.joined()
        case .port(let ports):
            " \(ports.count) ports"
                + ports.map { port in
                    "\n  port \(port.portNumber): rx pkts=\(port.rxPackets), bytes=\(port.rxBytes), drop=\(port.rxDropped), errs=\(port.rxErrors); tx pkts=\(port.txPackets), bytes=\(port.txBytes), drop=\(port.txDropped), errs=\(port.txErrors)"
                }.joined()
        case .queue(let queues):
            " \(queues.count) queues"
                + queues.map { queue in
                    "\n  port \(queue.portNumber) queue \(queue.queueID): bytes=\(queue.txBytes), pkts=\(queue.txPackets), errors=\(queue.txErrors)"
                }.joined()
        case .vendor(let vendor, let body):
            " vendor=0x\(String(vendor, radix: 16))" + bytesSuffix(body)
        }
    }

    static func bytesSuffix(_ data: Payload) -> String {
        data.isEmpty ? "" : "\n\(data.count) bytes: \(data)"
    }

    static func hex8(_ value: UInt32) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 8 - text.count) + text
    }
}
