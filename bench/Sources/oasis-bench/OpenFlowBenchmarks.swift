// OpenFlow 1.0: decode and encode cost of the three messages a controller and a
// switch exchange per packet (PACKET_IN, FLOW_MOD, PACKET_OUT), beside copying the
// same bytes; and a flow-table lookup by the number of wildcard rules, beside a
// linear scan of the same rules.

import CFloor
import OasisBits
import OasisDevices
import OasisOpenFlow
import OasisWire

func runOpenFlowBenchmarks(_ report: Report, scale: Int) {
    // A 60-byte TCP frame, as a switch would send up in a PACKET_IN.
    var frameBytes: [UInt8] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ]
    frameBytes += [
        0x08, 0x00, 0x45, 0x00, 0x00, 0x2e, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    ]
    frameBytes += [0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02, 0x30, 0x39, 0x00, 0x50]
    frameBytes += [UInt8](repeating: 0, count: 60 - frameBytes.count)
    let frame = Bits(frameBytes)
    let match = Match(frame: frame, inPort: PortNumber(1))
    let messages: [(String, Message)] = [
        (
            "PACKET_IN (60 B frame)",
            Message(
                xid: 1,
                body: .packetIn(
                    PacketIn(
                        bufferID: 0x100, totalLength: 60, inPort: PortNumber(1), reason: .noMatch,
                        data: Payload(frame))))
        ),
        (
            "FLOW_MOD (exact match, 2 actions)",
            Message(
                xid: 2,
                body: .flowMod(
                    FlowMod(
                        match: match, cookie: 7, command: .add, idleTimeout: 10, hardTimeout: 30,
                        priority: 100, bufferID: 0x100,
                        actions: [.setVLANID(10), .output(port: PortNumber(2))])))
        ),
        (
            "PACKET_OUT (1 action, 60 B frame)",
            Message(
                xid: 3,
                body: .packetOut(
                    PacketOut(
                        inPort: PortNumber(1), actions: [.output(port: PortNumber(2))],
                        data: Payload(frame))))
        ),
    ]
    let operations = 1_000_000 / scale
    let pool = BufferPool(limit: 16)
    for (name, message) in messages {
        guard let encoded = try? message.encoded() else {
            print("openflow bench: cannot encode \(name)")
            continue
        }
        let size = encoded.count
        let copy = encoded.withUnsafeBytes { bytes in
            let destination = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            defer { destination.deallocate() }
            return measure(operations: operations) { n in
                oasis_floor_memcpy(destination, bytes.baseAddress!, size, n)
            }
        }
        let decode = measure(operations: operations) { n in
            var accumulator: UInt32 = 0
            for _ in 0..<n {
                _ = oasis_floor_opaque(nil)
                if let decoded = try? Message.decode(encoded) { accumulator &+= decoded.xid }
            }
            blackHole(accumulator)
        }
        let encode = measure(operations: operations) { n in
            var accumulator = 0
            for _ in 0..<n {
                guard var out = try? pool.allocate() else { continue }
                try? message.encode(into: &out)
                accumulator &+= out.count
            }
            blackHole(accumulator)
        }
        report.add(
            Figure(
                group: "openflow", name: "decode \(name)",
                nanosecondsPerOperation: decode.nanoseconds,
                allocationsPerOperation: decode.allocations, retainsPerOperation: decode.retains,
                floorName: "memcpy \(size) B",
                floorNanosecondsPerOperation: copy.nanoseconds))
        report.add(
            Figure(
                group: "openflow", name: "encode \(name)",
                nanosecondsPerOperation: encode.nanoseconds,
                allocationsPerOperation: encode.allocations, retainsPerOperation: encode.retains,
                floorName: "memcpy \(size) B",
                floorNanosecondsPerOperation: copy.nanoseconds))
    }
}

