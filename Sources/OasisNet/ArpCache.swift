import OasisBits
import OasisWire

/// The ARP cache and resolver for one interface, sans I/O (RFC 826; RFC 1122 §2.3.2).
///
/// The link layer owns one, feeds it what arrives, asks it before sending, and polls it
/// on a timer; it gives back what to send. Time is a monotonic `Duration` since any
/// fixed origin, passed in on every call.
///
/// ```swift
/// if let mac = cache.lookup(nextHop, now: now) {
///     send(packet, to: mac)
/// } else if case .queued(let request) = cache.enqueue(packet, for: nextHop, now: now) {
///     if let request { sendArp(request) }       // the first miss asks
/// }                                             // .dropped: counted in cache.drops
/// let answer = cache.receive(arp, now: now)       // on every ARP packet
/// if let reply = answer.reply { sendArp(reply) }
/// if let (address, mac) = answer.resolved {
///     while let packet = cache.takeWaiting(for: address) { send(packet, to: mac) }
/// }
/// while let request = cache.poll(now: now) { sendArp(request) }  // at nextDeadline
/// ```
///
/// Bounds: at most `capacity` entries (resolved or pending); when full, a pending entry
/// is evicted first, then one past its lifetime, then the resolved one updated longest
/// ago (a linear scan: the table is small and this happens only on a miss), so a flood
/// of addresses that never answer cannot push a known neighbour out.
///
/// Hardened as stacks on hostile links are, within RFC 826's merge rule:
/// - a packet whose Ethernet source is not its sender hardware address is dropped
///   (`senderMismatch`);
/// - a resolved entry within its lifetime is only refreshed, never moved to another
///   hardware address by a packet we did not ask for — an unsolicited reply, a
///   gratuitous ARP, a request for another host (`unsolicitedChange`); a station that
///   really changed its address is learned once the entry is past its lifetime or
///   being refreshed, from a packet addressed to us;
/// - another station claiming our address is a conflict (RFC 5227 §2.4), counted,
///   never learned, and said in ``Reception/conflict`` for the link to report and
///   defend;
/// - an entry past its lifetime is still used, for up to `staleLifetime`, while a
///   refresh is in flight (``staleLookup(_:now:)``, Linux's STALE and PROBE states):
///   traffic to a known neighbour does not stall or drop every minute while it is
///   asked again, nor when the table is busy with a flood. A packet that waits for an address is copied into a buffer of the
/// cache's own small pool — so a flood aimed at unresolvable neighbours cannot hold a
/// device's receive buffers, and the sender may reuse its buffer at once — and kept in
/// a fixed table of `maximumWaiting` slots; at most `waitingPerAddress` wait on one
/// address. Past either bound packets are dropped and counted.
public struct ArpCache: ~Copyable {
    /// Tunables, with the defaults of most stacks.
    public struct Configuration: Hashable, Sendable {
        /// Most entries held.
        public var capacity: Int = 256
        /// How long a learned entry stays valid.
        public var entryLifetime: Duration = .seconds(60)
        /// Most packets queued per unresolved address (RFC 1122 §2.3.2.2 asks for at
        /// least one).
        public var waitingPerAddress: Int = 4
        /// At most this many packets wait across all addresses (each in a buffer of the
        /// cache's own pool).
        public var maximumWaiting: Int = 64
        /// Time between requests for the same address (RFC 1122 §2.3.2.1: at most one
        /// per second).
        public var retryInterval: Duration = .seconds(1)
        /// Requests sent before giving up on an address.
        public var maximumRequests: Int = 3
        /// How long past its lifetime an entry is still used while it is asked again
        /// (Linux keeps stale neighbours 60 s before collecting them).
        public var staleLifetime: Duration = .seconds(60)

        /// The defaults.
        public init() {}
    }

    /// What ``enqueue(_:for:now:)`` did with a packet.
    public enum Resolution: Equatable {
        /// The packet waits; send `request` if there is one (the first miss).
        case queued(request: ArpRepr?)
        /// The packet was dropped (queue full, or no room in the table); counted.
        case dropped
    }

    /// What ``receive(_:now:)`` learned from an ARP packet.
    public struct Reception {
        /// The reply to send, if the packet was a request for our address.
        public var reply: ArpRepr?
        /// An address that is now resolved and may have packets waiting
        /// (``ArpCache/takeWaiting(for:)``).
        public var resolved: (address: IPv4Address, mac: MACAddress)?
        /// The hardware address of another station that claims our address (RFC 5227
        /// §2.4): to report, and to defend against with a gratuitous ARP.
        public var conflict: MACAddress?
    }

