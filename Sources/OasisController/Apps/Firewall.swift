// A firewall in front of another application: rules from a file decide which flows
// reach it; the others are dropped by flows installed in the switch.

import OasisOpenFlow
import OasisWire

/// One firewall rule: allow or deny the packets its match covers.
public struct FirewallRule: Equatable, Sendable {
    /// What to do with a packet the rule matches.
    public enum Verdict: String, Sendable {
        /// Hand the packet to the forwarding application.
        case allow
        /// Drop it, and install a flow that drops its flow in the switch.
        case deny
    }

    /// What to do.
    public var verdict: Verdict
    /// Which packets (wildcards for the fields not named).
    public var match: Match
    /// The line of the rules file it came from (0 when built in code).
    public var line: Int

    /// A rule.
    public init(verdict: Verdict, match: Match, line: Int = 0) {
        self.verdict = verdict
        self.match = match
        self.line = line
    }
}

/// What is wrong with a rules file, and where.
public struct FirewallRuleError: Error, Equatable, CustomStringConvertible {
    /// The line (1-based).
    public var line: Int
    /// The problem.
    public var problem: String

    /// An error about `line`.
    public init(line: Int, problem: String) {
        self.line = line
        self.problem = problem
    }

    public var description: String { "line \(line): \(problem)" }
}

/// The firewall: the first rule that matches a packet decides; a packet no rule
/// matches gets ``defaultVerdict``. Allowed packets go to the forwarding application
/// (a ``LearningSwitch`` by default); denied ones are dropped, and a drop flow for the
/// packet's exact 12-tuple (no actions, ``idleTimeout``, a priority above the
/// forwarding application's) keeps the rest of that flow off the controller.
///
/// Rules, one per line (`#` starts a comment), in `ovs-ofctl`'s field names, separated
/// by spaces or commas:
///
/// ```
/// deny tcp nw_dst=10.0.0.2 tp_dst=22      # no ssh to h2
/// deny icmp nw_src=10.0.0.3
/// allow arp
/// deny dl_type=0x86dd                     # no IPv6
/// ```
///
/// Fields: `in_port=N`, `dl_src=MAC`, `dl_dst=MAC`, `dl_type=N`, `dl_vlan=N`,
/// `nw_src=A[/len]`, `nw_dst=A[/len]`, `nw_proto=N`, `nw_tos=N`, `tp_src=N`,
/// `tp_dst=N`; shorthands `ip`, `arp`, `icmp`, `tcp`, `udp`. A line `default deny`
/// (or `default allow`) sets the verdict for packets no rule matches.
///
/// ```swift
/// let firewall = try Firewall(rulesText: text, forwarding: LearningSwitch())
/// controller.add(firewall)
/// ```
public final class Firewall: OpenFlowApplication {
    /// The rules, in order.
    public let rules: [FirewallRule]
    /// The verdict for packets no rule matches.
    public let defaultVerdict: FirewallRule.Verdict
    /// What handles allowed packets and every other event.
    public let forwarding: any OpenFlowApplication
    /// Idle timeout of the drop flows, in seconds.
    public let idleTimeout: UInt16
    /// Packets denied.
    public private(set) var denied: UInt64 = 0
    /// Packets allowed.
    public private(set) var allowed: UInt64 = 0

    /// A firewall with `rules` in front of `forwarding`.
    public init(
        rules: [FirewallRule], defaultVerdict: FirewallRule.Verdict = .allow,
        forwarding: any OpenFlowApplication = LearningSwitch(), idleTimeout: UInt16 = 10
    ) {
        self.rules = rules
        self.defaultVerdict = defaultVerdict
        self.forwarding = forwarding
        self.idleTimeout = idleTimeout
    }

    /// A firewall whose rules are the text of a rules file.
    ///
    /// - Throws: ``FirewallRuleError`` naming the first line that is not a rule.
    public convenience init(
        rulesText: String, forwarding: any OpenFlowApplication = LearningSwitch(),
        idleTimeout: UInt16 = 10
    ) throws(FirewallRuleError) {
        let (rules, verdict) = try Firewall.parse(rulesText)
        self.init(
            rules: rules, defaultVerdict: verdict, forwarding: forwarding, idleTimeout: idleTimeout)
    }

    /// The verdict for a packet's flow.
    public func verdict(for flow: Match) -> FirewallRule.Verdict {
        rules.first { $0.match.matches(flow) }?.verdict ?? defaultVerdict
    }

    public func packetIn(_ event: PacketInEvent, from datapath: Datapath) {
        guard verdict(for: event.flow) == .deny else {
            allowed &+= 1
            forwarding.packetIn(event, from: datapath)
            return
        }
        denied &+= 1
        // No actions: the switch drops the flow's packets, the buffered one included.
        _ = try? datapath.flowMod(
            FlowMod(
                match: event.flow, command: .add, idleTimeout: idleTimeout, priority: 0xc000,
                bufferID: event.packetIn.bufferID, actions: []))
    }

