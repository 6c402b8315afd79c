/// The compiled form of every zone the engine serves, built once at load time.
///
/// Compact and pointer-free: every owner name and every RDATA lives in one byte
/// arena; nodes and RRsets are small structs in flat arrays that index into it; each
/// zone finds a name through an open-addressing hash table keyed by the name's
/// lowercased wire bytes. A lookup costs O(labels of the query name) hash probes,
/// whatever the zone's size: finding the closest encloser is one probe per suffix,
/// and a wildcard is one more probe for `*.<closest encloser>` (RFC 4592 §3.3.1).
struct ZoneStore: Sendable {
    /// A name that exists in a zone: it owns RRsets, or it is an empty non-terminal
    /// (RFC 4592 §2.2.2) created for the names below it.
    struct Node: Sendable {
        var nameOffset: UInt32
        var nameLength: UInt8
        var flags: UInt8
        var rrsetCount: UInt16
        var rrsetStart: UInt32
        static let delegation: UInt8 = 1
        static let wildcardChild: UInt8 = 2
    }

    /// The records of one name and type: `count` RDATAs, each `[length: UInt16][bytes]`,
    /// from `rdataOffset` in the arena.
    struct RRSet: Sendable {
        var type: UInt16
        var count: UInt16
        var ttl: UInt32
        var rdataOffset: UInt32
    }

    struct ZoneInfo: Sendable {
        var apex: Int32
        var slotBase: Int
        var slotMask: Int
        var soa: Int32
        var ns: Int32
    }

    var arena: [UInt8] = []
    var nodes: [Node] = []
    var rrsets: [RRSet] = []
    var zones: [ZoneInfo] = []
    /// Every zone's hash slots, one after the other: node index + 1, or 0 for empty.
    var slots: [UInt32] = []
    /// The zones' apexes: zone index + 1, or 0.
    var apexSlots: [UInt32] = []

    init(zones input: [Zone]) throws(ZoneFileError) {
        var apexes: [Int] = []
        for zone in input {
            try zone.validate()
            let index = zones.count
            try compile(zone)
            apexes.append(Int(zones[index].apex))
        }
        let capacity = tableCapacity(for: apexes.count)
        apexSlots = [UInt32](repeating: 0, count: capacity)
        for (zone, apexNode) in apexes.enumerated() {
            let node = nodes[apexNode]
            var slot =
                Int(
                    truncatingIfNeeded: hashName(
                        arena, from: Int(node.nameOffset), length: Int(node.nameLength)))
                & (capacity - 1)
            while apexSlots[slot] != 0 {
                let other = nodes[Int(zones[Int(apexSlots[slot]) - 1].apex)]
                if arenaNamesEqual(arena, node, other) {
                    throw ZoneFileError(
                        file: input[zone].source, line: 0,
                        problem: .outOfZone("\(input[zone].origin) (served twice)"))
                }
                slot = (slot + 1) & (capacity - 1)
            }
            apexSlots[slot] = UInt32(zone + 1)
        }
    }

