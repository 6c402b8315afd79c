import OasisTestSupport
import OasisWire
import Testing

@testable import OasisOpenFlow

/// The flow table's semantics (OpenFlow 1.0 §3.4, §4.6), and its classifier checked
/// against a linear scan on seeded random tables.
@Suite struct FlowTableTests {
    static let second: Int64 = 1_000_000_000

    /// A packet's tuple, exact as Match(frame:inPort:) gives it.
    static func packet(
        inPort: UInt16 = 1, dlType: UInt16 = 0x0800, nwProto: UInt8 = 6,
        nwSrc: UInt32 = 0x0a00_0001,
        nwDst: UInt32 = 0x0a00_0002, tpSrc: UInt16 = 1000, tpDst: UInt16 = 80
    ) -> Match {
        Match(
            wildcards: [], inPort: PortNumber(inPort),
            dlSrc: MACAddress(rawValue: 0x0200_0000_0001),
            dlDst: MACAddress(rawValue: 0x0200_0000_0002), dlVlan: 0xffff, dlType: dlType,
            nwProto: nwProto, nwSrc: nwSrc, nwDst: nwDst, tpSrc: tpSrc, tpDst: tpDst)
    }

    static func wildcard(_ fields: (inout Match) -> Void) -> Match {
        var match = Match()
        fields(&match)
        return match
    }

    static func out(_ port: UInt16) -> [Action] { [.output(port: PortNumber(port))] }

    func port(of entry: FlowEntry?) -> UInt16? {
        guard case .output(let port, _) = entry?.actions.first else { return nil }
        return port.rawValue
    }

