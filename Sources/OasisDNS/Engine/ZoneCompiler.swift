import OasisBits

/// Compiles zones, one record at a time, into the ``AuthoritativeEngine``'s tables.
///
/// Records stream in (from a parsed ``Zone`` or straight from the zone file parser),
/// are checked as `nsd-checkzone` checks them, grouped by owner and type into compact
/// arrays, and each finished zone is laid out as node records in the store's arena
/// (see ``ZoneStore``). Nothing holds a whole zone's records as values: a million
/// names compile in a fraction of a second and little more memory than the result.
///
/// ```swift
/// var compiler = ZoneCompiler()
/// try compiler.add(file: "/etc/nsd/example.zone", origin: DomainName(parsing: "example."))
/// let engine = compiler.finish()
/// ```
public struct ZoneCompiler {
    // The store under construction, every finished zone in it.
    var arena: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]  // offset 0 is never a node
    var slots: [UInt64] = []
    var zones: [ZoneStore.ZoneInfo] = []
    /// The zones added so far, by apex.
    var origins: Set<DomainName> = []
    var nodeCount = 0
    var rrsetCount = 0
    /// The NS, MX and SRV RRsets, whose targets are found when every zone is in.
    var targetFixups: [UInt32] = []

    public init() {}

    /// Checks and compiles `zone`. Fails as ``Zone/validate()`` does, or on a zone
    /// already added.
    public mutating func add(_ zone: Zone) throws(ZoneFileError) {
        var assembler = ZoneAssembler(origin: zone.origin, source: zone.source)
        for record in zone.records {
            try assembler.add(record, file: zone.source, line: 0)
        }
        try finish(assembler, endLine: 0)
    }

    /// Reads the master file at `path` with `origin` as its initial `$ORIGIN`, and
    /// compiles it record by record: errors name the file and line, as the parser's do.
    public mutating func add(file path: String, origin: DomainName) throws(ZoneFileError) {
        var assembler = ZoneAssembler(origin: origin, source: path)
        let endLine = try ZoneFileParser.parse(file: path, origin: origin) {
            (record, file, line) throws(ZoneFileError) in
            try assembler.add(record, file: file, line: line)
        }
        try finish(assembler, endLine: endLine)
    }

    /// The engine serving every zone added.
    public consuming func finish() -> AuthoritativeEngine {
        let capacity = tableCapacity(for: zones.count)
        var apexSlots = [UInt64](repeating: 0, count: capacity)
        for (index, zone) in zones.enumerated() {
            let apex = Int(zone.apex)
            let hash = arena.withUnsafeBytes { StoreView.hash(of: $0.baseAddress! + apex + 4) }
            let mixed = StoreView.finish(hash)
            var slot = Int(truncatingIfNeeded: mixed) & (capacity - 1)
            while apexSlots[slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            // Zone index + 1: a slot is never 0 once used.
            apexSlots[slot] = (mixed >> 32) << 32 | UInt64(index + 1)
        }
        let store = ZoneStore(
            arena: arena, slots: slots, zones: zones, apexSlots: apexSlots, nodeCount: nodeCount,
            rrsetCount: rrsetCount)
        store.resolveTargets(targetFixups)
        return AuthoritativeEngine(store: store)
    }

    /// Lays out a checked zone: its node records in the arena, its hash table.
    /// `endLine` is where its file ends (0: no file), where what the zone as a whole
    /// lacks is reported.
    mutating func finish(_ assembler: ZoneAssembler, endLine: Int) throws(ZoneFileError) {
        try assembler.check(endLine: endLine)
        if origins.contains(assembler.origin) {
            throw ZoneFileError(
                file: assembler.source, line: 0,
                problem: .zoneServedTwice("\(assembler.origin)"))
        }
        try assembler.emit(into: &self)
        origins.insert(assembler.origin)
    }
}

/// One zone's records while it is read: owners in a hash table over a byte arena of
/// their names, each owner's records in a linked list, RDATA in a second arena.
struct ZoneAssembler {
    struct Owner {
        var nameOffset: UInt32
        var nameLength: UInt8
        var flags: UInt8 = 0
        var hash: UInt64
        var first: Int32 = -1
        var last: Int32 = -1
        var recordCount: Int32 = 0
    }