    private mutating func compile(_ zone: Zone) throws(ZoneFileError) {
        // Group by owner (case-insensitively, first spelling wins) and type; drop
        // duplicate RRs (RFC 2181 §5: an RRset is a set).
        var ownerIndex: [DomainName: Int] = [:]
        var owners: [(name: DomainName, types: [(RecordType, UInt32, [RecordData])])] = []
        func ownerSlot(_ name: DomainName) -> Int {
            if let index = ownerIndex[name] { return index }
            ownerIndex[name] = owners.count
            owners.append((name, []))
            return owners.count - 1
        }
        _ = ownerSlot(zone.origin)
        for record in zone.records {
            let owner = ownerSlot(record.name)
            if let at = owners[owner].types.firstIndex(where: { $0.0 == record.type }) {
                // RFC 2181 §5.2: one TTL per RRset; keep the lowest seen.
                owners[owner].types[at].1 = min(owners[owner].types[at].1, record.ttl)
                if !owners[owner].types[at].2.contains(record.data) {
                    owners[owner].types[at].2.append(record.data)
                }
            } else {
                owners[owner].types.append((record.type, record.ttl, [record.data]))
            }
            // Empty non-terminals: every name between the apex and the owner exists.
            var ancestor = record.name
            while ancestor.wire.count > zone.origin.wire.count {
                ancestor = DomainName(
                    validatedWire: Array(ancestor.wire.dropFirst(Int(ancestor.wire[0]) + 1)))
                if ownerIndex[ancestor] != nil { break }
                _ = ownerSlot(ancestor)
            }
        }
        let zoneNumber = zones.count
        let firstNode = nodes.count
        var info = ZoneInfo(
            apex: Int32(firstNode), slotBase: slots.count, slotMask: 0, soa: -1, ns: -1)
        for (name, types) in owners {
            var node = Node(
                nameOffset: UInt32(arena.count), nameLength: UInt8(name.wire.count), flags: 0,
                rrsetCount: UInt16(types.count), rrsetStart: UInt32(rrsets.count))
            arena += name.wire
            let isApex = name == zone.origin
            for (type, ttl, datas) in types {
                if isApex && type == .soa { info.soa = Int32(rrsets.count) }
                if isApex && type == .ns { info.ns = Int32(rrsets.count) }
                if !isApex && type == .ns { node.flags |= Node.delegation }
                rrsets.append(
                    RRSet(
                        type: type.rawValue, count: UInt16(datas.count), ttl: ttl,
                        rdataOffset: UInt32(arena.count)))
                for data in datas {
                    let wire = data.wire
                    arena += [UInt8(wire.count >> 8), UInt8(wire.count & 0xff)] + wire
                }
            }
            nodes.append(node)
        }
        // Wildcard owners mark their parent (RFC 4592 §2.1.1: the source of synthesis).
        for (index, owner) in owners.enumerated() {
            let wire = owner.name.wire
            if wire.count > 2 && wire[0] == 1 && wire[1] == UInt8(ascii: "*") {
                let parent = DomainName(validatedWire: Array(wire.dropFirst(2)))
                if let parentIndex = ownerIndex[parent] {
                    nodes[firstNode + parentIndex].flags |= Node.wildcardChild
                }
                _ = index
            }
        }
        let capacity = tableCapacity(for: owners.count)
        info.slotMask = capacity - 1
        slots += [UInt32](repeating: 0, count: capacity)
        for index in firstNode..<nodes.count {
            let node = nodes[index]
            var slot =
                Int(
                    truncatingIfNeeded: hashName(
                        arena, from: Int(node.nameOffset), length: Int(node.nameLength)))
                & info.slotMask
            while slots[info.slotBase + slot] != 0 { slot = (slot + 1) & info.slotMask }
            slots[info.slotBase + slot] = UInt32(index + 1)
        }
        zones.append(info)
        _ = zoneNumber
    }
}

/// A power of two at least twice `count`: the load factor stays at or under one half.
func tableCapacity(for count: Int) -> Int {
    var capacity = 8
    while capacity < count * 2 { capacity <<= 1 }
    return capacity
}

/// FNV-1a over the lowercased bytes: the same for every spelling of a name.
@inline(__always)
func hashName(_ bytes: UnsafeRawBufferPointer, from start: Int, length: Int) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for index in start..<(start + length) {
        hash = (hash ^ UInt64(asciiLower(bytes[index]))) &* 0x100_0000_01b3
    }
    return hash ^ (hash >> 29)
}

func hashName(_ bytes: [UInt8], from start: Int, length: Int) -> UInt64 {
    bytes.withUnsafeBytes { hashName($0, from: start, length: length) }
}

func arenaNamesEqual(_ arena: [UInt8], _ a: ZoneStore.Node, _ b: ZoneStore.Node) -> Bool {
    equalIgnoringCase(
        arena[Int(a.nameOffset)..<Int(a.nameOffset) + Int(a.nameLength)],
        arena[Int(b.nameOffset)..<Int(b.nameOffset) + Int(b.nameLength)])
}