    @Test func exactMatchesBeatWildcardsAndPrioritiesOrderTheRest() throws {
        var table = FlowTable()
        let packet = Self.packet()
        let byPort = Self.wildcard {
            $0.wildcards.remove(.inPort)
            $0.inPort = PortNumber(1)
        }
        let byType = Self.wildcard {
            $0.wildcards.remove(.dlType)
            $0.dlType = 0x0800
        }
        try table.apply(
            FlowMod(match: byPort, command: .add, priority: 100, actions: Self.out(2)), now: 0)
        try table.apply(
            FlowMod(match: byType, command: .add, priority: 200, actions: Self.out(3)), now: 0)
        #expect(port(of: table.lookup(packet, bytes: 60, now: 1)) == 3)
        // An exact match wins whatever its priority; it is stored at 65535, as OVS does.
        try table.apply(
            FlowMod(match: packet, command: .add, priority: 1, actions: Self.out(4)), now: 0)
        let exact = table.lookup(packet, bytes: 60, now: 2)
        #expect(port(of: exact) == 4 && exact?.priority == .max)
        // DELETE_STRICT of the exact one (any priority names it), then the 200 one.
        #expect(
            try table.apply(FlowMod(match: packet, command: .deleteStrict, priority: 7), now: 3)
                .count == 1)
        #expect(port(of: table.lookup(packet, bytes: 60, now: 4)) == 3)
        // Strict needs the same priority.
        #expect(
            try table.apply(FlowMod(match: byType, command: .deleteStrict, priority: 100), now: 5)
                .isEmpty)
        #expect(
            try table.apply(FlowMod(match: byType, command: .deleteStrict, priority: 200), now: 5)
                .count == 1)
        #expect(port(of: table.lookup(packet, bytes: 60, now: 6)) == 2)
        // A packet on another port misses.
        #expect(table.lookup(Self.packet(inPort: 9), bytes: 60, now: 7) == nil)
        #expect(table.lookupCount == 5 && table.matchedCount == 4)
    }

    @Test func anAddOfTheSameMatchAndPriorityReplacesItCountersAndAll() throws {
        var table = FlowTable()
        let match = Self.wildcard {
            $0.wildcards.remove(.tpDst)
            $0.tpDst = 80
        }
        try table.apply(
            FlowMod(match: match, command: .add, priority: 5, actions: Self.out(1)), now: 0)
        _ = table.lookup(Self.packet(), bytes: 100, now: 1)
        #expect(table.entries.first?.packetCount == 1 && table.entries.first?.byteCount == 100)
        try table.apply(
            FlowMod(match: match, command: .add, priority: 5, actions: Self.out(2)), now: 2)
        #expect(table.count == 1)
        #expect(table.entries.first?.packetCount == 0 && port(of: table.entries.first) == 2)
        // The microflow cache does not keep the old answer.
        #expect(port(of: table.lookup(Self.packet(), bytes: 100, now: 3)) == 2)
    }

    @Test func checkOverlapRefusesAnOverlappingFlowOfTheSamePriority() throws {
        var table = FlowTable()
        let tcp = Self.wildcard {
            $0.wildcards.subtract([.dlType, .nwProto])
            $0.dlType = 0x0800
            $0.nwProto = 6
        }
        let toPort80 = Self.wildcard {
            $0.wildcards.remove(.tpDst)
            $0.tpDst = 80
        }
        let udp = Self.wildcard {
            $0.wildcards.subtract([.dlType, .nwProto])
            $0.dlType = 0x0800
            $0.nwProto = 17
        }
        try table.apply(
            FlowMod(match: tcp, command: .add, priority: 10, flags: .checkOverlap), now: 0)
        #expect(throws: FlowModFailedCode.overlap) {
            try table.apply(
                FlowMod(match: toPort80, command: .add, priority: 10, flags: .checkOverlap), now: 0)
        }
        // The same match and priority overlaps too (without the flag it replaces).
        #expect(throws: FlowModFailedCode.overlap) {
            try table.apply(
                FlowMod(match: tcp, command: .add, priority: 10, flags: .checkOverlap), now: 0)
        }
        // Another priority, or no common packet, is fine.
        try table.apply(
            FlowMod(match: toPort80, command: .add, priority: 11, flags: .checkOverlap), now: 0)
        try table.apply(
            FlowMod(match: udp, command: .add, priority: 10, flags: .checkOverlap), now: 0)
        // Prefixes: 10.0.0.0/8 and 10.1.0.0/16 overlap; 10.0.0.0/16 and 10.1.0.0/16 do not.
        var wide = Match()
        wide.wildcards.nwSrcIgnoredBits = 24
        wide.nwSrc = 0x0a00_0000
        var narrow = Match()
        narrow.wildcards.nwSrcIgnoredBits = 16
        narrow.nwSrc = 0x0a01_0000
        var other = narrow
        other.nwSrc = 0x0a00_0000
        #expect(overlaps(wide, narrow) && overlaps(wide, other) && !overlaps(narrow, other))
    }

    @Test func modifyChangesOnlyTheActionsOfWhatItNames() throws {
        var table = FlowTable()
        let web = Self.wildcard {
            $0.wildcards.subtract([.nwProto, .tpDst])
            $0.nwProto = 6
            $0.tpDst = 80
        }
        let ssh = Self.wildcard {
            $0.wildcards.subtract([.nwProto, .tpDst])
            $0.nwProto = 6
            $0.tpDst = 22
        }
        let allTCP = Self.wildcard {
            $0.wildcards.remove(.nwProto)
            $0.nwProto = 6
        }
        try table.apply(
            FlowMod(match: web, cookie: 1, command: .add, priority: 5, actions: Self.out(1)), now: 0
        )
        try table.apply(
            FlowMod(match: ssh, cookie: 2, command: .add, priority: 6, actions: Self.out(1)), now: 0
        )
        _ = table.lookup(Self.packet(), bytes: 60, now: 1)
        // Non-strict: every entry the match covers.
        try table.apply(
            FlowMod(match: allTCP, cookie: 9, command: .modify, actions: Self.out(7)), now: 2)
        #expect(table.count == 2 && table.entries.allSatisfy { port(of: $0) == 7 })
        #expect(table.entries.map(\.cookie).sorted() == [1, 2], "only the actions change")
        #expect(table.entries.first { $0.match.tpDst == 80 }?.packetCount == 1, "counters kept")
        #expect(port(of: table.lookup(Self.packet(), bytes: 60, now: 3)) == 7)
        // Strict: only the same match at the same priority.
        try table.apply(
            FlowMod(match: ssh, command: .modifyStrict, priority: 6, actions: Self.out(8)), now: 4)
        #expect(table.entries.first { $0.match.tpDst == 22 }.map { port(of: $0) } == 8)
        // A MODIFY that names nothing is an ADD.
        let dns = Self.wildcard {
            $0.wildcards.subtract([.nwProto, .tpDst])
            $0.nwProto = 17
            $0.tpDst = 53
        }
        try table.apply(
            FlowMod(match: dns, command: .modify, priority: 3, actions: Self.out(9)), now: 5)
        #expect(table.count == 3)
    }

    @Test func deleteHonoursOutPortAndReturnsWhatItRemoved() throws {
        var table = FlowTable()
        for (tp, out) in [(UInt16(80), UInt16(1)), (443, 2), (22, 1)] {
            let match = Self.wildcard {
                $0.wildcards.remove(.tpDst)
                $0.tpDst = tp
            }
            try table.apply(
                FlowMod(
                    match: match, command: .add, priority: tp, flags: .sendFlowRemoved,
                    actions: Self.out(out)),
                now: 0)
        }
        let removed = try table.apply(
            FlowMod(match: .any, command: .delete, outPort: PortNumber(1)), now: 2 * Self.second)
        #expect(removed.map(\.match.tpDst).sorted() == [22, 80] && table.count == 1)
        let notice = removed[0].removed(reason: .delete, now: 2 * Self.second + 5)
        #expect(
            notice.durationSeconds == 2 && notice.durationNanoseconds == 5
                && notice.reason == .delete)
        #expect(
            try table.apply(FlowMod(match: .any, command: .delete), now: 3).count == 1
                && table.count == 0)
    }

    @Test func idleAndHardTimeoutsExpireWithTheirReasons() throws {
        var table = FlowTable()
        let a = Self.wildcard {
            $0.wildcards.remove(.tpDst)
            $0.tpDst = 80
        }
        let b = Self.wildcard {
            $0.wildcards.remove(.tpDst)
            $0.tpDst = 22
        }
        try table.apply(FlowMod(match: a, command: .add, idleTimeout: 5), now: 0)
        try table.apply(FlowMod(match: b, command: .add, hardTimeout: 8), now: 0)
        // Traffic keeps the idle one alive; the hard one goes at 8 s whatever.
        for second in 1...7 {
            _ = table.lookup(Self.packet(tpDst: 80), bytes: 60, now: Int64(second) * Self.second)
            _ = table.lookup(Self.packet(tpDst: 22), bytes: 60, now: Int64(second) * Self.second)
            #expect(table.expire(now: Int64(second) * Self.second).isEmpty)
        }
        let hard = table.expire(now: 8 * Self.second)
        #expect(
            hard.count == 1 && hard[0].reason == .hardTimeout && hard[0].entry.match.tpDst == 22)
        let idle = table.expire(now: 12 * Self.second)
        #expect(idle.count == 1 && idle[0].reason == .idleTimeout && table.count == 0)
        #expect(table.lookup(Self.packet(tpDst: 80), bytes: 60, now: 13 * Self.second) == nil)
    }

    @Test func emergencyFlowsTakeOverWhenTheControllerIsGone() throws {
        var table = FlowTable()
        #expect(throws: FlowModFailedCode.badEmergencyTimeout) {
            try table.apply(
                FlowMod(match: .any, command: .add, idleTimeout: 10, flags: .emergency), now: 0)
        }
        try table.apply(
            FlowMod(
                match: .any, command: .add, priority: 1, flags: .emergency, actions: Self.out(9)),
            now: 0)
        try table.apply(
            FlowMod(match: .any, command: .add, priority: 1, actions: Self.out(1)), now: 0)
        #expect(port(of: table.lookup(Self.packet(), bytes: 60, now: 1)) == 1)
        #expect(table.enterEmergency().count == 1)
        #expect(port(of: table.lookup(Self.packet(), bytes: 60, now: 2)) == 9)
        table.leaveEmergency()
        #expect(table.lookup(Self.packet(), bytes: 60, now: 3) == nil && table.emergencyCount == 1)
    }

    /// Many entries of one shape added, then all deleted by one DELETE (their cost per
    /// flow is in the bench's flowtable group; it was quadratic).
    @Test func manyAddsAndADeleteAll() throws {
        var table = FlowTable()
        for index in 0..<20_000 {
            var match = Match()
            match.wildcards.remove(.tpDst)
            match.tpDst = UInt16(index % 60_000)
            match.wildcards.remove(.nwProto)
            match.nwProto = UInt8(index / 60_000 + 1)
            try table.apply(FlowMod(match: match, command: .add, priority: 100), now: 0)
        }
        #expect(table.count == 20_000)
        #expect(try table.apply(FlowMod(match: .any, command: .delete), now: 0).count == 20_000)
        #expect(table.count == 0)
    }

    @Test func aFullTableRefusesAnAdd() throws {
        var table = FlowTable(maximumEntries: 2)
        try table.apply(FlowMod(match: Self.packet(tpDst: 1), command: .add), now: 0)
        try table.apply(FlowMod(match: Self.packet(tpDst: 2), command: .add), now: 0)
        #expect(throws: FlowModFailedCode.allTablesFull) {
            try table.apply(FlowMod(match: Self.packet(tpDst: 3), command: .add), now: 0)
        }
        // Replacing one is no growth.
        try table.apply(
            FlowMod(match: Self.packet(tpDst: 2), command: .add, actions: Self.out(3)), now: 0)
    }

    @Test func statisticsSelectAsDeleteDoes() throws {
        var table = FlowTable()
        for tp in [UInt16(80), 443] {
            try table.apply(
                FlowMod(
                    match: Self.packet(tpDst: tp), command: .add,
                    actions: Self.out(tp == 80 ? 1 : 2)),
                now: 0)
        }
        for _ in 0..<3 { _ = table.lookup(Self.packet(tpDst: 80), bytes: 100, now: 1) }
        _ = table.lookup(Self.packet(tpDst: 443), bytes: 1000, now: 1)
        let all = table.aggregateStats(FlowStatsRequest())
        #expect(all.flowCount == 2 && all.packetCount == 4 && all.byteCount == 1300)
        let toOne = table.flowStats(FlowStatsRequest(outPort: PortNumber(1)), now: Self.second)
        #expect(toOne.count == 1 && toOne[0].packetCount == 3 && toOne[0].durationSeconds == 1)
        #expect(table.flowStats(FlowStatsRequest(tableID: 3), now: 0).isEmpty)
    }

    /// Seeded random tables of wildcard and exact entries, distinct priorities: the
    /// classifier (and its cache, through changes) finds what a linear scan finds.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func theClassifierAgreesWithALinearScan(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var table = FlowTable()
        var reference: [(match: Match, priority: UInt16, port: UInt16)] = []
        var priorities = Array(UInt16(1)...4000).shuffled(using: &random)
        func randomPacket() -> Match {
            Self.packet(
                inPort: UInt16(random.next() % 4), dlType: random.next() % 2 == 0 ? 0x0800 : 0x0806,
                nwProto: random.next() % 2 == 0 ? 6 : 17,
                nwSrc: 0x0a00_0000 | UInt32(random.next() % 4) << 8 | UInt32(random.next() % 4),
                nwDst: 0x0a00_0000 | UInt32(random.next() % 4), tpSrc: UInt16(random.next() % 3),
                tpDst: UInt16(random.next() % 3))
        }
        func randomMatch() -> Match {
            var match = randomPacket()
            if random.next() % 10 == 0 { return match }  // an exact one now and then
            match.wildcards = []
            for bit in [
                Wildcards.inPort, .dlSrc, .dlDst, .dlVlan, .dlVlanPcp, .dlType, .nwTos, .nwProto,
                .tpSrc, .tpDst,
            ]
            where random.next() % 3 != 0 {
                match.wildcards.insert(bit)
            }
            match.wildcards.nwSrcIgnoredBits = [0, 8, 16, 32][Int(random.next() % 4)]
            match.wildcards.nwDstIgnoredBits = [0, 8, 32][Int(random.next() % 3)]
            return match.normalized
        }
        func expected(_ packet: Match) -> UInt16? {
            let exact = reference.first {
                $0.match.wildcards.rawValue & Wildcards.all.rawValue == 0 && $0.match == packet
            }
            if let exact { return exact.port }
            return reference.filter { $0.match.matches(packet) }.max { $0.priority < $1.priority }?
                .port
        }
        for round in 0..<6 {
            for _ in 0..<150 {
                let match = randomMatch()
                let priority = priorities.removeLast()
                let port = UInt16(random.next() % 50 + 1)
                let mod = FlowMod(
                    match: match, command: .add, priority: priority, actions: Self.out(port))
                let exact = match.wildcards.rawValue & Wildcards.all.rawValue == 0
                reference.removeAll { $0.match == match && (exact || $0.priority == priority) }
                try table.apply(mod, now: 0)
                reference.append((match, exact ? .max : priority, port))
            }
            // Some deletions, strict and not.
            for _ in 0..<20 {
                let victim = reference[Int(random.next() % UInt64(reference.count))]
                _ = try table.apply(
                    FlowMod(match: victim.match, command: .deleteStrict, priority: victim.priority),
                    now: 0)
                reference.removeAll { $0.match == victim.match && $0.priority == victim.priority }
            }
            #expect(table.count == reference.count, "round \(round)")
            for _ in 0..<400 {
                let packet = randomPacket()
                let want = expected(packet)
                // Twice: the second from the cache.
                #expect(
                    port(of: table.lookup(packet, bytes: 60, now: 0)) == want,
                    "round \(round): \(packet)")
                #expect(port(of: table.lookup(packet, bytes: 60, now: 0)) == want)
            }
        }
        #expect(table.cacheHits > 0)
    }
}
