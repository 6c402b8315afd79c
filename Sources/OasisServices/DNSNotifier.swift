// RFC 1996 NOTIFY from a primary: when a zone's serial changes (a reload), each
// secondary is told over UDP, and told again until it answers or the tries run out.
// Written against the Datagram surface: kernel sockets and the Oasis stack alike.

import OasisBits
import OasisDNS
import OasisLoop
import OasisNet

#if canImport(Glibc)
    import Glibc
#endif

/// Sends NOTIFY (opcode 4, the zone's SOA as the question, AA set) to every
/// secondary for each zone that is new or whose serial changed, from a UDP port of its
/// own; a notification is sent again every ``interval`` until the secondary answers
/// with the same ID (RFC 1996 §3.6), at most ``attempts`` times.
///
/// ```swift
/// let notifier = try DNSNotifier(
///     service: SocketDatagrams(on: loop), loop: loop,
///     targets: try notifyTargets(parsing: ["127.0.0.1:5301"]))
/// notifier.engineChanged(to: engine)      // at start: every zone is new
/// ```
public final class DNSNotifier<Service: DatagramService> {
    /// NOTIFY messages sent (first tries and retries), zones × secondaries answered
    /// (any rcode: the secondary heard us), and given up after every try.
    public struct Statistics: Sendable {
        public var sent: UInt64 = 0
        public var answered: UInt64 = 0
        public var failed: UInt64 = 0
        /// Answers with an rcode other than NOERROR (a secondary that refuses us).
        public var refused: UInt64 = 0
        /// Notifications dropped unanswered because ``DNSNotifier/maximumPending`` were
        /// already waiting (the oldest goes), or because sending could never work
        /// (the secondary is unreachable from our address).
        public var dropped: UInt64 = 0

        public var summary: String {
            "notify: \(sent) sent, \(answered) answered (\(refused) not NOERROR), "
                + "\(failed) unanswered, \(dropped) dropped"
        }
    }

    public let targets: [DatagramEndpoint]
    public let attempts: Int
    public let interval: Duration
    /// The most notifications waiting for an answer at once; beyond it the oldest is
    /// dropped (and counted in ``Statistics/dropped``). Below the 65 536 message IDs,
    /// so a free ID is always found.
    public let maximumPending: Int
    public private(set) var statistics = Statistics()
    private let service: Service
    private let loop: EventLoop
    private let port: UInt16
    /// Serials last notified, by zone.
    private var serials: [DomainName: UInt32] = [:]
    /// Waiting notifications by message ID, and the same by (zone, secondary), so a
    /// new notification supersedes the old one in constant time.
    private var pending: [UInt16: Pending] = [:]
    private var pendingByKey: [Key: UInt16] = [:]
    /// The order notifications were sent in, oldest first, to drop the oldest when
    /// full; entries whose notification is gone (answered, superseded) are skipped.
    private var order: [(id: UInt16, serial: UInt64)] = []
    private var orderStart = 0
    /// Tells two notifications that reused one ID apart in ``order``.
    private var nextSerial: UInt64 = 0

    private struct Key: Hashable {
        let zone: DomainName
        let target: DatagramEndpoint
    }

    private struct Pending {
        let key: Key
        let message: [UInt8]
        let serial: UInt64
        var triesLeft: Int
        var timer: TimerID?
    }

    /// Listens on `port` of `service` (0: one the kernel picks, on kernel sockets) for
    /// the secondaries' answers. `attempts` and `interval`: RFC 1996 §3.6's retries;
    /// `maximumPending`: see ``maximumPending`` (clamped to 1...32 768).
    public init(
        service: Service, loop: EventLoop, targets: [DatagramEndpoint], port: UInt16 = 0,
        attempts: Int = 5, interval: Duration = .seconds(2), maximumPending: Int = 16_384
    ) throws(DatagramError) {
        self.service = service
        self.loop = loop
        self.targets = targets
        self.port = port
        self.attempts = max(1, attempts)
        self.interval = interval
        self.maximumPending = min(max(1, maximumPending), 32_768)
        try service.listen(port: port) { [weak self] (datagram: consuming Datagram) in
            guard let self else { return }
            let source = datagram.source
            let bytes = datagram.payload.copyBytes()
            self.receive(bytes, from: source)
        }
    }

    /// Notifications waiting for an answer now.
    public var pendingCount: Int { pending.count }

    /// Stops listening and retrying.
    public func close() {
        for entry in pending.values {
            if let timer = entry.timer { _ = loop.cancelTimer(timer) }
        }
        pending = [:]
        pendingByKey = [:]
        order = []
        orderStart = 0
        service.stopListening(port: port)
    }

    /// Notifies the secondaries of every zone of `engine` that is new or whose serial
    /// differs from the one last notified (on the loop's thread). A serial that went
    /// backwards (RFC 1982) is notified too, with a warning: secondaries will not take it.
    public func engineChanged(to engine: AuthoritativeEngine) {
        for zone in engine.servedZones where serials[zone.name] != zone.serial {
            if let old = serials[zone.name], !DNSNotifier.serial(zone.serial, isNewerThan: old) {
                Console.log(
                    "oasis: warning: zone \(zone.name) serial went from \(old) to \(zone.serial), "
                        + "not newer (RFC 1982): secondaries will keep their copy")
            }
            serials[zone.name] = zone.serial
            notify(zone.name)
        }
    }