    @usableFromInline
    internal struct Entry {
        @usableFromInline var mac: MACAddress?
        @usableFromInline var updatedAt: Duration
        @usableFromInline var requestsSent: Int
        @usableFromInline var lastRequestAt: Duration
        @usableFromInline var waiting: Int
    }

    /// Our hardware address.
    public let mac: MACAddress
    /// Our protocol address.
    public var address: IPv4Address
    /// Tunables.
    public let configuration: Configuration
    /// What was dropped, and why.
    public private(set) var drops = DropCounters<ArpDropReason>()

    @usableFromInline internal var entries: [IPv4Address: Entry] = [:]
    private var waitingPackets: WaitingPackets
    /// The buffers waiting packets are copied into.
    private let waitingPool: BufferPool

    /// A cache for the interface at `mac` with `address`.
    public init(mac: MACAddress, address: IPv4Address, configuration: Configuration = .init()) {
        self.mac = mac
        self.address = address
        self.configuration = configuration
        entries.reserveCapacity(configuration.capacity)
        waitingPackets = WaitingPackets(capacity: max(1, configuration.maximumWaiting))
        waitingPool = BufferPool(limit: max(1, configuration.maximumWaiting))
    }

    /// The number of entries, resolved or pending.
    public var count: Int { entries.count }

    /// Packets waiting across all entries (bounded by `maximumWaiting`).
    public var waitingCount: Int { waitingPackets.count }

    /// The hardware address of `ip`, if resolved and not expired.
    @inlinable
    public func lookup(_ ip: IPv4Address, now: Duration) -> MACAddress? {
        lookupWithExpiry(ip, now: now)?.mac
    }

    /// The hardware address of `ip` and when the entry expires, if resolved and not
    /// expired: what a sender may keep at hand until then, or until the cache changes
    /// (``generation``).
    @inlinable
    public func lookupWithExpiry(_ ip: IPv4Address, now: Duration)
        -> (mac: MACAddress, expires: Duration)?
    {
        guard let entry = entries[ip], let mac = entry.mac,
            now - entry.updatedAt < configuration.entryLifetime
        else { return nil }
        return (mac, entry.updatedAt + configuration.entryLifetime)
    }

    /// The hardware address of `ip` if its entry is past its lifetime but within
    /// `staleLifetime` of it: a sender may go on using it while the neighbour is asked
    /// again. The first call for such an entry returns the request to send; the
    /// entry is dropped if `maximumRequests` go unanswered (``poll(now:)``).
    public mutating func staleLookup(_ ip: IPv4Address, now: Duration)
        -> (mac: MACAddress, request: ArpRepr?)?
    {
        guard let entry = entries[ip], let mac = entry.mac else { return nil }
        let age = now - entry.updatedAt
        guard
            age < configuration.entryLifetime + configuration.staleLifetime
                || entry.requestsSent > 0
        else { return nil }
        guard entry.requestsSent == 0, age >= configuration.entryLifetime else {
            return (mac, nil)
        }
        entries[ip]!.requestsSent = 1
        entries[ip]!.lastRequestAt = now
        return (mac, .request(from: self.mac, address, for: ip))
    }

    /// Keeps a copy of `packet` until `ip` (the next hop, not resolved: ask
    /// ``lookup(_:now:)`` first) is resolved, and says whether to send a request now.
    public mutating func enqueue(_ packet: borrowing Packet, for ip: IPv4Address, now: Duration)
        -> Resolution
    {
        if entries[ip] != nil {
            if entries[ip]!.mac != nil {
                // Known but expired (or resolved since the caller looked): start over as
                // a pending entry.
                entries[ip]!.mac = nil
                entries[ip]!.requestsSent = 0
            }
            guard entries[ip]!.waiting < configuration.waitingPerAddress,
                keep(packet, for: ip)
            else {
                drops.count(.queueFull)
                return .dropped
            }
            entries[ip]!.waiting += 1
            if entries[ip]!.requestsSent == 0 {
                entries[ip]!.requestsSent = 1
                entries[ip]!.lastRequestAt = now
                return .queued(request: .request(from: mac, address, for: ip))
            }
            return .queued(request: nil)
        }
        guard configuration.waitingPerAddress > 0, !waitingPackets.isFull, makeRoom(now: now),
            keep(packet, for: ip)
        else {
            drops.count(.queueFull)
            return .dropped
        }
        entries[ip] = Entry(
            mac: nil, updatedAt: now, requestsSent: 1, lastRequestAt: now, waiting: 1)
        return .queued(request: .request(from: mac, address, for: ip))
    }