    struct Record {
        var type: UInt16
        var rdataLength: UInt16
        var ttl: UInt32
        var rdataOffset: UInt32
        var next: Int32
    }

    let origin: DomainName
    let source: String
    var names: [UInt8] = []
    var rdata: [UInt8] = []
    var owners: [Owner] = []
    var records: [Record] = []
    /// The high 32 bits of the owner's mixed hash, then its index + 1; 0 is empty.
    var table: [UInt64] = [UInt64](repeating: 0, count: 64)
    var soaCount = 0
    var scratch: [UInt8] = []

    static let wildcard: UInt8 = 1
    /// Owner flags kept as records arrive, so RFC 2181 §10.1 and RFC 6672 §2.4 are
    /// checked without walking the owner's records.
    static let hasCNAME: UInt8 = 2
    static let hasOther: UInt8 = 4
    static let hasDNAME: UInt8 = 8
    /// From this many records on, an owner's duplicates are found by hash.
    static let indexedOwnerSize: Int32 = 16
    /// For owners with ``indexedOwnerSize`` records or more: their records by
    /// ``recordHash(type:_:)``.
    var recordIndex: [Int: [UInt64: [Int32]]] = [:]

    init(origin: DomainName, source: String) {
        self.origin = origin
        self.source = source
        _ = owner(origin.wire)
    }

    /// Adds one record: checked to lie in the zone (an SOA only at the apex),
    /// a duplicate of one already added dropped (RFC 2181 §5: an RRset is a set) but
    /// its TTL kept for the RRset's (the lowest wins, RFC 2181 §5.2).
    mutating func add(_ record: ResourceRecord, file: String, line: Int) throws(ZoneFileError) {
        let wire = record.name.wire
        guard isInZone(wire) else {
            throw ZoneFileError(
                file: file, line: line, problem: .outOfZone(record.name.description))
        }
        if record.type == .soa {
            guard record.name == origin else {
                throw ZoneFileError(
                    file: file, line: line, problem: .outOfZone(record.name.description))
            }
            // nsd-checkzone: "this SOA record was already encountered", at its line.
            guard soaCount == 0 else {
                throw ZoneFileError(file: file, line: line, problem: .multipleSOA)
            }
            soaCount += 1
        }
        scratch.removeAll(keepingCapacity: true)
        record.data.appendWire(to: &scratch)
        guard scratch.count <= 65535 else {
            throw ZoneFileError(
                file: file, line: line,
                problem: .badRecordData(type: record.type.description, reason: "over 65535 bytes"))
        }
        // The engine reads the names inside NS, CNAME, PTR, MX, SRV and SOA RDATA, so
        // those must be well formed whatever the record was built from (a `Zone` made
        // in code may pair a type with `.opaque` bytes): decoded once, here.
        switch record.type {
        case .ns, .cname, .ptr, .mx, .srv, .soa, .mb, .mg, .mr, .minfo, .dname, .rrsig, .nsec,
            .nsec3, .nsec3param, .kx, .rt:
            let decoded = scratch.withUnsafeBytes { bytes in
                try? RecordData.read(
                    type: record.type, from: Bits(bytes), at: 0, length: bytes.count)
            }
            guard let decoded else {
                throw ZoneFileError(
                    file: file, line: line,
                    problem: .badRecordData(
                        type: record.type.description, reason: "not a valid \(record.type) RDATA"))
            }
            // Stored as decoded: its names whole, never a compression pointer.
            scratch.removeAll(keepingCapacity: true)
            decoded.appendWire(to: &scratch)
            guard scratch.count <= 65535 else {
                throw ZoneFileError(
                    file: file, line: line,
                    problem: .badRecordData(
                        type: record.type.description, reason: "over 65535 bytes"))
            }
        default: break
        }
        // The working tables index with 32 bits.
        guard rdata.count + scratch.count < Int(Int32.max), names.count < Int(Int32.max) - 255,
            records.count < Int(Int32.max)
        else {
            throw ZoneFileError(
                file: file, line: line,
                problem: .badRecordData(
                    type: "zone", reason: "over 2 GiB of names, data or records"))
        }
        let index = owner(wire)
        let type = record.type.rawValue
        if let existing = duplicate(type: type, at: index) {
            records[existing].ttl = min(records[existing].ttl, record.ttl)
            return
        }
        let cname = RecordType.cname.rawValue
        let flags = owners[index].flags
        let hasCNAME = flags & ZoneAssembler.hasCNAME != 0
        let hasOther = flags & ZoneAssembler.hasOther != 0
        let hasDNAME = flags & ZoneAssembler.hasDNAME != 0
        // RFC 6672 §2.4: one DNAME at a name, and not beside a CNAME (nsd-checkzone's
        // order of complaints).
        if type == RecordType.dname.rawValue && hasDNAME {
            throw ZoneFileError(
                file: file, line: line, problem: .multipleDNAME(record.name.description))
        }
        // RFC 2181 §10.1: a CNAME alone at its name (DS aside), refused at the line of
        // the record that breaks the rule, as nsd-checkzone does.
        if type == cname && hasCNAME {
            throw ZoneFileError(
                file: file, line: line, problem: .multipleCNAME(record.name.description))
        }
        if (type == cname && hasDNAME) || (type == RecordType.dname.rawValue && hasCNAME) {
            throw ZoneFileError(
                file: file, line: line, problem: .dnameAndCNAME(record.name.description))
        }
        if type == cname ? hasOther : (!mayAccompanyCNAME(type) && hasCNAME) {
            throw ZoneFileError(
                file: file, line: line, problem: .cnameAndOtherData(record.name.description))
        }
        let new = Int32(records.count)
        records.append(
            Record(
                type: type, rdataLength: UInt16(scratch.count), ttl: record.ttl,
                rdataOffset: UInt32(rdata.count), next: -1))
        rdata += scratch
        if owners[index].last >= 0 {
            records[Int(owners[index].last)].next = new
        } else {
            owners[index].first = new
        }
        owners[index].last = new
        if type == cname {
            owners[index].flags |= ZoneAssembler.hasCNAME
        } else if !mayAccompanyCNAME(type) {
            owners[index].flags |= ZoneAssembler.hasOther
        }
        if type == RecordType.dname.rawValue { owners[index].flags |= ZoneAssembler.hasDNAME }
        owners[index].recordCount += 1
        if owners[index].recordCount == ZoneAssembler.indexedOwnerSize {
            var table: [UInt64: [Int32]] = [:]
            var cursor = owners[index].first
            while cursor >= 0 {
                table[recordHash(Int(cursor)), default: []].append(cursor)
                cursor = records[Int(cursor)].next
            }
            recordIndex[index] = table
        } else if owners[index].recordCount > ZoneAssembler.indexedOwnerSize {
            recordIndex[index]![recordHash(Int(new)), default: []].append(new)
        }
    }