    /// Whether serial `a` is newer than `b` in RFC 1982 §3.2's sequence-space arithmetic.
    static func serial(_ a: UInt32, isNewerThan b: UInt32) -> Bool {
        a != b && (a &- b) < 0x8000_0000
    }

    /// Sends NOTIFY for `zone` to every secondary now (superseding one still waiting
    /// for an answer about it).
    public func notify(_ zone: DomainName) {
        for target in targets {
            let key = Key(zone: zone, target: target)
            if let old = pendingByKey[key] { remove(old) }
            while pending.count >= maximumPending { dropOldest() }
            let id = freeID()
            let message = DNSNotifier.message(id: id, zone: zone)
            nextSerial &+= 1
            pending[id] = Pending(
                key: key, message: message, serial: nextSerial, triesLeft: attempts, timer: nil)
            pendingByKey[key] = id
            order.append((id, nextSerial))
            send(id)
        }
    }

    /// A random ID (RFC 5452 §9.2's advice for queries: an off-path sender cannot
    /// easily pass for the secondary's answer), the next free one after it if taken.
    /// Fewer than 65 536 are ever pending (``maximumPending``), so the walk ends.
    private func freeID() -> UInt16 {
        var id = UInt16.random(in: 0...UInt16.max)
        for _ in 0..<65_536 {
            guard pending[id] != nil else { break }
            id &+= 1
        }
        return id
    }

    /// Forgets notification `id` (answered, superseded, given up or dropped).
    private func remove(_ id: UInt16) {
        guard let entry = pending.removeValue(forKey: id) else { return }
        if let timer = entry.timer { _ = loop.cancelTimer(timer) }
        if pendingByKey[entry.key] == id { pendingByKey[entry.key] = nil }
        compactOrder()
    }

    /// Drops the oldest notification still waiting, counted.
    private func dropOldest() {
        while orderStart < order.count {
            let (id, serial) = order[orderStart]
            orderStart += 1
            if let entry = pending[id], entry.serial == serial {
                statistics.dropped &+= 1
                remove(id)
                return
            }
        }
    }

    /// Keeps ``order`` within a small multiple of what is pending: stale entries are
    /// squeezed out once they outnumber the live ones.
    private func compactOrder() {
        guard order.count - orderStart > 2 * pending.count + 64 else { return }
        order = order[orderStart...].filter { pending[$0.id]?.serial == $0.serial }
        orderStart = 0
    }

    /// A NOTIFY for `zone`'s SOA (RFC 1996 §3.1): the header, the question, nothing
    /// else (§3.7: the SOA in the answer is optional; secondaries query it).
    static func message(id: UInt16, zone: DomainName) -> [UInt8] {
        // QR 0, opcode 4 (NOTIFY), AA 1.
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        bytes += zone.wire
        bytes += [0, UInt8(RecordType.soa.rawValue), 0, UInt8(RecordClass.internet.rawValue)]
        return bytes
    }

    private func send(_ id: UInt16) {
        guard var entry = pending[id] else { return }
        guard entry.triesLeft > 0 else {
            remove(id)
            statistics.failed &+= 1
            Console.log(
                "oasis: NOTIFY \(entry.key.zone) to \(entry.key.target): no answer, given up")
            return
        }
        entry.triesLeft -= 1
        do {
            try service.send(entry.message, to: entry.key.target, from: port)
            statistics.sent &+= 1
        } catch {
            if DNSNotifier.isPermanent(error) {
                // Trying again cannot help (e.g. a secondary on loopback while we send
                // from another address: EINVAL): say so once and stop.
                remove(id)
                statistics.dropped &+= 1
                Console.log(
                    "oasis: NOTIFY \(entry.key.zone) to \(entry.key.target): \(error); "
                        + "not reachable from our address, given up")
                return
            }
            Console.log("oasis: NOTIFY \(entry.key.zone) to \(entry.key.target): \(error)")
        }
        entry.timer = loop.schedule(after: interval) { [weak self] in self?.send(id) }
        pending[id] = entry
    }

    /// Errors no retry will cure: the destination cannot be reached from the address
    /// we send from, or the datagram is refused outright.
    static func isPermanent(_ error: DatagramError) -> Bool {
        switch error {
        case .unreachable, .payloadTooLarge: return true
        case .system(_, let code):
            return code == EINVAL || code == ENETUNREACH || code == EADDRNOTAVAIL
                || code == EAFNOSUPPORT || code == EACCES || code == EPERM
        case .portInUse, .noBuffers, .tooManyListeners: return false
        }
    }

    /// An answer: a response to a NOTIFY we sent, from the secondary we sent it to.
    private func receive(_ bytes: [UInt8], from source: DatagramEndpoint) {
        guard bytes.count >= 12 else { return }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard bytes[2] & 0x80 != 0, (bytes[2] >> 3) & 0xf == 4, let entry = pending[id],
            entry.key.target == source
        else { return }
        remove(id)
        statistics.answered &+= 1
        let rcode = bytes[3] & 0xf
        if rcode != 0 {
            statistics.refused &+= 1
            Console.log(
                "oasis: NOTIFY \(entry.key.zone) to \(entry.key.target): answered rcode \(rcode)")
        }
    }
}