/// Flow-table lookups in tables of 16 to 65 536 wildcard rules in 8 shapes (the
/// tuple-space classifier, microflow cache off, then on), beside a linear scan of the
/// rules for the smaller tables: the classifier's cost follows the shapes, not the rules.
func runFlowTableBenchmarks(_ report: Report, scale: Int) {
    var random = SystemRandomNumberGenerator()
    let shapes: [Wildcards] = [
        Wildcards.all.subtracting([.inPort]), Wildcards.all.subtracting([.dlDst]),
        Wildcards.all.subtracting([.dlType, .nwProto]),
        Wildcards.all.subtracting([.dlType, .nwProto, .tpDst]),
        Wildcards.all.subtracting([.inPort, .dlSrc]), Wildcards.all.subtracting([.tpSrc]),
        Wildcards.all.subtracting([.nwProto, .tpSrc, .tpDst]),
        Wildcards.all.subtracting([.dlVlan, .dlType]),
    ]
    func packet(_ n: UInt64) -> Match {
        Match(
            wildcards: [], inPort: PortNumber(UInt16(truncatingIfNeeded: n % 48)),
            dlSrc: MACAddress(rawValue: 0x0200_0000_0000 | n % 4096),
            dlDst: MACAddress(rawValue: 0x0200_0000_0000 | (n >> 12) % 4096),
            dlVlan: UInt16(truncatingIfNeeded: n % 100), dlType: 0x0800, nwProto: 6,
            nwSrc: UInt32(truncatingIfNeeded: n), nwDst: UInt32(truncatingIfNeeded: n >> 7),
            tpSrc: UInt16(truncatingIfNeeded: n % 65536),
            tpDst: UInt16(truncatingIfNeeded: n % 1024))
    }
    let packets = (0..<4096).map { _ in packet(UInt64.random(in: 0...UInt64.max, using: &random)) }
    for rules in [16, 1024, 65536] {
        for cached in [false, true] {
            var table = FlowTable(maximumEntries: rules * 2, cacheLimit: cached ? 1 << 14 : 0)
            var linear: [(Match, UInt16)] = []
            for index in 0..<rules {
                var match = packet(UInt64.random(in: 0...UInt64.max, using: &random))
                match.wildcards = shapes[index % shapes.count]
                match = match.normalized
                let priority = UInt16(truncatingIfNeeded: index % 60000 + 1)
                _ = try? table.apply(
                    FlowMod(
                        match: match, command: .add, priority: priority,
                        actions: [.output(port: PortNumber(2))]), now: 0)
                linear.append((match, priority))
            }
            let operations = 1_000_000 / scale
            let lookups = measure(operations: operations) { n in
                var hits = 0
                for index in 0..<n {
                    if table.lookup(packets[index & 4095], bytes: 60, now: 0) != nil { hits &+= 1 }
                }
                blackHole(hits)
            }
            var floor: Measurement? = nil
            if !cached && rules <= 1024 {
                floor = measure(operations: max(1000, operations / rules)) { n in
                    var found = 0
                    for index in 0..<n {
                        let p = packets[index & 4095]
                        var best: UInt16 = 0
                        for (match, priority) in linear where priority > best && match.matches(p) {
                            best = priority
                        }
                        found &+= Int(best)
                    }
                    blackHole(found)
                }
            }
            report.add(
                Figure(
                    group: "openflow",
                    name:
                        "flow-table lookup, \(rules) wildcard rules in \(shapes.count) shapes, "
                        + (cached ? "microflow cache on (4096 flows)" : "no cache"),
                    nanosecondsPerOperation: lookups.nanoseconds,
                    allocationsPerOperation: lookups.allocations,
                    retainsPerOperation: lookups.retains,
                    floorName: floor == nil ? nil : "linear scan of the \(rules) rules",
                    floorNanosecondsPerOperation: floor?.nanoseconds,
                    note: cached
                        ? "cache hits \(table.cacheHits) of \(table.lookupCount) lookups" : ""))
        }
    }
    // FLOW_MODs: adding 20 000 wildcard flows of one shape, then one DELETE of all.
    let flows = 20_000 / scale
    var mods: [FlowMod] = []
    for index in 0..<flows {
        var match = Match()
        match.wildcards.subtract([.tpDst, .nwProto])
        match.tpDst = UInt16(index % 60_000)
        match.nwProto = UInt8(index / 60_000 + 1)
        mods.append(FlowMod(match: match, command: .add, priority: 100))
    }
    var table = FlowTable()
    let addStart = monotonicNanoseconds()
    for mod in mods { _ = try? table.apply(mod, now: 0) }
    let added = Double(monotonicNanoseconds() - addStart) / Double(flows)
    let deleteStart = monotonicNanoseconds()
    let removed = (try? table.apply(FlowMod(match: .any, command: .delete), now: 0))?.count ?? 0
    let deleted = Double(monotonicNanoseconds() - deleteStart) / Double(max(removed, 1))
    report.add(
        Figure(
            group: "openflow",
            name: "FLOW_MOD ADD into a table growing to \(flows) flows of one shape, per flow",
            nanosecondsPerOperation: added, allocationsPerOperation: nil))
    report.add(
        Figure(
            group: "openflow", name: "one DELETE of all \(removed) flows, per flow",
            nanosecondsPerOperation: deleted, allocationsPerOperation: nil))
}
