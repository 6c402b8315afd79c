#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The compiled form of every zone the engine serves: built once by ``ZoneCompiler``,
/// read-only afterwards, and laid out for the fewest cache misses per query.
///
/// Everything lives in one allocation (backed by transparent huge pages when it is
/// large, so a query's random loads also miss the TLB less):
///
/// - the **arena**: one *node record* per name that exists (it owns RRsets, or it is an
///   empty non-terminal, RFC 4592 §2.2.2), each holding everything a query about that
///   name reads, contiguously:
///
///   ```
///   +0 name length (UInt8)  +1 flags (UInt8)  +2 RRset count (UInt16)
///   +4 the owner's wire name, as first spelled in the zone file
///      padding to a multiple of 4
///   RRset descriptors, 12 bytes each: type (UInt16), RDATA count (UInt16),
///      TTL (UInt32), arena offset of the first RDATA (UInt32)
///   the RDATAs, each [length: UInt16 big-endian][bytes]
///   ```
///
///   A node is named by the arena offset of its record, an RRset by the arena offset
///   of its descriptor; offset 0 is never a record, so 0 can mean "none".
/// - per zone, an open-addressing **hash table** of 8-byte slots: the high 32 bits of
///   the name's hash as a tag, the node's offset in the low 32; 0 is an empty slot. A
///   lookup reads one slot (rarely two: the load factor is at most one half) and then
///   the one node record whose tag matched, so a hit costs two cache misses and a miss
///   one, whatever the zone's size;
/// - the **zones** (`ZoneInfo`) and a small hash table of their apexes.
///
/// Names are hashed label by label from the root (``StoreView/extend(_:label:at:)``),
/// so the hashes of every suffix of a query name come out of one pass over it: finding
/// the closest enclosing zone and then the closest encloser costs one probe per label.
final class ZoneStore: @unchecked Sendable {
    // @unchecked: the memory is written once, before `init` returns, and only read
    // after; `view` holds no references.

    struct ZoneInfo {
        /// The apex's node.
        var apex: UInt32
        /// The apex's SOA RRset (every zone has one).
        var soa: UInt32
        /// The apex's NS RRset, or 0.
        var ns: UInt32
        /// The zone's first slot in the slot array, and its table's size - 1.
        var slotBase: UInt32
        var slotMask: UInt32
        /// DNSSEC (all 0 for an unsigned zone). The zone is signed as NSD decides it:
        /// an RRSIG covering DNSKEY at the apex.
        var secure: UInt32 = 0
        /// The nodes owning NSEC RRsets, in canonical order (RFC 4034 §6.1): an arena
        /// offset of `nsecCount` UInt32 node offsets.
        var nsecTable: UInt32 = 0
        var nsecCount: UInt32 = 0
        /// The NSEC3 chain NSD would serve (an NSEC3PARAM of SHA-1, flags 0, whose
        /// hash of the apex has an NSEC3 with SOA): the arena offset of its
        /// NSEC3PARAM's `[length][RDATA]`, or 0; and its nodes by hash, `nsec3Count`
        /// entries of 20 hash bytes and a UInt32 node offset.
        var nsec3Param: UInt32 = 0
        var nsec3Table: UInt32 = 0
        var nsec3Count: UInt32 = 0
    }

    let view: StoreView
    /// Names (nodes, empty non-terminals included), RRsets, and arena bytes.
    let nodeCount: Int
    let rrsetCount: Int
    let arenaBytes: Int
    /// The zones served (``StoreView/zones`` has this many).
    let zoneCount: Int
    /// The bytes of every zone's hash table.
    let slotBytes: Int
    private let base: UnsafeMutableRawPointer
    private let byteCount: Int
    private let mapped: Bool