    /// The record at owner `index` with type `type` and RDATA `scratch`, if one was
    /// added already: a walk of the owner's few records, or for an owner with many
    /// (thousands of TXT at one name) a look-up in its hash of (type, RDATA), so that
    /// loading stays linear in the records.
    func duplicate(type: UInt16, at index: Int) -> Int? {
        if owners[index].recordCount >= ZoneAssembler.indexedOwnerSize {
            let hash = ZoneAssembler.recordHash(type: type, scratch[...])
            for candidate in recordIndex[index]?[hash] ?? []
            where isRecord(Int(candidate), type: type) {
                return Int(candidate)
            }
            return nil
        }
        var cursor = owners[index].first
        while cursor >= 0 {
            if isRecord(Int(cursor), type: type) { return Int(cursor) }
            cursor = records[Int(cursor)].next
        }
        return nil
    }

    /// Whether record `index` has type `type` and RDATA `scratch`.
    func isRecord(_ index: Int, type: UInt16) -> Bool {
        let existing = records[index]
        return existing.type == type && Int(existing.rdataLength) == scratch.count
            && rdata[Int(existing.rdataOffset)..<Int(existing.rdataOffset) + scratch.count]
                .elementsEqual(scratch)
    }

    /// ``recordHash(type:_:)`` of record `index`.
    func recordHash(_ index: Int) -> UInt64 {
        let record = records[index]
        let start = Int(record.rdataOffset)
        return ZoneAssembler.recordHash(
            type: record.type, rdata[start..<start + Int(record.rdataLength)])
    }