    public func datapathJoined(_ datapath: Datapath) { forwarding.datapathJoined(datapath) }
    public func datapathLeft(_ datapath: Datapath, reason: DisconnectReason) {
        forwarding.datapathLeft(datapath, reason: reason)
    }
    public func flowRemoved(_ removed: FlowRemoved, from datapath: Datapath) {
        forwarding.flowRemoved(removed, from: datapath)
    }
    public func portStatus(_ status: PortStatus, from datapath: Datapath) {
        forwarding.portStatus(status, from: datapath)
    }
    public func statsReply(_ reply: StatsReply, xid: UInt32, from datapath: Datapath) {
        forwarding.statsReply(reply, xid: xid, from: datapath)
    }
    public func error(_ error: ErrorMessage, xid: UInt32, from datapath: Datapath) {
        forwarding.error(error, xid: xid, from: datapath)
    }
    public func barrierReply(xid: UInt32, from datapath: Datapath) {
        forwarding.barrierReply(xid: xid, from: datapath)
    }

    // MARK: - Rules files

    /// Parses a rules file: the rules and the default verdict.
    public static func parse(_ text: String) throws(FirewallRuleError) -> (
        [FirewallRule], FirewallRule.Verdict
    ) {
        var rules: [FirewallRule] = []
        var defaultVerdict = FirewallRule.Verdict.allow
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            let line = index + 1
            let content =
                rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
                .first ?? ""
            let words = content.split(whereSeparator: { " \t,\r".contains($0) }).map(String.init)
            guard let first = words.first else { continue }
            if first == "default" {
                guard words.count == 2, let verdict = FirewallRule.Verdict(rawValue: words[1])
                else {
                    throw FirewallRuleError(line: line, problem: "expected 'default allow|deny'")
                }
                defaultVerdict = verdict
                continue
            }
            guard let verdict = FirewallRule.Verdict(rawValue: first) else {
                throw FirewallRuleError(
                    line: line, problem: "'\(first)' is not allow, deny or default")
            }
            var match = Match()
            for word in words.dropFirst() {
                try apply(word, to: &match, line: line)
            }
            rules.append(FirewallRule(verdict: verdict, match: match, line: line))
        }
        return (rules, defaultVerdict)
    }

    private static func apply(_ word: String, to match: inout Match, line: Int)
        throws(FirewallRuleError)
    {
        func fail(_ problem: String) -> FirewallRuleError {
            FirewallRuleError(line: line, problem: problem)
        }
        func ipProtocol(_ proto: UInt8) {
            match.wildcards.remove([.dlType, .nwProto])
            match.dlType = 0x0800
            match.nwProto = proto
        }
        switch word {
        case "ip":
            match.wildcards.remove(.dlType)
            match.dlType = 0x0800
            return
        case "arp":
            match.wildcards.remove(.dlType)
            match.dlType = 0x0806
            return
        case "icmp": return ipProtocol(1)
        case "tcp": return ipProtocol(6)
        case "udp": return ipProtocol(17)
        default: break
        }
        let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw fail("'\(word)' is not FIELD=VALUE") }
        let (field, value) = (parts[0], parts[1])
        func number<T: FixedWidthInteger>(_: T.Type) throws(FirewallRuleError) -> T {
            let parsed = value.hasPrefix("0x") ? T(value.dropFirst(2), radix: 16) : T(value)
            guard let parsed else {
                throw fail("\(field): '\(value)' is not a \(T.bitWidth)-bit number")
            }
            return parsed
        }
        func mac() throws(FirewallRuleError) -> MACAddress {
            guard let address = MACAddress(value) else {
                throw fail("\(field): '\(value)' is not a MAC")
            }
            return address
        }
        func network() throws(FirewallRuleError) -> (UInt32, ignoredBits: UInt32) {
            let pieces = value.split(separator: "/", maxSplits: 1)
            guard let address = IPv4Address(pieces[0]) else {
                throw fail("\(field): '\(value)' is not an IPv4 address")
            }
            var length: UInt32 = 32
            if pieces.count == 2 {
                guard let parsed = UInt32(pieces[1]), parsed <= 32 else {
                    throw fail("\(field): '/\(pieces[1])' is not a prefix length")
                }
                length = parsed
            }
            return (address.rawValue, 32 - length)
        }
        switch field {
        case "in_port":
            match.inPort = PortNumber(try number(UInt16.self))
            match.wildcards.remove(.inPort)
        case "dl_src":
            match.dlSrc = try mac()
            match.wildcards.remove(.dlSrc)
        case "dl_dst":
            match.dlDst = try mac()
            match.wildcards.remove(.dlDst)
        case "dl_type":
            match.dlType = try number(UInt16.self)
            match.wildcards.remove(.dlType)
        case "dl_vlan":
            match.dlVlan = try number(UInt16.self)
            match.wildcards.remove(.dlVlan)
        case "nw_proto":
            match.nwProto = try number(UInt8.self)
            match.wildcards.remove(.nwProto)
        case "nw_tos":
            match.nwTos = try number(UInt8.self)
            match.wildcards.remove(.nwTos)
        case "tp_src":
            match.tpSrc = try number(UInt16.self)
            match.wildcards.remove(.tpSrc)
        case "tp_dst":
            match.tpDst = try number(UInt16.self)
            match.wildcards.remove(.tpDst)
        case "nw_src":
            let (address, ignored) = try network()
            match.nwSrc = address
            match.wildcards.remove(.nwSrcMask)
            match.wildcards.insert(Wildcards(rawValue: ignored << 8))
        case "nw_dst":
            let (address, ignored) = try network()
            match.nwDst = address
            match.wildcards.remove(.nwDstMask)
            match.wildcards.insert(Wildcards(rawValue: ignored << 14))
        default:
            throw fail("unknown field '\(field)'")
        }
    }
}