    /// Copies the compiler's tables into one allocation.
    init(
        arena: [UInt8], slots: [UInt64], zones: [ZoneInfo], apexSlots: [UInt64], nodeCount: Int,
        rrsetCount: Int
    ) {
        func aligned(_ value: Int) -> Int { (value + 63) & ~63 }
        let slotsAt = 0
        let apexAt = aligned(slots.count * 8)
        let zonesAt = apexAt + aligned(apexSlots.count * 8)
        let arenaAt = zonesAt + aligned(zones.count * MemoryLayout<ZoneInfo>.stride)
        // `StoreView.slack` bytes after the arena: names are compared 8 bytes at a time.
        let total = max(arenaAt + arena.count + StoreView.slack, 64)
        let hugePage = 2 << 20
        var memory: UnsafeMutableRawPointer?
        var size = total
        if total >= hugePage {
            size = (total + hugePage - 1) & ~(hugePage - 1)
            let address = mmap(
                nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if let address, address != MAP_FAILED {
                #if canImport(Glibc)
                    _ = madvise(address, size, MADV_HUGEPAGE)
                #endif
                memory = address
            }
        }
        mapped = memory != nil
        if memory == nil {
            size = total
            memory = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 64)
        }
        let base = memory!
        self.base = base
        self.byteCount = size
        func copy<Element>(_ array: [Element], to offset: Int) {
            array.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress, bytes.count > 0 {
                    (base + offset).copyMemory(from: source, byteCount: bytes.count)
                }
            }
        }
        copy(slots, to: slotsAt)
        copy(apexSlots, to: apexAt)
        copy(zones, to: zonesAt)
        copy(arena, to: arenaAt)
        (base + arenaAt + arena.count).initializeMemory(
            as: UInt8.self, repeating: 0, count: StoreView.slack)
        view = StoreView(
            arena: UnsafeRawPointer(base + arenaAt),
            slots: UnsafeRawPointer(base + slotsAt).assumingMemoryBound(to: UInt64.self),
            apexSlots: UnsafeRawPointer(base + apexAt).assumingMemoryBound(to: UInt64.self),
            apexMask: apexSlots.count - 1,
            slotCount: slots.count,
            zones: UnsafeRawPointer(base + zonesAt).assumingMemoryBound(to: ZoneInfo.self),
            arenaCount: arena.count)
        self.nodeCount = nodeCount
        self.rrsetCount = rrsetCount
        self.arenaBytes = arena.count
        self.zoneCount = zones.count
        self.slotBytes = slots.count * 8
    }

    /// Fills in the target nodes of the NS, MX and SRV RRsets whose descriptors are at
    /// `rrsets` (``StoreView/hasTargets(_:)``), now that every zone is in place.
    func resolveTargets(_ rrsets: [UInt32]) {
        let arena = UnsafeMutableRawPointer(mutating: view.arena)
        var name = [UInt8](repeating: 0, count: 256 + StoreView.slack)
        for descriptor in rrsets {
            let set = Int(descriptor)
            let skip = StoreView.targetSkip(view.type(set))
            var rdata = view.rdata(set)
            var target = view.targets(of: set)
            for _ in 0..<view.count(set) {
                let start = rdata + 2 + skip
                let length = view.wireNameLength(at: start)
                for index in 0..<length { name[index] = asciiLower(view.byte(start + index)) }
                let node = name.withUnsafeBytes {
                    view.findInEnclosingZone(UnsafeRawBufferPointer(rebasing: $0[0..<length]))
                }
                arena.storeBytes(
                    of: UInt32(truncatingIfNeeded: node ?? 0), toByteOffset: target, as: UInt32.self
                )
                rdata += 2 + view.rdataLength(at: rdata)
                target += 4
            }
        }
    }

    deinit {
        if mapped {
            munmap(base, byteCount)
        } else {
            base.deallocate()
        }
    }
}

/// The store's memory as plain pointers, for the length of one query: reading through
/// it costs no reference counting and no bounds checks. The store's layout is built by
/// us and checked when it is built; nothing a query contains is used as an offset
/// into it without coming from the store itself.
struct StoreView {
    let arena: UnsafeRawPointer
    let slots: UnsafePointer<UInt64>
    let apexSlots: UnsafePointer<UInt64>
    let apexMask: Int
    /// Every zone's slots together.
    let slotCount: Int
    let zones: UnsafePointer<ZoneStore.ZoneInfo>
    let arenaCount: Int

