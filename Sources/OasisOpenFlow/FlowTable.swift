// An OpenFlow 1.0 flow table (§3.4, §4.6 of the specification): exact-match and
// wildcard entries with priorities, the FLOW_MOD commands, counters, timeouts, the
// emergency table and the statistics, sans I/O (times in nanoseconds come in).
//
// Lookup is a microflow cache (the packet's whole twelve-tuple to the entry it found)
// in front of an exact-match table and a tuple-space classifier: wildcard entries are
// grouped by their wildcards, each group a hash table of the masked tuple, and the
// groups are searched from the highest priority they hold down, stopping once no
// group can beat the entry found (Open vSwitch's classifier, Srinivasan et al. 1999).
// A lookup costs one hash probe per group visited, not one comparison per rule.

/// One flow entry and its counters.
public struct FlowEntry: Equatable {
    /// The fields matched, normalized (``Match/normalized``).
    public var match: Match
    /// Its priority; an exact match (no wildcards) is always above every wildcard entry.
    public var priority: UInt16
    public var actions: [Action]
    public var cookie: UInt64
    /// Seconds idle, and seconds at all, before it expires (0: never).
    public var idleTimeout: UInt16
    public var hardTimeout: UInt16
    public var flags: FlowModFlags
    public var packetCount: UInt64 = 0
    public var byteCount: UInt64 = 0
    /// When it was installed, and when a packet last matched it (nanoseconds).
    public var installedAt: Int64
    public var lastUsedAt: Int64

    /// Whether it matches no wildcard at all.
    public var isExact: Bool { match.wildcards.rawValue & Wildcards.all.rawValue == 0 }

    /// Whether one of its actions sends to `port` (an output or an enqueue).
    public func outputs(to port: PortNumber) -> Bool {
        actions.contains { action in
            switch action {
            case .output(let out, _), .enqueue(let out, _): out == port
            default: false
            }
        }
    }

    /// The time installed, as the statistics and FLOW_REMOVED give it.
    public func duration(now: Int64) -> (seconds: UInt32, nanoseconds: UInt32) {
        let elapsed = max(now - installedAt, 0)
        return (
            UInt32(truncatingIfNeeded: elapsed / 1_000_000_000),
            UInt32(truncatingIfNeeded: elapsed % 1_000_000_000)
        )
    }

    /// The FLOW_REMOVED message for this entry.
    public func removed(reason: FlowRemovedReason, now: Int64) -> FlowRemoved {
        let (seconds, nanoseconds) = duration(now: now)
        return FlowRemoved(
            match: match, cookie: cookie, priority: priority, reason: reason,
            durationSeconds: seconds, durationNanoseconds: nanoseconds, idleTimeout: idleTimeout,
            packetCount: packetCount, byteCount: byteCount)
    }
}

/// Whether some packet matches both `a` and `b`: on every field, one of them
/// wildcards it or both hold the same value; the addresses agree on the shorter of
/// the two prefixes.
public func overlaps(_ a: Match, _ b: Match) -> Bool {
    let wa = a.wildcards
    let wb = b.wildcards
    func either(_ bit: Wildcards, _ equal: Bool) -> Bool {
        wa.contains(bit) || wb.contains(bit) || equal
    }
    return either(.inPort, a.inPort == b.inPort) && either(.dlSrc, a.dlSrc == b.dlSrc)
        && either(.dlDst, a.dlDst == b.dlDst) && either(.dlVlan, a.dlVlan == b.dlVlan)
        && either(.dlVlanPcp, a.dlVlanPcp == b.dlVlanPcp)
        && either(.dlType, a.dlType == b.dlType) && either(.nwTos, a.nwTos == b.nwTos)
        && either(.nwProto, a.nwProto == b.nwProto)
        && (a.nwSrc ^ b.nwSrc) & wa.nwSrcMask & wb.nwSrcMask == 0
        && (a.nwDst ^ b.nwDst) & wa.nwDstMask & wb.nwDstMask == 0
        && either(.tpSrc, a.tpSrc == b.tpSrc) && either(.tpDst, a.tpDst == b.tpDst)
}