    /// Copies `packet` into a waiting slot; false when there is no slot or buffer.
    private mutating func keep(_ packet: borrowing Packet, for ip: IPv4Address) -> Bool {
        guard !waitingPackets.isFull, let copy = try? packet.copy(into: waitingPool) else {
            return false
        }
        waitingPackets.append(copy, for: ip)
        return true
    }

    /// Handles a received ARP packet (RFC 826, "Packet Reception"): updates an existing
    /// entry for the sender (the merge flag), adds one if we are the target, and answers
    /// requests for our address. `linkSource` is the Ethernet source of the frame it
    /// came in, checked against the sender hardware address (nil: not checked).
    public mutating func receive(
        _ packet: ArpRepr, linkSource: MACAddress? = nil, now: Duration
    ) -> Reception {
        var reception = Reception()
        let sender = packet.senderProtocolAddress
        let hardware = packet.senderHardwareAddress
        guard hardware.isUnicast else {
            drops.count(.badSenderHardwareAddress)
            return reception
        }
        if let linkSource, linkSource != hardware {
            // Proxies and bridges send their own ARP from their own address: a frame
            // from one station speaking for another is a forgery.
            drops.count(.senderMismatch)
            return reception
        }
        if sender == address && !address.isUnspecified {
            // Someone else claims our address (RFC 5227 §2.4); never learn it.
            drops.count(.addressConflict)
            reception.conflict = hardware
            return reception
        }
        let forUs = packet.targetProtocolAddress == address && !address.isUnspecified
        // RFC 5227 §2.1.1: a probe's sender address is zero; nothing to learn.
        if !sender.isUnspecified {
            if let entry = entries[sender] {
                if entry.mac == nil || entry.mac == hardware {
                    // Pending (we asked), or the same address again: RFC 826's merge.
                    learn(sender, hardware, now: now, into: &reception)
                } else if forUs
                    && (entry.requestsSent > 0
                        || now - entry.updatedAt >= configuration.entryLifetime)
                {
                    // A new address for a neighbour we are asking again, or whose
                    // entry is past its lifetime, from a packet to us.
                    learn(sender, hardware, now: now, into: &reception)
                } else {
                    drops.count(.unsolicitedChange)
                }
            } else if forUs && makeRoom(now: now) {
                learn(sender, hardware, now: now, into: &reception)
            }
        }
        if forUs && packet.operation == .request {
            reception.reply = ArpRepr(
                operation: .reply, senderHardwareAddress: mac, senderProtocolAddress: address,
                targetHardwareAddress: packet.senderHardwareAddress,
                targetProtocolAddress: sender)
        }
        return reception
    }

    /// The next packet waiting for `ip`, oldest first, once it is resolved.
    public mutating func takeWaiting(for ip: IPv4Address) -> Packet? {
        guard let entry = entries[ip], entry.mac != nil, entry.waiting > 0,
            let packet = waitingPackets.takeOldest(for: ip)
        else { return nil }
        entries[ip]!.waiting -= 1
        return packet
    }

    /// The next request to send now (a retry), or nil when there is nothing more to do
    /// at `now`. Call it in a loop whenever ``nextDeadline`` passes. Addresses that got
    /// no answer after `maximumRequests` are removed with their waiting packets (counted
    /// as `resolutionFailed`); expired entries with nothing waiting are removed.
    public mutating func poll(now: Duration) -> ArpRepr? {
        // Expired entries and failed resolutions first, in one pass (no recursion:
        // a table of many expired entries is cleared in linear time).
        var gone: [IPv4Address] = []
        var due: IPv4Address? = nil
        for (ip, entry) in entries {
            if entry.mac != nil && entry.requestsSent == 0 {
                // Resolved, not being asked again: gone once past its stale lifetime.
                if now - entry.updatedAt
                    >= configuration.entryLifetime + configuration.staleLifetime
                    && entry.waiting == 0
                {
                    gone.append(ip)
                }
                continue
            }
            // Pending, or a stale entry being refreshed.
            guard now - entry.lastRequestAt >= configuration.retryInterval else { continue }
            if entry.requestsSent >= configuration.maximumRequests {
                drops.count(.resolutionFailed, UInt64(entry.waiting))
                waitingPackets.removeAll(for: ip)
                gone.append(ip)
            } else if due == nil {
                due = ip
            }
        }
        for ip in gone { entries[ip] = nil }
        guard let ip = due else { return nil }
        entries[ip]!.requestsSent += 1
        entries[ip]!.lastRequestAt = now
        return .request(from: mac, address, for: ip)
    }