    static let delegation: UInt8 = 1
    static let wildcardChild: UInt8 = 2
    /// The node holds NSEC3 and nothing else but RRSIGs: NSD answers as if it did not
    /// exist (its `domain_has_only_NSEC3`).
    static let onlyNSEC3: UInt8 = 4
    /// The node is in a signed zone: with DO, its RRsets go with their RRSIGs.
    static let signedZone: UInt8 = 8

    // MARK: Node records

    @inline(__always) func byte(_ offset: Int) -> UInt8 {
        assert(offset >= 0 && offset < arenaCount)
        return arena.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inline(__always) func nameLength(_ node: Int) -> Int { Int(byte(node)) }
    @inline(__always) func flags(_ node: Int) -> UInt8 { byte(node + 1) }
    @inline(__always) func rrsetCount(_ node: Int) -> Int {
        Int(arena.loadUnaligned(fromByteOffset: node + 2, as: UInt16.self))
    }
    /// The arena offset of the node's owner name.
    @inline(__always) func name(_ node: Int) -> Int { node + 4 }
    /// The first RRset descriptor of `node`.
    @inline(__always) func firstRRSet(_ node: Int) -> Int { (node + 4 + nameLength(node) + 3) & ~3 }

    // MARK: RRset descriptors

    @inline(__always) func type(_ rrset: Int) -> UInt16 {
        arena.loadUnaligned(fromByteOffset: rrset, as: UInt16.self)
    }
    @inline(__always) func count(_ rrset: Int) -> Int {
        Int(arena.loadUnaligned(fromByteOffset: rrset + 2, as: UInt16.self))
    }
    @inline(__always) func ttl(_ rrset: Int) -> UInt32 {
        arena.loadUnaligned(fromByteOffset: rrset + 4, as: UInt32.self)
    }
    /// The arena offset of the RRset's first `[length][RDATA]`.
    @inline(__always) func rdata(_ rrset: Int) -> Int {
        Int(arena.loadUnaligned(fromByteOffset: rrset + 8, as: UInt32.self))
    }
    /// `count` arena bytes from `offset`.
    @inline(__always) func bytes(_ offset: Int, count: Int) -> UnsafeRawBufferPointer {
        assert(offset >= 0 && offset + count <= arenaCount)
        return UnsafeRawBufferPointer(start: arena + offset, count: count)
    }

    /// The length of the (valid, uncompressed) wire name at `offset`.
    @inline(__always) func wireNameLength(at offset: Int) -> Int {
        var position = offset
        while byte(position) != 0 { position += 1 + Int(byte(position)) }
        return position + 1 - offset
    }

    /// The big-endian length before the RDATA at `offset`.
    @inline(__always) func rdataLength(at offset: Int) -> Int {
        Int(byte(offset)) << 8 | Int(byte(offset + 1))
    }

    /// Whether RRsets of `type` name hosts whose addresses go in the additional
    /// section (RFC 1034 §3.3.9 and §4.3.2 step 6, RFC 2782): NS, MX and SRV. Their
    /// RDATAs are followed (at the next multiple of 4) by the target's node for each
    /// RDATA, found once when the store is built (0 if we serve no such name).
    @inline(__always) static func hasTargets(_ type: UInt16) -> Bool {
        type == RecordType.ns.rawValue || type == RecordType.mx.rawValue
            || type == RecordType.srv.rawValue || type == RecordType.mb.rawValue
            || type == RecordType.kx.rawValue || type == RecordType.rt.rawValue
    }

    /// Where the target name starts in an RDATA of `type` (``hasTargets(_:)``).
    @inline(__always) static func targetSkip(_ type: UInt16) -> Int {
        switch type {
        case RecordType.mx.rawValue, RecordType.kx.rawValue, RecordType.rt.rawValue: 2
        case RecordType.srv.rawValue: 6
        default: 0
        }
    }

    /// The arena offset of the target nodes after the RDATAs of `rrset`.
    @inline(__always) func targets(of rrset: Int) -> Int {
        var rdata = rdata(rrset)
        for _ in 0..<count(rrset) { rdata += 2 + rdataLength(at: rdata) }
        return (rdata + 3) & ~3
    }

    /// The arena offset of the per-record TTLs (UInt32 each) that follow the RDATAs of
    /// an RRSIG RRset: RRSIGs at one name cover different types and keep their own TTLs.
    @inline(__always) func recordTTLs(of rrset: Int) -> Int { targets(of: rrset) }

    // MARK: DNSSEC

    /// The node with the greatest NSEC owner name at or before `name` (lowercased,
    /// uncompressed) in canonical order, in `zone`: the NSEC that covers (or matches)
    /// it; nil if the zone has none. A binary search: only negative answers with DO ask.
    func coveringNSEC(_ zone: Int, _ name: UnsafeRawBufferPointer) -> Int? {
        let info = zones[zone]
        var low = 0
        var high = Int(info.nsecCount)
        let table = Int(info.nsecTable)
        // Invariant: entries before `low` are <= name, entries from `high` on are >.
        while low < high {
            let middle = (low + high) / 2
            let node = Int(arena.loadUnaligned(fromByteOffset: table + 4 * middle, as: UInt32.self))
            if canonicalCompare(bytes(node + 4, count: nameLength(node)), name) <= 0 {
                low = middle + 1
            } else {
                high = middle
            }
        }
        guard low > 0 else { return nil }
        return Int(arena.loadUnaligned(fromByteOffset: table + 4 * (low - 1), as: UInt32.self))
    }

    /// The NSEC3PARAM's salt and iterations, if the zone has a chain NSD serves.
    func nsec3Parameters(_ zone: Int) -> (salt: UnsafeRawBufferPointer, iterations: Int)? {
        let at = Int(zones[zone].nsec3Param)
        guard at != 0 else { return nil }
        let iterations = Int(byte(at + 4)) << 8 | Int(byte(at + 5))
        return (bytes(at + 7, count: Int(byte(at + 6))), iterations)
    }

    /// The NSEC3 node whose hash is the greatest at or before `hash` (20 bytes), or the
    /// last if none is (the chain wraps), and whether it matches exactly (NSD's
    /// `nsec3_find_cover`).
    func nsec3Cover(_ zone: Int, _ hash: UnsafeRawPointer) -> (node: Int, exact: Bool) {
        let info = zones[zone]
        let table = Int(info.nsec3Table)
        let count = Int(info.nsec3Count)
        var low = 0
        var high = count
        var exact = false
        while low < high {
            let middle = (low + high) / 2
            let order = compareHash(arena + table + 24 * middle, hash)
            if order <= 0 {
                if order == 0 { exact = true }
                low = middle + 1
            } else {
                high = middle
            }
        }
        let index = low > 0 ? low - 1 : count - 1
        let node = Int(
            arena.loadUnaligned(fromByteOffset: table + 24 * index + 20, as: UInt32.self))
        return (node, exact && low > 0)
    }

    /// The node for `name` (lowercased, uncompressed) in the closest enclosing zone we
    /// serve, or nil.
    func findInEnclosingZone(_ name: UnsafeRawBufferPointer) -> Int? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { starts in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 128) { hashes in
                let labelCount = StoreView.labels(
                    of: name.baseAddress!, starts: starts.baseAddress!, hashes: hashes.baseAddress!)
                for label in 0...labelCount {
                    let start = Int(starts[label])
                    if let zone = findZone(
                        UnsafeRawBufferPointer(rebasing: name[start...]), hash: hashes[label])
                    {
                        return findNode(zone, name, hash: hashes[0])
                    }
                }
                return nil
            }
        }
    }

    /// The RRset of `type` at `node`, or nil.
    @inline(__always) func rrset(of node: Int, type wanted: UInt16) -> Int? {
        var descriptor = firstRRSet(node)
        for _ in 0..<rrsetCount(node) {
            if type(descriptor) == wanted { return descriptor }
            descriptor += 12
        }
        return nil
    }

    // MARK: Lookups

    /// The zone whose apex is `name` (lowercased, `hash` its ``StoreView/hash`` ), or nil.
    @inline(__always) func findZone(_ name: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        let mixed = StoreView.finish(hash)
        let tag = mixed >> 32
        var slot = Int(truncatingIfNeeded: mixed) & apexMask
        while true {
            let entry = apexSlots[slot]
            if entry == 0 { return nil }
            if entry >> 32 == tag {
                let zone = Int(truncatingIfNeeded: entry & 0xffff_ffff) - 1
                if nodeNamed(Int(zones[zone].apex), name) { return zone }
            }
            slot = (slot + 1) & apexMask
        }
    }

    /// The node named `name` (lowercased, `hash` its hash) in `zone`, or nil.
    @inline(__always) func findNode(_ zone: Int, _ name: UnsafeRawBufferPointer, hash: UInt64)
        -> Int?
    {
        let info = zones[zone]
        let mask = Int(info.slotMask)
        let table = slots + Int(info.slotBase)
        let mixed = StoreView.finish(hash)
        let tag = mixed >> 32
        var slot = Int(truncatingIfNeeded: mixed) & mask
        while true {
            let entry = table[slot]
            if entry == 0 { return nil }
            if entry >> 32 == tag {
                let node = Int(truncatingIfNeeded: entry & 0xffff_ffff)
                if nodeNamed(node, name) { return node }
            }
            slot = (slot + 1) & mask
        }
    }

    /// The slot (an index into every zone's slots) where a lookup of the name with
    /// `hash` in `zone` starts, and the tag it looks for there.
    @inline(__always) func slot(_ zone: Int, hash: UInt64) -> (Int, UInt64) {
        let info = zones[zone]
        let mixed = StoreView.finish(hash)
        let slot = Int(truncatingIfNeeded: mixed) & Int(info.slotMask)
        return (Int(info.slotBase) + slot, mixed >> 32)
    }

    /// How many bytes past the end of a name the lookups may read (and ignore): the
    /// arena has that many after it, and every buffer a name to look up is in must too.
    static let slack = 8

    /// Whether node `node` is named `name` (lowercased; readable for `slack` bytes
    /// past its end), 8 bytes at a time.
    @inline(__always) func nodeNamed(_ node: Int, _ name: UnsafeRawBufferPointer) -> Bool {
        let length = name.count
        guard nameLength(node) == length, let wanted = name.baseAddress else { return false }
        let stored = arena + node + 4
        var offset = 0
        while offset < length {
            var left = UInt64(
                littleEndian: stored.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            var right = UInt64(
                littleEndian: wanted.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            let remaining = length &- offset
            if remaining < 8 {
                let mask: UInt64 = (1 << (UInt64(remaining) &* 8)) &- 1
                left &= mask
                right &= mask
            }
            guard StoreView.lowercased(left) == right else { return false }
            offset &+= 8
        }
        return true
    }

    /// The eight bytes of `word` with ASCII capitals made small (bytes over 0x7f kept).
    @inline(__always) static func lowercased(_ word: UInt64) -> UInt64 {
        let seven = word & 0x7f7f_7f7f_7f7f_7f7f
        let atLeastA = seven &+ 0x3f3f_3f3f_3f3f_3f3f  // high bit: byte >= "A"
        let pastZ = seven &+ 0x2525_2525_2525_2525  // high bit: byte > "Z"
        let capitals = atLeastA & ~pastZ & ~word & 0x8080_8080_8080_8080
        return word | (capitals >> 2)
    }

    // MARK: Hashing

    /// The hash of the root name; a name's hash extends its parent's by its first label.
    static let rootHash: UInt64 = 0xcbf2_9ce4_8422_2325

    /// The hash of `<label at offset start of name>.<the name whose hash is parent>`,
    /// ignoring case (FNV-1a over the label's length byte and lowercased bytes).
    /// `lowercase`: the name is known to be lowercased already.
    @inline(__always)
    static func extend(
        _ parent: UInt64, label name: UnsafeRawPointer, at start: Int, lowercase: Bool = false
    ) -> UInt64 {
        var hash = parent
        let length = Int(name.load(fromByteOffset: start, as: UInt8.self))
        for index in start...(start &+ length) {
            let byte = name.load(fromByteOffset: index, as: UInt8.self)
            hash = (hash ^ UInt64(lowercase ? byte : asciiLower(byte))) &* 0x100_0000_01b3
        }
        return hash
    }

    /// The final mix before a hash picks a slot (the low bits) and a tag (the high 32).
    @inline(__always)
    static func finish(_ hash: UInt64) -> UInt64 {
        var value = hash ^ (hash >> 33)
        value &*= 0xff51_afd7_ed55_8ccd
        return value ^ (value >> 33)
    }

    /// Finds the labels of the wire name at `name` (valid, uncompressed) and the hash of
    /// every suffix: `starts[i]` is where label i begins, `hashes[i]` the hash of the
    /// name from label i on, and `hashes[count]` the root's. Returns the label count
    /// (at most 127: both buffers need room for 128).
    @inline(__always)
    static func labels(
        of name: UnsafeRawPointer, starts: UnsafeMutablePointer<UInt8>,
        hashes: UnsafeMutablePointer<UInt64>, lowercase: Bool = false
    ) -> Int {
        var count = 0
        var position = 0
        while true {
            let length = Int(name.load(fromByteOffset: position, as: UInt8.self))
            starts[count] = UInt8(truncatingIfNeeded: position)
            if length == 0 { break }
            count += 1
            position += 1 + length
        }
        hashes[count] = rootHash
        var label = count - 1
        while label >= 0 {
            hashes[label] = extend(
                hashes[label + 1], label: name, at: Int(starts[label]), lowercase: lowercase)
            label -= 1
        }
        return count
    }

    /// The hash of one whole wire name (valid, uncompressed).
    static func hash(of name: UnsafeRawPointer) -> UInt64 {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { starts in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 128) { hashes in
                _ = labels(of: name, starts: starts.baseAddress!, hashes: hashes.baseAddress!)
                return hashes[0]
            }
        }
    }
}