/// The entries of one table (the normal one, or the emergency one) and the indexes
/// that find them.
struct FlowClassifier {
    /// Entries by slot; nil slots are free.
    private(set) var slots: [FlowEntry?] = []
    private var free: [Int] = []
    private(set) var count = 0
    /// Exact-match entries by their tuple.
    private var exact: [Match: Int] = [:]
    /// Wildcard entries grouped by their (normalized) wildcards.
    private var groups: [UInt32: Group] = [:]
    /// The groups' wildcards, the highest priority they hold first.
    private var order: [UInt32] = []

    struct Group {
        /// Slots by masked tuple, the highest priority first.
        var buckets: [Match: [Int]] = [:]
        var count = 0
        var maximumPriority: UInt16 = 0
        /// Entries by priority: the maximum follows a removal without a scan of the
        /// group (deleting every entry of a large group was quadratic).
        var priorities: [UInt16: Int] = [:]
    }

    func entry(_ slot: Int) -> FlowEntry? { slots[slot] }

    var occupiedSlots: [Int] { slots.indices.filter { slots[$0] != nil } }

    mutating func insert(_ entry: FlowEntry) -> Int {
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
            slots[slot] = entry
        } else {
            slot = slots.count
            slots.append(entry)
        }
        count += 1
        if entry.isExact {
            exact[entry.match] = slot
        } else {
            let key = entry.match.wildcards.rawValue
            // Taken out of the table, not copied: a copy would share its buckets, and the
            // first change to them would copy them all (quadratic over a burst of ADDs).
            var group = groups.removeValue(forKey: key) ?? Group()
            var bucket = group.buckets.removeValue(forKey: entry.match) ?? []
            let at =
                bucket.firstIndex { (slots[$0]?.priority ?? 0) < entry.priority } ?? bucket.count
            bucket.insert(slot, at: at)
            group.buckets[entry.match] = bucket
            group.count += 1
            group.priorities[entry.priority, default: 0] += 1
            group.maximumPriority = max(group.maximumPriority, entry.priority)
            groups[key] = group
            reorder()
        }
        return slot
    }

    mutating func remove(_ slot: Int) -> FlowEntry? {
        guard let entry = slots[slot] else { return nil }
        slots[slot] = nil
        free.append(slot)
        count -= 1
        if entry.isExact {
            exact[entry.match] = nil
        } else {
            let key = entry.match.wildcards.rawValue
            guard var group = groups.removeValue(forKey: key) else { return entry }
            var bucket = group.buckets.removeValue(forKey: entry.match) ?? []
            bucket.removeAll { $0 == slot }
            group.buckets[entry.match] = bucket.isEmpty ? nil : bucket
            group.count -= 1
            let left = (group.priorities[entry.priority] ?? 1) - 1
            group.priorities[entry.priority] = left == 0 ? nil : left
            if group.count == 0 {
                groups[key] = nil
                reorder()
            } else if left == 0 && entry.priority == group.maximumPriority {
                group.maximumPriority = group.priorities.keys.max() ?? 0
                groups[key] = group
                reorder()
            } else {
                groups[key] = group
            }
        }
        return entry
    }

    mutating func update(_ slot: Int, _ body: (inout FlowEntry) -> Void) {
        guard var entry = slots[slot] else { return }
        slots[slot] = nil
        body(&entry)
        slots[slot] = entry
    }

    private mutating func reorder() {
        order = groups.keys.sorted { groups[$0]!.maximumPriority > groups[$1]!.maximumPriority }
    }

    /// The entry a packet with tuple `packet` (an exact match, ``Match/init(frame:inPort:)``)
    /// goes to: the exact one, else the highest-priority wildcard one.
    func lookup(_ packet: Match) -> Int? {
        if !exact.isEmpty, let slot = exact[packet] { return slot }
        var best: (slot: Int, priority: UInt16)?
        for key in order {
            guard let group = groups[key] else { continue }
            if let best, group.maximumPriority <= best.priority { break }
            var masked = packet
            masked.wildcards = Wildcards(rawValue: key)
            guard let bucket = group.buckets[masked.normalized], let slot = bucket.first,
                let priority = slots[slot]?.priority
            else { continue }
            if best == nil || priority > best!.priority { best = (slot, priority) }
        }
        return best?.slot
    }

    /// The slot of the entry whose match is strictly `match` at `priority`.
    func strict(_ match: Match, priority: UInt16) -> Int? {
        let normalized = match.normalized
        if normalized.wildcards.rawValue & Wildcards.all.rawValue == 0 { return exact[normalized] }
        guard let group = groups[normalized.wildcards.rawValue],
            let bucket = group.buckets[normalized]
        else { return nil }
        return bucket.first { slots[$0]?.priority == priority }
    }
}