    /// FNV-1a over the type and the RDATA: only to find candidates, which are compared.
    static func recordHash(type: UInt16, _ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(type)
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// Whether `wire` is the origin or below it.
    func isInZone(_ wire: [UInt8]) -> Bool {
        let apex = origin.wire
        guard wire.count >= apex.count else { return false }
        var start = 0
        while wire.count - start > apex.count {
            start += 1 + Int(wire[start])
        }
        guard wire.count - start == apex.count else { return false }
        return equalIgnoringCase(wire[start...], apex[...])
    }

    /// The owner named `wire`, added if new with every name between it and the apex
    /// (empty non-terminals: RFC 4592 §2.2.2).
    mutating func owner(_ wire: [UInt8]) -> Int {
        wire.withUnsafeBytes { name in
            let hash = StoreView.hash(of: name.baseAddress!)
            if let found = find(name, hash: hash) { return found }
            let index = insert(name, hash: hash)
            // Ancestors, up to the first that exists.
            var start = Int(name[0]) + 1
            while name.count - start > origin.wire.count {
                let parent = UnsafeRawBufferPointer(rebasing: name[start...])
                let parentHash = StoreView.hash(of: parent.baseAddress!)
                if find(parent, hash: parentHash) != nil { break }
                _ = insert(parent, hash: parentHash)
                start += 1 + Int(name[start])
            }
            if name.count > 2 && name[0] == 1 && name[1] == UInt8(ascii: "*") {
                owners[index].flags |= ZoneAssembler.wildcard
            }
            return index
        }
    }

    func find(_ name: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        let mask = table.count - 1
        let mixed = StoreView.finish(hash)
        let tag = mixed >> 32
        var slot = Int(truncatingIfNeeded: mixed) & mask
        while table[slot] != 0 {
            let entry = table[slot]
            slot = (slot + 1) & mask
            guard entry >> 32 == tag else { continue }
            let index = Int(truncatingIfNeeded: entry & 0xffff_ffff) - 1
            let owner = owners[index]
            guard owner.hash == hash && Int(owner.nameLength) == name.count else { continue }
            let start = Int(owner.nameOffset)
            var equal = true
            for offset in 0..<name.count
            where asciiLower(names[start + offset]) != asciiLower(name[offset]) {
                equal = false
                break
            }
            if equal { return index }
        }
        return nil
    }

    mutating func insert(_ name: UnsafeRawBufferPointer, hash: UInt64) -> Int {
        let index = owners.count
        owners.append(
            Owner(nameOffset: UInt32(names.count), nameLength: UInt8(name.count), hash: hash))
        names.append(contentsOf: name)
        if owners.count * 2 > table.count {
            table = [UInt64](repeating: 0, count: table.count * 2)
            for (other, owner) in owners.enumerated() { place(other, hash: owner.hash) }
        } else {
            place(index, hash: hash)
        }
        return index
    }

    mutating func place(_ index: Int, hash: UInt64) {
        let mask = table.count - 1
        let mixed = StoreView.finish(hash)
        var slot = Int(truncatingIfNeeded: mixed) & mask
        while table[slot] != 0 { slot = (slot + 1) & mask }
        table[slot] = (mixed >> 32) << 32 | UInt64(index + 1)
    }

    /// What `nsd-checkzone` checks once the whole zone is read: records at all, one
    /// SOA; a CNAME alone at its name, DS aside (RFC 2181 §10.1). A zone read from a
    /// file has had its second SOA and its CNAMEs beside other data refused at their
    /// lines as they came (``add(_:file:line:)``); what it lacks is reported at
    /// `endLine`, as `nsd-checkzone` does.
    func check(endLine: Int) throws(ZoneFileError) {
        func fail(_ problem: ZoneFileError.Problem) -> ZoneFileError {
            ZoneFileError(file: source, line: endLine, problem: problem)
        }
        guard !records.isEmpty else { throw fail(.emptyFile) }
        guard soaCount > 0 else { throw fail(.noSOA) }
        guard soaCount == 1 else { throw fail(.multipleSOA) }
        for owner in owners {
            var cnames = 0
            var others = false
            var cursor = owner.first
            while cursor >= 0 {
                let record = records[Int(cursor)]
                if record.type == RecordType.cname.rawValue {
                    cnames += 1
                } else if !mayAccompanyCNAME(record.type) {
                    others = true
                }
                cursor = record.next
            }
            guard cnames > 0 else { continue }
            let name = DomainName(
                validatedWire: Array(
                    names[Int(owner.nameOffset)..<Int(owner.nameOffset) + Int(owner.nameLength)]))
            guard cnames == 1 else { throw fail(.multipleCNAME(name.description)) }
            guard !others else { throw fail(.cnameAndOtherData(name.description)) }
        }
    }

    /// Writes the zone's node records and hash table into `compiler`.
    func emit(into compiler: inout ZoneCompiler) throws(ZoneFileError) {
        func tooLarge(_ what: String) -> ZoneFileError {
            ZoneFileError(
                file: source, line: 0, problem: .badRecordData(type: "zone", reason: what))
        }
        var nodes = [UInt32](repeating: 0, count: owners.count)
        var info = ZoneStore.ZoneInfo(
            apex: 0, soa: 0, ns: 0, slotBase: UInt32(compiler.slots.count), slotMask: 0)
        var types: [UInt16] = []
        // The arena is moved out of the compiler while it grows (no copy on write) and
        // back in the end; on failure, back as it was.
        var arena = compiler.arena
        compiler.arena = []
        let arenaStart = arena.count
        var rrsets = 0
        var fixups: [UInt32] = []
        func fail(_ what: String) -> ZoneFileError {
            arena.removeSubrange(arenaStart...)
            compiler.arena = arena
            return tooLarge(what)
        }
        for (index, owner) in owners.enumerated() {
            // The owner's types in the order first seen (ANY answers with the first).
            types.removeAll(keepingCapacity: true)
            var cursor = owner.first
            while cursor >= 0 {
                let record = records[Int(cursor)]
                if !types.contains(record.type) { types.append(record.type) }
                cursor = record.next
            }
            // Node records start at multiples of 4.
            while arena.count % 4 != 0 { arena.append(0) }
            let node = arena.count
            nodes[index] = UInt32(truncatingIfNeeded: node)
            let isApex = index == 0
            var flags: UInt8 = 0
            arena.append(owner.nameLength)
            arena.append(0)
            appendNative(UInt16(types.count), to: &arena)
            let nameStart = Int(owner.nameOffset)
            arena += names[nameStart..<nameStart + Int(owner.nameLength)]
            while arena.count % 4 != 0 { arena.append(0) }
            let descriptors = arena.count
            arena += repeatElement(0, count: 12 * types.count)
            for (position, type) in types.enumerated() {
                let descriptor = descriptors + 12 * position
                if isApex && type == RecordType.soa.rawValue {
                    info.soa = UInt32(truncatingIfNeeded: descriptor)
                }
                if isApex && type == RecordType.ns.rawValue {
                    info.ns = UInt32(truncatingIfNeeded: descriptor)
                }
                if !isApex && type == RecordType.ns.rawValue { flags |= StoreView.delegation }
                var count = 0
                var ttl = UInt32.max
                let first = arena.count
                cursor = owner.first
                while cursor >= 0 {
                    let record = records[Int(cursor)]
                    cursor = record.next
                    guard record.type == type else { continue }
                    count += 1
                    ttl = min(ttl, record.ttl)
                    arena.append(UInt8(record.rdataLength >> 8))
                    arena.append(UInt8(record.rdataLength & 0xff))
                    let start = Int(record.rdataOffset)
                    arena += rdata[start..<start + Int(record.rdataLength)]
                }
                guard count <= 65535 else { throw fail("an RRset of over 65535 records") }
                if StoreView.hasTargets(type) {
                    // Room for each RDATA's target node, filled in by `finish`.
                    while arena.count % 4 != 0 { arena.append(0) }
                    arena += repeatElement(0, count: 4 * count)
                    fixups.append(UInt32(truncatingIfNeeded: descriptor))
                } else if type == RecordType.rrsig.rawValue {
                    // Each RRSIG's own TTL (NSD keeps them per record).
                    while arena.count % 4 != 0 { arena.append(0) }
                    cursor = owner.first
                    while cursor >= 0 {
                        let record = records[Int(cursor)]
                        cursor = record.next
                        guard record.type == type else { continue }
                        withUnsafeBytes(of: record.ttl) { arena += $0 }
                    }
                }
                arena.withUnsafeMutableBytes { bytes in
                    bytes.storeBytes(of: type, toByteOffset: descriptor, as: UInt16.self)
                    bytes.storeBytes(
                        of: UInt16(count), toByteOffset: descriptor + 2, as: UInt16.self)
                    bytes.storeBytes(of: ttl, toByteOffset: descriptor + 4, as: UInt32.self)
                    bytes.storeBytes(
                        of: UInt32(truncatingIfNeeded: first), toByteOffset: descriptor + 8,
                        as: UInt32.self)
                }
            }
            if types.contains(RecordType.nsec3.rawValue),
                types.allSatisfy({
                    $0 == RecordType.nsec3.rawValue || $0 == RecordType.rrsig.rawValue
                })
            {
                flags |= StoreView.onlyNSEC3
            }
            arena[node + 1] = flags
            guard arena.count < Int(Int32.max) else { throw fail("over 2 GiB of names and data") }
            rrsets += types.count
        }
        // Wildcard owners mark their parent (RFC 4592 §2.1.1: the source of synthesis).
        for owner in owners where owner.flags & ZoneAssembler.wildcard != 0 {
            let parent = Array(
                names[(Int(owner.nameOffset) + 2)..<(Int(owner.nameOffset) + Int(owner.nameLength))]
            )
            let found = parent.withUnsafeBytes { parent in
                find(parent, hash: StoreView.hash(of: parent.baseAddress!))
            }
            if let found { arena[Int(nodes[found]) + 1] |= StoreView.wildcardChild }
        }
        addDNSSEC(to: &info, nodes: nodes, arena: &arena)
        compiler.arena = arena
        compiler.rrsetCount += rrsets
        compiler.targetFixups += fixups
        info.apex = nodes[0]
        let capacity = tableCapacity(for: owners.count)
        info.slotMask = UInt32(capacity - 1)
        let base = compiler.slots.count
        compiler.slots += repeatElement(0, count: capacity)
        for (index, owner) in owners.enumerated() {
            let mixed = StoreView.finish(owner.hash)
            var slot = Int(truncatingIfNeeded: mixed) & (capacity - 1)
            while compiler.slots[base + slot] != 0 { slot = (slot + 1) & (capacity - 1) }
            compiler.slots[base + slot] = (mixed >> 32) << 32 | UInt64(nodes[index])
        }
        compiler.zones.append(info)
        compiler.nodeCount += owners.count
    }
}

extension ZoneAssembler {
    /// The RDATAs of `owner`'s records of `type`, in file order.
    func rdatas(of owner: Int, type: RecordType) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var cursor = owners[owner].first
        while cursor >= 0 {
            let record = records[Int(cursor)]
            cursor = record.next
            guard record.type == type.rawValue else { continue }
            let start = Int(record.rdataOffset)
            result.append(rdata[start..<start + Int(record.rdataLength)])
        }
        return result
    }