/// A power of two at least twice `count`: the load factor stays at or under one half.
func tableCapacity(for count: Int) -> Int {
    var capacity = 8
    while capacity < count * 2 { capacity <<= 1 }
    return capacity
}

/// Compares two 20-byte hashes as unsigned big-endian numbers.
@inline(__always)
func compareHash(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> Int {
    for index in 0..<20 {
        let x = a.load(fromByteOffset: index, as: UInt8.self)
        let y = b.load(fromByteOffset: index, as: UInt8.self)
        if x != y { return x < y ? -1 : 1 }
    }
    return 0
}

/// RFC 4034 §6.1: the canonical order of two uncompressed wire names, label by label
/// from the root, each label's bytes compared with capitals made small, a label that
/// is a prefix of another first. Negative, zero or positive.
func canonicalCompare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { starts in
        var aCount = 0
        var position = 0
        while position < a.count && a[position] != 0 {
            starts[aCount] = UInt8(truncatingIfNeeded: position)
            aCount += 1
            position += 1 + Int(a[position])
        }
        var bCount = 0
        position = 0
        while position < b.count && b[position] != 0 {
            starts[128 + bCount] = UInt8(truncatingIfNeeded: position)
            bCount += 1
            position += 1 + Int(b[position])
        }
        var i = aCount - 1
        var j = bCount - 1
        while i >= 0 && j >= 0 {
            let x = Int(starts[i])
            let y = Int(starts[128 + j])
            let xLength = Int(a[x])
            let yLength = Int(b[y])
            for k in 0..<min(xLength, yLength) {
                let p = asciiLower(a[x + 1 + k])
                let q = asciiLower(b[y + 1 + k])
                if p != q { return Int(p) - Int(q) }
            }
            if xLength != yLength { return xLength - yLength }
            i -= 1
            j -= 1
        }
        return aCount - bCount
    }
}