/// An OpenFlow 1.0 flow table with its emergency table.
///
/// ```swift
/// var table = FlowTable(maximumEntries: 1 << 16)
/// _ = try table.apply(FlowMod(match: match, command: .add, actions: [.output(port: PortNumber(2))]), now: now)
/// if let entry = table.lookup(Match(frame: bytes, inPort: PortNumber(1)), bytes: 60, now: now) {
///     // apply entry.actions
/// }
/// ```
public struct FlowTable {
    /// The most entries, normal and emergency each (beyond it, ADD fails with
    /// `OFPFMFC_ALL_TABLES_FULL`).
    public let maximumEntries: Int
    private var normal = FlowClassifier()
    private var emergency = FlowClassifier()
    /// Whether lookups use the emergency entries (the controller is gone and the
    /// normal entries were removed, §4.3 of the specification).
    public private(set) var inEmergency = false
    /// Packets looked up, and those that matched an entry (table statistics).
    public private(set) var lookupCount: UInt64 = 0
    public private(set) var matchedCount: UInt64 = 0
    /// Lookups the microflow cache answered.
    public private(set) var cacheHits: UInt64 = 0
    /// The microflow cache: a packet's tuple to the slot found (-1: none), cleared by
    /// every change to the table; at most `cacheLimit` tuples (0: no cache).
    private var cache: [Match: Int] = [:]
    private let cacheLimit: Int

    public init(maximumEntries: Int = 1 << 20, cacheLimit: Int = 1 << 14) {
        self.maximumEntries = maximumEntries
        self.cacheLimit = cacheLimit
    }

    /// Entries in use (those lookups see).
    public var count: Int { inEmergency ? emergency.count : normal.count }
    /// Emergency entries.
    public var emergencyCount: Int { emergency.count }

    /// Every entry lookups see, in no particular order.
    public var entries: [FlowEntry] {
        let classifier = inEmergency ? emergency : normal
        return classifier.occupiedSlots.compactMap { classifier.entry($0) }
    }

    /// Empties the microflow cache; a no-op when it is empty (clearing a dictionary
    /// costs its capacity, and a burst of FLOW_MODs cleared it once each).
    private mutating func clearCache() {
        if !cache.isEmpty { cache.removeAll(keepingCapacity: true) }
    }

    // MARK: Lookup

    /// The entry for a packet whose tuple is `packet` (from ``Match/init(frame:inPort:)``),
    /// its counters advanced by one packet of `bytes` bytes; nil for a table miss.
    public mutating func lookup(_ packet: Match, bytes: Int, now: Int64) -> FlowEntry? {
        lookupCount &+= 1
        let slot: Int?
        if cacheLimit == 0 {
            slot = inEmergency ? emergency.lookup(packet) : normal.lookup(packet)
        } else if let cached = cache[packet] {
            cacheHits &+= 1
            slot = cached >= 0 ? cached : nil
        } else {
            slot = inEmergency ? emergency.lookup(packet) : normal.lookup(packet)
            if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[packet] = slot ?? -1
        }
        guard let slot else { return nil }
        matchedCount &+= 1
        let count = UInt64(bytes)
        if inEmergency {
            emergency.update(slot) { Self.touch(&$0, bytes: count, now: now) }
            return emergency.entry(slot)
        }
        normal.update(slot) { Self.touch(&$0, bytes: count, now: now) }
        return normal.entry(slot)
    }