    func name(of owner: Int) -> [UInt8] {
        let start = Int(owners[owner].nameOffset)
        return Array(names[start..<start + Int(owners[owner].nameLength)])
    }

    /// What DNSSEC answers need of a signed zone, as NSD derives it when it loads one:
    /// whether it is signed (an RRSIG covering DNSKEY at the apex), its NSEC owners in
    /// canonical order, and the NSEC3 chain of its NSEC3PARAM (RFC 5155 §4: SHA-1,
    /// flags 0, its hash of the apex owning an NSEC3 with SOA) by hash. The tables go in
    /// the arena after the zone's nodes.
    func addDNSSEC(to info: inout ZoneStore.ZoneInfo, nodes: [UInt32], arena: inout [UInt8]) {
        let secure = rdatas(of: 0, type: .rrsig).contains { rdata in
            rdata.count >= 2 && rdata[rdata.startIndex] == 0
                && rdata[rdata.startIndex + 1] == UInt8(RecordType.dnskey.rawValue)
        }
        if secure {
            info.secure = 1
            for node in nodes { arena[Int(node) + 1] |= StoreView.signedZone }
        }
        // NSEC owners, sorted canonically.
        var nsecOwners = owners.indices.filter { !rdatas(of: $0, type: .nsec).isEmpty }
        if !nsecOwners.isEmpty {
            let ownerNames = nsecOwners.map { name(of: $0) }
            let order = ownerNames.indices.sorted { left, right in
                ownerNames[left].withUnsafeBytes { a in
                    ownerNames[right].withUnsafeBytes { b in canonicalCompare(a, b) < 0 }
                }
            }
            nsecOwners = order.map { nsecOwners[$0] }
            while arena.count % 4 != 0 { arena.append(0) }
            info.nsecTable = UInt32(truncatingIfNeeded: arena.count)
            info.nsecCount = UInt32(nsecOwners.count)
            for owner in nsecOwners { withUnsafeBytes(of: nodes[owner]) { arena += $0 } }
        }
        // The NSEC3 chain NSD picks: the first NSEC3PARAM of SHA-1 with flags 0 whose
        // chain holds the apex's hash with SOA in its bitmap.
        for parameters in rdatas(of: 0, type: .nsec3param) {
            guard parameters.count >= 5, parameters[parameters.startIndex] == 1,
                parameters[parameters.startIndex + 1] == 0
            else { continue }
            let saltAndIterations = Array(parameters[(parameters.startIndex + 2)...])
            var chain: [([UInt8], UInt32)] = []
            for owner in owners.indices {
                let ownerName = name(of: owner)
                guard ownerName.first == 32,
                    let hash = decodeBase32Hex(ownerName[1..<33]), hash.count == 20
                else { continue }
                // In the chain: one of its NSEC3s has the parameters' algorithm,
                // iterations and salt.
                let inChain = rdatas(of: owner, type: .nsec3).contains { rdata in
                    rdata.count >= 5 + Int(rdata[rdata.startIndex + 4])
                        && rdata[rdata.startIndex] == 1
                        && rdata[
                            (rdata.startIndex + 2)..<(rdata.startIndex + 5
                                + Int(rdata[rdata.startIndex + 4]))
                        ]
                        .elementsEqual(saltAndIterations)
                }
                if inChain { chain.append((hash, nodes[owner])) }
            }
            guard !chain.isEmpty else { continue }
            chain.sort { $0.0.lexicographicallyPrecedes($1.0) }
            // RFC 5155 §7.2 needs the apex in the chain, with SOA (NSD checks the same).
            let iterations = UInt16(saltAndIterations[0]) << 8 | UInt16(saltAndIterations[1])
            let salt = Array(saltAndIterations[3...])
            let apexHash = NSEC3Hash.hash(name: origin, salt: salt, iterations: iterations)
            guard let apexEntry = chain.first(where: { $0.0 == apexHash }),
                let apexOwner = nodes.firstIndex(of: apexEntry.1),
                rdatas(of: apexOwner, type: .nsec3).contains(where: { nsec3HasSOA($0) })
            else { continue }
            // The NSEC3PARAM's RDATA as stored with the apex, found again in the arena.
            while arena.count % 4 != 0 { arena.append(0) }
            info.nsec3Param = UInt32(truncatingIfNeeded: arena.count)
            arena.append(UInt8(parameters.count >> 8))
            arena.append(UInt8(parameters.count & 0xff))
            arena += parameters
            while arena.count % 4 != 0 { arena.append(0) }
            info.nsec3Table = UInt32(truncatingIfNeeded: arena.count)
            info.nsec3Count = UInt32(chain.count)
            for (hash, node) in chain {
                arena += hash
                withUnsafeBytes(of: node) { arena += $0 }
            }
            break
        }
    }

    /// Whether an NSEC3 RDATA's bitmap has SOA (NSD's `nsec3_has_soa`: window 0).
    func nsec3HasSOA(_ rdata: ArraySlice<UInt8>) -> Bool {
        let base = rdata.startIndex
        guard rdata.count >= 5 else { return false }
        let hashAt = base + 5 + Int(rdata[base + 4])
        guard hashAt < rdata.endIndex else { return false }
        let bitmapAt = hashAt + 1 + Int(rdata[hashAt])
        guard bitmapAt + 3 <= rdata.endIndex else { return false }
        return rdata[bitmapAt] == 0 && rdata[bitmapAt + 2] & 0x02 != 0
    }
}

/// The types NSD allows beside a CNAME (RFC 4035 §2.5: its DNSSEC records), and DS.
func mayAccompanyCNAME(_ type: UInt16) -> Bool {
    switch RecordType(rawValue: type) {
    case .ds, .rrsig, .nsec, .nsec3, .sig, .nxt: true
    default: false
    }
}

@inline(__always)
func appendNative(_ value: UInt16, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value) { bytes += $0 }
}