    /// When ``poll(now:)`` next has something to do, if ever.
    public var nextDeadline: Duration? {
        var deadline: Duration? = nil
        for entry in entries.values {
            let due =
                entry.mac == nil || entry.requestsSent > 0
                ? entry.lastRequestAt + configuration.retryInterval
                : entry.updatedAt + configuration.entryLifetime + configuration.staleLifetime
            if deadline == nil || due < deadline! { deadline = due }
        }
        return deadline
    }

    /// Adds or refreshes a static-looking entry (for tests and for configuration).
    public mutating func insert(_ ip: IPv4Address, _ hardware: MACAddress, now: Duration) {
        var ignored = Reception()
        if entries[ip] != nil || makeRoom(now: now) {
            learn(ip, hardware, now: now, into: &ignored)
        }
        // Nobody asked for these packets through `takeWaiting`: drop them (counted) rather
        // than leave an entry that can never empty.
        if let waiting = entries[ip]?.waiting, waiting > 0 {
            drops.count(.evicted, UInt64(waiting))
            waitingPackets.removeAll(for: ip)
            entries[ip]!.waiting = 0
        }
    }

    /// A gratuitous ARP announcing our address (RFC 5227 §3), to send after an address
    /// is configured or the MAC changes; wrap it in ``ArpRepr/ethernetHeader``.
    public var gratuitous: ArpRepr { .gratuitous(mac: mac, address: address) }

    private mutating func learn(
        _ ip: IPv4Address, _ hardware: MACAddress, now: Duration, into reception: inout Reception
    ) {
        if entries[ip] == nil {
            entries[ip] = Entry(
                mac: hardware, updatedAt: now, requestsSent: 0, lastRequestAt: now, waiting: 0)
        } else {
            entries[ip]!.mac = hardware
            entries[ip]!.updatedAt = now
            entries[ip]!.requestsSent = 0
        }
        if entries[ip]!.waiting > 0 { reception.resolved = (ip, hardware) }
    }

    /// Evicts an entry if the table is full — pending ones first, then those past
    /// their lifetime, then resolved ones, the one updated longest ago of its kind —
    /// so a flood of addresses that never answer cannot push out a neighbour that
    /// does; false if it cannot.
    private mutating func makeRoom(now: Duration) -> Bool {
        guard configuration.capacity > 0 else { return false }
        guard entries.count >= configuration.capacity else { return true }
        func rank(_ entry: Entry) -> Int {
            if entry.mac == nil { return 0 }
            return now - entry.updatedAt >= configuration.entryLifetime ? 1 : 2
        }
        var oldest: (IPv4Address, Int, Duration)? = nil
        for (ip, entry) in entries {
            let kind = rank(entry)
            if oldest == nil || kind < oldest!.1
                || (kind == oldest!.1 && entry.updatedAt < oldest!.2)
            {
                oldest = (ip, kind, entry.updatedAt)
            }
        }
        if let (ip, _, _) = oldest {
            drops.count(.evicted, UInt64(max(1, entries[ip]!.waiting)))
            waitingPackets.removeAll(for: ip)
            entries[ip] = nil
        }
        return true
    }
}

/// Packets waiting for their next hop's hardware address: a fixed table of slots, each
/// a copy and the address it waits for, taken oldest first per address.
struct WaitingPackets: ~Copyable {
    private struct Slot: ~Copyable {
        var address: IPv4Address
        var sequence: UInt64
        var packet: Packet
    }

    private let slots: UnsafeMutablePointer<Slot?>
    private let capacity: Int
    private(set) var count = 0
    private var nextSequence: UInt64 = 0

    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        for index in 0..<capacity { (slots + index).initialize(to: nil) }
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    var isFull: Bool { count == capacity }

    mutating func append(_ packet: consuming Packet, for address: IPv4Address) {
        for index in 0..<capacity where (slots + index).pointee == nil {
            (slots + index).pointee = Slot(
                address: address, sequence: nextSequence, packet: packet)
            nextSequence &+= 1
            count += 1
            return
        }
        preconditionFailure("appending to a full table of waiting packets")
    }

    mutating func takeOldest(for address: IPv4Address) -> Packet? {
        var oldest: (index: Int, sequence: UInt64)? = nil
        for index in 0..<capacity {
            let match: UInt64? =
                switch (slots + index).pointee {
                case .some(let slot) where slot.address == address: slot.sequence
                default: nil
                }
            if let match, oldest == nil || match < oldest!.sequence { oldest = (index, match) }
        }
        guard let oldest, let slot = (slots + oldest.index).pointee.take() else { return nil }
        count -= 1
        return slot.packet
    }

    mutating func removeAll(for address: IPv4Address) {
        while takeOldest(for: address) != nil {}
    }
}