    private static func touch(_ entry: inout FlowEntry, bytes: UInt64, now: Int64) {
        entry.packetCount &+= 1
        entry.byteCount &+= bytes
        entry.lastUsedAt = now
    }

    // MARK: Flow mods

    /// Applies a FLOW_MOD (§4.6): returns the entries it removed (DELETE, DELETE_STRICT),
    /// for FLOW_REMOVED where their flags ask; throws the error the switch answers with.
    @discardableResult
    public mutating func apply(_ mod: FlowMod, now: Int64) throws(FlowModFailedCode)
        -> [FlowEntry]
    {
        let emergencyFlow = mod.flags.contains(.emergency)
        switch mod.command {
        case .add:
            try add(mod, now: now)
            return []
        case .modify, .modifyStrict:
            let strict = mod.command == .modifyStrict
            let changed = modify(mod, strict: strict, emergency: emergencyFlow)
            if changed == 0 { try add(mod, now: now) }
            return []
        case .delete, .deleteStrict:
            return delete(
                mod.match, priority: mod.priority, strict: mod.command == .deleteStrict,
                outPort: mod.outPort, emergency: emergencyFlow)
        }
    }

    /// OpenFlow 1.0's exact matches are above every wildcard entry: their priority is
    /// the highest (65535), as Open vSwitch gives them, whatever the FLOW_MOD said.
    static func priority(_ requested: UInt16, for match: Match) -> UInt16 {
        match.wildcards.rawValue & Wildcards.all.rawValue == 0 ? .max : requested
    }

    private mutating func add(_ mod: FlowMod, now: Int64) throws(FlowModFailedCode) {
        let emergencyFlow = mod.flags.contains(.emergency)
        if emergencyFlow && (mod.idleTimeout != 0 || mod.hardTimeout != 0) {
            throw .badEmergencyTimeout
        }
        let match = mod.match.normalized
        let priority = Self.priority(mod.priority, for: match)
        let entry = FlowEntry(
            match: match, priority: priority, actions: mod.actions, cookie: mod.cookie,
            idleTimeout: mod.idleTimeout, hardTimeout: mod.hardTimeout,
            flags: mod.flags.subtracting(.emergency), installedAt: now, lastUsedAt: now)
        var classifier = emergencyFlow ? emergency : normal
        if emergencyFlow { emergency = FlowClassifier() } else { normal = FlowClassifier() }
        defer { if emergencyFlow { emergency = classifier } else { normal = classifier } }
        // CHECK_OVERLAP refuses any entry of the same priority that a packet could
        // match as well, the same match included.
        if mod.flags.contains(.checkOverlap) {
            for slot in classifier.occupiedSlots {
                guard let other = classifier.entry(slot), other.priority == priority,
                    overlaps(other.match, match)
                else { continue }
                throw .overlap
            }
        }
        // The same match and priority: replaced, counters and all.
        if let existing = classifier.strict(match, priority: priority) {
            _ = classifier.remove(existing)
        } else {
            guard classifier.count < maximumEntries else { throw .allTablesFull }
        }
        _ = classifier.insert(entry)
        clearCache()
    }

    /// MODIFY and MODIFY_STRICT: the actions of the entries chosen change, nothing
    /// else (§4.6); returns how many.
    private mutating func modify(_ mod: FlowMod, strict: Bool, emergency emergencyFlow: Bool)
        -> Int
    {
        let slots = chosen(
            mod.match, priority: mod.priority, strict: strict, emergency: emergencyFlow)
        for slot in slots {
            if emergencyFlow {
                emergency.update(slot) { $0.actions = mod.actions }
            } else {
                normal.update(slot) { $0.actions = mod.actions }
            }
        }
        return slots.count
    }

    /// DELETE and DELETE_STRICT, filtered by `outPort` unless it is `.none`.
    private mutating func delete(
        _ match: Match, priority: UInt16, strict: Bool, outPort: PortNumber,
        emergency emergencyFlow: Bool
    ) -> [FlowEntry] {
        var removed: [FlowEntry] = []
        for slot in chosen(match, priority: priority, strict: strict, emergency: emergencyFlow) {
            let entry = emergencyFlow ? emergency.entry(slot) : normal.entry(slot)
            guard let entry, outPort == .none || entry.outputs(to: outPort) else { continue }
            if let gone = emergencyFlow ? emergency.remove(slot) : normal.remove(slot) {
                removed.append(gone)
            }
        }
        if !removed.isEmpty { clearCache() }
        return removed
    }

