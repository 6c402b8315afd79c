// RFC 1996 NOTIFY from a primary: when a zone's serial changes (a reload), each
// secondary is told over UDP, and told again until it answers or the tries run out.
// Written against the Datagram surface: kernel sockets and the Oasis stack alike.

import OasisBits
import OasisDNS
import OasisLoop
import OasisNet

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

        public var summary: String {
            "notify: \(sent) sent, \(answered) answered (\(refused) not NOERROR), "
                + "\(failed) unanswered"
        }
    }

    public let targets: [DatagramEndpoint]
    public let attempts: Int
    public let interval: Duration
    public private(set) var statistics = Statistics()
    private let service: Service
    private let loop: EventLoop
    private let port: UInt16
    /// Serials last notified, by zone.
    private var serials: [DomainName: UInt32] = [:]
    private var pending: [UInt16: Pending] = [:]

    private struct Pending {
        let zone: DomainName
        let target: DatagramEndpoint
        let message: [UInt8]
        var triesLeft: Int
        var timer: TimerID?
    }

    /// Listens on `port` of `service` (0: one the kernel picks, on kernel sockets) for
    /// the secondaries' answers. `attempts` and `interval`: RFC 1996 §3.6's retries.
    public init(
        service: Service, loop: EventLoop, targets: [DatagramEndpoint], port: UInt16 = 0,
        attempts: Int = 5, interval: Duration = .seconds(2)
    ) throws(DatagramError) {
        self.service = service
        self.loop = loop
        self.targets = targets
        self.port = port
        self.attempts = max(1, attempts)
        self.interval = interval
        try service.listen(port: port) { [weak self] (datagram: consuming Datagram) in
            guard let self else { return }
            let source = datagram.source
            let bytes = datagram.payload.copyBytes()
            self.receive(bytes, from: source)
        }
    }

    /// Stops listening and retrying.
    public func close() {
        for entry in pending.values {
            if let timer = entry.timer { _ = loop.cancelTimer(timer) }
        }
        pending = [:]
        service.stopListening(port: port)
    }

    /// Notifies the secondaries of every zone of `engine` that is new or whose serial
    /// differs from the one last notified (on the loop's thread).
    public func engineChanged(to engine: AuthoritativeEngine) {
        for zone in engine.servedZones where serials[zone.name] != zone.serial {
            serials[zone.name] = zone.serial
            notify(zone.name)
        }
    }

    /// Sends NOTIFY for `zone` to every secondary now (superseding one still waiting
    /// for an answer about it).
    public func notify(_ zone: DomainName) {
        for target in targets {
            for (id, entry) in pending where entry.zone == zone && entry.target == target {
                if let timer = entry.timer { _ = loop.cancelTimer(timer) }
                pending[id] = nil
            }
            // A random ID (RFC 5452 §9.2's advice for queries): an off-path sender
            // cannot easily pass for the secondary's answer.
            var id = UInt16.random(in: 0...UInt16.max)
            while pending[id] != nil { id &+= 1 }
            let message = DNSNotifier.message(id: id, zone: zone)
            pending[id] = Pending(
                zone: zone, target: target, message: message, triesLeft: attempts, timer: nil)
            send(id)
        }
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
            pending[id] = nil
            statistics.failed &+= 1
            Console.log("oasis: NOTIFY \(entry.zone) to \(entry.target): no answer, given up")
            return
        }
        entry.triesLeft -= 1
        do {
            try service.send(entry.message, to: entry.target, from: port)
            statistics.sent &+= 1
        } catch {
            Console.log("oasis: NOTIFY \(entry.zone) to \(entry.target): \(error)")
        }
        entry.timer = loop.schedule(after: interval) { [weak self] in self?.send(id) }
        pending[id] = entry
    }

    /// An answer: a response to a NOTIFY we sent, from the secondary we sent it to.
    private func receive(_ bytes: [UInt8], from source: DatagramEndpoint) {
        guard bytes.count >= 12 else { return }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard bytes[2] & 0x80 != 0, (bytes[2] >> 3) & 0xf == 4, let entry = pending[id],
            entry.target == source
        else { return }
        if let timer = entry.timer { _ = loop.cancelTimer(timer) }
        pending[id] = nil
        statistics.answered &+= 1
        let rcode = bytes[3] & 0xf
        if rcode != 0 {
            statistics.refused &+= 1
            Console.log("oasis: NOTIFY \(entry.zone) to \(entry.target): answered rcode \(rcode)")
        }
    }
}