    /// The slots a MODIFY or DELETE names: strictly (the same match and priority) or
    /// every entry the match covers.
    private func chosen(
        _ match: Match, priority: UInt16, strict: Bool, emergency emergencyFlow: Bool
    )
        -> [Int]
    {
        let classifier = emergencyFlow ? emergency : normal
        if strict {
            let normalized = match.normalized
            let priority = Self.priority(priority, for: normalized)
            return classifier.strict(normalized, priority: priority).map { [$0] } ?? []
        }
        return classifier.occupiedSlots.filter { slot in
            classifier.entry(slot).map { match.covers($0.match) } ?? false
        }
    }

    // MARK: Timeouts and the emergency mode

    /// Removes the entries whose idle or hard timeout ran out by `now`, with why.
    public mutating func expire(now: Int64) -> [(entry: FlowEntry, reason: FlowRemovedReason)] {
        var expired: [(entry: FlowEntry, reason: FlowRemovedReason)] = []
        for slot in normal.occupiedSlots {
            guard let entry = normal.entry(slot) else { continue }
            let reason: FlowRemovedReason
            if entry.hardTimeout > 0,
                now - entry.installedAt >= Int64(entry.hardTimeout) * 1_000_000_000
            {
                reason = .hardTimeout
            } else if entry.idleTimeout > 0,
                now - entry.lastUsedAt >= Int64(entry.idleTimeout) * 1_000_000_000
            {
                reason = .idleTimeout
            } else {
                continue
            }
            if let gone = normal.remove(slot) { expired.append((gone, reason)) }
        }
        if !expired.isEmpty { clearCache() }
        return expired
    }

    /// The controller is gone (§4.3, fail-secure with emergency flows): the normal
    /// entries are removed and lookups use the emergency ones. Returns those removed.
    public mutating func enterEmergency() -> [FlowEntry] {
        let removed = normal.occupiedSlots.compactMap { normal.entry($0) }
        normal = FlowClassifier()
        inEmergency = true
        clearCache()
        return removed
    }

    /// A controller is back: lookups use the normal entries again (the emergency ones
    /// stay until deleted).
    public mutating func leaveEmergency() {
        inEmergency = false
        clearCache()
    }

    // MARK: Statistics

    /// OFPST_FLOW: the entries `request.match` covers (and that output to
    /// `request.outPort` unless it is `.none`).
    public func flowStats(_ request: FlowStatsRequest, now: Int64) -> [FlowStats] {
        selected(request).map { entry in
            let (seconds, nanoseconds) = entry.duration(now: now)
            return FlowStats(
                tableID: 0, match: entry.match, durationSeconds: seconds,
                durationNanoseconds: nanoseconds, priority: entry.priority,
                idleTimeout: entry.idleTimeout, hardTimeout: entry.hardTimeout,
                cookie: entry.cookie, packetCount: entry.packetCount, byteCount: entry.byteCount,
                actions: entry.actions)
        }
    }

    /// OFPST_AGGREGATE over the same selection.
    public func aggregateStats(_ request: FlowStatsRequest) -> AggregateStats {
        let chosen = selected(request)
        return AggregateStats(
            packetCount: chosen.reduce(0) { $0 &+ $1.packetCount },
            byteCount: chosen.reduce(0) { $0 &+ $1.byteCount },
            flowCount: UInt32(truncatingIfNeeded: chosen.count))
    }

    private func selected(_ request: FlowStatsRequest) -> [FlowEntry] {
        guard request.tableID == 0 || request.tableID == 0xff else { return [] }
        return entries.filter {
            request.match.covers($0.match)
                && (request.outPort == .none || $0.outputs(to: request.outPort))
        }
    }
}

/// A FLOW_MOD the table refuses throws the code the switch answers with.
extension FlowModFailedCode: Error {}
